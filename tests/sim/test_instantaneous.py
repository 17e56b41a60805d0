"""Tests of cfmimo.sim.instantaneous: hand-solved cases, loop references, ZF/RZF limits, invariances."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cfmimo.sim.instantaneous import (
    fronthaul_load,
    mrt,
    normalize_per_ap,
    per_ap_power,
    rate,
    received_gains,
    rzf,
    sinr,
    sum_rate,
    weighted_sum_rate,
    zf,
)

C128 = torch.complex128


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _channels(shape: tuple[int, ...], seed: int, dtype: torch.dtype = C128) -> torch.Tensor:
    return torch.randn(shape, dtype=dtype, generator=_gen(seed))


def _random_mask(B: int, L: int, K: int, seed: int) -> torch.Tensor:
    """Random association with every UE served by at least one AP and at least one unserved link."""
    g = _gen(seed)
    m = torch.rand(B, L, K, generator=g) < 0.6
    first = torch.randint(0, L, (B, K), generator=g)
    m.scatter_(1, first.unsqueeze(1), True)
    m[:, 0, 0] = False
    m[:, 1, 0] = True
    return m


# ----------------------------------------------------------------------------------------------------
# loop references (readable, float64)
# ----------------------------------------------------------------------------------------------------


def _loop_gains(h: torch.Tensor, w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    B, L, K, _ = h.shape
    g = torch.zeros(B, K, K, dtype=h.dtype)
    for b in range(B):
        for k in range(K):
            for i in range(K):
                for l in range(L):
                    g[b, k, i] += torch.vdot(h[b, l, k], float(x[b, l, i]) * w[b, l, i])
    return g


def _loop_sinr(h: torch.Tensor, w: torch.Tensor, x: torch.Tensor, noise: float) -> torch.Tensor:
    g = _loop_gains(h, w, x)
    B, K = g.shape[0], g.shape[1]
    out = torch.zeros(B, K, dtype=torch.float64)
    for b in range(B):
        for k in range(K):
            interference = sum(abs(complex(g[b, k, i])) ** 2 for i in range(K) if i != k)
            out[b, k] = abs(complex(g[b, k, k])) ** 2 / (interference + noise)
    return out


def _stacked(h_b: torch.Tensor) -> np.ndarray:
    """[L, K, N] -> the (L*N) x K network channel H (column k = stacked h_1k ... h_Lk)."""
    L, K, N = h_b.shape
    return h_b.permute(0, 2, 1).reshape(L * N, K).numpy()


def _loop_rzf(h: torch.Tensor, x: torch.Tensor, lam: float) -> torch.Tensor:
    """w_k = (D_k H H^H D_k + lam I)^{-1} D_k h_k with explicit (LN x LN) matrices."""
    B, L, K, N = h.shape
    w = torch.zeros_like(h)
    for b in range(B):
        H = _stacked(h[b])
        for k in range(K):
            D = np.diag(np.repeat(x[b, :, k].numpy().astype(float), N))
            A = D @ H @ H.conj().T @ D + lam * np.eye(L * N)
            wk = np.linalg.solve(A, D @ H[:, k])
            w[b, :, k, :] = torch.from_numpy(wk.reshape(L, N))
    return w


def _loop_zf(h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """w_k = pinv(H^H D_k) e_k."""
    B, L, K, N = h.shape
    w = torch.zeros_like(h)
    for b in range(B):
        H = _stacked(h[b])
        for k in range(K):
            D = np.diag(np.repeat(x[b, :, k].numpy().astype(float), N))
            wk = np.linalg.pinv(H.conj().T @ D)[:, k]
            w[b, :, k, :] = torch.from_numpy(wk.reshape(L, N))
    return w


# ----------------------------------------------------------------------------------------------------
# hand-solved cases
# ----------------------------------------------------------------------------------------------------


def test_hand_solved_single_ap_two_ues():
    # L=1, K=2, N=2: h_1 = [1, 0], h_2 = [1, 1j]; w_1 = [1, 0], w_2 = [0, 2].
    h = torch.tensor([[[[1, 0], [1, 1j]]]], dtype=C128)
    w = torch.tensor([[[[1, 0], [0, 2]]]], dtype=C128)
    g = received_gains(h, w, None)
    # g_ki = h_k^H w_i: g11 = 1, g12 = 0, g21 = 1, g22 = conj(1j) * 2 = -2j.
    torch.testing.assert_close(g, torch.tensor([[[1, 0], [1, -2j]]], dtype=C128), rtol=0, atol=1e-15)
    s = sinr(h, w, None)  # SINR_1 = 1 / (0 + 1) = 1, SINR_2 = 4 / (1 + 1) = 2
    torch.testing.assert_close(s, torch.tensor([[1.0, 2.0]], dtype=torch.float64), rtol=0, atol=1e-15)
    torch.testing.assert_close(
        sinr(h, w, None, noise=0.5), torch.tensor([[2.0, 4.0 / 1.5]], dtype=torch.float64)
    )
    sr = sum_rate(h, w, None)
    assert sr.shape == (1,)
    assert sr.item() == pytest.approx(1.0 + math.log2(3.0), rel=1e-14)
    assert sum_rate(h, w, None, prelog=10.0).item() == pytest.approx(10 * (1.0 + math.log2(3.0)), rel=1e-14)
    wsr = weighted_sum_rate(h, w, None, torch.tensor([[2.0, 0.5]], dtype=torch.float64))
    assert wsr.item() == pytest.approx(2.0 + 0.5 * math.log2(3.0), rel=1e-14)
    torch.testing.assert_close(per_ap_power(w, None), torch.tensor([[5.0]], dtype=torch.float64))


def test_hand_solved_mask_removes_unserved_links():
    # L=2, K=2, N=1, all channels and precoders 1. Full association: g = 2 everywhere -> SINR = 4/(4+1).
    h = torch.ones(1, 2, 2, 1, dtype=C128)
    w = torch.ones(1, 2, 2, 1, dtype=C128)
    torch.testing.assert_close(sinr(h, w, None), torch.full((1, 2), 0.8, dtype=torch.float64))
    # AP1 serves UE1 only, AP2 serves UE2 only: g = 1 everywhere -> SINR = 1/(1+1).
    x = torch.tensor([[[True, False], [False, True]]])
    torch.testing.assert_close(received_gains(h, w, x), torch.ones(1, 2, 2, dtype=C128))
    torch.testing.assert_close(sinr(h, w, x), torch.full((1, 2), 0.5, dtype=torch.float64))
    torch.testing.assert_close(per_ap_power(w, x), torch.ones(1, 2, dtype=torch.float64))
    # A float mask gives the same numbers as the bool mask.
    torch.testing.assert_close(sinr(h, w, x.double()), sinr(h, w, x))


def test_hand_solved_fronthaul_load():
    # SINR = [1, 3] -> rates log2(2) = 1 and log2(4) = 2; AP1 serves both, AP2 serves UE2 only (EGAT (3b)).
    s = torch.tensor([[1.0, 3.0]], dtype=torch.float64)
    x = torch.tensor([[[1, 1], [0, 1]]], dtype=torch.bool)
    torch.testing.assert_close(fronthaul_load(s, x), torch.tensor([[3.0, 2.0]], dtype=torch.float64))
    torch.testing.assert_close(fronthaul_load(s, x, 10e6), torch.tensor([[30e6, 20e6]], dtype=torch.float64))
    torch.testing.assert_close(rate(s, prelog=0.5), torch.tensor([[0.5, 1.0]], dtype=torch.float64))


def test_hand_solved_mrt_zf_rzf():
    # L=1, N=2, K=2: h_1 = [1, 0], h_2 = [1, 1]. H^H = [[1, 0], [1, 1]] -> ZF W = inv(H^H) = [[1, 0], [-1, 1]].
    h = torch.tensor([[[[1, 0], [1, 1]]]], dtype=C128)
    torch.testing.assert_close(mrt(h, None), h)
    w = zf(h, None)
    torch.testing.assert_close(w, torch.tensor([[[[1, -1], [0, 1]]]], dtype=C128), rtol=0, atol=1e-14)
    # Scalar RZF: w = h / (|h|^2 + lambda) = 2 / (4 + 1).
    h1 = torch.full((1, 1, 1, 1), 2.0, dtype=C128)
    torch.testing.assert_close(rzf(h1, None, 1.0), torch.full((1, 1, 1, 1), 0.4, dtype=C128))
    # Unserved UE: zero precoder from all three.
    x = torch.tensor([[[True, False]]])
    for wk in (mrt(h, x), zf(h, x), rzf(h, x, 0.1)):
        assert torch.all(wk[:, :, 1] == 0)
    # UE 1 alone on its AP (UE 2 unserved still receives interference, so ZF must null it): w_1 = [1, -1].
    torch.testing.assert_close(zf(h, x)[0, 0, 0], torch.tensor([1, -1], dtype=C128), rtol=0, atol=1e-14)


def test_hand_solved_normalization():
    # L=2, K=1, N=1: AP powers 5 and 1, limits 10 and 4 -> ratios 2 and 4.
    w = torch.tensor([[[[math.sqrt(5.0)]], [[1.0]]]], dtype=C128)
    p_max = torch.tensor([[10.0, 4.0]], dtype=torch.float64)
    common = per_ap_power(normalize_per_ap(w, None, p_max), None)
    torch.testing.assert_close(common, torch.tensor([[10.0, 2.0]], dtype=torch.float64))
    per_ap = per_ap_power(normalize_per_ap(w, None, p_max, mode="per_ap"), None)
    torch.testing.assert_close(per_ap, torch.tensor([[10.0, 4.0]], dtype=torch.float64))
    # An AP serving nobody stays silent (no NaN), in both modes.
    x = torch.tensor([[[True], [False]]])
    for mode in ("common", "per_ap"):
        out = normalize_per_ap(w, x, p_max, mode=mode)
        torch.testing.assert_close(per_ap_power(out, None), torch.tensor([[10.0, 0.0]], dtype=torch.float64))
    torch.testing.assert_close(normalize_per_ap(torch.zeros_like(w), None, 1.0), torch.zeros_like(w))


# ----------------------------------------------------------------------------------------------------
# batched vs loop references
# ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def network():
    B, L, K, N = 3, 3, 4, 2
    h = _channels((B, L, K, N), seed=1)
    w = _channels((B, L, K, N), seed=2)
    x = _random_mask(B, L, K, seed=3)
    return h, w, x


def test_metrics_match_loop_reference(network):
    h, w, x = network
    torch.testing.assert_close(received_gains(h, w, x), _loop_gains(h, w, x), rtol=1e-12, atol=1e-12)
    s = sinr(h, w, x, noise=0.7)
    torch.testing.assert_close(s, _loop_sinr(h, w, x, 0.7), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(sum_rate(h, w, x, 0.7), torch.log2(1 + s).sum(-1), rtol=1e-12, atol=0)
    weights = torch.rand(3, 4, dtype=torch.float64, generator=_gen(4))
    wsr = weighted_sum_rate(h, w, x, weights, 0.7, prelog=2.0)
    ref = torch.tensor(
        [sum(2.0 * float(weights[b, k]) * math.log2(1 + float(s[b, k])) for k in range(4)) for b in range(3)],
        dtype=torch.float64,
    )
    torch.testing.assert_close(wsr, ref, rtol=1e-12, atol=0)
    p_ref = torch.tensor(
        [
            [
                sum(float(x[b, l, k]) * float(w[b, l, k].abs().square().sum()) for k in range(4))
                for l in range(3)
            ]
            for b in range(3)
        ],
        dtype=torch.float64,
    )
    torch.testing.assert_close(per_ap_power(w, x), p_ref, rtol=1e-12, atol=0)
    f_ref = torch.tensor(
        [
            [sum(float(x[b, l, k]) * 5.0 * math.log2(1 + float(s[b, k])) for k in range(4)) for l in range(3)]
            for b in range(3)
        ],
        dtype=torch.float64,
    )
    torch.testing.assert_close(fronthaul_load(s, x, 5.0), f_ref, rtol=1e-12, atol=0)


def test_per_ue_noise(network):
    h, w, x = network
    noise = torch.tensor([0.5, 1.0, 2.0, 4.0], dtype=torch.float64)
    s = sinr(h, w, x, noise)
    for k in range(4):
        torch.testing.assert_close(s[:, k], sinr(h, w, x, float(noise[k]))[:, k], rtol=1e-14, atol=0)


def test_rzf_and_zf_match_loop_reference(network):
    h, _, x = network
    torch.testing.assert_close(rzf(h, x, 0.3), _loop_rzf(h, x, 0.3), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(zf(h, x), _loop_zf(h, x), rtol=1e-9, atol=1e-10)
    # Per-UE regularization: UE k uses lambda_k.
    lam = torch.tensor([0.1, 1.0, 10.0, 0.5], dtype=torch.float64)
    w = rzf(h, x, lam)
    for k in range(4):
        torch.testing.assert_close(
            w[:, :, k], _loop_rzf(h, x, float(lam[k]))[:, :, k], rtol=1e-10, atol=1e-12
        )


def test_leading_batch_dims_fold(network):
    h, w, x = network
    h2 = torch.cat([h, h.flip(0)]).reshape(2, 3, *h.shape[1:])  # [2, 3, L, K, N]
    w2 = torch.cat([w, w.flip(0)]).reshape(2, 3, *w.shape[1:])
    x2 = torch.cat([x, x.flip(0)]).reshape(2, 3, *x.shape[1:])
    torch.testing.assert_close(
        sinr(h2, w2, x2).reshape(6, -1), sinr(h2.flatten(0, 1), w2.flatten(0, 1), x2.flatten(0, 1))
    )
    torch.testing.assert_close(zf(h2, x2).flatten(0, 1), zf(h2.flatten(0, 1), x2.flatten(0, 1)))
    # One mask per setup broadcast over the realization dim.
    torch.testing.assert_close(sinr(h2, w2, x2[:, :1]), sinr(h2, w2, x2[:, :1].expand_as(x2)))


# ----------------------------------------------------------------------------------------------------
# ZF / RZF properties
# ----------------------------------------------------------------------------------------------------


def test_zf_nulls_interference_full_association():
    B, L, K, N = 4, 3, 5, 2  # L*N = 6 >= K = 5
    h = _channels((B, L, K, N), seed=5)
    w = zf(h, None)
    eye = torch.eye(K, dtype=C128).expand(B, K, K)
    torch.testing.assert_close(received_gains(h, w, None), eye, rtol=0, atol=1e-10)
    # Classic H (H^H H)^{-1} with full association.
    Hs = h.permute(0, 1, 3, 2).reshape(B, L * N, K)  # [B, L*N, K]
    classic = Hs @ torch.linalg.inv(Hs.mH @ Hs)  # [B, L*N, K]
    torch.testing.assert_close(w.permute(0, 1, 3, 2).reshape(B, L * N, K), classic, rtol=1e-10, atol=1e-12)
    # After the common per-AP normalization the interference is still ~0: SINR_k = c^2 / noise.
    wn = normalize_per_ap(w, None, 1.0)
    g = received_gains(h, wn, None)
    off = g.abs().square() * (1 - torch.eye(K, dtype=torch.float64))
    assert off.sum(-1).max().item() < 1e-20 * g.abs().square().max().item() + 1e-24
    c2 = torch.diagonal(g, dim1=-2, dim2=-1).abs().square()  # [B, K], equal across k
    torch.testing.assert_close(sinr(h, wn, None, noise=2.0), c2 / 2.0, rtol=1e-10, atol=0)
    torch.testing.assert_close(c2, c2[:, :1].expand_as(c2), rtol=1e-10, atol=0)


def test_zf_nulls_interference_with_serving_subsets():
    # Each UE is served by 2 of 3 APs with N = 2: 4 antennas >= K = 4, so masked ZF nulls everything,
    # including interference at UEs that the AP does not serve.
    B, L, K, N = 3, 3, 4, 2
    h = _channels((B, L, K, N), seed=6)
    x = torch.ones(B, L, K, dtype=torch.bool)
    x[:, 0, 0] = x[:, 1, 1] = x[:, 2, 2] = x[:, 0, 3] = False
    w = zf(h, x)
    assert torch.all(w[~x] == 0)
    torch.testing.assert_close(
        received_gains(h, w, x), torch.eye(K, dtype=C128).expand(B, K, K), rtol=0, atol=1e-10
    )
    # Per-AP ("egat") normalization generally breaks the nulls; the common one keeps them.
    g_per_ap = received_gains(h, normalize_per_ap(w, x, 1.0, mode="per_ap"), x)
    assert (g_per_ap.abs() * (1 - torch.eye(K))).max().item() > 1e-3
    g_common = received_gains(h, normalize_per_ap(w, x, 1.0), x)
    assert (g_common.abs() * (1 - torch.eye(K))).max().item() < 1e-10


def test_rzf_limits():
    B, L, K, N = 3, 2, 3, 2
    h = _channels((B, L, K, N), seed=7)
    x = torch.ones(B, L, K, dtype=torch.bool)
    x[:, 0, 1] = False  # UE 2 has N*|M_k| = 2 < K = 3 antennas: rank-deficient, still -> pinv solution
    torch.testing.assert_close(rzf(h, x, 1e-9), zf(h, x), rtol=0, atol=1e-6)
    # lambda -> inf: lambda * w_k -> D_k h_k (the MRT direction).
    lam = 1e9
    torch.testing.assert_close(lam * rzf(h, x, lam), mrt(h, x), rtol=1e-6, atol=1e-6)

    # Monotone in between: cosine to MRT grows with lambda.
    def cos_to_mrt(w: torch.Tensor) -> torch.Tensor:
        m = mrt(h, x)
        num = torch.einsum("blkn,blkn->bk", w.conj(), m).abs()
        return num / (w.abs().square().sum((1, 3)).sqrt() * m.abs().square().sum((1, 3)).sqrt())

    c = torch.stack([cos_to_mrt(rzf(h, x, lam)) for lam in (1e-2, 1.0, 1e2, 1e4)])
    assert torch.all(c[1:] >= c[:-1] - 1e-12)
    assert torch.all(c[-1] > 1 - 1e-6)


# ----------------------------------------------------------------------------------------------------
# normalization
# ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["common", "per_ap"])
def test_normalization_respects_limits(mode):
    B, L, K, N = 8, 4, 3, 2
    h = _channels((B, L, K, N), seed=9)
    x = _random_mask(B, L, K, seed=10)
    x[:, 3, :] = False  # AP 4 serves nobody
    p_max = 0.5 + torch.rand(B, L, dtype=torch.float64, generator=_gen(11))
    for w in (mrt(h, x), zf(h, x), rzf(h, x, 0.5), _channels((B, L, K, N), seed=12)):
        p = per_ap_power(normalize_per_ap(w, x, p_max, mode=mode), x)
        assert torch.all(p <= p_max * (1 + 1e-12))
        assert torch.all(p[:, 3] == 0)
        if mode == "common":  # the binding AP is at its limit
            torch.testing.assert_close(
                (p / p_max).amax(-1), torch.ones(B, dtype=torch.float64), rtol=1e-12, atol=0
            )
        else:  # every AP that serves someone is at its limit, the others are silent
            serves = x.any(-1)
            assert serves[:, :3].sum() > 20
            torch.testing.assert_close(p, torch.where(serves, p_max, 0.0), rtol=1e-12, atol=0)


def test_normalization_scale_invariant_and_float_limit():
    h = _channels((2, 3, 2, 2), seed=13)
    w = zf(h, None)
    a = normalize_per_ap(w, None, 2.0)
    torch.testing.assert_close(normalize_per_ap(7.5 * w, None, 2.0), a)
    torch.testing.assert_close(normalize_per_ap(w, None, torch.full((2, 3), 2.0, dtype=torch.float64)), a)


# ----------------------------------------------------------------------------------------------------
# invariances, precision, gradients, errors
# ----------------------------------------------------------------------------------------------------


def test_permutation_equivariance(network):
    h, w, x = network
    pk = torch.tensor([2, 0, 3, 1])
    pl = torch.tensor([1, 2, 0])
    s = sinr(h, w, x)
    load = fronthaul_load(s, x)
    # UEs permuted: SINRs permute, per-AP quantities unchanged.
    torch.testing.assert_close(sinr(h[:, :, pk], w[:, :, pk], x[:, :, pk]), s[:, pk])
    torch.testing.assert_close(per_ap_power(w[:, :, pk], x[:, :, pk]), per_ap_power(w, x))
    torch.testing.assert_close(fronthaul_load(s[:, pk], x[:, :, pk]), load)
    # APs permuted: SINRs unchanged, per-AP quantities permute.
    torch.testing.assert_close(sinr(h[:, pl], w[:, pl], x[:, pl]), s)
    torch.testing.assert_close(per_ap_power(w[:, pl], x[:, pl]), per_ap_power(w, x)[:, pl])
    torch.testing.assert_close(fronthaul_load(s, x[:, pl]), load[:, pl])
    # Precoders are equivariant in UEs, APs and antennas.
    pn = torch.tensor([1, 0])
    for f in (zf, lambda hh, xx: rzf(hh, xx, 0.3), mrt):
        wf = f(h, x)
        torch.testing.assert_close(f(h[:, :, pk], x[:, :, pk]), wf[:, :, pk])
        torch.testing.assert_close(f(h[:, pl], x[:, pl]), wf[:, pl])
        torch.testing.assert_close(f(h[..., pn], x), wf[..., pn])
    for mode in ("common", "per_ap"):
        wn = normalize_per_ap(w, x, 1.0, mode=mode)
        torch.testing.assert_close(normalize_per_ap(w[:, pl], x[:, pl], 1.0, mode=mode), wn[:, pl])
        torch.testing.assert_close(normalize_per_ap(w[:, :, pk], x[:, :, pk], 1.0, mode=mode), wn[:, :, pk])


def test_float32_matches_float64(network):
    h, w, x = network
    h32, w32 = h.to(torch.complex64), w.to(torch.complex64)
    s32 = sinr(h32, w32, x)
    assert s32.dtype == torch.float32
    torch.testing.assert_close(s32.double(), sinr(h, w, x), rtol=1e-5, atol=1e-6)
    for f in (zf, lambda hh, xx: rzf(hh, xx, 0.3), mrt):
        out = f(h32, x)
        assert out.dtype == torch.complex64
        torch.testing.assert_close(out.to(C128), f(h, x), rtol=1e-4, atol=1e-5)
    wn = normalize_per_ap(w32, x, 1.0)
    assert wn.dtype == torch.complex64
    assert per_ap_power(wn, x).dtype == torch.float32
    torch.testing.assert_close(wn.to(C128), normalize_per_ap(w, x, 1.0), rtol=1e-5, atol=1e-6)


def test_gradcheck_sum_rate_and_normalization():
    B, L, K, N = 1, 2, 2, 2
    h = _channels((B, L, K, N), seed=14)
    w = _channels((B, L, K, N), seed=15).requires_grad_(True)
    x = torch.tensor([[[True, True], [False, True]]])
    weights = torch.tensor([[1.0, 0.5]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda ww: weighted_sum_rate(h, ww, x, weights), (w,))
    assert torch.autograd.gradcheck(lambda ww: sum_rate(h, ww, x, 0.5), (w,))
    hh = h.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda c: sum_rate(c, w.detach(), x), (hh,))
    for mode in ("common", "per_ap"):
        assert torch.autograd.gradcheck(
            lambda ww, m=mode: sum_rate(h, normalize_per_ap(ww, x, 2.0, mode=m), x), (w,)
        )
    # Gradient through the normalization with a silent AP is finite.
    x0 = torch.tensor([[[True, True], [False, False]]])
    sum_rate(h, normalize_per_ap(w, x0, 1.0), x0).sum().backward()
    assert torch.isfinite(w.grad).all()
    assert torch.all(w.grad[0, 1] == 0)


def test_errors_name_the_argument(network):
    h, w, x = network
    with pytest.raises(ValueError, match=r"\bw\b"):
        sinr(h, w[:, :, :3], x)
    with pytest.raises(ValueError, match=r"\bmask\b"):
        sinr(h, w, x[:, :, :3])
    with pytest.raises(ValueError, match=r"\bmask\b"):
        received_gains(h, w, x.unsqueeze(0).expand(2, -1, -1, -1))
    with pytest.raises(TypeError, match=r"\bh\b"):
        sinr(h.real, w, x)
    with pytest.raises(TypeError, match=r"\bw\b"):
        sinr(h, w.to(torch.complex64), x)
    with pytest.raises(ValueError, match=r"\bh\b"):
        zf(h[0, 0], None)
    with pytest.raises(ValueError, match=r"\bnoise\b"):
        sinr(h, w, x, torch.ones(5, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"\bnoise\b"):
        sinr(h, w, x, -1.0)
    with pytest.raises(ValueError, match=r"\bweights\b"):
        weighted_sum_rate(h, w, x, torch.ones(3, 5))
    with pytest.raises(ValueError, match=r"\bp_max\b"):
        normalize_per_ap(w, x, torch.ones(3, 4))
    with pytest.raises(ValueError, match=r"\bp_max\b"):
        normalize_per_ap(w, x, -1.0)
    with pytest.raises(ValueError, match=r"\bmode\b"):
        normalize_per_ap(w, x, 1.0, mode="sum")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\bregularization\b"):
        rzf(h, x, 0.0)
    with pytest.raises(ValueError, match=r"\bregularization\b"):
        rzf(h, x, torch.ones(3, 5))
    with pytest.raises(ValueError, match=r"\bregularization\b"):
        rzf(h, x, torch.tensor([1.0, 0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match=r"\bmask\b"):
        fronthaul_load(torch.ones(3, 4), torch.ones(3, 3, 5))
