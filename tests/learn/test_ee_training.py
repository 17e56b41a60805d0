"""The ee-gnn unsupervised recipe (loss (7), rule (8), lr decay) on the shared Lightning module, and
the EE policy wrapper."""

from __future__ import annotations

import pytest
import torch

from cfmimo.config import preset
from cfmimo.learn.unsupervised import (
    UnsupervisedConfig,
    UnsupervisedModule,
    load_unsupervised,
    make_policy,
    sample_sets,
    train_unsupervised,
)
from cfmimo.models import ModelConfig, build_model
from cfmimo.policies.neural import EEPowerPolicy
from cfmimo.problems.energy_efficiency import EnergyEfficiency
from cfmimo.testing import assert_policy


def _config(tmp_path, **kw) -> dict:
    cfg = dict(
        model=dict(name="ee_gnn", d_mod=4, rounds=1, sinr_depth=2),
        problem="energy_efficiency",
        preset="ee-gnn",
        scenario={"L": 2, "K": 3},
        train_samples=32,
        val_samples=16,
        batch_size=16,
        lr=2e-2,
        lr_final=2e-3,
        max_steps=40,
        val_every=20,
        support=dict(h=5, delta_kappa=1e-2, samples=4),
        out_dir=str(tmp_path),
        seed=0,
    )
    cfg.update(kw)
    return cfg


def test_policy_is_feasible_equivariant_and_batch_consistent() -> None:
    problem = EnergyEfficiency()
    inst = problem.sample(preset("ee-gnn", L=3, K=4), 4, seed=1, dtype=torch.float64)
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="ee_gnn", d_mod=4)).double()
    model.fit_input_stats(inst.gains, inst.serving)
    for power in ("low", "midpoint"):
        alloc = assert_policy(problem, EEPowerPolicy(model, power=power), inst)
        assert float(problem.violation(inst, alloc).max()) <= 0.0
    low = EEPowerPolicy(model)(inst)
    torch.testing.assert_close(low.link_power, low.info["a_mw"])  # the test-time power is a
    with pytest.raises(ValueError, match="power"):
        EEPowerPolicy(model, power="upper")


def test_support_config_is_validated(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"support\.h"):
        UnsupervisedConfig.from_dict(_config(tmp_path, support=dict(h=0)))
    with pytest.raises(ValueError, match=r"support\.delta_kappa"):
        UnsupervisedConfig.from_dict(_config(tmp_path, support=dict(delta_kappa=0.0)))
    with pytest.raises(ValueError, match=r"support\.samples"):
        UnsupervisedConfig.from_dict(_config(tmp_path, support=dict(samples=0)))
    with pytest.raises(ValueError, match="lr_final"):
        UnsupervisedConfig.from_dict(_config(tmp_path, lr_final=-1.0))


def test_lr_decays_geometrically_to_lr_final(tmp_path) -> None:
    module = UnsupervisedModule(UnsupervisedConfig.from_dict(_config(tmp_path, max_steps=10)).to_dict())
    opt = module.configure_optimizers()
    scheduler = opt["lr_scheduler"]["scheduler"]
    for _ in range(10):
        opt["optimizer"].step()
        scheduler.step()
    assert scheduler.get_last_lr()[0] == pytest.approx(2e-3, rel=1e-9)


def test_tiny_run_raises_validation_ee_and_reloads_identically(tmp_path) -> None:
    result = train_unsupervised(_config(tmp_path))
    assert result["best_val_objective"] > 1.2 * result["initial_val_objective"]
    history = result["history"]
    assert len(history) == 2 and all("val/support_width" in row for row in history)
    # the logged training-time validation EE is the reloaded checkpoint's EE on the same instances
    model, cfg = load_unsupervised(result["best_checkpoint"])
    problem = EnergyEfficiency()
    train, val = sample_sets(cfg, problem)
    with torch.no_grad():
        again = make_policy(cfg, model)(val)
        first = result["policy"](val)
    torch.testing.assert_close(again.link_power, first.link_power, rtol=0, atol=0)
    value = float(problem.objective(val, again).mean())
    assert value == pytest.approx(result["best_val_objective"], rel=1e-4)
    # eq. (13) statistics of the training set travel in the checkpoint
    fresh = build_model(cfg.model)
    mu, sigma = fresh.fit_input_stats(train.gains, train.serving)
    assert float(model.log_gain_mean) == pytest.approx(mu, rel=1e-6)
    assert float(model.log_gain_std) == pytest.approx(sigma, rel=1e-6)


def test_per_sample_kappa_runs(tmp_path) -> None:
    cfg = _config(
        tmp_path, max_steps=4, val_every=4, support=dict(h=1, delta_kappa=1e-2, samples=2, per_sample=True)
    )
    result = train_unsupervised(cfg)
    assert result["best_val_objective"] is not None


def test_log_power_support_maps_to_a_log_uniform_box() -> None:
    from cfmimo.policies.neural import LOG_POWER_FLOOR

    problem = EnergyEfficiency()
    inst = problem.sample(preset("ee-gnn", L=3, K=4), 4, seed=2, dtype=torch.float64)
    serving = inst.serving.clone()
    serving[0, 1] = False  # an AP that serves nobody in sample 0
    inst = type(inst)(**{**inst.__dict__, "serving": serving})
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="ee_gnn", d_mod=4, support_scale="log")).double()
    model.fit_input_stats(inst.gains, inst.serving)
    policy = EEPowerPolicy(model)
    assert policy.support_scale == "log"
    cap = inst.cap[..., None].expand(-1, -1, 4)
    x = torch.stack([torch.zeros_like(cap[0]), 0.5 * cap[0], cap[0]])  # t = 0, 1/2, 1
    on = torch.ones_like(cap[0], dtype=torch.bool)
    p = policy.to_power(x, cap[0], on)
    torch.testing.assert_close(p[0], LOG_POWER_FLOOR * cap[0])
    torch.testing.assert_close(p[1], LOG_POWER_FLOOR**0.5 * cap[0])
    torch.testing.assert_close(p[2], cap[0])
    assert float(policy.to_power(x[2], cap[0], ~on).abs().max()) == 0.0
    for power in ("low", "midpoint"):
        alloc = assert_policy(problem, EEPowerPolicy(model, power=power), inst)
        assert float(problem.violation(inst, alloc).max()) <= 0.0
        assert float(alloc.link_power[0, 1].abs().max()) == 0.0
    low = policy(inst)
    expected = cap * LOG_POWER_FLOOR ** (1 - low.info["a_mw"] / cap) * inst.serving
    torch.testing.assert_close(low.link_power, expected)
    # the linear default is the identity map
    lin = EEPowerPolicy(build_model(ModelConfig(name="ee_gnn", d_mod=4)).double())
    torch.testing.assert_close(lin.to_power(x, cap[0], on), x)


def test_log_support_recipe_trains_and_reloads(tmp_path) -> None:
    cfg = _config(tmp_path, max_steps=10, val_every=5)
    cfg["model"] = {**cfg["model"], "support_scale": "log"}
    result = train_unsupervised(cfg)
    model, loaded = load_unsupervised(result["best_checkpoint"])
    assert loaded.model.support_scale == "log" and model.config.support_scale == "log"
    problem = EnergyEfficiency()
    _, val = sample_sets(loaded, problem)
    with torch.no_grad():
        value = float(problem.objective(val, make_policy(loaded, model)(val)).mean())
    assert value == pytest.approx(result["best_val_objective"], rel=1e-4)


def test_cut_off_support_run_resumes_with_its_kappa_state(tmp_path, monkeypatch) -> None:
    cfg = _config(tmp_path, max_steps=10, val_every=5)
    original = UnsupervisedModule.training_step

    def cut(self, batch, batch_idx):
        if self.global_step == 7:
            raise RuntimeError("cut off")
        return original(self, batch, batch_idx)

    monkeypatch.setattr(UnsupervisedModule, "training_step", cut)
    with pytest.raises(RuntimeError, match="cut off"):
        train_unsupervised(cfg)
    last = tmp_path / "checkpoints" / "last.ckpt"
    saved = torch.load(last, weights_only=True)
    assert saved["global_step"] == 5 and int(saved["kappa_rule"]["count"][0]) == 5
    monkeypatch.setattr(UnsupervisedModule, "training_step", original)
    result = train_unsupervised(cfg, resume=True)
    assert result["resumed_from_step"] == 5
    assert [row["step"] for row in result["history"]] == [5.0, 10.0]  # the row before the cut survives
    final = torch.load(last, weights_only=True)
    # rule (8) continued: 10 updates in all (a restart would have counted 5)
    assert final["global_step"] == 10 and int(final["kappa_rule"]["count"][0]) == 10
    assert final["kappa_rule"]["history"].shape == (1, 5)
    model, _ = load_unsupervised(result["best_checkpoint"])  # still loads with weights_only=True
    assert sum(p.numel() for p in model.parameters()) > 0
