"""The training driver end to end on tiny datasets: learning, checkpoint contents and reloading,
resuming, a separate validation set with fresh noise, and DDP with two CPU processes (gloo)."""

from __future__ import annotations

import copy
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from cfmimo import __version__
from cfmimo.learn.trainer import load_trained, train


class KeepModels(pl.Callback):
    """A copy of the inner model after every validated epoch."""

    def __init__(self) -> None:
        self.models: dict[int, torch.nn.Module] = {}

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self.models[trainer.current_epoch] = copy.deepcopy(pl_module.model).eval()


def csv_epochs(log_dir: str) -> set[int]:
    with open(Path(log_dir) / "metrics.csv") as f:
        return {int(row["epoch"]) for row in csv.DictReader(f) if row["epoch"]}


def test_training_lowers_the_validation_loss_and_checkpoints_reload(make_config, tmp_path):
    keep = KeepModels()
    result = train(make_config(trainer={"epochs": 4}), callbacks=[keep])
    losses = [e["val_loss"] for e in result.history]
    assert [e["epoch"] for e in result.history] == [0, 1, 2, 3] and result.epochs == 4
    assert result.best_val_loss == pytest.approx(min(losses), rel=1e-6)
    assert result.best_val_loss < 0.995 * losses[0]
    # val_loss is the plain average of the per-size losses (the paper's checkpoint criterion)
    assert set(result.val_losses) == {"K=2,L=16", "K=4,L=16"}
    assert result.best_val_loss == pytest.approx(sum(result.val_losses.values()) / 2, rel=1e-6)
    assert result.train_samples_per_s > 0 and result.seconds > 0

    # plain tensors and types only: loads without pickle
    ckpt = torch.load(result.best_checkpoint, weights_only=True)
    hp = ckpt["hyper_parameters"]
    assert hp["seed"] == 0 and hp["cfmimo_version"] == __version__
    assert hp["config"]["model"]["name"] == "deepsets" and hp["val_sizes"] == [[2, 16], [4, 16]]
    assert set(hp["scaler"]) == {"ul_min", "ul_max", "dl_min", "dl_max", "eps"}

    model, scaler, config, frame = load_trained(result.best_checkpoint)
    assert frame is not None and frame.x_max > frame.x_min  # the fitted global input frame
    assert not model.training and config.to_dict() == hp["config"] and scaler.to_dict() == hp["scaler"]
    g = torch.Generator().manual_seed(0)
    ue, ap = torch.rand(5, 4, 2, generator=g), torch.rand(5, 16, 2, generator=g)
    with torch.no_grad():
        assert torch.equal(model(ue, ap), keep.models[result.best_epoch](ue, ap))
        last = load_trained(result.last_checkpoint).model
        assert torch.equal(last(ue, ap), keep.models[3](ue, ap))
    with pytest.raises(ValueError, match="does not exist"):
        load_trained(tmp_path / "missing.ckpt")
    assert (Path(result.out_dir) / "config.yaml").is_file()
    assert any((Path(result.out_dir) / "tensorboard").rglob("events.out.tfevents*"))


def test_resume_continues_the_epoch_count(make_config):
    first = train(make_config(trainer={"epochs": 2}))
    resumed = train(make_config(trainer={"epochs": 3}), ckpt_path="last")
    assert resumed.epochs == 3
    assert [e["epoch"] for e in resumed.history] == [0, 1, 2]  # the history survives the resume
    assert resumed.history[:2] == first.history
    assert csv_epochs(first.log_dir) == {0, 1} and csv_epochs(resumed.log_dir) == {2}  # only epoch 2 ran
    assert torch.load(resumed.last_checkpoint, weights_only=True)["epoch"] == 2
    with pytest.raises(ValueError, match="another model config"):
        train(make_config(model={"d_enc": 8}, trainer={"epochs": 4}), ckpt_path="last")
    # resuming a finished run reads its result from the checkpoint: nothing trained, no new logs
    again = train(make_config(trainer={"epochs": 3}), ckpt_path="last")
    assert (again.best_checkpoint, again.epochs, again.history) == (
        resumed.best_checkpoint,
        3,
        resumed.history,
    )
    assert again.best_val_loss == pytest.approx(resumed.best_val_loss)
    assert again.val_losses == pytest.approx(resumed.val_losses)
    assert again.seconds == 0.0 and again.train_samples_per_s == 0.0
    assert len(list(Path(resumed.log_dir).parent.iterdir())) == 2  # version_0 and version_1 only


def test_separate_validation_set_and_fresh_noise(make_config, tiny_val):
    cfg = make_config(
        data={"val": str(tiny_val), "fresh_noise": True},
        optim={"schedule": "constant"},
        trainer={"epochs": 2, "limit_train_batches": 3},
    )
    result = train(cfg)
    assert result.epochs == 2 and result.train_samples_per_s > 0
    hp = torch.load(result.best_checkpoint, weights_only=True)["hyper_parameters"]
    assert hp["config"]["data"]["val"] == str(tiny_val)


def test_ddp_two_cpu_processes(make_config, tmp_path):
    """`cfmimo train` with 2 processes on gloo; Lightning re-executes the command for rank 1."""
    cfg = make_config(trainer={"epochs": 2, "batch_size": 16, "out_dir": str(tmp_path / "ddp")})
    cfg.to_yaml(tmp_path / "ddp.yaml")
    script = Path(sys.executable).parent / "cfmimo"  # the console script; else the module's entry point
    command = [str(script), "train"] if script.is_file() else [sys.executable, "-m", "cfmimo.learn.trainer"]
    overrides = ["--set", "trainer.devices=2", "--set", "trainer.strategy=ddp"]
    proc = subprocess.run(
        [*command, "--config", str(tmp_path / "ddp.yaml"), *overrides, "--json"],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "distributed_backend=gloo" in proc.stderr and "Starting with 2 processes" in proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout  # only rank 0 reports; logs and progress go to stderr
    result = json.loads(lines[0])
    assert result["epochs"] == 2 and Path(result["best_checkpoint"]).is_file()
    assert (tmp_path / "ddp" / "checkpoints" / "last.ckpt").is_file()
    config = load_trained(result["best_checkpoint"]).config
    assert config.trainer.devices == 2 and result["val_losses"].keys() == {"K=2,L=16", "K=4,L=16"}
