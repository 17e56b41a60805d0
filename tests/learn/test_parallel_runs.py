"""``train_power_models(jobs=N)`` / ``cfmimo reproduce --jobs N`` (issue #15): independent runs
trained with one torch thread each give bitwise the same checkpoints for N = 1 (one after the
other in this process) and N = 2 (two spawned worker processes)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cfmimo.experiments.training import PowerRun, train_power_models
from cfmimo.models import ModelConfig

MODELS = {
    "deepsets": ModelConfig(name="deepsets", d_enc=8, d_mod=16),
    "tree": ModelConfig(name="tree_transformer_lean", d_enc=8, d_mod=16, ff=32),
}  # two runs, two seeds


def _runs(train: Path, out: Path) -> dict[str, PowerRun]:
    return {
        key: PowerRun(model, train, out / key, epochs=1, batch_size=64, lr=2e-3, sigma_ue_m=1.0, seed=i)
        for i, (key, model) in enumerate(MODELS.items())
    }


def _state(path: str) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


def _assert_bitwise(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_jobs_give_bitwise_identical_checkpoints(tiny_train, tmp_path):
    threads = torch.get_num_threads()
    got = {
        jobs: train_power_models(_runs(tiny_train, tmp_path / f"jobs{jobs}"), jobs=jobs, log=lambda m: None)
        for jobs in (1, 2)
    }
    assert torch.get_num_threads() == threads  # restored after jobs=1
    for key in MODELS:
        ref, other = got[1][key], got[2][key]
        assert Path(ref.checkpoint).parent != Path(other.checkpoint).parent
        assert ref.timing["threads"] == other.timing["threads"] == 1 and ref.timing["steps"] > 0
        _assert_bitwise(_state(ref.checkpoint), _state(other.checkpoint))
        last = str(Path(ref.checkpoint).with_name("last.ckpt"))
        _assert_bitwise(_state(last), _state(str(Path(other.checkpoint).with_name("last.ckpt"))))
        assert other.best_val_loss == ref.best_val_loss
        # the model reloaded in the parent is the worker's checkpoint
        _assert_bitwise(
            {f"model.{k}": v for k, v in other.model.state_dict().items()}, _state(ref.checkpoint)
        )
    with pytest.raises(ValueError, match="jobs"):
        train_power_models(_runs(tiny_train, tmp_path / "bad"), jobs=0)


def test_reproduce_cli_passes_jobs_and_refuses_it_where_runs_are_not_independent(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from cfmimo.cli import app
    from cfmimo.experiments import tree_transformer

    seen = {}

    def fake_run(config, out, *, scheduler, workers, train_only, log, jobs=None):
        seen.update(jobs=jobs, train_only=train_only)
        return {"runs": {"tree_transformer": str(out)}}

    monkeypatch.setattr(tree_transformer, "run", fake_run)
    runner = CliRunner()
    args = ["reproduce", "tree-transformer", "--quick", "--out", str(tmp_path / "o"), "--train-only"]
    result = runner.invoke(app, [*args, "--jobs", "2"])
    assert result.exit_code == 0, result.output
    assert seen == {"jobs": 2, "train_only": True}
    assert runner.invoke(app, [*args, "--jobs", "0"]).exit_code != 0
    bad = runner.invoke(app, ["reproduce", "aagnn", "--quick", "--out", str(tmp_path / "a"), "--jobs", "2"])
    assert bad.exit_code != 0 and "--jobs" in bad.output
