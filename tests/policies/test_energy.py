"""Tests of cfmimo.policies.classical.energy (issue 13 item 3): solver agreement, monotonicity,
Dinkelbach, global optimality on tiny instances, permutation equivariance, batch independence."""

from __future__ import annotations

import pytest
import torch

from cfmimo.config import preset
from cfmimo.policies.classical import energy as E
from cfmimo.problems.energy_efficiency import EnergyEfficiency, sample_ee_instances

F64 = torch.float64


@pytest.fixture(scope="module")
def inst():
    return sample_ee_instances(preset("ee-gnn", L=3, K=5), 6, seed=2, dtype=F64)


def _random_powers(inst, seed: int) -> torch.Tensor:
    u = torch.rand(inst.serving.shape, dtype=F64, generator=torch.Generator().manual_seed(seed))
    return 0.3 * u * inst.upper


def test_analytic_gradient_matches_autograd(inst):
    k = E._consts(inst)
    p = _random_powers(inst, 0).requires_grad_(True)
    E.sum_ee(inst.gains, p, k).sum().backward()
    lin = E._sum_linearization(inst.gains, p.detach(), k)
    torch.testing.assert_close(lin.grad, p.grad, rtol=1e-10, atol=1e-18)
    assert torch.all(lin.pi <= 0)
    lam = torch.full((inst.batch,), 2.0, dtype=F64)
    q = p.detach().clone().requires_grad_(True)
    r, d = E._global_parts(inst.gains, q, k)
    (r - lam * d).sum().backward()
    torch.testing.assert_close(
        E._global_linearization(inst.gains, q.detach(), k, lam).grad, q.grad, rtol=1e-10, atol=1e-18
    )


def test_closed_form_inner_step_equals_bisection_and_cvxpy(inst):
    k = E._consts(inst)
    up = inst.upper.to(F64)
    for seed in (1, 2):
        p = _random_powers(inst, seed)
        lin = E._sum_linearization(inst.gains, p, k)
        x = E.inner_step(lin, p, up, k)
        xb = E.inner_step_bisection(lin, p, up, k)
        xc = E.inner_step_cvxpy(lin, p, up, k)
        f = E._inner_objective(lin, p, x, k)
        torch.testing.assert_close(x, xb, rtol=0, atol=1e-9 * 1000)
        # Clarabel: approximation values to 1e-6 (the argmax is flat, so positions agree to 1e-3 of the cap).
        torch.testing.assert_close(E._inner_objective(lin, p, xc, k), f, rtol=1e-6, atol=1e-9)
        assert (x - xc).abs().max() <= 1e-3 * up.max()
        assert torch.all(f >= E._inner_objective(lin, p, p, k) - 1e-12)  # a best response


def test_sca_is_monotone_and_stops_stationary(inst):
    k = E._consts(inst)
    p, info = E.sca_sum_ee(inst, E.EqualPower()(inst).link_power, tol=1e-5, history=True)
    hist = info["objective_history"]
    assert torch.all(hist[1:] >= hist[:-1] - 1e-12)
    assert bool(info["converged"].all()) and torch.all(info["pg_norm"] < 1e-5)
    lin = E._sum_linearization(inst.gains, p, k)
    assert torch.all(E._projected_gradient_norm(p, lin.grad, inst.upper.to(F64)) < 1e-5)
    assert torch.all(hist[-1] > hist[0])
    # The CVXPY inner step follows the same path (first iterations).
    q, _ = E.sca_sum_ee(
        inst.take(slice(0, 2)), E.EqualPower()(inst).link_power[:2], max_iter=3, inner="cvxpy"
    )
    r, _ = E.sca_sum_ee(inst.take(slice(0, 2)), E.EqualPower()(inst).link_power[:2], max_iter=3)
    torch.testing.assert_close(
        E.sum_ee(inst.gains[:2], q, k), E.sum_ee(inst.gains[:2], r, k), rtol=1e-3, atol=0
    )


def test_dinkelbach_lambda_increases_and_f_vanishes(inst):
    inst = inst.take(slice(0, 2))
    alloc = E.SCADinkelbach()(inst)
    lam, f = alloc.info["lambda_history"], alloc.info["F_history"]
    assert torch.all(lam[1:] >= lam[:-1] - 1e-12)
    assert torch.all(f >= -1e-12)
    assert bool(alloc.info["converged"].all()) and torch.all(f[-1].abs() < 1e-6)
    gee = EnergyEfficiency("global").objective(inst, alloc)
    torch.testing.assert_close(gee, lam[-1], rtol=1e-6, atol=0)
    assert torch.all(gee > EnergyEfficiency("global").objective(inst, E.EqualPower()(inst)))


@pytest.fixture(scope="module")
def tiny():
    sizes = [(1, 2), (2, 2), (1, 3), (1, 4)]
    return [sample_ee_instances(preset("ee-gnn", L=L, K=K), 5, seed=7, dtype=F64) for L, K in sizes]


def test_best_of_r_sca_and_multistart_reach_the_grid_optimum(tiny):
    prob = EnergyEfficiency()
    n = 0
    for inst in tiny:
        _, best = E.grid_optimum(inst)
        sca = prob.objective(inst, E.SCA(restarts=8, one_ue_starts=True)(inst))
        ms = prob.objective(inst, E.MultiStart(random_starts=4, steps=100)(inst))
        for v in (sca, ms):
            assert torch.all(v >= best - 1e-3), (v, best)
            assert torch.all(v <= best + 1e-4), (v, best)  # the grid is the global optimum
        n += inst.batch
    assert n == 20


def test_sca_permutation_equivariant_and_batch_independent(inst):
    inst = inst.take(slice(0, 4))
    sca = E.SCA(tol=0.0, max_iter=40)  # the iteration map itself is equivariant: compare iterates
    p = sca(inst).link_power
    pk, pl = torch.tensor([3, 0, 4, 1, 2]), torch.tensor([2, 0, 1])
    torch.testing.assert_close(sca(inst.permute_ues(pk)).link_power, p[:, :, pk], rtol=0, atol=1e-8)
    torch.testing.assert_close(sca(inst.permute_aps(pl)).link_power, p[:, pl], rtol=0, atol=1e-8)
    idx = torch.tensor([3, 1])
    torch.testing.assert_close(sca(inst.take(idx)).link_power, p[idx], rtol=0, atol=1e-9)
    # Random starts come from per-sample streams: best-of-R is batch independent too.
    best = E.SCA(restarts=2, one_ue_starts=True)
    torch.testing.assert_close(best(inst.take(idx)).link_power, best(inst).link_power[idx], rtol=0, atol=1e-9)


def test_baselines_feasible_and_ordered(inst):
    prob = EnergyEfficiency()
    eq, rnd = E.EqualPower()(inst), E.RandomPower()(inst)
    torch.testing.assert_close(eq.link_power, inst.upper / inst.serving.shape[-1])
    torch.testing.assert_close(E.EqualPower(0.5)(inst).link_power, 0.5 * inst.upper)
    for a in (eq, rnd, E.SCA()(inst)):
        assert torch.all(prob.violation(inst, a) == 0)
        assert a.link_power.dtype == F64
    assert torch.all(rnd.link_power <= inst.upper) and rnd.link_power.std() > 0
    torch.testing.assert_close(E.RandomPower()(inst.take(slice(2, 4))).link_power, rnd.link_power[2:4])
    sca = prob.objective(inst, E.SCA()(inst))
    assert torch.all(sca > prob.objective(inst, eq)) and torch.all(sca > prob.objective(inst, rnd))
    f32 = E.SCA()(inst.to(torch.float32))
    assert f32.link_power.dtype == torch.float32
    with pytest.raises(ValueError, match="fraction"):
        E.EqualPower(0.0)(inst)
    with pytest.raises(ValueError, match="L \\* K"):
        E.grid_optimum(inst)


def test_cli_solve_ee_smoke():
    import json

    from typer.testing import CliRunner

    from cfmimo.cli import app

    args = ["solve", "ee", "--L", "1", "--K", "2", "--setups", "3", "--policies", "equal,sca", "--json"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    sca, eq = out["policies"]["sca"], out["policies"]["equal"]
    assert sca["ee_sum"] > eq["ee_sum"] > 0 and sca["feasibility_probability"] == 1.0
    bad = CliRunner().invoke(app, ["solve", "ee", "--setups", "1", "--policies", "nope"])
    assert bad.exit_code != 0 and "nope" in bad.output
