"""timing.json of every trained run (issue #15): totals over every call that trained the run, kept
across a resume, rebuilt from the checkpoint for a finished run, and read by the elu-cosformer
Table IV code (never NaN for a run trained with this trainer)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from cfmimo.experiments.elu_cosformer.run import _training_timing
from cfmimo.learn.trainer import TIMING_FILE, read_timing, train


def _steps(ckpt: str) -> int:
    return int(torch.load(ckpt, weights_only=True)["global_step"])


def test_timing_json_totals_survive_resume_and_are_rebuilt(make_config):
    first = train(make_config(trainer={"epochs": 2}))
    out = Path(first.out_dir)
    t1 = read_timing(out)
    assert t1["epochs"] == 2 and t1["steps"] == _steps(first.last_checkpoint) > 0
    assert t1["device"] == "cpu" and t1["threads"] == torch.get_num_threads() and t1["world_size"] == 1
    assert 0 < t1["train_seconds"] <= t1["wall_seconds"]
    assert math.isclose(t1["steps_per_s"], t1["steps"] / t1["train_seconds"])
    assert math.isclose(t1["train_s_per_epoch"], t1["train_seconds"] / 2)
    assert t1["train_samples"] > 0 and t1["train_samples"] % 2 == 0  # two equal epochs

    resumed = train(make_config(trainer={"epochs": 3}), ckpt_path="last")
    t2 = read_timing(out)
    assert t2["epochs"] == 3 and t2["steps"] == _steps(resumed.last_checkpoint)
    assert t2["train_seconds"] > t1["train_seconds"] and t2["train_samples"] == 3 * t1["train_samples"] // 2

    (out / TIMING_FILE).unlink()  # a finished run re-run: nothing trains, the file is rebuilt
    again = train(make_config(trainer={"epochs": 3}), ckpt_path="last")
    assert again.seconds == 0.0 and again.train_samples_per_s == 0.0
    t3 = json.loads((out / TIMING_FILE).read_text())
    assert {k: t3[k] for k in ("epochs", "steps", "train_seconds", "device")} == {
        k: t2[k] for k in ("epochs", "steps", "train_seconds", "device")
    }

    class Finished:  # what train_power_model returns for a run that trained nothing in this call
        samples_per_s, timing = 0.0, None

    got = _training_timing(out, Finished(), train_samples=0, device="cuda")
    assert got["train_s_per_epoch"] == t3["train_s_per_epoch"] and got["device"] == "cpu"
    assert got["steps_per_s"] == t3["steps_per_s"]


def test_unsupervised_runs_write_timing_json(tmp_path):
    from cfmimo.learn.unsupervised import train_unsupervised

    cfg = dict(
        model=dict(name="aagnn_woa", d_mod=8, layers=1),
        scenario=dict(K=4),
        train_samples=16,
        val_samples=8,
        batch_size=16,
        max_steps=6,
        val_every=3,
        out_dir=str(tmp_path / "run"),
    )
    train_unsupervised(cfg)
    t = read_timing(tmp_path / "run")
    assert t["steps"] == 6 and t["train_seconds"] > 0 and t["validation_in_train"] is True
    assert math.isclose(t["steps_per_s"], 6 / t["train_seconds"]) and t["device"] == "cpu"
    assert t["train_samples"] is None and math.isnan(t["train_samples_per_s"])


def test_last_checkpoint_is_saved_after_an_epoch_that_does_not_improve(make_config):
    """Lightning 2.6 saves last.ckpt only with a new top-k checkpoint; ours saves it every epoch,
    so a finished run whose last epoch was not its best is recognized as finished, not retrained."""
    from lightning.pytorch.callbacks import Callback

    class Worsening(Callback):  # runs before ModelCheckpoint: val_loss = epoch, so epoch 0 stays best
        def on_validation_end(self, trainer, pl_module):
            if not trainer.sanity_checking:
                trainer.callback_metrics["val_loss"] = torch.tensor(float(trainer.current_epoch))

    first = train(make_config(trainer={"epochs": 3}), callbacks=[Worsening()])
    assert Path(first.best_checkpoint).name == "best-epoch=000.ckpt"
    last = torch.load(first.last_checkpoint, weights_only=True)
    assert last["epoch"] == 2 and last["global_step"] == read_timing(first.out_dir)["steps"]
    again = train(make_config(trainer={"epochs": 3}), ckpt_path="last")
    assert again.seconds == 0.0 and again.epochs == 3  # finished: read from the checkpoint
