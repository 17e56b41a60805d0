"""Max-min power control: closed form vs fixed point vs CVXPY bisection vs eigenvalue formula."""

import pytest
import torch

from cfmimo.config import preset
from cfmimo.policies.classical.convex import maxmin_bisection_cvxpy
from cfmimo.policies.classical.maxmin import (
    AffineSINR,
    downlink_affine,
    maxmin_closed_form,
    maxmin_eigenvalue,
    maxmin_fixed_point,
    uplink_affine,
)
from cfmimo.policies.classical.power import FractionalPower, FullPower, MaxMinClosedForm, MaxMinFixedPoint
from cfmimo.problems.base import evaluate
from cfmimo.problems.maxmin_power import MaxMinPower

CASES = {
    "K>tau_p": dict(K=14, clustering={"kind": "dcc"}),  # pilot contamination, user-centric clusters
    "L=1": dict(L=1, K=5),
    "K=1": dict(K=1),
    "K=30,Q=8": dict(K=30, clustering={"kind": "q_strongest", "q": 8}),
}


def _instances(case, dl_constraint="sum", batch=3):
    sc = preset("tree-transformer", realizations=30, **CASES[case])
    return MaxMinPower(dl_constraint=dl_constraint).sample(sc, batch, seed=4, dtype=torch.float64)


def _links(inst):
    K = inst.ul_budget.shape[1]
    eye = torch.eye(K, dtype=torch.float64).expand(inst.batch, K, K)
    return {
        "UL": (uplink_affine(inst.uplink), eye, inst.ul_budget),
        "DL": (downlink_affine(inst.downlink), inst.dl_weights, inst.dl_budget),
    }


@pytest.mark.parametrize("dl_constraint", ["sum", "per_ap"])
@pytest.mark.parametrize("case", list(CASES))
def test_closed_form_equals_fixed_point_and_eigenvalue_formula(case, dl_constraint):
    inst = _instances(case, dl_constraint)
    for link, (aff, a, budget) in _links(inst).items():
        cf = maxmin_closed_form(aff, a, budget)
        fp = maxmin_fixed_point(aff, a, budget, tolerance=1e-9)
        ev = maxmin_eigenvalue(aff, a, budget)
        assert bool(cf.converged.all()) and bool(fp.converged.all()), link
        assert torch.allclose(cf.min_sinr, fp.min_sinr, rtol=1e-6), link
        assert torch.allclose(cf.min_sinr, ev, rtol=1e-9), link


@pytest.mark.parametrize("case", ["K>tau_p", "L=1", "K=1"])
def test_closed_form_equals_cvxpy_bisection(case):
    inst = _instances(case, "per_ap", batch=2)
    for link, (aff, a, budget) in _links(inst).items():
        cf = maxmin_closed_form(aff, a, budget)
        ref = maxmin_bisection_cvxpy(aff, a, budget, rtol=1e-7)
        assert torch.allclose(cf.min_sinr, ref, rtol=1e-4), link


@pytest.mark.parametrize("dl_constraint", ["sum", "per_ap"])
@pytest.mark.parametrize("case", list(CASES))
def test_optimum_equalizes_sinr_and_uses_the_budget(case, dl_constraint):
    inst = _instances(case, dl_constraint)
    problem = MaxMinPower()
    alloc = MaxMinClosedForm()(inst)
    m = problem.metrics(inst, alloc)
    for key in ("sinr_ul", "sinr_dl"):  # all UEs at the common optimum
        spread = (m[key].amax(-1) - m[key].amin(-1)) / m[key].amin(-1)
        assert spread.max().item() < 1e-9, key
    assert bool((alloc.p_ul <= inst.ul_budget * (1 + 1e-12)).all()) and bool((alloc.p_ul >= 0).all())
    assert torch.allclose(alloc.p_ul.amax(-1), inst.ul_budget[:, 0])  # some UE at its cap
    dl_load = (inst.dl_weights @ alloc.p_dl[..., None]).squeeze(-1) / inst.dl_budget
    assert torch.allclose(dl_load.amax(-1), torch.ones(inst.batch, dtype=torch.float64))  # budget used
    assert bool((problem.violation(inst, alloc) <= 1e-12).all())
    # the problem's scoring reproduces the solver's SINRs
    assert torch.allclose(m["sinr_ul"].amin(-1), alloc.info["sinr_ul"], rtol=1e-12)
    assert torch.allclose(m["sinr_dl"].amin(-1), alloc.info["sinr_dl"], rtol=1e-12)


def test_sum_constraint_spends_the_total_budget():
    inst = _instances("K>tau_p", "sum")
    alloc = MaxMinClosedForm()(inst)
    assert torch.allclose(alloc.p_dl.sum(-1), torch.full((inst.batch,), 3200.0, dtype=torch.float64))


def test_optimum_beats_heuristics_and_every_policy_is_feasible():
    inst = _instances("K>tau_p", "per_ap", batch=4)
    problem = MaxMinPower()
    results = {
        type(p).__name__: evaluate(problem, p, inst)
        for p in (MaxMinClosedForm(), MaxMinFixedPoint(), FullPower(), FractionalPower())
    }
    for name, r in results.items():
        assert r["feasibility_probability"] == 1.0, name
    best = results["MaxMinClosedForm"]
    for name, r in results.items():
        assert bool((r["min_se_ul"] <= best["min_se_ul"] + 1e-9).all()), name
        assert bool((r["min_se_dl"] <= best["min_se_dl"] + 1e-9).all()), name
    # the book's stopping rule (spread < 0.01) lands within 1 % of the optimum
    fp = results["MaxMinFixedPoint"]
    assert torch.allclose(fp["min_se_ul"], best["min_se_ul"], rtol=1e-2)


def test_hand_solved_two_ue_instance():
    # T = [[0, 1], [1, 0]], u = [1, 1], caps 1: symmetric, optimum p = [1, 1], SINR = 1/2.
    aff = AffineSINR(
        T=torch.tensor([[[0.0, 1.0], [1.0, 0.0]]], dtype=torch.float64),
        u=torch.ones(1, 2, dtype=torch.float64),
        active=torch.ones(1, 2, dtype=torch.bool),
    )
    sol = maxmin_closed_form(
        aff, torch.eye(2, dtype=torch.float64)[None], torch.ones(1, 2, dtype=torch.float64)
    )
    assert sol.power[0].tolist() == pytest.approx([1.0, 1.0]) and sol.min_sinr.item() == pytest.approx(0.5)
    # sum budget 1 instead: p = [1/2, 1/2], SINR = 0.5 / 1.5 = 1/3
    sol = maxmin_closed_form(
        aff, torch.ones(1, 1, 2, dtype=torch.float64), torch.ones(1, 1, dtype=torch.float64)
    )
    assert sol.power[0].tolist() == pytest.approx([0.5, 0.5]) and sol.min_sinr.item() == pytest.approx(1 / 3)


def test_inactive_ue_is_left_out():
    aff = AffineSINR(
        T=torch.zeros(1, 2, 2, dtype=torch.float64),
        u=torch.tensor([[0.5, 0.0]], dtype=torch.float64),
        active=torch.tensor([[True, False]]),
    )
    sol = maxmin_closed_form(
        aff, torch.eye(2, dtype=torch.float64)[None], torch.ones(1, 2, dtype=torch.float64)
    )
    assert sol.power[0].tolist() == pytest.approx([1.0, 0.0]) and sol.min_sinr.item() == pytest.approx(2.0)


def test_bad_constraints_raise():
    inst = _instances("K=1")
    aff = uplink_affine(inst.uplink)
    with pytest.raises(ValueError, match="budget"):
        maxmin_closed_form(
            aff, torch.ones(3, 1, 1, dtype=torch.float64), torch.zeros(3, 1, dtype=torch.float64)
        )
    with pytest.raises(ValueError, match="A must be"):
        maxmin_closed_form(
            aff, torch.ones(3, 1, 2, dtype=torch.float64), torch.ones(3, 1, dtype=torch.float64)
        )
    with pytest.raises(ValueError, match="p_dl"):
        MaxMinPower().violation(inst, MaxMinClosedForm()(inst).__class__(p_ul=inst.ul_budget))


def test_float32_instances_work():
    sc = preset("tree-transformer", K=8, realizations=30)
    inst = MaxMinPower().sample(sc, 2, seed=1)
    alloc = MaxMinClosedForm()(inst)
    assert alloc.p_ul.dtype == torch.float32 and bool((MaxMinPower().violation(inst, alloc) <= 1e-5).all())
    assert downlink_affine(inst.downlink).T.dtype == torch.float32


def test_interference_limited_instances_converge_in_few_newton_steps():
    """lambda* within ~1e-6 of rho(T) (tiny noise): lambda I - T is ill-conditioned, h stalls at
    its rounding floor (> rtol) while Newton stops moving. The Newton-step stopping rule ends it
    there; before it, the step fell outside the bracket and ~30 bisections followed."""
    g = torch.Generator().manual_seed(0)
    B, K = 64, 10
    t = torch.rand(B, K, K, generator=g, dtype=torch.float64) * 0.02
    u = torch.rand(B, K, generator=g, dtype=torch.float64) * 1e-6
    problem = AffineSINR(t, u, torch.ones(B, K, dtype=torch.bool))
    A = torch.ones(B, 1, K, dtype=torch.float64)
    budget = torch.ones(B, 1, dtype=torch.float64)
    sol = maxmin_closed_form(problem, A, budget)
    reference = maxmin_eigenvalue(problem, A, budget)  # optimal common SINR 1 / lambda*
    assert bool(sol.converged.all())
    assert sol.iterations <= 8
    assert torch.allclose(sol.min_sinr, reference, rtol=1e-9, atol=0)
    assert torch.allclose((A @ sol.power[..., None]).squeeze(-1), budget, rtol=1e-12)
