"""Tests of cfmimo.problems.energy_efficiency (ee-gnn eq. (1), issue 13 items 1-2)."""

from __future__ import annotations

import math

import pytest
import torch

from cfmimo.config import preset
from cfmimo.problems.base import Allocation
from cfmimo.problems.energy_efficiency import EEInstance, EnergyEfficiency, ee_instance, sample_ee_instances
from cfmimo.sim.energy import energy_efficiency, mrt_effective_gains
from cfmimo.sim.estimation import sample_channels
from cfmimo.sim.network import sample_networks

F64 = torch.float64


def _hand_instance() -> EEInstance:
    h = torch.tensor([[[[1, 0], [1, 1j]]]], dtype=torch.complex128)
    return ee_instance(mrt_effective_gains(h), preset("ee-gnn", L=1, K=2, dl_power_per_ap_mw=3000.0))


def test_preset_states_cap_realizations_and_ee_constants():
    sc = preset("ee-gnn")
    assert sc.dl_power_per_ap_mw == 1000.0 and sc.realizations == 1
    assert (sc.ee_mu, sc.ee_static_power_mw, sc.ee_log_base, sc.ee_bandwidth_hz) == (1.0, 4000.0, 2.0, 1e6)
    for field, value in [
        ("ee_mu", 0.0),
        ("ee_static_power_mw", -1.0),
        ("ee_bandwidth_hz", 0.0),
        ("ee_log_base", 1.0),
    ]:
        with pytest.raises(ValueError, match=field):
            sc.with_(**{field: value})


def test_hand_case_objective_and_metrics():
    inst = _hand_instance()
    alloc = Allocation(link_power=torch.tensor([[[1000.0, 2000.0]]], dtype=F64))
    r1, r2 = math.log2(2001 / 1001), math.log2(5001 / 1001)
    assert EnergyEfficiency().objective(inst, alloc).item() == pytest.approx(0.58665, abs=5e-6)
    assert EnergyEfficiency("global").objective(inst, alloc).item() == pytest.approx(0.47429, abs=5e-6)
    m = EnergyEfficiency().metrics(inst, alloc)
    torch.testing.assert_close(m["rate"], torch.tensor([[r1, r2]], dtype=F64))  # Mbit/s at 1 MHz
    torch.testing.assert_close(m["ee_term"], torch.tensor([[r1 / 5, r2 / 6]], dtype=F64))
    torch.testing.assert_close(m["sinr"], torch.tensor([[1000 / 1001, 4000 / 1001]], dtype=F64))
    assert m["total_power_w"].item() == pytest.approx(3.0) and m["active_ues"].item() == 2
    assert m["ee_global"].item() == pytest.approx((r1 + r2) / 7, rel=1e-14)
    assert EnergyEfficiency().violation(inst, alloc).item() == 0.0
    # UE 2 off: one active UE.
    off = Allocation(link_power=torch.tensor([[[1000.0, 0.0]]], dtype=F64))
    assert EnergyEfficiency().metrics(inst, off)["active_ues"].item() == 1


def test_violation_names_each_kind():
    inst = _hand_instance()  # cap 3000 mW per link
    prob = EnergyEfficiency()
    p = torch.tensor([[[-300.0, 100.0]]], dtype=F64)
    assert prob.violation(inst, Allocation(link_power=p)).item() == pytest.approx(0.1)
    p = torch.tensor([[[4500.0, 100.0]]], dtype=F64)
    assert prob.violation(inst, Allocation(link_power=p)).item() == pytest.approx(0.5)
    masked = EEInstance(inst.gains, torch.tensor([[[True, False]]]), inst.cap)
    p = torch.tensor([[[100.0, 600.0]]], dtype=F64)
    assert prob.violation(masked, Allocation(link_power=p)).item() == pytest.approx(0.2)
    assert not prob.feasible(masked, Allocation(link_power=p)).item()
    with pytest.raises(ValueError, match="link_power"):
        prob.objective(inst, Allocation(link_power=torch.tensor([[[-1.0, 1.0]]], dtype=F64)))
    with pytest.raises(ValueError, match="link_power"):
        prob.metrics(inst, Allocation(link_power=torch.tensor([[[float("nan"), 1.0]]], dtype=F64)))
    with pytest.raises(ValueError, match="link_power"):
        prob.objective(inst, Allocation(link_power=torch.ones(1, 1, 3, dtype=F64)))
    with pytest.raises(ValueError, match="link_power"):
        prob.objective(inst, Allocation(p_dl=torch.ones(1, 2, dtype=F64)))


def test_sample_is_one_perfect_csi_realization_per_setup():
    sc = preset("ee-gnn", L=3, K=4)
    inst = sample_ee_instances(sc, 5, seed=3, dtype=F64)
    net = sample_networks(sc, 5, seed=3, dtype=F64)
    h = sample_channels(net.correlation, 1, seed=3, indices=net.indices)[:, 0]
    torch.testing.assert_close(inst.gains, mrt_effective_gains(h))
    assert inst.cap.shape == (5, 3) and torch.all(inst.cap == 1000.0) and inst.serving.all()
    # A sample's content depends on (seed, index) only.
    part = sample_ee_instances(sc, 2, seed=3, first_index=2, dtype=F64)
    torch.testing.assert_close(part.gains, inst.take(slice(2, 4)).gains)
    assert part.indices == inst.take(slice(2, 4)).indices == (2, 3)


def test_objective_matches_sim_and_permutations():
    sc = preset("ee-gnn", L=3, K=4)
    inst = sample_ee_instances(sc, 4, seed=1, dtype=F64)
    p = 200.0 * torch.rand(4, 3, 4, dtype=F64, generator=torch.Generator().manual_seed(0))
    prob = EnergyEfficiency()
    j = prob.objective(inst, Allocation(link_power=p))
    torch.testing.assert_close(j, energy_efficiency(inst.gains, p, None), rtol=1e-12, atol=0)
    pk, pl = torch.tensor([2, 0, 3, 1]), torch.tensor([1, 2, 0])
    torch.testing.assert_close(prob.objective(inst.permute_ues(pk), Allocation(link_power=p[:, :, pk])), j)
    torch.testing.assert_close(prob.objective(inst.permute_aps(pl), Allocation(link_power=p[:, pl])), j)
    m = prob.metrics(inst, Allocation(link_power=p))
    mk = prob.metrics(inst.permute_ues(pk), Allocation(link_power=p[:, :, pk]))
    torch.testing.assert_close(mk["ee_term"], m["ee_term"][:, pk])
    idx = torch.tensor([3, 1])
    torch.testing.assert_close(prob.objective(inst.take(idx), Allocation(link_power=p[idx])), j[idx])


def test_bad_instances_name_the_field():
    g = mrt_effective_gains(
        torch.randn(2, 3, 4, 2, dtype=torch.complex128, generator=torch.Generator().manual_seed(0))
    )
    x = torch.ones(2, 3, 4, dtype=torch.bool)
    cap = torch.full((2, 3), 1000.0, dtype=F64)
    with pytest.raises(ValueError, match="gains"):
        EEInstance(g[..., :3], x, cap)
    with pytest.raises(ValueError, match="gains"):
        EEInstance(g[0], x, cap)
    with pytest.raises(ValueError, match="gains"):
        EEInstance(-g, x, cap)
    bad = g.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="gains"):
        EEInstance(bad, x, cap)
    with pytest.raises(TypeError, match="gains"):
        EEInstance(g.to(torch.complex128), x, cap)
    with pytest.raises(ValueError, match="serving"):
        EEInstance(g, x[:, :, :3], cap)
    with pytest.raises(ValueError, match="cap"):
        EEInstance(g, x, torch.zeros(2, 3, dtype=F64))
    with pytest.raises(ValueError, match="cap"):
        EEInstance(g, x, cap[:, :2])
    for field, value in [("mu", 0.0), ("static_power_mw", -1.0), ("bandwidth_hz", 0.0), ("log_base", 0.5)]:
        with pytest.raises(ValueError, match=field):
            EEInstance(g, x, cap, **{field: value})
    with pytest.raises(ValueError, match="objective"):
        EnergyEfficiency("max")
