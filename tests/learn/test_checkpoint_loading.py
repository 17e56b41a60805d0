"""Checkpoint loading: every unusable file is one ValueError naming it, in ``load_trained``,
``train(ckpt_path=...)``, ``cfmimo predict`` and ``cfmimo export``; a pickle that would run code is
refused without running it. Checkpoints are built by hand (no training), so these tests are fast."""

from __future__ import annotations

import json
import math
import os
import pickle
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from cfmimo.cli import app
from cfmimo.data.transforms import PowerScaler
from cfmimo.learn.config import TrainConfig, load_train_config
from cfmimo.learn.trainer import load_trained, read_checkpoint, resolve_model_config, train
from cfmimo.models import build_model


def _write_positions(path: Path) -> None:
    path.write_text("ue: [[10, 20], [250, 300]]\nap: [[100, 100], [300, 300], [450, 50]]\n")


def make_checkpoint(folder: Path, *, d_enc: int = 8, weights_d_enc: int | None = None) -> tuple[Path, Path]:
    """A valid cfmimo checkpoint (as ``train`` writes it, minus Lightning's own state) at
    folder/run/checkpoints/last.ckpt and its training config YAML; ``weights_d_enc``: take the
    weights from a model of another size (a wrong-shape checkpoint)."""
    config = TrainConfig.from_dict(
        {
            "model": {"name": "deepsets", "d_enc": d_enc, "d_mod": 16},
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
    weights_config = {**config.model.model_dump(), "d_enc": weights_d_enc or d_enc}
    model = build_model(weights_config)
    g = torch.Generator().manual_seed(0)
    scaler = PowerScaler().fit(torch.rand(20, 3, generator=g) * 100, torch.rand(20, 3, generator=g) * 500)
    ckpt = {
        "epoch": 0,
        "global_step": 1,
        "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
        "hyper_parameters": {"config": config.to_dict(), "scaler": scaler.to_dict(), "position_frame": None},
    }
    path = folder / "run" / "checkpoints" / "last.ckpt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, path)
    config.to_yaml(folder / "train.yaml")
    return path, folder / "train.yaml"


class RunsCode:
    """Unpickling this creates ``marker``: what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def write_malicious(path: Path, marker: Path, *, legacy: bool = False) -> None:
    payload = {"state_dict": {"model.w": RunsCode(marker)}, "hyper_parameters": {}}
    if legacy:  # a plain (non-zip) pickle, as torch.save wrote before 1.6
        path.write_bytes(pickle.dumps(payload))
    else:
        torch.save(payload, path)


def _corrupt(kind: str, valid: Path, path: Path) -> None:
    data = valid.read_bytes()
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif kind == "random":
        path.write_bytes(
            torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(1))
            .to(torch.uint8)
            .numpy()
            .tobytes()
        )
    elif kind == "not-a-dict":
        torch.save(torch.zeros(3), path)
    elif kind == "non-tensor-weights":
        ckpt = torch.load(valid, weights_only=True)
        ckpt["state_dict"] = {k: v.tolist() for k, v in ckpt["state_dict"].items()}
        torch.save(ckpt, path)
    elif kind == "nan-weights":
        ckpt = torch.load(valid, weights_only=True)
        ckpt["state_dict"] = {k: torch.full_like(v, float("nan")) for k, v in ckpt["state_dict"].items()}
        torch.save(ckpt, path)
    elif kind == "no-config":
        ckpt = torch.load(valid, weights_only=True)
        del ckpt["hyper_parameters"]["config"]
        torch.save(ckpt, path)
    else:
        raise AssertionError(kind)


WIDE = {"COLUMNS": "500"}  # Rich's error panel wraps long paths at the terminal width

KINDS = ["empty", "truncated", "random", "not-a-dict", "non-tensor-weights", "nan-weights", "no-config"]


def test_a_hand_made_checkpoint_loads_and_predicts(tmp_path):
    """The positive control for everything below: the valid file works in the library and the CLI."""
    ckpt, _ = make_checkpoint(tmp_path)
    trained = load_trained(ckpt)
    assert trained.config.model.d_enc == 8 and trained.frame is None
    pos = tmp_path / "pos.yaml"
    pos.write_text("ue: [[10, 20], [250, 300]]\nap: [[100, 100], [300, 300], [450, 50]]\n")
    result = CliRunner().invoke(app, ["predict", str(ckpt), "--positions", str(pos), "--json"])
    assert result.exit_code == 0, result.output
    strict = json.loads(result.output, parse_constant=lambda c: pytest.fail(f"non-JSON token {c}"))
    assert strict["K"] == 2 and len(strict["p_ul_mw"]) == 2 and all(math.isfinite(p) for p in strict["se_ul"])


@pytest.mark.parametrize("kind", KINDS)
def test_bad_checkpoint_is_one_error_naming_the_file(tmp_path, kind):
    valid, _ = make_checkpoint(tmp_path)
    bad = tmp_path / f"bad-{kind}.ckpt"
    _corrupt(kind, valid, bad)
    _write_positions(tmp_path / "p.yaml")  # predict reads the positions before the checkpoint
    with pytest.raises(ValueError, match=f"bad-{kind}.ckpt") as err:
        load_trained(bad)
    assert "weights_only=False" not in str(err.value)
    for args in (
        ["predict", str(bad), "--positions", str(tmp_path / "p.yaml")],
        ["export", str(bad), "--onnx", str(tmp_path / "m.onnx")],
    ):
        result = CliRunner().invoke(app, args, env=WIDE)
        assert result.exit_code == 2, result.output  # the CLI's error path (BadParameter), no traceback
        assert f"bad-{kind}.ckpt" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "m.onnx").exists()


def test_wrong_shape_weights_name_the_file_in_every_path(tmp_path):
    ckpt, config = make_checkpoint(tmp_path, d_enc=8, weights_d_enc=12)
    with pytest.raises(ValueError, match=r"last\.ckpt.*do not fit"):
        load_trained(ckpt)
    with pytest.raises(ValueError, match=r"last\.ckpt.*do not fit"):
        train(load_train_config(config), ckpt_path="last")
    result = CliRunner().invoke(app, ["train", "--config", str(config), "--resume"], env=WIDE)
    assert result.exit_code == 2 and "last.ckpt" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("legacy", [False, True])
def test_malicious_pickle_is_refused_everywhere_and_never_runs(tmp_path, legacy):
    _, config = make_checkpoint(tmp_path)
    bad = tmp_path / "run" / "checkpoints" / "last.ckpt"  # also the file `train --resume` reads
    marker = tmp_path / "PWNED"
    write_malicious(bad, marker, legacy=legacy)
    _write_positions(tmp_path / "p.yaml")  # predict reads the positions before the checkpoint
    messages = []
    for call in (lambda: load_trained(bad), lambda: read_checkpoint(bad)):
        with pytest.raises(ValueError) as err:
            call()
        messages.append(str(err.value))
    runner = CliRunner()
    for args in (
        ["predict", str(bad), "--positions", str(tmp_path / "p.yaml")],
        ["export", str(bad), "--onnx", str(tmp_path / "m.onnx")],
        ["train", "--config", str(config), "--resume"],
    ):
        result = runner.invoke(app, args, env=WIDE)
        assert result.exit_code == 2, result.output
        messages.append(result.output)
    assert not marker.exists()
    for text in messages:
        assert "last.ckpt" in text and "refused to run code" in text
        assert "weights_only=False" not in text and "Traceback" not in text
    if not legacy:  # the zip format names the callable it refused
        assert "posix.system" in messages[0] or "os.system" in messages[0]


def test_missing_and_directory_checkpoints(tmp_path):
    with pytest.raises(ValueError, match=r"nothere\.ckpt.*does not exist"):
        load_trained(tmp_path / "nothere.ckpt")
    (tmp_path / "dir.ckpt").mkdir()
    with pytest.raises(ValueError, match=r"dir\.ckpt"):
        load_trained(tmp_path / "dir.ckpt")


def test_a_resumed_finished_run_reports_its_true_epoch_count(make_config):
    """Completed epochs = the checkpoint's history, whether the finished run is read from the
    checkpoint (same config) or resumed through Lightning (a config asking for fewer epochs)."""
    first = train(make_config(trainer={"epochs": 2}))
    again = train(make_config(trainer={"epochs": 2}), ckpt_path="last")
    assert again.seconds == 0.0  # read from the checkpoint: nothing trained
    fewer = train(make_config(trainer={"epochs": 1}), ckpt_path="last")
    for result in (first, again, fewer):
        assert result.epochs == 2 == len(result.history)
        assert [e["epoch"] for e in result.history] == [0, 1]
    assert torch.load(first.last_checkpoint, weights_only=True)["epoch"] == 1  # 0-based index of the last
