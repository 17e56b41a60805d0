import pytest
import torch

from cfmimo.sim.estimation import hermitian_sqrt, sample_channels, sample_pilot_noise
from cfmimo.sim.network import estimate, sample_networks


def test_estimates_match_book_formulas_loop(small_net):
    net, sc = small_net, small_net.scenario
    t, L, K, N = 3, sc.L, sc.K, sc.N
    h = sample_channels(net.correlation, t, seed=5, indices=net.indices)
    noise = sample_pilot_noise((net.batch, t, L), sc.tau_p, N, seed=5, indices=net.indices, dtype=h.dtype)
    state = estimate(net, h, noise)
    eta, tp = sc.pilot_power_mw, sc.tau_p
    eye = torch.eye(N, dtype=h.dtype)
    for b in range(net.batch):
        for l in range(L):
            for k in range(K):
                same = [i for i in range(K) if net.pilot[b, i] == net.pilot[b, k]]
                r = net.correlation[b, l]
                psi = eta * tp * sum(r[i] for i in same) + eye
                rk_psi_inv = r[k] @ torch.linalg.inv(psi)
                b_ref = eta * tp * rk_psi_inv @ r[k]
                assert torch.allclose(state.estimate_cov[b, l, k], b_ref, atol=1e-9 * b_ref.abs().max())
                assert torch.allclose(state.error_cov[b, l, k], r[k] - b_ref, atol=1e-9 * r[k].abs().max())
                for s in range(t):
                    y = (
                        eta**0.5 * tp * sum(h[b, s, l, i] for i in same)
                        + tp**0.5 * noise[b, s, l, net.pilot[b, k]]
                    )
                    ref = eta**0.5 * rk_psi_inv @ y
                    assert torch.allclose(state.h_hat[b, s, l, k], ref, atol=1e-9 * ref.abs().max())


def test_empirical_estimate_covariance_is_b_and_error_uncorrelated(small_scenario):
    net = sample_networks(small_scenario, 1, seed=3, dtype=torch.float64)
    t = 40_000
    h = sample_channels(net.correlation, t, seed=9, indices=net.indices)
    noise = sample_pilot_noise(
        (1, t, small_scenario.L),
        small_scenario.tau_p,
        small_scenario.N,
        seed=9,
        indices=net.indices,
        dtype=h.dtype,
    )
    st = estimate(net, h, noise)
    err = h - st.h_hat
    emp_b = torch.einsum("tlkn,tlkm->lknm", st.h_hat[0], st.h_hat[0].conj()) / t
    emp_c = torch.einsum("tlkn,tlkm->lknm", err[0], err[0].conj()) / t
    cross = torch.einsum("tlkn,tlkm->lknm", st.h_hat[0], err[0].conj()) / t
    scale_b = st.estimate_cov[0].abs().amax(dim=(-2, -1), keepdim=True)
    scale_c = st.error_cov[0].abs().amax(dim=(-2, -1), keepdim=True)
    assert ((emp_b - st.estimate_cov[0]).abs() / scale_b).max().item() < 0.03
    assert ((emp_c - st.error_cov[0]).abs() / scale_c).max().item() < 0.03
    # E{hhat e^H} = 0: cross-covariance small relative to sqrt(|B| |C|)
    assert ((cross.abs() / (scale_b * scale_c).sqrt()).max().item()) < 0.03


def test_channels_have_covariance_r(small_scenario):
    net = sample_networks(small_scenario, 1, seed=4, dtype=torch.float64)
    h = sample_channels(net.correlation, 40_000, seed=1, indices=net.indices)[0]
    emp = torch.einsum("tlkn,tlkm->lknm", h, h.conj()) / h.shape[0]
    scale = net.correlation[0].abs().amax(dim=(-2, -1), keepdim=True)
    assert ((emp - net.correlation[0]).abs() / scale).max().item() < 0.03


def test_hermitian_sqrt_squares_back():
    a = torch.randn(5, 4, 4, dtype=torch.complex128, generator=torch.Generator().manual_seed(0))
    r = a @ a.mH
    s = hermitian_sqrt(r)
    assert torch.allclose(s @ s, r, atol=1e-10) and torch.allclose(s, s.mH, atol=1e-12)
    with pytest.raises(TypeError):
        hermitian_sqrt("not a tensor")
