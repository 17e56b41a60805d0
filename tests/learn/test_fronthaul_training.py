"""The egat-fronthaul recipe on the shared unsupervised module: a tiny run raises the validation WSR
and the Lagrangian, multipliers stay >= 0 and grow under persistent violation, a reloaded checkpoint
predicts identically, test-time pi > 0.5 and the sampled variant, the policy contract."""

from __future__ import annotations

import itertools

import pytest
import torch

from cfmimo.config import preset
from cfmimo.learn.fronthaul_recipe import fronthaul_config
from cfmimo.learn.unsupervised import (
    UnsupervisedModule,
    load_unsupervised,
    sample_sets,
    train_unsupervised,
)
from cfmimo.policies.neural import FronthaulPolicy
from cfmimo.problems.fronthaul_wsr import FronthaulWSR
from cfmimo.testing import assert_policy


def _config(tmp_path, **extra):
    base = dict(
        model=dict(name="egat_fh", d_mod=8, layers=1, heads=2),
        scenario=dict(L=4, K=2),
        train_samples=32,
        val_samples=8,
        batch_size=16,
        max_steps=24,
        val_every=12,
        out_dir=str(tmp_path / "run"),
    )
    return fronthaul_config(**{**base, **extra})


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return train_unsupervised(_config(tmp_path_factory.mktemp("fh")))


def test_tiny_run_raises_validation_wsr_and_lagrangian(run):
    assert len(run["history"]) == 2
    assert run["best_val_objective"] > run["initial_val_objective"] + 0.3  # repaired WSR, bit/s/Hz
    last = run["history"][-1]
    assert last["val/lagrangian"] > run["initial_val_logs"]["lagrangian"] + 0.3
    assert 0 <= last["val/feasible_unrepaired"] <= 1
    assert all(m >= 0 for m in run["recipe_state"]["mu"]) and len(run["recipe_state"]["mu"]) == 4


def test_reloaded_checkpoint_predicts_identically(run):
    model, cfg = load_unsupervised(run["best_checkpoint"])
    assert cfg.recipe == "fronthaul_pd" and cfg.model.antennas == 2
    assert float(model.capacity_ref) == pytest.approx(65e6, rel=0.2)  # fitted on C ~ U[40, 90] Mbit/s
    _, val = sample_sets(cfg, FronthaulWSR())
    a, b = FronthaulPolicy(model)(val), FronthaulPolicy(run["model"])(val)
    assert torch.equal(a.serving, b.serving)
    torch.testing.assert_close(a.precoders, b.precoders, rtol=0, atol=0)
    ckpt = torch.load(run["last_checkpoint"], weights_only=True)
    assert ckpt["state_dict"]["dual_mu"].shape == (4,) and (ckpt["state_dict"]["dual_mu"] >= 0).all()
    # the final checkpoint holds the weights and multipliers after the last step (not the last best)
    final = torch.load(run["final_checkpoint"], weights_only=True)
    assert final["global_step"] == 24
    assert final["state_dict"]["dual_mu"].tolist() == pytest.approx(run["recipe_state"]["mu"])


def test_test_time_association_and_sampled_variant(run):
    _, cfg = load_unsupervised(run["best_checkpoint"])
    _, val = sample_sets(cfg, FronthaulWSR())
    alloc = FronthaulPolicy(run["model"])(val)
    assert torch.equal(alloc.serving, alloc.info["pi"] > 0.5)
    s1 = FronthaulPolicy(run["model"], sample=True, seed=1)(val)
    s1b = FronthaulPolicy(run["model"], sample=True, seed=1)(val)
    s2 = FronthaulPolicy(run["model"], sample=True, seed=2)(val)
    assert torch.equal(s1.serving, s1b.serving) and not torch.equal(s1.serving, s2.serving)
    # every AP that serves someone transmits at full power; nothing on unserved links
    for a in (alloc, s1):
        assert (a.precoders[~a.serving] == 0).all()
        p = a.precoders.abs().square().sum((-2, -1))
        on = a.serving.any(-1)
        torch.testing.assert_close(p[on], val.power[on], rtol=1e-4, atol=0)


def test_policy_contract_unrepaired_and_repaired(run):
    model = run["model"].double()
    try:
        inst = FronthaulWSR().sample(preset("egat", L=4, K=2), 6, seed=11, dtype=torch.float64)
        inst = inst.with_capacity(5e6)  # tight: the unrepaired decision violates (3b) somewhere
        problem = FronthaulWSR()
        raw = assert_policy(problem, FronthaulPolicy(model), inst, feasible=False, rtol=1e-8, atol=1e-10)
        assert problem.violation(inst, raw).max() > 0
        fixed = assert_policy(problem, FronthaulPolicy(model, repair=True), inst, rtol=1e-8, atol=1e-10)
        assert problem.violation(inst, fixed).max() <= 1e-9
    finally:
        run["model"].float()


def test_multipliers_stay_nonnegative_and_grow_under_violation(tmp_path):
    cfg = _config(tmp_path, recipe_options=dict(capacity_range_bps=(1e5, 1e5), dual_lr=0.5))
    module = UnsupervisedModule(cfg.to_dict())
    train, _ = sample_sets(cfg, module.problem)
    train, _ = module.recipe.prepare_sets(train, train)
    module.model.fit_inputs(train)
    seen = [module.dual_mu.clone()]
    for _ in range(4):
        loss, logs = module.recipe.training_loss(module, train.take(slice(0, 16)))
        assert torch.isfinite(loss)
        loss.backward()
        seen.append(module.dual_mu.clone())
    assert all((m >= 0).all() for m in seen)
    assert all((b > a).all() for a, b in itertools.pairwise(seen))  # persistent violation
    assert float(logs["train_feasible"]) == 0.0
    # a loose capacity (load/C - 1 = -1) lowers them by dual_lr per step down to 0 (projection [.]_+)
    module.dual_mu.fill_(1.2)
    loose = train.with_capacity(1e12)
    for _ in range(3):
        module.recipe.training_loss(module, loose.take(slice(0, 16)))
    assert (module.dual_mu == 0).all()


def test_scalar_mu_and_bad_recipe_options(tmp_path):
    cfg = _config(tmp_path, recipe_options=dict(mu="scalar"))
    assert UnsupervisedModule(cfg.to_dict()).dual_mu.shape == ()
    with pytest.raises(ValueError, match="recipe: unknown"):
        _config(tmp_path, recipe="nope")
    with pytest.raises(ValueError, match="samples must be >= 2"):
        UnsupervisedModule(_config(tmp_path, recipe_options=dict(samples=1)).to_dict())
    with pytest.raises(ValueError, match="lr_decay_at"):
        _config(tmp_path, lr_decay_at=(1.5,))


def test_per_instance_multipliers_update_only_the_batch_rows(tmp_path):
    cfg = _config(tmp_path, recipe_options=dict(mu="instance", capacity_range_bps=(1e5, 1e5)))
    module = UnsupervisedModule(cfg.to_dict())
    assert module.dual_mu.shape == (32, 4)
    train, _ = sample_sets(cfg, module.problem)
    train, _ = module.recipe.prepare_sets(train, train)
    module.model.fit_inputs(train)
    index = torch.tensor([3, 7, 30])
    module.recipe.training_loss(module, train.take(index), index)
    touched = torch.zeros(32, dtype=torch.bool)
    touched[index] = True
    # overloaded APs of the batch samples rise (an AP serving nobody has load 0 and stays at 0)
    assert (module.dual_mu[touched].sum(-1) > 0).all() and (module.dual_mu[~touched] == 0).all()
    with pytest.raises(ValueError, match="training-sample indices"):
        module.recipe.training_loss(module, train.take(index))
