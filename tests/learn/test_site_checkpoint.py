"""A model trained on a site records the site in its checkpoint and ONNX export; ``cfmimo predict``
scores it on that site and refuses another AP layout, naming the positions file (issue 15)."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from cfmimo.cli import app
from cfmimo.config import preset
from cfmimo.data.generation import run_generation
from cfmimo.data.spec import DatasetSpec, deployment_scenario
from cfmimo.learn.trainer import load_trained, train
from cfmimo.sim.shadowing_field import on_site, site_ap_positions, site_identity

runner = CliRunner()


def _site(seed: int = 2):
    return deployment_scenario(preset("tree-transformer", realizations=6), "site", seed)


def test_site_identity_and_on_site():
    book = preset("tree-transformer")
    assert site_identity(book) is None and on_site(book, None) is book
    site = _site()
    ident = site_identity(site)
    assert ident["deployment_seed"] == 2 and ident["shadowing_field"] and ident["ap_deployment"] == "fixed"
    assert json.loads(json.dumps(ident)) == ident  # JSON-safe: checkpoints and ONNX metadata
    placed = on_site(book, ident, ap_positions=site_ap_positions(site))
    assert site_identity(placed) == ident
    # the same place on the placed scenario has the site's shadowing: identical gains
    from cfmimo.sim.network import networks_from_positions

    ap = site_ap_positions(site).float()[None]
    ue = torch.tensor([[[100.0, 200.0], [440.0, 15.0]]])
    a = networks_from_positions(placed.with_(K=2), ap, ue, seed=5, indices=range(1))
    b = networks_from_positions(site.with_(K=2), ap, ue, seed=9, indices=range(1))
    torch.testing.assert_close(a.gain_db, b.gain_db, rtol=0, atol=1e-4)


def test_on_site_refuses_another_layout_naming_the_file():
    site, ident = _site(), site_identity(_site())
    moved = site_ap_positions(site).clone()
    moved[3, 0] += 25.0
    with pytest.raises(
        ValueError,
        match=r"pos\.yaml: AP 3 at .* is not where the model's training site \(deployment_seed 2, L = 16\)",
    ):
        on_site(preset("tree-transformer"), ident, ap_positions=moved, what="pos.yaml")
    with pytest.raises(ValueError, match=r"pos\.yaml: 4 APs, but the model's training site .* has 16"):
        on_site(preset("tree-transformer"), ident, ap_positions=moved[:4], what="pos.yaml")
    with pytest.raises(ValueError, match="site: the recorded site is not a valid scenario"):
        on_site(preset("tree-transformer"), {**ident, "area_side_m": -1.0})


@pytest.fixture(scope="module")
def site_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    spec = DatasetSpec(scenario=_site(), sizes=[(3, 16)], samples=24, shard_size=24, seed=0)
    run_generation(spec, root / "data", scheduler="sync")
    from cfmimo.learn.config import TrainConfig

    config = TrainConfig.from_dict(
        {
            "model": {"name": "deepsets", "d_enc": 8, "d_mod": 16},
            "data": {"train": str(root / "data"), "val_fraction": 0.25},
            "trainer": {
                "epochs": 1,
                "batch_size": 8,
                "accelerator": "cpu",
                "progress_bar": False,
                "out_dir": str(root / "run"),
            },
        }
    )
    return root, train(config).best_checkpoint


def test_checkpoint_and_export_record_the_site(site_run, make_config):
    root, ckpt = site_run
    assert load_trained(ckpt).site == site_identity(_site())
    _model, _scaler, config, _frame = load_trained(ckpt)  # still the documented 4-tuple
    assert config.model.name == "deepsets"
    from cfmimo.export import export_trained, read_metadata

    export_trained(load_trained(ckpt), root / "m.onnx", check=False)
    assert read_metadata(root / "m.onnx")["site"] == site_identity(_site())
    # a model of the book's drops records none
    assert load_trained(train(make_config(trainer={"epochs": 1})).best_checkpoint).site is None


def test_predict_scores_on_the_site_and_refuses_another_layout(site_run):
    root, ckpt = site_run
    ap = site_ap_positions(_site()).tolist()
    good = root / "good.yaml"
    good.write_text(json.dumps({"ue": [[120.0, 300.0], [400.0, 450.0], [40.0, 490.0]], "ap": ap}))
    res = runner.invoke(app, ["predict", str(ckpt), "--positions", str(good), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    # scored on the site: the optimum's SEs are those of the site's gains at these positions
    from cfmimo.predict import predict_setup

    model, scaler = load_trained(ckpt).model, load_trained(ckpt).scaler
    import numpy as np

    ue_np, ap_np = np.array(json.loads(good.read_text())["ue"]), np.array(ap)
    ref = predict_setup(
        model, scaler, ue_np, ap_np, on_site(preset("tree-transformer"), site_identity(_site()))
    )
    assert out["optimal"]["se_ul"] == pytest.approx(ref["optimal"]["se_ul"], rel=1e-6)
    book = predict_setup(model, scaler, ue_np, ap_np, preset("tree-transformer"))
    assert out["optimal"]["se_ul"] != pytest.approx(book["optimal"]["se_ul"], rel=1e-3)
    bad = root / "bad.yaml"
    bad.write_text(json.dumps({"ue": [[120.0, 300.0]], "ap": [[0.0, 0.0], *ap[1:]]}))
    res = runner.invoke(app, ["predict", str(ckpt), "--positions", str(bad)])
    assert res.exit_code != 0 and "bad.yaml: AP 0" in " ".join(res.output.split())
