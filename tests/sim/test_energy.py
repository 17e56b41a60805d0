"""Tests of cfmimo.sim.energy (ee-gnn eqs. (1)-(2)): hand-solved values, loop references, invariances."""

from __future__ import annotations

import math

import pytest
import torch

from cfmimo.sim.energy import (
    energy_efficiency,
    energy_efficiency_terms,
    global_energy_efficiency,
    mrt_effective_gains,
    mrt_sinr,
)

C128 = torch.complex128
F64 = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _channels(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.randn(shape, dtype=C128, generator=_gen(seed))


def _powers_mw(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return 1000.0 * torch.rand(shape, dtype=F64, generator=_gen(seed))


# ----------------------------------------------------------------------------------------------------
# loop references (readable, float64)
# ----------------------------------------------------------------------------------------------------


def _loop_gains(h: torch.Tensor) -> torch.Tensor:
    B, L, K, _ = h.shape
    out = torch.zeros(B, L, K, K, dtype=F64)
    for b in range(B):
        for l in range(L):
            for k in range(K):
                for j in range(K):
                    beam = h[b, l, j] / torch.linalg.vector_norm(h[b, l, j])
                    out[b, l, k, j] = abs(complex(torch.vdot(h[b, l, k], beam))) ** 2
    return out


def _loop_ee(g: torch.Tensor, p: torch.Tensor, noise: float, mu: float, pc_w: float) -> tuple[list, list]:
    """SINRs and EE of ee-gnn (1), p in mW converted to W in the denominator only."""
    B, L, K, _ = g.shape
    sinrs, ees = [], []
    for b in range(B):
        s_b, ee = [], 0.0
        for k in range(K):
            signal = sum(float(g[b, l, k, k] * p[b, l, k]) for l in range(L))
            interference = sum(
                float(g[b, l, k, j] * p[b, l, j]) for j in range(K) if j != k for l in range(L)
            )
            s = signal / (noise + interference)
            s_b.append(s)
            ee += math.log2(1 + s) / (mu * sum(float(p[b, l, k]) for l in range(L)) / 1000.0 + pc_w)
        sinrs.append(s_b)
        ees.append(ee)
    return sinrs, ees


# ----------------------------------------------------------------------------------------------------
# hand-solved
# ----------------------------------------------------------------------------------------------------


def test_hand_solved_gains_single_ap():
    # L=1, N=2: h_1 = [1, 0], h_2 = [1, 1j]. h_{kj} = |h_k^H h_j|^2 / ||h_j||^2 (eq. (2)):
    # h_11 = 1, h_12 = |1|^2 / 2 = 0.5, h_21 = |1|^2 / 1 = 1, h_22 = ||h_2||^2 = 2.
    h = torch.tensor([[[[1, 0], [1, 1j]]]], dtype=C128)
    g = mrt_effective_gains(h)
    torch.testing.assert_close(g, torch.tensor([[[[1.0, 0.5], [1.0, 2.0]]]], dtype=F64), rtol=0, atol=1e-15)


def test_hand_solved_sinr_and_ee():
    h = torch.tensor([[[[1, 0], [1, 1j]]]], dtype=C128)
    g = mrt_effective_gains(h)
    p = torch.tensor([[[1000.0, 2000.0]]], dtype=F64)  # mW: UE 1 gets 1 W, UE 2 gets 2 W
    # Noise 1: SINR_1 = 1*1000 / (1 + 0.5*2000) = 1000/1001; SINR_2 = 2*2000 / (1 + 1*1000) = 4000/1001.
    s = mrt_sinr(g, p, None)
    torch.testing.assert_close(s, torch.tensor([[1000 / 1001, 4000 / 1001]], dtype=F64), rtol=1e-15, atol=0)
    # Noise-free: SINR = [1, 4]; EE = log2(2)/(1 W + 4 W) + log2(5)/(2 W + 4 W) (mu = 1, P_c = 4 W).
    ee = energy_efficiency(g, p, None, noise=0.0)
    assert ee.shape == (1,)
    assert ee.item() == pytest.approx(0.2 + math.log2(5.0) / 6.0, rel=1e-14)
    terms = energy_efficiency_terms(g, p, None, noise=0.0)
    torch.testing.assert_close(
        terms, torch.tensor([[0.2, math.log2(5.0) / 6.0]], dtype=F64), rtol=1e-14, atol=0
    )
    # mu = 2, P_c = 1 W, bandwidth 1 MHz: log2(2)/(2 + 1) + log2(5)/(4 + 1) W, times 1e6.
    ee2 = energy_efficiency(g, p, None, noise=0.0, mu=2.0, static_power_mw=1000.0, bandwidth_hz=1e6)
    assert ee2.item() == pytest.approx(1e6 * (1 / 3 + math.log2(5.0) / 5), rel=1e-14)


def test_non_coherent_joint_transmission_adds_powers():
    # L=2, K=1, N=1: |h_11| = 1, |h_21| = 2, p = 1 mW each. NCJT: SINR = 1 + 4 = 5 (coherent would give 9).
    h = torch.tensor([[[[1.0]], [[2.0j]]]], dtype=C128)
    p = torch.ones(1, 2, 1, dtype=F64)
    g = mrt_effective_gains(h)
    torch.testing.assert_close(mrt_sinr(g, p, None), torch.tensor([[5.0]], dtype=F64))
    # No static power: EE = log2(6) / 2 mW = 500 * log2(6) per W.
    ee = energy_efficiency(g, p, None, static_power_mw=0.0)
    assert ee.item() == pytest.approx(500.0 * math.log2(6.0), rel=1e-14)


def test_mask_zeroes_unserved_powers():
    h = _channels((2, 3, 4, 2), seed=1)
    g = mrt_effective_gains(h)
    p = _powers_mw((2, 3, 4), seed=2).requires_grad_(True)
    x = torch.rand(2, 3, 4, generator=_gen(3)) < 0.5
    torch.testing.assert_close(energy_efficiency(g, p, x), energy_efficiency(g, p * x, None))
    energy_efficiency(g, p, x).sum().backward()
    assert torch.all(p.grad[~x] == 0)
    assert torch.all(p.grad[x] != 0)


def test_zero_channel_gives_zero_beam():
    h = _channels((1, 2, 3, 2), seed=4)
    h[0, 1, 2] = 0
    g = mrt_effective_gains(h)
    assert torch.isfinite(g).all()
    assert torch.all(g[0, 1, :, 2] == 0)


# ----------------------------------------------------------------------------------------------------
# batched vs loop reference, structure
# ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def setup():
    B, L, K, N = 3, 4, 3, 5
    h = 0.1 * _channels((B, L, K, N), seed=5)
    p = _powers_mw((B, L, K), seed=6)
    return h, p


def test_matches_loop_reference(setup):
    h, p = setup
    g = mrt_effective_gains(h)
    torch.testing.assert_close(g, _loop_gains(h), rtol=1e-12, atol=1e-14)
    sinrs, ees = _loop_ee(g, p, noise=1.3, mu=1.5, pc_w=4.0)
    torch.testing.assert_close(mrt_sinr(g, p, None, 1.3), torch.tensor(sinrs, dtype=F64), rtol=1e-12, atol=0)
    ee = energy_efficiency(g, p, None, noise=1.3, mu=1.5)
    torch.testing.assert_close(ee, torch.tensor(ees, dtype=F64), rtol=1e-12, atol=0)


def test_gain_structure(setup):
    h, _ = setup
    g = mrt_effective_gains(h)
    # Desired-signal gain h_{l,kk} = ||h_lk||^2; cross gains bounded by Cauchy-Schwarz: h_{l,kj} <= ||h_lk||^2.
    norms = h.abs().square().sum(-1)  # [B, L, K]
    torch.testing.assert_close(torch.diagonal(g, dim1=-2, dim2=-1), norms, rtol=1e-12, atol=0)
    assert torch.all(g <= norms.unsqueeze(-1) * (1 + 1e-12))
    # Invariant to a phase rotation of each link h_lk (the MRT beam rotates with it).
    phases = torch.exp(1j * torch.rand(h.shape[:-1], dtype=F64, generator=_gen(7))).unsqueeze(-1)
    torch.testing.assert_close(mrt_effective_gains(h * phases), g, rtol=1e-12, atol=1e-15)
    # With N = 1 the beam is a phase: h_{l,kj} = |h_lk|^2 for every j.
    h1 = h[..., :1]
    g1 = mrt_effective_gains(h1)
    torch.testing.assert_close(g1, h1.abs().square().expand(*h1.shape[:-1], h1.shape[-2]), rtol=1e-12, atol=0)


def test_leading_dims_and_broadcast(setup):
    h, p = setup
    g = mrt_effective_gains(h)
    g2 = torch.stack([g, g.flip(0)])  # [2, B, L, K, K]
    p2 = torch.stack([p, p.flip(0)])
    torch.testing.assert_close(
        energy_efficiency(g2, p2, None).flatten(), energy_efficiency(g2.flatten(0, 1), p2.flatten(0, 1), None)
    )
    # One power allocation broadcast over realizations.
    torch.testing.assert_close(
        energy_efficiency(g2, p[:1], None), energy_efficiency(g2, p[:1].expand_as(p2), None)
    )


def test_permutation_equivariance(setup):
    h, p = setup
    pk = torch.tensor([2, 0, 1])
    pl = torch.tensor([3, 1, 0, 2])
    g = mrt_effective_gains(h)
    s = mrt_sinr(g, p, None)
    ee = energy_efficiency(g, p, None)
    gk = mrt_effective_gains(h[:, :, pk])
    torch.testing.assert_close(gk, g[:, :, pk][..., pk])
    torch.testing.assert_close(mrt_sinr(gk, p[:, :, pk], None), s[:, pk])
    torch.testing.assert_close(
        energy_efficiency_terms(gk, p[:, :, pk], None), energy_efficiency_terms(g, p, None)[:, pk]
    )
    torch.testing.assert_close(energy_efficiency(gk, p[:, :, pk], None), ee)
    gl = mrt_effective_gains(h[:, pl])
    torch.testing.assert_close(gl, g[:, pl])
    torch.testing.assert_close(mrt_sinr(gl, p[:, pl], None), s)
    torch.testing.assert_close(energy_efficiency(gl, p[:, pl], None), ee)


def test_float32_matches_float64(setup):
    h, p = setup
    g32 = mrt_effective_gains(h.to(torch.complex64))
    assert g32.dtype == torch.float32
    ee32 = energy_efficiency(g32, p.float(), None)
    assert ee32.dtype == torch.float32
    torch.testing.assert_close(
        ee32.double(), energy_efficiency(mrt_effective_gains(h), p, None), rtol=1e-5, atol=0
    )


def test_gradcheck_ee():
    h = _channels((1, 2, 2, 2), seed=8)
    g = mrt_effective_gains(h)
    p = (100.0 + _powers_mw((1, 2, 2), seed=9)).requires_grad_(True)
    x = torch.tensor([[[True, True], [False, True]]])
    assert torch.autograd.gradcheck(lambda q: energy_efficiency(g, q, x), (p,))
    assert torch.autograd.gradcheck(lambda q: mrt_sinr(g, q, None, 0.5), (p,))
    # Also differentiable in the channel (through eq. (2)).
    hh = h.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda c: energy_efficiency(mrt_effective_gains(c), p.detach(), None), (hh,)
    )


def test_gradient_ascent_improves_ee(setup):
    # A few projected gradient steps from equal powers increase J (sanity of the gradient's sign).
    h, _ = setup
    g = mrt_effective_gains(h)
    p = torch.full((3, 4, 3), 100.0, dtype=F64, requires_grad=True)
    start = energy_efficiency(g, p, None).detach()
    opt = torch.optim.SGD([p], lr=1e3)
    for _ in range(20):
        opt.zero_grad()
        (-energy_efficiency(g, p, None).sum()).backward()
        opt.step()
        with torch.no_grad():
            p.clamp_(min=0.0)
    assert torch.all(energy_efficiency(g, p, None) > start)


def test_errors_name_the_argument(setup):
    h, p = setup
    g = mrt_effective_gains(h)
    with pytest.raises(TypeError, match=r"\bh\b"):
        mrt_effective_gains(h.real)
    with pytest.raises(ValueError, match=r"\bh\b"):
        mrt_effective_gains(h[0, 0])
    with pytest.raises(ValueError, match=r"\bgains\b"):
        mrt_sinr(g[..., :2], p, None)
    with pytest.raises(ValueError, match=r"\bp\b"):
        energy_efficiency(g, p[:, :, :2], None)
    with pytest.raises(ValueError, match=r"\bp\b"):
        energy_efficiency(g, p[:2], None)
    with pytest.raises(TypeError, match=r"\bp\b"):
        energy_efficiency(g, p.float(), None)
    with pytest.raises(ValueError, match=r"\bmask\b"):
        energy_efficiency(g, p, torch.ones(3, 4, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\bnoise\b"):
        mrt_sinr(g, p, None, torch.ones(5, dtype=F64))
    with pytest.raises(ValueError, match=r"\bmu\b"):
        energy_efficiency(g, p, None, mu=0.0)
    with pytest.raises(ValueError, match=r"\bstatic_power_mw\b"):
        energy_efficiency(g, p, None, static_power_mw=-1.0)


# ----------------------------------------------------------------------------------------------------
# issue 13: the EE hand case with unit noise, global EE, bad powers
# ----------------------------------------------------------------------------------------------------


def test_issue_hand_case_unit_noise():
    # L=1, N=2, h1=[1,0], h2=[1,j], p=(1000, 2000) mW, noise 1, mu=1, P_c=4 W.
    # SINR = (1000/1001, 4000/1001). Eq. (1) with the denominator in W (p/1000 + 4):
    # J = log2(2001/1001)/5 + log2(5001/1001)/6 = 0.199856 + 0.386795 = 0.58665;
    # global EE = (log2(2001/1001) + log2(5001/1001)) / (1 + 2 + 4) = 3.32005/7 = 0.47429.
    # (With the denominator in mW the numbers would be 1000x smaller: the issue's values fix W.)
    h = torch.tensor([[[[1, 0], [1, 1j]]]], dtype=C128)
    g = mrt_effective_gains(h)
    p = torch.tensor([[[1000.0, 2000.0]]], dtype=F64)
    r1, r2 = math.log2(2001 / 1001), math.log2(5001 / 1001)
    j = energy_efficiency(g, p, None)
    assert j.item() == pytest.approx(r1 / 5 + r2 / 6, rel=1e-14)
    assert j.item() == pytest.approx(0.58665, abs=5e-6)
    gee = global_energy_efficiency(g, p, None)
    assert gee.item() == pytest.approx((r1 + r2) / 7, rel=1e-14)
    assert gee.item() == pytest.approx(0.47429, abs=5e-6)
    # Natural log and a 1 MHz bandwidth scale the rate; mu scales the radiated part only.
    j_e = energy_efficiency(g, p, None, log_base=math.e, bandwidth_hz=1e6)
    assert j_e.item() == pytest.approx(1e6 * math.log(2) * (r1 / 5 + r2 / 6), rel=1e-13)
    gee_mu = global_energy_efficiency(g, p, None, mu=2.0, static_power_mw=1000.0)
    assert gee_mu.item() == pytest.approx((r1 + r2) / (2 * 3 + 1), rel=1e-14)


def test_global_ee_matches_loop(setup):
    h, p = setup
    g = mrt_effective_gains(h)
    x = torch.rand(p.shape, generator=_gen(11)) < 0.7
    sinrs, _ = _loop_ee(g, p * x, noise=1.0, mu=1.5, pc_w=2.0)
    ref = [
        sum(math.log2(1 + s) for s in sb) / (1.5 * float((p * x)[b].sum()) / 1000 + 2.0)
        for b, sb in enumerate(sinrs)
    ]
    got = global_energy_efficiency(g, p, x, mu=1.5, static_power_mw=2000.0)
    torch.testing.assert_close(got, torch.tensor(ref, dtype=F64), rtol=1e-12, atol=0)


@pytest.mark.parametrize("bad", [-1.0, float("nan")])
def test_negative_or_nan_power_is_rejected(setup, bad):
    h, p = setup
    g = mrt_effective_gains(h)
    q = p.clone()
    q[0, 1, 2] = bad
    for fn in (energy_efficiency, energy_efficiency_terms, global_energy_efficiency):
        with pytest.raises(ValueError, match=r"\bp\b"):
            fn(g, q, None)
    with pytest.raises(ValueError, match=r"\bp\b"):
        mrt_sinr(g, q, None)


def test_bad_constants_are_rejected(setup):
    h, p = setup
    g = mrt_effective_gains(h)
    with pytest.raises(ValueError, match="bandwidth_hz"):
        global_energy_efficiency(g, p, None, bandwidth_hz=0.0)
    with pytest.raises(ValueError, match="log_base"):
        energy_efficiency(g, p, None, log_base=1.0)
    with pytest.raises(ValueError, match=r"\bmu\b"):
        global_energy_efficiency(g, p, None, mu=-1.0)
