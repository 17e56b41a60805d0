"""The ONNX Runtime execution path (issue #15): export with metadata, ``OnnxRuntimeModel``,
``OnnxPowerPolicy``, ``cfmimo predict --backend onnxruntime``, and the clustering models (mask +
powers; the tau_p cap applied to the ONNX outputs by the same code as in PyTorch), each against the
PyTorch path. Checkpoints are built by hand (no training); float32 comparisons with loose tolerances."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from cfmimo.cli import app
from cfmimo.config import preset
from cfmimo.data.transforms import PositionFrame, PowerScaler
from cfmimo.learn.config import TrainConfig
from cfmimo.learn.trainer import load_trained, resolve_model_config
from cfmimo.models import build_model
from cfmimo.problems.clustering_power import ClusteringPower
from cfmimo.problems.maxmin_power import MaxMinPower

ort = pytest.importorskip("onnxruntime")

from cfmimo.export import OnnxRuntimeModel, export_onnx, export_trained, read_metadata  # noqa: E402
from cfmimo.policies.neural import ClusterPowerPolicy, OnnxPowerPolicy, PositionPowerPolicy  # noqa: E402

runner = CliRunner()
WIDE = {"COLUMNS": "500"}


def make_checkpoint(folder: Path, model: dict, *, frame: bool = True) -> Path:
    """A cfmimo checkpoint as ``train`` writes it (minus Lightning's own state), random weights."""
    config = TrainConfig.from_dict(
        {
            "model": model,
            "data": {"train": str(folder / "data")},
            "trainer": {
                "epochs": 1,
                "accelerator": "cpu",
                "progress_bar": False,
                "out_dir": str(folder / "run"),
            },
        }
    )
    config = resolve_model_config(config)
    torch.manual_seed(0)
    net = build_model(config.model)
    g = torch.Generator().manual_seed(0)
    scaler = PowerScaler().fit(torch.rand(20, 3, generator=g) * 100, torch.rand(20, 3, generator=g) * 500)
    pos_frame = PositionFrame(0.0, 500.0, 0.0, 500.0).to_dict() if frame else None
    ckpt = {
        "epoch": 0,
        "global_step": 1,
        "state_dict": {f"model.{k}": v for k, v in net.state_dict().items()},
        "hyper_parameters": {
            "config": config.to_dict(),
            "scaler": scaler.to_dict(),
            "position_frame": pos_frame,
        },
    }
    path = folder / "run" / "checkpoints" / "last.ckpt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, path)
    return path


def test_onnx_power_policy_matches_torch_policy(tmp_path):
    ckpt = make_checkpoint(tmp_path, {"name": "deepsets", "d_enc": 8, "d_mod": 16})
    trained = load_trained(ckpt)
    onnx_path = tmp_path / "m.onnx"
    result = export_trained(trained, onnx_path)
    assert max(result["parity"].values()) <= 1e-5
    meta = read_metadata(onnx_path)
    assert meta["kind"] == "power" and meta["scaler"] == trained.scaler.to_dict()
    assert PositionFrame.from_dict(meta["frame"]) == trained.frame
    sc = preset("tree-transformer", K=9, L=16, realizations=8)
    inst = MaxMinPower().sample(sc, 3, seed=5)
    want = PositionPowerPolicy(trained.model, trained.scaler, trained.frame, sigma_ue_m=2.0, seed=3)(inst)
    got = OnnxPowerPolicy(onnx_path, sigma_ue_m=2.0, seed=3)(inst)  # scaler and frame from the file
    torch.testing.assert_close(got.p_ul, want.p_ul, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(got.p_dl, want.p_dl, rtol=1e-4, atol=1e-4)
    assert float(got.p_dl.sum(-1).sub(inst.dl_budget.sum(-1)).abs().max()) <= 1e-3  # eq. (13), per setup


def test_onnx_power_policy_needs_a_scaler(tmp_path):
    export_onnx(build_model({"name": "deepsets"}), tmp_path / "bare.onnx", check=False)  # no metadata
    with pytest.raises(ValueError, match=r"OnnxPowerPolicy\.scaler"):
        OnnxPowerPolicy(tmp_path / "bare.onnx")
    with pytest.raises(ValueError, match="does not exist"):
        OnnxRuntimeModel(tmp_path / "none.onnx")
    model = OnnxRuntimeModel(tmp_path / "bare.onnx")
    with pytest.raises(ValueError, match="ue_mask"):
        model(torch.rand(1, 3, 2), torch.rand(1, 4, 2), torch.tensor([[True, True, False]]))


@pytest.mark.parametrize(
    "name", ["transformer", "cosformer_cluster", "performer_cluster", "transformer_cluster"]
)
def test_export_parity_transformer_layers_and_cluster_models(tmp_path, name):
    """nn.TransformerEncoder layers (traced with shape-relative attention: torch's own bakes the
    example K into the graph) and every exportable clustering model, at K = 1, 3, 17, 40."""
    torch.manual_seed(1)
    result = export_onnx(build_model({"name": name}), tmp_path / f"{name}.onnx", tau_p=4)
    assert len(result["parity"]) == 4 and max(result["parity"].values()) <= 1e-5
    assert all(result.get("clusters_equal", {"power model": True}).values())
    assert not list(tmp_path.glob(".*tmp"))


def test_unexportable_model_names_itself(tmp_path):
    with pytest.raises(ValueError, match="'longformer_cluster' cannot be exported"):
        export_onnx(build_model({"name": "longformer_cluster"}), tmp_path / "l.onnx")  # Unfold, dynamic K
    assert not list(tmp_path.iterdir())


def test_cluster_model_export_parity_and_tau_p_cap(tmp_path):
    torch.manual_seed(0)
    model = build_model({"name": "elu_cosformer"}).eval()
    result = export_onnx(model, tmp_path / "c.onnx", tau_p=4)
    assert result["outputs"] == ["mask", "p", "mask_logits"]
    assert max(result["parity"].values()) <= 1e-5 and all(result["clusters_equal"].values())
    # as a policy: the same clusters and powers, the cap enforced on the ONNX outputs (K = 30 > tau_p)
    sc = preset("elu-cosformer", K=30, realizations=8)
    inst = ClusteringPower().sample(sc, 2, seed=1)
    scaler = PowerScaler().fit(torch.rand(20, 3) * 100, torch.rand(20, 3) * 500)
    want = ClusterPowerPolicy(model, scaler, tau_p=4, sigma_ue_m=1.0, seed=2).clusters(inst)
    got = ClusterPowerPolicy(
        OnnxRuntimeModel(tmp_path / "c.onnx"), scaler, tau_p=4, sigma_ue_m=1.0, seed=2
    ).clusters(inst)
    assert torch.equal(got[0], want[0])
    assert int(got[0].sum(-1).max()) <= 4 and bool(got[0].any(1).all())  # cap, every UE served
    torch.testing.assert_close(got[1], want[1], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(got[2], want[2], rtol=1e-4, atol=1e-4)


def _positions(path: Path) -> Path:
    path.write_text(
        "ue: [[10, 20], [250, 300], [400, 80], [120, 330], [480, 470]]\n"
        "ap: [[100, 100], [300, 300], [450, 50], [50, 450], [250, 60], [60, 250], [400, 400], [200, 200],"
        " [10, 10], [490, 10], [10, 490], [490, 490], [150, 350], [350, 150], [250, 450], [450, 250]]\n"
    )
    return path


@pytest.mark.parametrize(
    ("model", "preset_name"),
    [
        ({"name": "tree_transformer_lean", "d_enc": 8, "d_mod": 16, "ff": 32}, "tree-transformer"),
        ({"name": "elu_cosformer", "d_mod": 16, "heads": 2}, "elu-cosformer"),
    ],
)
def test_cli_predict_backends_agree(tmp_path, model, preset_name):
    ckpt = make_checkpoint(tmp_path, model)
    pos = _positions(tmp_path / "p.yaml")
    args = ["predict", str(ckpt), "--positions", str(pos), "--preset", preset_name, "--json"]
    outs = {}
    for backend in ("torch", "onnxruntime"):
        res = runner.invoke(app, [*args, "--backend", backend], env=WIDE)
        assert res.exit_code == 0, res.output
        outs[backend] = json.loads(res.output)
    onnx_path = tmp_path / "m.onnx"
    assert runner.invoke(app, ["export", str(ckpt), "--onnx", str(onnx_path)], env=WIDE).exit_code == 0
    res = runner.invoke(app, [*args[:1], str(onnx_path), *args[2:], "--backend", "onnxruntime"], env=WIDE)
    assert res.exit_code == 0, res.output
    outs["onnx-file"] = json.loads(res.output)
    want = outs["torch"]
    for got in (outs["onnxruntime"], outs["onnx-file"]):
        for key in ("p_ul_mw", "p_dl_mw", "se_ul", "se_dl"):
            assert got[key] == pytest.approx(want[key], rel=1e-3, abs=1e-3), key
        assert got.get("serving_aps") == want.get("serving_aps")
    if "serving_aps" in want:
        assert want["max_ues_per_ap"] <= want["tau_p"] and all(want["serving_aps"])
        # the optimum for the same clusters is at least as fair
        assert min(want["optimal"]["se_ul"]) >= min(want["se_ul"]) - 1e-6
    bad = runner.invoke(app, [*args, "--backend", "tensorrt"], env=WIDE)
    assert bad.exit_code != 0 and "--backend" in bad.output
    bad = runner.invoke(app, [*args[:1], str(onnx_path), *args[2:]], env=WIDE)  # .onnx with torch
    assert bad.exit_code != 0 and "onnxruntime" in bad.output
