"""Unsupervised training module: a tiny run raises the validation sum rate, checkpoints reload
identically with weights_only=True, the penalty hook enters the loss, configs are validated."""

from __future__ import annotations

import pytest
import torch

from cfmimo.learn.unsupervised import (
    UnsupervisedConfig,
    UnsupervisedModule,
    load_unsupervised,
    make_policy,
    sample_sets,
    train_unsupervised,
)
from cfmimo.problems.sumrate_precoding import SumRatePrecoding


def _config(tmp_path, **extra):
    base = dict(
        model=dict(name="aagnn_woa", d_mod=8, layers=2),
        scenario=dict(K=4),
        train_samples=16,
        val_samples=24,
        batch_size=16,
        max_steps=30,
        val_every=10,
        out_dir=str(tmp_path / "run"),
    )
    return {**base, **extra}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return train_unsupervised(_config(tmp_path_factory.mktemp("unsup")))


def test_tiny_run_raises_validation_sum_rate(run):
    assert len(run["history"]) == 3  # steps 10, 20, 30: a step budget on a one-batch training set
    assert [row["step"] for row in run["history"]] == [10.0, 20.0, 30.0]
    assert run["best_val_objective"] > run["initial_val_objective"] * 1.02
    # the logged metric is the problem's own metric (same function as the loss)
    assert all(row["val_objective"] == pytest.approx(row["val/sum_rate"], rel=1e-6) for row in run["history"])


def test_checkpoint_reloads_with_weights_only_and_predicts_identically(run):
    ckpt = torch.load(run["best_checkpoint"], map_location="cpu", weights_only=True)
    assert ckpt["hyper_parameters"]["config"]["model"]["name"] == "aagnn_woa"
    model, config = load_unsupervised(run["best_checkpoint"])
    _, val = sample_sets(config, SumRatePrecoding())
    with torch.no_grad():
        a = make_policy(config, model)(val).precoders
        b = run["policy"](val).precoders
    assert torch.equal(a, b)
    assert float(model.input_scale) != 1.0  # the fitted input statistic travels in the state dict
    with torch.no_grad():
        objective = SumRatePrecoding().objective(val, make_policy(config, model)(val)).mean()
    assert float(objective) == pytest.approx(run["best_val_objective"], rel=1e-5)


def test_penalty_hook_enters_the_loss(tmp_path):
    calls = []

    def penalty(problem, instance, allocation, module):
        calls.append(instance.batch)
        return 0.0 * allocation.precoders.abs().sum() + 7.0

    module = UnsupervisedModule(UnsupervisedConfig.from_dict(_config(tmp_path)).to_dict(), penalty=penalty)
    train, _ = sample_sets(module.config, module.problem)
    module.log = lambda *a, **k: None  # no Trainer attached
    loss = module.training_step(train, 0)
    objective = module.problem.objective(train, module.policy(train)).mean()
    assert calls == [16]
    torch.testing.assert_close(loss, -objective + 7.0)


def test_config_errors_name_the_field(tmp_path):
    with pytest.raises(ValueError, match="max_steps"):
        UnsupervisedConfig.from_dict(_config(tmp_path, max_steps=0))
    with pytest.raises(ValueError, match="problem"):
        UnsupervisedConfig.from_dict(_config(tmp_path, problem="nope"))
    with pytest.raises(ValueError, match="does not exist"):
        load_unsupervised(tmp_path / "missing.ckpt")


def test_training_builds_the_model_the_registry_builds():
    """A dumped ModelConfig marks every field as set; resolve_model keeps the model's own defaults
    (woA's 4 x 128 widths and 397,312 parameters, AAGNN's activation "none", the MRT init) through
    the Lightning module's config round trip."""
    from cfmimo.learn.unsupervised import resolve_model
    from cfmimo.models import ModelConfig, build_model, count_parameters

    for name, params in (("aagnn_woa", 397_312), ("aagnn", 34_822)):
        cfg = resolve_model(UnsupervisedConfig(model=ModelConfig(name=name)))
        module = UnsupervisedModule(cfg.to_dict())
        assert (
            count_parameters(module.model) == params == count_parameters(build_model(ModelConfig(name=name)))
        )
        assert module.model.config.init == "mrt"
        assert module.model.config.activation == ("none" if name == "aagnn" else "relu")
    # without resolving, the generic ModelConfig defaults would win (the bug this guards against)
    raw = UnsupervisedModule(UnsupervisedConfig(model=ModelConfig(name="aagnn_woa")).to_dict())
    assert count_parameters(raw.model) == 34_816 and raw.model.config.init == "default"


def test_lr_warmup_is_linear_then_follows_the_decay_schedule():
    """lr_warmup_steps = 4 on lr 1e-2 with x0.1 at half of 10 steps: 2.5e-3, 5e-3, 7.5e-3, 1e-2, 1e-2,
    then 1e-3 from step 5; with lr_final the geometric decay is multiplied in the same way."""
    from cfmimo.models import ModelConfig

    base = dict(model=ModelConfig(name="aagnn_woa", d_mod=4, layers=1), lr=1e-2, max_steps=10)
    module = UnsupervisedModule(UnsupervisedConfig(**base, lr_warmup_steps=4, lr_decay_at=(0.5,)).to_dict())
    opt = module.configure_optimizers()
    optimizer, scheduler = opt["optimizer"], opt["lr_scheduler"]["scheduler"]
    lrs = []
    for _ in range(8):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    want = [2.5e-3, 5e-3, 7.5e-3, 1e-2, 1e-2, 1e-3, 1e-3, 1e-3]
    assert lrs == pytest.approx(want, rel=1e-12)
    module = UnsupervisedModule(UnsupervisedConfig(**base, lr_warmup_steps=2, lr_final=1e-4).to_dict())
    opt = module.configure_optimizers()
    optimizer, scheduler = opt["optimizer"], opt["lr_scheduler"]["scheduler"]
    gamma = (1e-4 / 1e-2) ** 0.1
    for step in range(4):
        assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-2 * min(1, (step + 1) / 2) * gamma**step)
        optimizer.step()
        scheduler.step()
    with pytest.raises(ValueError, match="lr_warmup_steps"):
        UnsupervisedConfig.from_dict({"lr_warmup_steps": -1})
