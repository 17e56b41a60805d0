import pytest
import torch

from cfmimo.sim.combining import combiners
from cfmimo.sim.network import sample_channel_state, sample_networks
from cfmimo.sim.uatf import instantaneous_estimate_sinr


def _reference(scheme, h_hat, c, d, p):
    """Direct (LN x LN) combiners of the book's eqs. (5.11), (5.14), (5.16), (5.18), one loop each."""
    B, T, L, K, N = h_hat.shape
    v = torch.zeros_like(h_hat)
    for b in range(B):
        for k in range(K):
            aps = [l for l in range(L) if d[b, l, k]]
            if not aps:
                continue
            if scheme == "mr":
                v[b, :, aps, k] = h_hat[b, :, aps, k]
                continue
            shares = [i for i in range(K) if any(d[b, l, i] for l in aps)]
            users = range(K) if scheme == "mmse" else shares
            idx = [l * N + n for l in aps for n in range(N)]
            z = torch.eye(L * N, dtype=h_hat.dtype)
            if scheme != "przf":
                z = z + torch.block_diag(*[sum(p[b, i] * c[b, l, i] for i in users) for l in range(L)])
            for t in range(T):
                hh = h_hat[b, t].permute(1, 0, 2).reshape(K, L * N)  # [K, LN]
                a = z + sum(p[b, i] * torch.outer(hh[i], hh[i].conj()) for i in users)
                sub = a[idx][:, idx]
                vk = p[b, k] * torch.linalg.solve(sub, hh[k, idx])
                full = torch.zeros(L * N, dtype=h_hat.dtype)
                full[idx] = vk
                v[b, t, :, k] = full.reshape(L, N)
    return v


@pytest.mark.parametrize("clustering", ["all", "dcc", "q"])
@pytest.mark.parametrize("scheme", ["mmse", "pmmse", "przf", "mr"])
def test_combiners_match_direct_inverse(scheme, clustering, small_factory):
    cl = {"all": {"kind": "all"}, "dcc": {"kind": "dcc"}, "q": {"kind": "q_strongest", "q": 2}}[clustering]
    sc = small_factory(K=5, realizations=3, clustering=cl)
    net = sample_networks(sc, 3, seed=2, dtype=torch.float64)
    st = sample_channel_state(net)
    p = torch.rand(3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 100 + 1
    v = combiners(scheme, st.h_hat, st.error_cov, net.serving, p)
    ref = _reference(scheme, st.h_hat, st.error_cov, net.serving, p)
    assert torch.allclose(v, ref, rtol=1e-8, atol=1e-12 * ref.abs().max())


def test_mixed_batch_uses_both_paths_consistently(small_factory):
    sc = small_factory(K=3, realizations=2, clustering={"kind": "dcc"})
    net = sample_networks(sc, 4, seed=8, dtype=torch.float64)  # K = tau_p: DCC serves everyone
    st = sample_channel_state(net)
    serving = net.serving.clone()
    serving[1, 0, 2] = False  # one setup leaves the shared-set fast path
    p = torch.full((4, 3), 100.0, dtype=torch.float64)
    v = combiners("mmse", st.h_hat, st.error_cov, serving, p)
    ref = _reference("mmse", st.h_hat, st.error_cov, serving, p)
    assert torch.allclose(v, ref, rtol=1e-8, atol=1e-12 * ref.abs().max())


def test_mmse_attains_the_optimal_instantaneous_sinr(small_net, small_state):
    # For MMSE, Theorem 5.1's SINR equals p_k hhat_k^H (sum_{i!=k} p_i hhat_i hhat_i^H + Z)^-1 hhat_k.
    net, st = small_net, small_state
    B, _T, L, K, N = st.h_hat.shape
    p = torch.full((B, K), 100.0, dtype=torch.float64)
    v = combiners("mmse", st.h_hat, st.error_cov, net.serving, p)
    sinr = instantaneous_estimate_sinr(v, st.h_hat, st.error_cov, p)
    b, t = 1, 2
    hh = st.h_hat[b, t].permute(1, 0, 2).reshape(K, L * N)
    z = torch.eye(L * N, dtype=hh.dtype) + torch.block_diag(
        *[sum(p[b, i] * st.error_cov[b, l, i] for i in range(K)) for l in range(L)]
    )
    for k in range(K):
        idx = [l * N + n for l in range(L) if net.serving[b, l, k] for n in range(N)]
        a = z + sum(p[b, i] * torch.outer(hh[i], hh[i].conj()) for i in range(K) if i != k)
        opt = p[b, k] * (hh[k, idx].conj() @ torch.linalg.solve(a[idx][:, idx], hh[k, idx])).real
        assert sinr[b, t, k].item() == pytest.approx(opt.item(), rel=1e-9)
    # any other combiner does no better
    mr = instantaneous_estimate_sinr(
        combiners("mr", st.h_hat, st.error_cov, net.serving, p), st.h_hat, st.error_cov, p
    )
    assert bool((mr <= sinr * (1 + 1e-9)).all())


def test_bad_inputs_name_the_argument(small_net, small_state):
    p = torch.ones(small_net.batch, small_net.scenario.K)
    with pytest.raises(ValueError, match="serving"):
        combiners("mmse", small_state.h_hat, small_state.error_cov, small_net.serving[:, :2], p)
    with pytest.raises(ValueError, match="ul_power"):
        combiners("mmse", small_state.h_hat, small_state.error_cov, small_net.serving, p[:, :2])
    with pytest.raises(ValueError, match="combiner"):
        combiners("zf", small_state.h_hat, small_state.error_cov, small_net.serving, p)
