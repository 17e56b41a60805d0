"""Fronthaul-constrained WSR family (egat-fronthaul.md (1)-(3), Sect. V-A repair)."""

from __future__ import annotations

import math

import pytest
import torch

from cfmimo.config import preset
from cfmimo.problems.base import Allocation
from cfmimo.problems.fronthaul_wsr import FronthaulWSR, fronthaul_instance
from cfmimo.sim.instantaneous import mrt, normalize_per_ap

PROBLEM = FronthaulWSR()


def _random_instance(B=6, L=4, K=3, N=2, seed=0, capacity=3e6, bw=1e6, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    cd = torch.complex128 if dtype == torch.float64 else torch.complex64
    scale = torch.rand(B, L, K, 1, generator=g, dtype=dtype) * 2 + 0.1
    h = (torch.randn(B, L, K, N, generator=g, dtype=cd)) * scale
    w = torch.rand(B, K, generator=g, dtype=dtype) + 0.5
    return fronthaul_instance(h, power=10.0, capacity=capacity, bandwidth_hz=bw, weights=w, noise=1.0)


def _mrt_full(inst):
    x = torch.ones(inst.h.shape[:-1], dtype=torch.bool)
    v = normalize_per_ap(mrt(inst.h, x), x, inst.power, mode="per_ap")
    return Allocation(precoders=v, serving=x)


# ------------------------------------------------------------------------------------------ config
def test_egat_preset_fronthaul_fields():
    s = preset("egat")
    assert s.fronthaul_capacity_bps == 60e6 and s.weights == [1.0] * 4
    assert s.shadowing_decorrelation_m == 500.0 and s.bandwidth_hz == 10e6
    assert preset("egat", ue_weights=[1, 2, 3, 4]).weights == [1.0, 2.0, 3.0, 4.0]
    with pytest.raises(ValueError, match="ue_weights"):
        preset("egat", ue_weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="fronthaul_capacity_bps"):
        preset("egat", fronthaul_capacity_bps=0.0)
    with pytest.raises(ValueError, match="ue_weights"):
        preset("egat", ue_weights=-1.0)


def test_sample_is_per_index_and_uses_the_scenario():
    sc = preset("egat")
    a = PROBLEM.sample(sc, 4, seed=3, dtype=torch.float64)
    b = PROBLEM.sample(sc, 2, seed=3, first_index=2, dtype=torch.float64)
    assert torch.equal(a.h[2:], b.h)
    assert a.h.shape == (4, 8, 4, 2) and a.h.dtype == torch.complex128
    assert float(a.capacity.min()) == float(a.capacity.max()) == 60e6
    assert float(a.power.min()) == 1000.0 and float(a.noise.max()) == 1.0
    # perfect CSI i.i.d. Rayleigh: E|h|^2 / N = beta; check the order of magnitude of the mean SNR
    assert a.bandwidth_hz == 10e6


# ------------------------------------------------------------------------------------------ validation
@pytest.mark.parametrize(
    ("field", "value", "err", "match"),
    [
        ("h", torch.ones(2, 3, 4, 2), TypeError, "h must be a complex"),
        ("h", torch.ones(2, 3, 4, dtype=torch.complex128), ValueError, r"h must have shape"),
        ("noise", torch.zeros(2, 4, dtype=torch.float64), ValueError, "noise must be > 0"),
        ("power", -torch.ones(2, 3, dtype=torch.float64), ValueError, "power must be > 0"),
        ("capacity", torch.zeros(2, 3, dtype=torch.float64), ValueError, "capacity must be > 0"),
        ("weights", -torch.ones(2, 4, dtype=torch.float64), ValueError, "weights must be >= 0"),
        ("weights", torch.ones(2, 3, dtype=torch.float64), ValueError, r"weights must have shape"),
        ("bandwidth_hz", 0.0, ValueError, "bandwidth_hz"),
    ],
)
def test_instance_validation_names_the_field(field, value, err, match):
    from dataclasses import replace

    inst = fronthaul_instance(
        torch.ones(2, 3, 4, 2, dtype=torch.complex128), power=1.0, capacity=1.0, bandwidth_hz=1.0
    )
    with pytest.raises(err, match=match):
        replace(inst, **{field: value})


def test_decision_validation_names_the_field():
    inst = _random_instance(B=2)
    good = _mrt_full(inst)
    with pytest.raises(TypeError, match="precoders"):
        PROBLEM.objective(inst, Allocation(precoders=good.precoders.real, serving=good.serving))
    with pytest.raises(ValueError, match="precoders"):
        PROBLEM.objective(inst, Allocation(precoders=good.precoders[:, :-1], serving=good.serving))
    with pytest.raises(ValueError, match="serving"):
        PROBLEM.objective(inst, Allocation(precoders=good.precoders, serving=good.serving[:, :-1]))
    with pytest.raises(ValueError, match="serving must be binary"):
        PROBLEM.objective(inst, Allocation(precoders=good.precoders, serving=0.7 * good.serving.double()))
    # a 0/1 real mask is accepted and scores as the bool one
    same = PROBLEM.objective(inst, Allocation(precoders=good.precoders, serving=good.serving.double()))
    assert torch.allclose(same, PROBLEM.objective(inst, good))


# ------------------------------------------------------------------------------------------ scoring
def test_objective_metrics_hand_solved():
    # L = 2 APs, K = 2 UEs, N = 1: AP 0 serves UE 0 only, AP 1 serves both.
    h = torch.tensor([[[[1.0], [0.5]], [[0.25], [2.0]]]], dtype=torch.complex128)  # [1, 2, 2, 1]
    v = torch.tensor([[[[2.0], [9.0]], [[1.0], [1.0]]]], dtype=torch.complex128)  # v_01 ignored (x = 0)
    x = torch.tensor([[[True, False], [True, True]]])
    inst = fronthaul_instance(
        h,
        power=100.0,
        capacity=torch.tensor([[5e6, 8e6]]),
        bandwidth_hz=2e6,
        weights=torch.tensor([[1.0, 3.0]]),
    )
    alloc = Allocation(precoders=v, serving=x)
    # g_ki = sum_l conj(h_lk) x_li v_li: g00 = 1*2 + .25*1 = 2.25, g01 = 0 + .25*1 = .25,
    # g10 = .5*2 + 2*1 = 3, g11 = 2*1 = 2
    s0, s1 = 2.25**2 / (0.25**2 + 1), 2.0**2 / (3.0**2 + 1)
    r0, r1 = math.log2(1 + s0), math.log2(1 + s1)
    m = PROBLEM.metrics(inst, alloc)
    assert float(m["wsr"][0]) == pytest.approx(r0 + 3 * r1, rel=1e-12)
    assert float(PROBLEM.objective(inst, alloc)[0]) == pytest.approx(r0 + 3 * r1, rel=1e-12)
    assert float(m["wsr_mbps"][0]) == pytest.approx(2 * (r0 + 3 * r1), rel=1e-12)
    assert m["load_bps"][0].tolist() == pytest.approx([2e6 * r0, 2e6 * (r0 + r1)], rel=1e-12)
    assert m["ap_power"][0].tolist() == pytest.approx([4.0, 2.0])
    assert m["aps_per_ue"][0].tolist() == [2.0, 1.0] and float(m["mean_aps_per_ue"][0]) == 1.5
    over = max(2e6 * r0 / 5e6 - 1, 2e6 * (r0 + r1) / 8e6 - 1, 0.0)
    assert float(PROBLEM.violation(inst, alloc)[0]) == pytest.approx(over, rel=1e-12)
    # power violation: 100 -> 2 makes AP 0 (power 4) twice over budget, dominating
    tight = fronthaul_instance(h, power=2.0, capacity=1e12, bandwidth_hz=2e6)
    assert float(PROBLEM.violation(tight, alloc)[0]) == pytest.approx(1.0)
    # a real mask is a violation of (3d): its distance to {0, 1}
    relaxed = Allocation(precoders=v, serving=torch.tensor([[[1.0, 0.3], [1.0, 1.0]]], dtype=torch.float64))
    big = fronthaul_instance(h, power=100.0, capacity=1e12, bandwidth_hz=2e6)
    assert float(PROBLEM.violation(big, relaxed)[0]) == pytest.approx(0.3)


def test_scores_follow_ue_and_ap_permutations():
    inst = _random_instance()
    alloc = _mrt_full(inst)
    x = alloc.serving.clone()
    x[:, 0, 1] = False
    alloc = Allocation(precoders=alloc.precoders * x.unsqueeze(-1), serving=x)
    pu, pa = torch.tensor([2, 0, 1]), torch.tensor([3, 1, 0, 2])
    base = PROBLEM.metrics(inst, alloc)
    u = Allocation(precoders=alloc.precoders[:, :, pu], serving=alloc.serving[:, :, pu])
    mu = PROBLEM.metrics(inst.permute_ues(pu), u)
    assert torch.allclose(mu["wsr"], base["wsr"]) and torch.allclose(mu["se"], base["se"][:, pu])
    a = Allocation(precoders=alloc.precoders[:, pa], serving=alloc.serving[:, pa])
    ma = PROBLEM.metrics(inst.permute_aps(pa), a)
    assert torch.allclose(ma["wsr"], base["wsr"]) and torch.allclose(ma["load_bps"], base["load_bps"][:, pa])
    part = inst.take(slice(2, 4))
    sub = Allocation(precoders=alloc.precoders[2:4], serving=alloc.serving[2:4])
    assert torch.allclose(PROBLEM.objective(part, sub), base["wsr"][2:4])


# ------------------------------------------------------------------------------------------ repair
def test_repair_is_a_feasible_idempotent_projection():
    inst = _random_instance(B=16, capacity=3e6)
    alloc = _mrt_full(inst)
    # make some APs exceed their power too
    alloc = Allocation(precoders=alloc.precoders * 1.5, serving=alloc.serving)
    before = PROBLEM.violation(inst, alloc)
    assert bool((before > 0.1).all())  # every instance starts overloaded
    fixed = PROBLEM.repair(inst, alloc)
    assert float(PROBLEM.violation(inst, fixed).max()) <= 1e-12
    # masked links carry exactly zero power
    off = ~fixed.serving
    assert bool(off.any()) and float(fixed.precoders[off].abs().max()) == 0.0
    # idempotent
    again = PROBLEM.repair(inst, fixed)
    assert torch.equal(again.precoders, fixed.precoders) and torch.equal(again.serving, fixed.serving)
    assert again.info["repair_iterations"] == 0
    # batched = per instance
    part = PROBLEM.repair(
        inst.take(slice(5, 9)), Allocation(precoders=alloc.precoders[5:9], serving=alloc.serving[5:9])
    )
    part = Allocation(precoders=part.precoders, serving=part.serving)
    assert torch.equal(part.serving, fixed.serving[5:9])
    assert torch.allclose(part.precoders, fixed.precoders[5:9])
    # repair keeps most of the rate (scales only what it must)
    assert bool((PROBLEM.objective(inst, fixed) > 0).all())


def test_repair_is_identity_on_feasible_input():
    inst = _random_instance(B=8, capacity=1e9)  # capacity never binds
    alloc = _mrt_full(inst)
    x = alloc.serving.clone()
    x[:, 1, 2] = False
    alloc = Allocation(precoders=alloc.precoders * x.unsqueeze(-1), serving=x)
    assert float(PROBLEM.violation(inst, alloc).max()) <= 1e-12  # per-AP normalization rounding
    fixed = PROBLEM.repair(inst, alloc)
    assert torch.equal(fixed.precoders, alloc.precoders) and torch.equal(fixed.serving, alloc.serving)


def test_repair_scales_the_weakest_ue_first_and_drops_links():
    # One AP with N = 2 and orthogonal channels (no interference): rates log2(10) and log2(1.25).
    # With C just above UE 0's rate, the weaker UE (||h|| = 0.5) is scaled until dropped; UE 0 is kept.
    h = torch.tensor([[[[3.0, 0.0], [0.0, 0.5]]]], dtype=torch.complex128)  # [1, 1, 2, 2]
    v = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]], dtype=torch.complex128)
    x = torch.ones(1, 1, 2, dtype=torch.bool)
    inst = fronthaul_instance(h, power=2.0, capacity=math.log2(10.0) + 1e-6, bandwidth_hz=1.0)
    fixed = PROBLEM.repair(inst, Allocation(precoders=v, serving=x))
    assert float(PROBLEM.violation(inst, fixed)[0]) == 0.0
    assert torch.equal(fixed.precoders[0, 0, 0], v[0, 0, 0])  # the strong UE's beam untouched
    assert not bool(fixed.serving[0, 0, 1]) and float(fixed.precoders[0, 0, 1].abs().max()) == 0.0
    assert int(fixed.info["repair_dropped"][0]) == 1
    # a looser capacity only scales the weak beam (factor 0.8 per step) until the load fits
    loose = fronthaul_instance(h, power=2.0, capacity=3.5, bandwidth_hz=1.0)
    part = PROBLEM.repair(loose, Allocation(precoders=v, serving=x))
    a = float(part.precoders[0, 0, 1, 1].abs())
    assert bool(part.serving[0, 0, 1]) and a == pytest.approx(0.8**2)  # log2(1 + .25 a^2) <= 0.178
    assert part.info["repair_iterations"] == 2


def test_loads_reject_a_real_valued_mask():
    """The family's instantaneous-CSI helper validates binary x (issue 14, "Fix in the project")."""
    from cfmimo.problems.fronthaul_wsr import loads

    inst = _random_instance(B=2, L=3, K=2)
    alloc = _mrt_full(inst)
    rate, load = loads(inst, alloc.precoders, alloc.serving)
    as_float = alloc.serving.to(torch.float64)
    rate2, load2 = loads(inst, alloc.precoders, as_float)  # 0/1 reals are binary
    assert torch.equal(rate, rate2) and torch.equal(load, load2)
    relaxed = as_float.clone()
    relaxed[0, 0, 0] = 0.5
    with pytest.raises(ValueError, match="serving must be binary"):
        loads(inst, alloc.precoders, relaxed)
    with pytest.raises(ValueError, match="serving must have shape"):
        loads(inst, alloc.precoders, alloc.serving[:, :2])
