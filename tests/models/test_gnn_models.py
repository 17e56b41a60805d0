"""The six AAGNN-paper precoders: contract (assert_policy), 3D permutation equivariance, parameter
counts, empty sets, fixed-N errors, MRT+GNN structure."""

from __future__ import annotations

import itertools

import pytest
import torch

from cfmimo.models import ModelConfig, build_model, count_parameters
from cfmimo.models.gnn import EQUIVARIANT_PRECODERS, PRECODER_MODEL_NAMES
from cfmimo.policies.neural import PrecoderPolicy
from cfmimo.problems.sumrate_precoding import SumRatePrecoding, precoding_instance
from cfmimo.testing import assert_policy

SMALL = {  # small widths keep the tests fast; structure is what is tested
    "aagnn": dict(d_mod=6, layers=2),
    "aagnn_woa": dict(d_mod=6, layers=2),
    "aagnn_egat": dict(d_mod=6, layers=2, heads=2),
    "mrt_gnn": dict(d_mod=4, layers=2),
    "sunet": dict(d_mod=6, layers=2, antennas=3),
    "gnn16": dict(d_mod=6, layers=2, antennas=3),
}


def _model(name, **extra):
    torch.manual_seed(0)
    return build_model(ModelConfig(name=name, **{**SMALL[name], **extra})).double()


def _instance(B=3, L=3, K=4, N=3, seed=0, allow_unserved=False):
    """Channels spanning ~40 dB, an AP serving nobody (instance 0, AP 2), float64."""
    g = torch.Generator().manual_seed(seed)
    gain_db = -40 * torch.rand(B, L, K, generator=g, dtype=torch.float64)
    z = torch.complex(
        torch.randn(B, L, K, N, generator=g, dtype=torch.float64),
        torch.randn(B, L, K, N, generator=g, dtype=torch.float64),
    )
    h = z * (10 ** (gain_db / 20))[..., None] * 1e3
    association = gain_db > -20
    association[:, 0] |= ~association.any(1)  # every UE served ...
    if L > 2:
        association[0, 2] = False  # ... AP 2 of instance 0 serves nobody
        association[0, 0] |= ~association[0].any(0)
    if allow_unserved:
        association[1, :, 1] = False  # UE 1 of instance 1 served by nobody
    p = torch.rand(B, L, generator=g, dtype=torch.float64) + 0.5
    return precoding_instance(h, association, p, 1.0, allow_unserved=allow_unserved)


@pytest.mark.parametrize("name", EQUIVARIANT_PRECODERS)
def test_equivariant_models_meet_the_contract(name):
    """assert_policy: dtype, association (zeros on unserved links), feasibility, batch = per sample,
    and equivariance under UE, AP and per-AP antenna permutations."""
    inst = _instance()
    alloc = assert_policy(SumRatePrecoding(), PrecoderPolicy(_model(name)), inst, rtol=1e-9, atol=1e-12)
    power = alloc.precoders.abs().square().sum((-2, -1))
    serving = inst.association.any(-1)
    torch.testing.assert_close(power[serving], inst.p_max[serving], rtol=1e-9, atol=0)  # exact scaling
    assert torch.equal(power[~serving], torch.zeros_like(power[~serving]))


@pytest.mark.parametrize("name", EQUIVARIANT_PRECODERS)
def test_equivariance_under_each_permutation_explicitly(name):
    inst = _instance(seed=1)
    model = _model(name)
    policy = PrecoderPolicy(model)
    v = policy(inst).precoders
    g = torch.Generator().manual_seed(5)
    pk, pl = torch.randperm(inst.K, generator=g), torch.randperm(inst.L, generator=g)
    pn = torch.stack([torch.randperm(inst.N, generator=g) for _ in range(inst.L)])
    torch.testing.assert_close(policy(inst.permute_ues(pk)).precoders, v[:, :, pk], rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(policy(inst.permute_aps(pl)).precoders, v[:, pl], rtol=1e-9, atol=1e-12)
    want = torch.gather(v, -1, pn[None, :, None, :].expand_as(v))
    torch.testing.assert_close(policy(inst.permute_antennas(pn)).precoders, want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", EQUIVARIANT_PRECODERS)
def test_equivariant_models_take_any_K_L_N(name):
    model = _model(name)
    for L, K, N in [(1, 2, 1), (2, 5, 4), (4, 3, 2)]:
        inst = _instance(B=2, L=L, K=K, N=N, seed=L + K + N)
        v = model(inst.h, inst.association, inst.p_max, inst.noise)
        assert v.shape == (2, L, K, N) and torch.isfinite(v.abs()).all()


@pytest.mark.parametrize("name", ["sunet", "gnn16"])
def test_fixed_n_models_meet_the_contract_and_name_n(name):
    inst = _instance()  # N = 3 = the models' antennas
    assert_policy(SumRatePrecoding(), PrecoderPolicy(_model(name)), inst, permutation=False)
    with pytest.raises(ValueError, match=r"N = 4.*N = 3"):
        _model(name)(*(lambda i: (i.h, i.association, i.p_max, i.noise))(_instance(N=4)))


def test_gnn16_is_ue_and_ap_equivariant():
    inst = _instance(seed=2)
    policy = PrecoderPolicy(_model("gnn16"))
    v = policy(inst).precoders
    pk, pl = torch.tensor([2, 0, 3, 1]), torch.tensor([1, 2, 0])
    torch.testing.assert_close(policy(inst.permute_ues(pk)).precoders, v[:, :, pk], rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(policy(inst.permute_aps(pl)).precoders, v[:, pl], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", PRECODER_MODEL_NAMES)
def test_empty_sets_give_zeros_without_nan_in_outputs_or_gradients(name):
    """An AP serving nobody and a UE served by nobody: zero precoders there, finite gradients."""
    inst = _instance(allow_unserved=True)
    model = _model(name)
    v = model(inst.h, inst.association, inst.p_max, inst.noise)
    assert torch.equal(v[0, 2], torch.zeros_like(v[0, 2]))
    assert torch.equal(v[1, :, 1], torch.zeros_like(v[1, :, 1]))
    objective = SumRatePrecoding().objective(inst, PrecoderPolicy(model)(inst))
    objective.sum().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname


def test_parameter_counts_of_table_i():
    """AAGNN-woA: 8 matrices per layer, widths [2,128,128,128,128,2], no bias -> 8 * 49,664 =
    397,312 (Table I: 397,313, within the issue's +-1). EGAT: + 2 attention vectors a in R^{2 C_out}
    per layer = 399,368 (Table I: 399,365, the attention layout is not given). AAGNN: 8 matrices +
    alpha, beta per layer."""
    assert count_parameters(build_model(ModelConfig(name="aagnn_woa"))) == 397_312
    assert count_parameters(build_model(ModelConfig(name="aagnn_egat"))) == 399_368
    widths = [2, 64, 64, 2]
    eight_s = 8 * sum(a * b for a, b in itertools.pairwise(widths))
    assert count_parameters(build_model(ModelConfig(name="aagnn"))) == eight_s + 2 * 3 == 34_822
    deep = ModelConfig(name="aagnn", widths=(2, 64, 64, 64, 64, 2))
    assert count_parameters(build_model(deep)) == 8 * (128 + 3 * 4096 + 128) + 2 * 5 == 100_362
    cfg = ModelConfig(name="aagnn_woa", widths=(2, 16, 2))
    assert count_parameters(build_model(cfg)) == 8 * (2 * 16 + 16 * 2)


def test_mrt_gnn_sends_powered_mrt_beams_within_each_ap_budget():
    inst = _instance(seed=3)
    v = PrecoderPolicy(_model("mrt_gnn"))(inst).precoders
    h = inst.h
    served = inst.association
    # v_lk = sqrt(p_lk) h_lk / ||h_lk||: |h^H v| = ||h|| ||v|| with a real positive inner product
    inner = (h.conj() * v).sum(-1)
    torch.testing.assert_close(inner.imag[served], torch.zeros_like(inner.imag[served]), rtol=0, atol=1e-9)
    torch.testing.assert_close(inner.real, h.norm(dim=-1) * v.norm(dim=-1), rtol=1e-9, atol=1e-12)
    power = v.abs().square().sum((-2, -1))
    serving = served.any(-1)
    torch.testing.assert_close(power[serving], inst.p_max[serving], rtol=1e-9, atol=0)


def test_bad_inputs_are_named():
    model = _model("aagnn")
    inst = _instance()
    with pytest.raises(TypeError, match="h must be a complex"):
        model(inst.h.real, inst.association, inst.p_max, inst.noise)
    with pytest.raises(ValueError, match="association"):
        model(inst.h, inst.association.double(), inst.p_max, inst.noise)
    with pytest.raises(ValueError, match="p_max"):
        model(inst.h, inst.association, inst.p_max[:, :1], inst.noise)
    with pytest.raises(ValueError, match="widths must start and end with 2"):
        build_model(ModelConfig(name="aagnn_woa", widths=(3, 8, 2)))
    with pytest.raises(ValueError, match="aggregation"):
        ModelConfig(name="aagnn", aggregation="max")
