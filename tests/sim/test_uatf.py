import pytest
import torch

from cfmimo.config import preset
from cfmimo.sim.combining import combiners
from cfmimo.sim.estimation import pilot_covariance
from cfmimo.sim.network import network_statistics, sample_channel_state, sample_networks
from cfmimo.sim.uatf import (
    UplinkStatistics,
    downlink_sinr,
    per_ap_power,
    spectral_efficiency,
    uatf_statistics,
    uplink_sinr,
)


def _mr_closed_form(net, st):
    """Book's closed form for centralized MR with correlated Rayleigh fading and pilot contamination:
    E{v_k^H D_k h_k} = sum_{l in M_k} tr(B_lk),  E{||D_k v_k||^2} = sum_{l in M_k} tr(B_lk),
    E{|v_k^H D_k h_i|^2} = sum_{l in M_k} tr(B_lk R_li) + [t_i = t_k] |sum_{l in M_k} eta tau_p tr(R_li Psi^-1 R_lk)|^2.
    """
    sc = net.scenario
    d = net.serving.to(torch.float64)
    tr_b = torch.diagonal(st.estimate_cov, dim1=-2, dim2=-1).real.sum(-1)  # [B, L, K]
    mean = (d * tr_b).sum(1)  # [B, K]
    tr_br = torch.einsum("blknm,blimn->blki", st.estimate_cov, net.correlation).real  # tr(B_lk R_li)
    psi = pilot_covariance(net.correlation, net.pilot, sc.tau_p, sc.pilot_power_mw)
    psi_k = psi[torch.arange(net.batch)[:, None], :, net.pilot].transpose(1, 2)  # [B, L, K, N, N]
    a = torch.linalg.solve(psi_k, net.correlation)  # Psi^-1 R_lk
    coh = (
        sc.pilot_power_mw * sc.tau_p * torch.einsum("blinm,blkmn->blki", net.correlation, a)
    )  # tr(R_li Psi^-1 R_lk)
    same = net.pilot[:, :, None] == net.pilot[:, None, :]  # [B, K, K]
    coherent = (d[..., None] * coh).sum(1).abs() ** 2 * same
    second = (d[..., None] * tr_br).sum(1) + coherent
    return mean**2, second, mean


@pytest.mark.parametrize("correlation", ["iid", "local_scattering"])
def test_mr_monte_carlo_matches_closed_form(correlation, small_factory):
    sc = small_factory(K=6, spatial_correlation=correlation, clustering={"kind": "dcc"})
    net = sample_networks(sc, 2, seed=21, dtype=torch.float64)
    st = sample_channel_state(net, realizations=40_000)
    ul, _ = network_statistics(net, st, "mr", chunk=10_000)
    signal, second, noise = _mr_closed_form(net, st)
    assert torch.allclose(ul.signal, signal, rtol=0.03)
    assert torch.allclose(ul.noise, noise, rtol=0.03)
    served = (net.serving.any(1)[:, :, None]) & torch.ones_like(second, dtype=torch.bool)
    rel = ((ul.interference - second).abs() / second.clamp_min(1e-30))[served]
    assert rel.max().item() < 0.05


def _loop_stats(v, h):
    """Readable loop reference of the UL and DL (per-realization) UatF statistics."""
    B, T, L, K, _N = v.shape
    ul_s, ul_c, ul_n = torch.zeros(B, K), torch.zeros(B, K, K), torch.zeros(B, K)
    dl_s, dl_c, share = torch.zeros(B, K), torch.zeros(B, K, K), torch.zeros(B, L, K)
    for b in range(B):
        for k in range(K):
            vk = v[b, :, :, k].reshape(T, -1)
            wk = vk / vk.norm(dim=1, keepdim=True)
            ul_s[b, k] = ((vk.conj() * h[b, :, :, k].reshape(T, -1)).sum(1).mean()).abs() ** 2
            ul_n[b, k] = (vk.abs() ** 2).sum(1).mean()
            dl_s[b, k] = ((h[b, :, :, k].reshape(T, -1).conj() * wk).sum(1).mean()).abs() ** 2
            share[b, :, k] = (v[b, :, :, k].abs() ** 2).sum(-1).div(vk.norm(dim=1, keepdim=True) ** 2).mean(0)
            for i in range(K):
                hi = h[b, :, :, i].reshape(T, -1)
                ul_c[b, k, i] = ((vk.conj() * hi).sum(1).abs() ** 2).mean()
                wi = v[b, :, :, i].reshape(T, -1)
                wi = wi / wi.norm(dim=1, keepdim=True)
                dl_c[b, k, i] = ((h[b, :, :, k].reshape(T, -1).conj() * wi).sum(1).abs() ** 2).mean()
    return ul_s, ul_c, ul_n, dl_s, dl_c, share


def test_statistics_match_loop_reference_and_orientation(small_net, small_state):
    p = torch.full((small_net.batch, small_net.scenario.K), 100.0, dtype=torch.float64)
    v = combiners("mmse", small_state.h_hat, small_state.error_cov, small_net.serving, p)
    ul, dl = uatf_statistics(v, small_state.h, "per_realization")
    ref = _loop_stats(v, small_state.h)
    for got, want in zip(
        (ul.signal, ul.interference, ul.noise, dl.signal, dl.interference, dl.ap_power_share),
        ref,
        strict=True,
    ):
        assert torch.allclose(got, want.to(got.dtype), rtol=1e-6)
    assert torch.allclose(dl.ap_power_share.sum(1), torch.ones_like(dl.signal))
    _, avg = uatf_statistics(v, small_state.h, "average")
    assert torch.allclose(avg.ap_power_share.sum(1), torch.ones_like(avg.signal))
    # average normalization: same vectors scaled by 1/E||v||^2, DL interference = UL interference^T scaled
    assert torch.allclose(avg.interference, (ul.interference / ul.noise[..., None]).transpose(-1, -2))


def test_sinr_hand_solved():
    ul = UplinkStatistics(
        signal=torch.tensor([[4.0, 1.0]]),
        interference=torch.tensor([[5.0, 2.0], [3.0, 2.0]]),
        noise=torch.tensor([[1.0, 0.5]]),
    )
    p = torch.tensor([[2.0, 3.0]])
    # UE0: 2*4 / (2*5 + 3*2 - 8 + 1) = 8/9; UE1: 3*1 / (2*3 + 3*2 - 3 + 0.5) = 3/9.5
    assert uplink_sinr(ul, p).tolist()[0] == pytest.approx([8 / 9, 3 / 9.5])
    assert spectral_efficiency(torch.tensor([3.0]), 0.5).item() == pytest.approx(1.0)


def test_dl_sinr_and_power_use_downlink_orientation(small_net, small_state):
    _, dl = network_statistics(small_net, small_state, "mmse")
    rho = torch.rand(small_net.batch, small_net.scenario.K, dtype=torch.float64) * 100
    sinr = downlink_sinr(dl, rho)
    k = 2
    den = (
        sum(rho[:, i] * dl.interference[:, k, i] for i in range(rho.shape[1]))
        - rho[:, k] * dl.signal[:, k]
        + 1
    )
    assert torch.allclose(sinr[:, k], rho[:, k] * dl.signal[:, k] / den)
    assert torch.allclose(per_ap_power(dl, rho).sum(1), rho.sum(1))  # shares sum to one per UE


@pytest.mark.parametrize("scheme", ["mmse", "pmmse", "mr"])
def test_permuting_ues_and_aps_permutes_statistics(small_net, small_state, scheme):
    net, st = small_net, small_state
    K, L = net.scenario.K, net.scenario.L
    pk = torch.randperm(K, generator=torch.Generator().manual_seed(0))
    pl = torch.randperm(L, generator=torch.Generator().manual_seed(1))
    p = torch.linspace(10, 100, K, dtype=torch.float64).expand(net.batch, K)

    def stats(h, hh, c, d, pw):
        return uatf_statistics(combiners(scheme, hh, c, d, pw), h, "per_realization")

    ul, dl = stats(st.h, st.h_hat, st.error_cov, net.serving, p)
    ulp, dlp = stats(
        st.h[:, :, pl][:, :, :, pk],
        st.h_hat[:, :, pl][:, :, :, pk],
        st.error_cov[:, pl][:, :, pk],
        net.serving[:, pl][:, :, pk],
        p[:, pk],
    )
    assert torch.allclose(ulp.signal, ul.signal[:, pk], rtol=1e-9)
    assert torch.allclose(ulp.interference, ul.interference[:, pk][:, :, pk], rtol=1e-9)
    assert torch.allclose(dlp.interference, dl.interference[:, pk][:, :, pk], rtol=1e-9)
    assert torch.allclose(dlp.ap_power_share, dl.ap_power_share[:, pl][:, :, pk], rtol=1e-9, atol=1e-15)


def test_float32_agrees_with_float64():
    sc = preset("tree-transformer", K=12, realizations=50, clustering={"kind": "dcc"})
    out = {}
    for dtype in (torch.float32, torch.float64):
        net = sample_networks(sc, 4, seed=7, dtype=dtype)
        ul, dl = network_statistics(net, sample_channel_state(net), "mmse")
        p = torch.full((4, 12), 100.0, dtype=dtype)
        rho = torch.full((4, 12), sc.dl_total_power_mw / 12, dtype=dtype)
        out[dtype] = (
            spectral_efficiency(uplink_sinr(ul, p), sc.prelog_ul),
            spectral_efficiency(downlink_sinr(dl, rho), sc.prelog_dl),
        )
    for a, b in zip(out[torch.float32], out[torch.float64], strict=True):
        assert a.dtype == torch.float32 and b.dtype == torch.float64
        assert torch.allclose(a.double(), b, rtol=2e-3, atol=2e-3)


def test_se_is_differentiable_in_powers(small_net, small_state):
    ul, dl = network_statistics(small_net, small_state, "mmse")
    p = torch.full((small_net.batch, small_net.scenario.K), 50.0, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda q: spectral_efficiency(uplink_sinr(ul, q), 0.45), (p,))
    assert torch.autograd.gradcheck(lambda q: spectral_efficiency(downlink_sinr(dl, q), 0.5), (p,))


def test_equal_downlink_power_meets_each_constraint(small_net, small_state):
    from cfmimo.sim.uatf import equal_downlink_power

    for norm in ("per_realization", "average"):
        _, dl = network_statistics(small_net, small_state, "mmse", dl_normalization=norm)
        rho = equal_downlink_power(dl, norm, 200.0)
        assert torch.allclose(rho, rho[:, :1].expand_as(rho))  # equal across UEs
        if norm == "per_realization":
            assert torch.allclose(
                rho.sum(1), torch.full((small_net.batch,), 200.0 * small_net.scenario.L, dtype=rho.dtype)
            )
        else:  # the most loaded AP is exactly at its limit
            assert torch.allclose(
                per_ap_power(dl, rho).amax(1), torch.full((small_net.batch,), 200.0, dtype=rho.dtype)
            )
