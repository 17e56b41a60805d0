import pytest
import torch

from cfmimo.config import preset
from cfmimo.sim.network import network_statistics, sample_channel_state, sample_networks


def _tensors(net, st):
    return [
        net.ap_positions,
        net.ue_positions,
        net.gain_db,
        net.correlation,
        net.pilot,
        net.serving,
        st.h,
        st.h_hat,
    ]


def test_same_seed_identical_different_seed_different():
    sc = preset("elu-cosformer", K=12, realizations=4)
    a = sample_networks(sc, 3, seed=5)
    b = sample_networks(sc, 3, seed=5)
    c = sample_networks(sc, 3, seed=6)
    for x, y in zip(_tensors(a, sample_channel_state(a)), _tensors(b, sample_channel_state(b)), strict=True):
        assert torch.equal(x, y)
    for x, y in zip(
        _tensors(a, sample_channel_state(a))[:4], _tensors(c, sample_channel_state(c))[:4], strict=True
    ):
        assert not torch.equal(x, y)


def test_sample_content_independent_of_batch_composition():
    sc = preset("tree-transformer", K=14, realizations=3)  # K > tau_p: Algorithm 4.1 and contamination
    whole = sample_networks(sc, 5, seed=1, dtype=torch.float64)
    part = sample_networks(sc, 2, seed=1, first_index=3, dtype=torch.float64)
    sw, sp = sample_channel_state(whole), sample_channel_state(part)
    for x, y in zip(_tensors(whole, sw), _tensors(part, sp), strict=True):
        assert torch.equal(x[3:5], y)


@pytest.mark.parametrize("name", ["tree-transformer", "elu-cosformer"])
def test_presets_give_plausible_se(name):
    # Sanity ranges for the papers' setting at K = 10 (MMSE, full UL power, equal DL power).
    sc = preset(name, K=10, realizations=50)
    net = sample_networks(sc, 8, seed=0)
    ul, dl = network_statistics(net, sample_channel_state(net), "mmse")
    from cfmimo.sim.uatf import downlink_sinr, spectral_efficiency, uplink_sinr

    se_ul = spectral_efficiency(uplink_sinr(ul, torch.full((8, 10), 100.0)), sc.prelog_ul).mean().item()
    se_dl = spectral_efficiency(downlink_sinr(dl, torch.full((8, 10), 320.0)), sc.prelog_dl).mean().item()
    assert 1.5 < se_ul < 6.0 and 1.0 < se_dl < 6.0


def test_chunking_does_not_change_statistics(small_net, small_state):
    a = network_statistics(small_net, small_state, "pmmse")
    b = network_statistics(small_net, small_state, "pmmse", chunk=3)
    for x, y in zip(a, b, strict=True):
        assert torch.allclose(x.interference, y.interference, rtol=1e-12)


@pytest.mark.parametrize("name", ["aagnn", "ee-gnn", "egat"])
def test_other_presets_sample(name):
    sc = preset(name, realizations=4)
    net = sample_networks(sc, 3, seed=0, dtype=torch.float64)
    assert net.gain_db.shape == (3, sc.L, sc.K) and torch.isfinite(net.gain_db).all()
    st = sample_channel_state(net)
    assert st.h.shape == (3, 4, sc.L, sc.K, sc.N)
    if name == "aagnn":  # every UE lies within 230.9 m of an AP, so the 300 m radius serves it
        assert net.serving.any(dim=1).all()
        # edge SNR of 10 dB at 400/sqrt(3) m (horizontal; 23.5 m height difference) by construction of the noise
        edge = -13.54 - 39.08 * torch.log10(torch.tensor((400**2 / 3 + 23.5**2) ** 0.5)) - sc.noise_dbm + 30.0
        assert edge.item() == pytest.approx(10.0, abs=1e-3)


def test_theorem_5_1_se_dominates_for_mmse_and_matches_manual(small_net, small_state):
    from cfmimo.sim.combining import combiners
    from cfmimo.sim.network import instantaneous_estimate_se
    from cfmimo.sim.uatf import instantaneous_estimate_sinr

    se = {c: instantaneous_estimate_se(small_net, small_state, c) for c in ("mmse", "mr")}
    p = torch.full((small_net.batch, small_net.scenario.K), 100.0, dtype=torch.float64)
    v = combiners("mmse", small_state.h_hat, small_state.error_cov, small_net.serving, p)
    manual = small_net.scenario.prelog_ul * torch.log2(
        1 + instantaneous_estimate_sinr(v, small_state.h_hat, small_state.error_cov, p)
    ).mean(1)
    assert torch.allclose(se["mmse"], manual)
    assert bool((se["mmse"] >= se["mr"] - 1e-12).all())  # MMSE maximizes the instantaneous SINR
