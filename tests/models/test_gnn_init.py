"""The MRT-preserving initialization of the antenna-level GNNs (``ModelConfig.init = "mrt"``) and
AAGNN's cosine-normalized attention (``attention_norm = "cosine"``): exact values in float64,
equivariance via assert_policy, bad configurations named."""

from __future__ import annotations

import pytest
import torch

from cfmimo.models import ModelConfig, build_model
from cfmimo.models.gnn.layers import link_input, power_head
from cfmimo.policies.neural import PrecoderPolicy
from cfmimo.problems.sumrate_precoding import SumRatePrecoding, precoding_instance
from cfmimo.testing import assert_policy


def _instance(B=3, L=3, K=4, N=5, seed=0):
    """Channels spanning ~40 dB, an AP serving nobody (instance 0, AP 2), float64."""
    g = torch.Generator().manual_seed(seed)
    gain_db = -40 * torch.rand(B, L, K, generator=g, dtype=torch.float64)
    z = torch.complex(
        torch.randn(B, L, K, N, generator=g, dtype=torch.float64),
        torch.randn(B, L, K, N, generator=g, dtype=torch.float64),
    )
    h = z * (10 ** (gain_db / 20))[..., None] * 1e3
    association = gain_db > -20
    association[:, 0] |= ~association.any(1)
    association[0, 2] = False
    association[0, 0] |= ~association[0].any(0)
    p = torch.rand(B, L, generator=g, dtype=torch.float64) + 0.5
    return precoding_instance(h, association, p, 1.0)


def _build(seed=0, **fields):
    torch.manual_seed(seed)
    model = build_model(ModelConfig(**fields)).double()
    inst = _instance()
    model.fit_input_scale(inst.h, inst.association, inst.p_max, inst.noise)
    return model, inst


EXACT = [
    dict(name="aagnn_woa", widths=(2, 8, 8, 8, 2)),  # ReLU: (Re, -Re, Im, -Im) pairs
    dict(name="aagnn_woa", widths=(2, 6, 2), activation="gelu"),  # gelu(x) - gelu(-x) = x
    dict(name="aagnn_woa", widths=(2, 4, 4, 2), activation="leaky_relu"),
    dict(name="aagnn_egat", widths=(2, 8, 8, 2), heads=2),
    dict(name="aagnn", widths=(2, 6, 6, 6, 2), attention_norm="cosine"),
    dict(name="aagnn", widths=(2, 2), attention_norm="cosine"),  # a single (output) layer
]


@pytest.mark.parametrize("fields", EXACT, ids=lambda f: f"{f['name']}-{len(f['widths'])}")
def test_mrt_init_with_scale_zero_is_per_ap_mrt_on_the_input(fields):
    """init_scale = 0: the untrained model outputs power_head(g), g = link_input(h) (MRT direction
    h_lk/||h_lk||, magnitude log(1 + SNR), each serving AP at exactly P_l)."""
    model, inst = _build(init="mrt", init_scale=0.0, **fields)
    v = model(inst.h, inst.association, inst.p_max, inst.noise)
    g, _ = link_input(inst.h, inst.p_max, inst.noise, model.input_scale)
    want = power_head(g, inst.association, inst.p_max)
    torch.testing.assert_close(v, want, rtol=0, atol=1e-10)
    # MRT direction per served link: h^H v is real and equals ||h|| ||v||
    served = inst.association
    inner = (inst.h.conj() * v).sum(-1)
    torch.testing.assert_close(inner.imag, torch.zeros_like(inner.imag), rtol=0, atol=1e-9)
    hv = inst.h.norm(dim=-1) * v.norm(dim=-1)
    torch.testing.assert_close(inner.real[served], hv[served], rtol=1e-10, atol=1e-12)
    power = v.abs().square().sum((-2, -1))
    serving = served.any(-1)
    torch.testing.assert_close(power[serving], inst.p_max[serving], rtol=1e-10, atol=0)
    assert float(power[~serving].detach().abs().max()) == 0.0


def test_mrt_init_with_equal_link_gains_is_exact_per_ap_mrt():
    """With every link of an AP at the same gain, log-compression changes nothing: the untrained
    model equals per-AP MRT v_lk = h_lk sqrt(P_l) / ||H_l||_F exactly (float64)."""
    g = torch.Generator().manual_seed(3)
    z = torch.complex(*(torch.randn(2, 3, 4, 5, generator=g, dtype=torch.float64) for _ in range(2)))
    h = 30 * z / z.norm(dim=-1, keepdim=True)  # ||h_lk|| = 30 for every link
    association = torch.ones(2, 3, 4, dtype=torch.bool)
    association[0, 1, 2] = False
    p = torch.tensor([[1.0, 2.0, 0.5], [3.0, 1.0, 1.0]], dtype=torch.float64)
    inst = precoding_instance(h, association, p, 1.0)
    d = association[..., None].to(h.dtype)
    mrt = h * d * (p.sqrt() / (h * d).norm(dim=(-2, -1)))[..., None, None]
    for fields in EXACT:
        torch.manual_seed(0)
        model = build_model(ModelConfig(init="mrt", init_scale=0.0, **fields)).double()
        v = model(inst.h, inst.association, inst.p_max, inst.noise)
        torch.testing.assert_close(v, mrt, rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", ["aagnn", "aagnn_woa", "aagnn_egat"])
def test_mrt_init_is_the_default_and_starts_near_mrt(name):
    """The registry default is init="mrt" with init_scale 0.1 (AAGNN: with cosine attention the
    start is near MRT; the raw attention multiplies each layer by alpha |g|^2)."""
    extra = {"attention_norm": "cosine"} if name == "aagnn" else {}
    model, inst = _build(name=name, d_mod=8, layers=3, **extra)
    assert model.config.init == "mrt"
    v = model(inst.h, inst.association, inst.p_max, inst.noise)
    g, _ = link_input(inst.h, inst.p_max, inst.noise, model.input_scale)
    want = power_head(g, inst.association, inst.p_max)
    rel = float((v - want).norm() / want.norm())
    assert rel < 0.35, rel
    # the paper-default init is far from it
    far, _ = _build(name=name, d_mod=8, layers=3, init="default", **extra)
    v0 = far(inst.h, inst.association, inst.p_max, inst.noise)
    assert float((v0 - want).norm() / want.norm()) > 0.6


CONTRACT = [
    dict(name="aagnn", d_mod=6, layers=2, attention_norm="cosine"),
    dict(name="aagnn", d_mod=6, layers=2, init="default"),
    dict(name="aagnn", d_mod=6, layers=3, attention_norm="cosine", aggregation="mean"),
    dict(name="aagnn_woa", d_mod=6, layers=2, init="default"),
    dict(name="aagnn_egat", d_mod=6, layers=2, heads=2, init="default"),
]


@pytest.mark.parametrize("fields", CONTRACT, ids=lambda f: "-".join(str(v) for v in f.values()))
def test_options_keep_the_contract_and_3d_equivariance(fields):
    """assert_policy (UE, AP, per-AP antenna permutations; zeros on unserved links; feasibility;
    batch = per sample) for both inits and both attention forms."""
    model, inst = _build(**fields)
    assert_policy(SumRatePrecoding(), PrecoderPolicy(model), inst, rtol=1e-9, atol=1e-12)


def test_cosine_attention_makes_each_layer_1_homogeneous():
    """An AAGNN layer (eq. (20)) maps c x to c^2 x' with the paper's raw correlation attention (so
    hidden values grow ~x^2 per layer) and to c x' with the cosine-normalized one."""
    from cfmimo.models.gnn.aagnn import AttentionLayer

    inst = _instance()
    d = inst.association.double()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(*inst.h.shape, 4, generator=g, dtype=torch.float64)
    for norm, power in (("none", 2), ("cosine", 1)):
        torch.manual_seed(0)
        layer = AttentionLayer(4, 6, "sum", norm=norm).double()
        a = layer(x, d, inst.h)
        b = layer(2.0 * x, d, inst.h)
        torch.testing.assert_close(b, 2.0**power * a, rtol=1e-10, atol=1e-12)
        # and the layer is invariant to the scale of h (cosine) or linear in it (raw)
        c = layer(x, d, 5.0 * inst.h)
        torch.testing.assert_close(c, (5.0 if norm == "none" else 1.0) * a, rtol=1e-10, atol=1e-12)


def test_deep_cosine_aagnn_is_finite_in_float32_with_gradients():
    """Four hidden layers of 64 in float32 (the raw attention overflows there at the default init:
    hidden values grow ~x^2 per layer) give finite outputs and gradients."""
    torch.manual_seed(0)
    model = build_model(
        ModelConfig(name="aagnn", widths=(2, 64, 64, 64, 64, 2), attention_norm="cosine", init="default")
    )
    inst = _instance(B=2, K=3, N=4)
    h = inst.h.to(torch.complex64)
    v = model(h, inst.association, inst.p_max.float(), inst.noise.float())
    assert torch.isfinite(torch.view_as_real(v)).all()
    v.abs().sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_bad_init_configurations_are_named():
    with pytest.raises(ValueError, match="activation"):
        build_model(ModelConfig(name="aagnn_woa", d_mod=8, activation="tanh"))  # default init = mrt
    with pytest.raises(ValueError, match="hidden widths >= 4"):
        build_model(ModelConfig(name="aagnn_woa", widths=(2, 2, 2)))
    with pytest.raises(ValueError, match="activation='none'"):
        build_model(ModelConfig(name="aagnn", d_mod=8, activation="relu", init="mrt"))
    with pytest.raises(ValueError, match="attention_norm"):
        ModelConfig(name="aagnn", attention_norm="softmax")
    with pytest.raises(ValueError, match="init_scale"):
        ModelConfig(name="aagnn", init_scale=-1.0)
    # the paper-default init accepts any activation
    build_model(ModelConfig(name="aagnn_woa", d_mod=8, activation="tanh", init="default"))
