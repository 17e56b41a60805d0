"""Fronthaul models (EGAT, ENGNN, BGNN, DNN): UE and AP permutation equivariance (float64, tight),
batch = per-sample, no NaN for empty neighbour sets (outputs and gradients), the (36)-(37) decision,
fixed-size errors, input statistics in the state dict."""

from __future__ import annotations

import pytest
import torch

from cfmimo.config import preset
from cfmimo.models import build_model
from cfmimo.models.gnn.fronthaul import FRONTHAUL_GNN_NAMES, fronthaul_decision
from cfmimo.problems.fronthaul_wsr import FronthaulWSR


@pytest.fixture(scope="module")
def inst():
    scen = preset("egat", L=5, K=3)
    return FronthaulWSR().sample(scen, 4, seed=3, dtype=torch.float64)


def _model(name, inst, **kw):
    torch.manual_seed(0)
    m = build_model(dict(name=name, d_mod=8, layers=2, **kw)).double()
    m.fit_inputs(inst)
    return m.eval()


@pytest.mark.parametrize("name", FRONTHAUL_GNN_NAMES)
def test_equivariant_to_ue_and_ap_permutations(name, inst):
    m = _model(name, inst)
    out = m.forward_instance(inst)
    g = torch.Generator().manual_seed(1)
    pu, pa = torch.randperm(3, generator=g), torch.randperm(5, generator=g)
    assert not torch.equal(pu, torch.arange(3)) and not torch.equal(pa, torch.arange(5))
    ou = m.forward_instance(inst.permute_ues(pu))
    torch.testing.assert_close(ou.beams, out.beams[:, :, pu], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ou.logits, out.logits[:, :, pu], rtol=1e-10, atol=1e-12)
    oa = m.forward_instance(inst.permute_aps(pa))
    torch.testing.assert_close(oa.beams, out.beams[:, pa], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(oa.logits, out.logits[:, pa], rtol=1e-10, atol=1e-12)
    # a non-trivial function: outputs differ between links
    assert out.logits.std() > 1e-6 and out.beams.abs().std() > 1e-6


@pytest.mark.parametrize("name", (*FRONTHAUL_GNN_NAMES, "dnn_fh"))
def test_batch_is_per_sample(name, inst):
    kw = dict(num_aps=5, num_ues=3) if name == "dnn_fh" else {}
    m = _model(name, inst, **kw)
    m.train()  # LayerNorm, no BatchNorm: training mode is per-sample too
    out = m.forward_instance(inst)
    one = m.forward_instance(inst.take(slice(2, 3)))
    torch.testing.assert_close(one.beams, out.beams[2:3], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(one.logits, out.logits[2:3], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", FRONTHAUL_GNN_NAMES)
def test_empty_neighbour_sets_give_finite_outputs_and_gradients(name, inst):
    m = _model(name, inst)
    mask = torch.ones(4, 5, 3, dtype=torch.bool)
    mask[0, 1, :] = False  # AP 1 of sample 0 has no UE
    mask[0, :, 2] = False  # UE 2 of sample 0 has no AP
    mask[1] = False  # sample 1: no edges at all
    mask[2] = False
    mask[2, 0, 0] = True  # a single edge: no neighbouring edges on either side
    out = m.forward_instance(inst, mask)
    assert torch.isfinite(out.logits).all() and torch.isfinite(out.beams.abs()).all()
    v, x = fronthaul_decision(out, inst.power, mask=mask)
    (v.abs().square().sum() + out.logits.sum()).backward()
    for p in m.parameters():
        assert p.grad is None or torch.isfinite(p.grad).all()
    assert not x[1].any() and (v[1] == 0).all()


def test_edges_outside_the_mask_do_not_change_the_rest(inst):
    """Masked edges are not neighbours: changing the channel of a masked link changes nothing else."""
    m = _model("egat_fh", inst)
    mask = torch.ones(4, 5, 3, dtype=torch.bool)
    mask[:, 0, 0] = False
    ap, ue, edge = m.graph_inputs(inst)
    out = m(ap, ue, edge, mask)
    edge2 = edge.clone()
    edge2[:, 0, 0] = 7.0
    out2 = m(ap, ue, edge2, mask)
    torch.testing.assert_close(out2.logits[mask], out.logits[mask], rtol=1e-10, atol=1e-12)


def test_decision_is_feasible_in_power_and_zero_off_the_association(inst):
    m = _model("egat_fh", inst)
    out = m.forward_instance(inst)
    v, x = fronthaul_decision(out, inst.power)
    assert torch.equal(x, out.pi > 0.5)
    assert (v[~x] == 0).all()
    p = v.abs().square().sum((-2, -1))
    serving_aps = x.any(-1)
    torch.testing.assert_close(p[serving_aps], inst.power[serving_aps], rtol=1e-10, atol=0)
    g = torch.Generator().manual_seed(0)
    _, xs = fronthaul_decision(out, inst.power, sample=True, generator=g)
    assert xs.dtype == torch.bool and not torch.equal(xs, x)  # pi near 0.5 at init
    with pytest.raises(ValueError, match="generator"):
        fronthaul_decision(out, inst.power, sample=True)


def test_fixed_sizes_are_named(inst):
    dnn = build_model(dict(name="dnn_fh"))  # L = 8, K = 4, N = 2
    with pytest.raises(ValueError, match="L = 5 APs and K = 3 UEs"):
        dnn.forward_instance(inst)
    egat = build_model(dict(name="egat_fh", antennas=4))
    with pytest.raises(ValueError, match="2N = 4 channels, built with N = 4"):
        egat.forward_instance(inst.take(slice(0, 1)))


def test_input_statistics_are_buffers(inst):
    m = _model("engnn_fh", inst)
    state = m.state_dict()
    assert float(state["capacity_ref"]) == pytest.approx(float(inst.capacity.mean()))
    assert float(state["power_ref"]) == pytest.approx(float(inst.power.mean()))
    assert float(state["input_scale"]) > 0.01
    ap, _, _ = m.graph_inputs(inst)
    torch.testing.assert_close(ap[..., 1], inst.capacity / inst.capacity.mean())


@pytest.mark.parametrize("name", (*FRONTHAUL_GNN_NAMES, "dnn_fh"))
def test_gradients_reach_every_parameter(name, inst):
    kw = dict(num_aps=5, num_ues=3) if name == "dnn_fh" else {}
    m = _model(name, inst, **kw).train()
    out = m.forward_instance(inst)
    (out.beams.abs().square().sum() + out.logits.square().sum()).backward()
    for pname, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, pname
