"""pilot_model 'per_ap_orthogonal': the elu-cosformer paper's eq. (2) estimator (issue 15, item 1)."""

from __future__ import annotations

import pytest
import torch

from cfmimo.config import preset
from cfmimo.sim.network import (
    estimate,
    instantaneous_estimate_se,
    network_statistics,
    noise_columns,
    sample_channel_state,
    sample_networks,
)


def small(**overrides):
    """L = 4 APs, N = 2, 150 m square (the shared ``small`` fixture's network), any field overridden."""
    fields = dict(L=4, K=6, N=2, tau_p=3, tau_u=97, area_side_m=150.0, realizations=8)
    return preset("tree-transformer", **{**fields, **overrides})


def _paper_closed_form(r: torch.Tensor, tau_p: int, rho: float) -> torch.Tensor:
    """Phi = R Q^-1 R with Q = R + sigma^2/(tau_p rho) I, sigma^2 = 1 (gains normalized by noise)."""
    eye = torch.eye(r.shape[-1], dtype=r.dtype)
    q = r + eye / (tau_p * rho)
    return r @ torch.linalg.inv(q) @ r


def test_per_ap_orthogonal_matches_eq2_closed_form():
    sc = small(K=7, tau_p=3, pilot_model="per_ap_orthogonal", clustering={"kind": "all", "max_ues_per_ap": 3})
    net = sample_networks(sc, 2, seed=4, dtype=torch.float64)
    st = sample_channel_state(net, realizations=3)
    assert st.pilot_noise.shape[3] == 7  # one noise column per UE (K > tau_p)
    r = net.correlation
    phi = _paper_closed_form(r, sc.tau_p, sc.pilot_power_mw)
    scale = r.abs().amax(dim=(-2, -1), keepdim=True)
    assert ((st.estimate_cov - phi).abs() / scale).max().item() < 1e-10
    assert ((st.error_cov - (r - phi)).abs() / scale).max().item() < 1e-10
    # the estimate itself: hhat = R Q^-1 (h + n / sqrt(tau_p rho)), n ~ CN(0, I): the paper's eq. (2)
    # with the noise scaled so that Q is the covariance of the bracket
    tp, rho = sc.tau_p, sc.pilot_power_mw
    eye = torch.eye(sc.N, dtype=r.dtype)
    gain = r @ torch.linalg.inv(r + eye / (tp * rho))  # [B, L, K, N, N]
    bracket = st.h + st.pilot_noise[:, :, :, : sc.K] / (tp * rho) ** 0.5
    ref = torch.einsum("blknm,btlkm->btlkn", gain, bracket)
    assert ((st.h_hat - ref).abs().max() / ref.abs().max()).item() < 1e-10
    # no co-pilot interference: a UE's estimate does not move when another UE's channel changes
    h2 = st.h.clone()
    h2[:, :, :, 0] *= -3.0
    st2 = estimate(net, h2, st.pilot_noise)
    assert torch.equal(st2.h_hat[:, :, :, 1:], st.h_hat[:, :, :, 1:])


@pytest.mark.parametrize("clustering", [{"kind": "all"}, {"kind": "dcc"}])
def test_per_ap_orthogonal_equals_book_when_every_ue_has_its_own_pilot(clustering):
    # tau_p >= K: Algorithm 4.1 gives UE k pilot k, so the book's estimator has no contamination
    book = small(K=5, tau_p=6, tau_u=94, clustering=clustering)
    orth = book.with_(pilot_model="per_ap_orthogonal")
    assert noise_columns(orth) == noise_columns(book) == 6
    net_b = sample_networks(book, 2, seed=8, dtype=torch.float64)
    net_o = sample_networks(orth, 2, seed=8, dtype=torch.float64)
    assert torch.equal(net_b.pilot, torch.arange(5).expand(2, 5))
    st_b, st_o = sample_channel_state(net_b, 4), sample_channel_state(net_o, 4)
    assert torch.equal(st_b.h, st_o.h) and torch.equal(st_b.pilot_noise, st_o.pilot_noise)
    for name in ("h_hat", "estimate_cov", "error_cov"):
        a, b = getattr(st_b, name), getattr(st_o, name)
        assert ((a - b).abs().max() / a.abs().max()).item() <= 1e-12, name
    ul_b, dl_b = network_statistics(net_b, st_b)
    ul_o, dl_o = network_statistics(net_o, st_o)
    assert torch.allclose(ul_b.signal, ul_o.signal, rtol=1e-12, atol=0)
    assert torch.allclose(dl_b.interference, dl_o.interference, rtol=1e-12, atol=1e-300)


def test_per_ap_orthogonal_differs_from_book_under_contamination():
    # K > tau_p with the book's pilots: contamination lowers B (more estimation error)
    book = small(K=6, tau_p=3, clustering={"kind": "all", "max_ues_per_ap": 3})
    net_b = sample_networks(book, 2, seed=1, dtype=torch.float64)
    net_o = sample_networks(book.with_(pilot_model="per_ap_orthogonal"), 2, seed=1, dtype=torch.float64)
    tr_b = torch.diagonal(sample_channel_state(net_b, 2).estimate_cov, dim1=-2, dim2=-1).real.sum(-1)
    tr_o = torch.diagonal(sample_channel_state(net_o, 2).estimate_cov, dim1=-2, dim2=-1).real.sum(-1)
    assert bool((tr_o >= tr_b * (1 - 1e-12)).all()) and bool((tr_o > tr_b * 1.01).any())


def test_per_ap_orthogonal_over_the_cap_is_an_error_naming_pilot_model():
    sc = small(K=6, tau_p=3, pilot_model="per_ap_orthogonal", clustering={"kind": "all"})
    net = sample_networks(sc, 1, seed=2, dtype=torch.float64)
    st = sample_channel_state(net, 2)  # estimates do not depend on the clusters
    with pytest.raises(ValueError, match=r"pilot_model 'per_ap_orthogonal'.*AP 0 of setup 0 serves 6"):
        network_statistics(net, st)
    with pytest.raises(ValueError, match="pilot_model"):
        instantaneous_estimate_se(net, st)
    # the same state with a capped clustering is valid
    from dataclasses import replace

    capped = replace(net, serving=net.serving & (torch.arange(6) < 3))
    ul, _ = network_statistics(capped, st)
    assert bool(torch.isfinite(ul.signal).all())


def test_per_ap_orthogonal_rejects_book_sized_pilot_noise():
    sc = small(K=6, tau_p=3, pilot_model="per_ap_orthogonal", clustering={"kind": "all", "max_ues_per_ap": 3})
    net = sample_networks(sc, 1, seed=2, dtype=torch.float64)
    st = sample_channel_state(net, 2)
    with pytest.raises(ValueError, match="pilot_noise has 3 columns"):
        estimate(net, st.h, st.pilot_noise[:, :, :, :3])
