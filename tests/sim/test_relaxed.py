"""The relaxed-mask MR proxy equals Monte Carlo UatF MR statistics at hard masks (orthogonal pilots)."""

from __future__ import annotations

import torch

from cfmimo.config import Clustering, preset
from cfmimo.sim.network import network_statistics, sample_channel_state, sample_networks
from cfmimo.sim.relaxed import mr_traces, relaxed_mr_se
from cfmimo.sim.uatf import downlink_sinr, spectral_efficiency, uplink_sinr


def _setup(serving_kind: str):
    sc = preset(
        "elu-cosformer",
        K=6,
        L=9,
        realizations=4000,
        dl_normalization="average",
        clustering=Clustering(kind="q_strongest", q=3) if serving_kind == "q" else Clustering(kind="all"),
    )
    net = sample_networks(sc, 3, seed=11, dtype=torch.float64)
    state = sample_channel_state(net)
    return net, state


def test_relaxed_mr_matches_monte_carlo_at_hard_masks() -> None:
    for kind in ("q", "all"):
        net, state = _setup(kind)
        ul, dl = network_statistics(net, state, "mr")
        g = torch.Generator().manual_seed(0)
        p_ul = 100 * torch.rand(net.batch, 6, generator=g, dtype=torch.float64)
        p_dl = 500 * torch.rand(net.batch, 6, generator=g, dtype=torch.float64)
        sc = net.scenario
        mc_ul = spectral_efficiency(uplink_sinr(ul, p_ul), sc.prelog_ul)
        mc_dl = spectral_efficiency(downlink_sinr(dl, p_dl), sc.prelog_dl)
        b, t = mr_traces(state.estimate_cov, net.correlation)
        se_ul, se_dl = relaxed_mr_se(net.serving.double(), b, t, p_ul, p_dl, sc.prelog_ul, sc.prelog_dl)
        # Monte Carlo with 4000 realizations: a few percent
        torch.testing.assert_close(se_ul, mc_ul, rtol=0.04, atol=0.01)
        torch.testing.assert_close(se_dl, mc_dl, rtol=0.04, atol=0.01)


def test_relaxed_mr_gradient_signs() -> None:
    """Serving a UE from its strongest AP helps it; the proxy is differentiable in the mask."""
    net, state = _setup("all")
    b, t = mr_traces(state.estimate_cov, net.correlation)
    d = torch.full(net.serving.shape, 0.5, dtype=torch.float64, requires_grad=True)
    p = torch.full((net.batch, 6), 100.0, dtype=torch.float64)
    se_ul, _ = relaxed_mr_se(d, b, t, p, p, 0.45, 0.5)
    se_ul.sum().backward()
    best = net.gain_db.argmax(1)  # [B, K]
    grad_best = d.grad.gather(1, best[:, None, :]).squeeze(1)  # [B, K]
    assert bool((grad_best > 0).all())
