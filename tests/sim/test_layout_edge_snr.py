"""Scenario fixes for the AAGNN sweeps: ISD-keeping AP layouts, the cell-edge SNR, the minimum distance."""

import math

import pytest
import torch

from cfmimo.config import preset
from cfmimo.sim.geometry import distances_2d, grid_positions, isd_positions
from cfmimo.sim.network import networks_from_positions, sample_networks


def _nearest_neighbour(ap):
    d = distances_2d(ap, ap, 0.0, False)[0]  # [L, L]
    return (d + torch.diag(torch.full((d.shape[0],), math.inf, dtype=d.dtype))).amin(-1)


@pytest.mark.parametrize("layout", ["square_isd", "hex_isd"])
def test_layout_keeps_400m_isd_for_m_1_to_7(layout):
    for m in range(1, 8):
        sc = preset("aagnn", L=m, ap_layout=layout)
        net = sample_networks(sc, 2, seed=0, dtype=torch.float64)
        ap = net.ap_positions
        assert torch.equal(ap[0], ap[1])  # deterministic layout
        if m > 1:  # every AP's nearest neighbour is at exactly the ISD
            assert torch.allclose(
                _nearest_neighbour(ap), torch.full((m,), 400.0, dtype=torch.float64), atol=1e-9
            )
        # every UE lies in a 230.9 m disc around an AP, so the 300 m association serves it
        assert bool(net.serving.any(dim=1).all())
        assert net.distance_2d.amin(1).max().item() <= 400 / math.sqrt(3) + 1e-9


def test_square_isd_with_four_aps_is_the_old_2x2_grid():
    ap = isd_positions(4, 400.0, 800.0, 1, lattice="square", dtype=torch.float64)
    assert torch.equal(ap, grid_positions(4, 800.0, 1, dtype=torch.float64))
    with pytest.raises(ValueError, match="lattice"):
        isd_positions(3, 400.0, 800.0, 1, lattice="triangle")


@pytest.mark.parametrize("snr_db", [10.0, 5.0])
def test_edge_snr_equals_its_setting(snr_db):
    """A UE at the cell edge (230.9 m from its AP, horizontally) sees P * beta = SNR_edge, with beta the
    simulator's gain over noise; the noise is no longer a literal."""
    sc = preset("aagnn", L=1, K=2, cell_edge_snr_db=snr_db)
    ap = torch.tensor([[[400.0, 400.0]]], dtype=torch.float64)
    r = 400 / math.sqrt(3)
    ue = torch.tensor([[[400.0 + r, 400.0], [400.0, 400.0 + 50.0]]], dtype=torch.float64)
    net = networks_from_positions(sc, ap, ue, seed=0, indices=range(1))
    snr = 10 * math.log10(sc.dl_power_per_ap_mw) + net.gain_db[0, 0, 0].item()
    assert snr == pytest.approx(snr_db, abs=1e-9)
    # the same UE 50 m away gets the path-loss difference in d3D (23.5 m height difference)
    want = snr_db + 39.08 * math.log10(math.hypot(r, 23.5) / math.hypot(50.0, 23.5))
    assert 10 * math.log10(sc.dl_power_per_ap_mw) + net.gain_db[0, 0, 1].item() == pytest.approx(
        want, abs=1e-9
    )


def test_min_distance_clamps_the_path_loss():
    sc = preset("aagnn", L=1, K=3)
    ap = torch.tensor([[[400.0, 400.0]]], dtype=torch.float64)
    ue = torch.tensor([[[400.0, 400.0], [410.0, 400.0], [435.0, 400.0]]], dtype=torch.float64)
    g = networks_from_positions(sc, ap, ue, seed=0, indices=range(1)).gain_db[0, 0]
    assert g[0].item() == pytest.approx(g[2].item(), abs=1e-12) and g[1].item() == pytest.approx(
        g[2].item(), abs=1e-12
    )
    off = networks_from_positions(sc.with_(min_distance_m=0.0), ap, ue, seed=0, indices=range(1)).gain_db[
        0, 0
    ]
    assert off[0].item() > off[1].item() > off[2].item() == pytest.approx(g[2].item(), abs=1e-12)
    # no link of the preset exceeds the SNR at 35 m (39 dB)
    net = sample_networks(preset("aagnn"), 16, seed=1, dtype=torch.float64)
    assert (30.0 + net.gain_db).max().item() <= 30.0 - 13.54 - 39.08 * math.log10(
        math.hypot(35.0, 23.5)
    ) - sc.noise_dbm + 1e-9


def test_bad_scenario_fields_name_the_field():
    with pytest.raises(ValueError, match="ap_isd_m"):
        preset("aagnn", ap_isd_m=None)
    with pytest.raises(ValueError, match="ap_isd_m"):
        preset("aagnn", ap_isd_m=-400.0)
    with pytest.raises(ValueError, match="cell_edge_snr_db"):
        preset("aagnn", cell_edge_snr_db=float("nan"))
    with pytest.raises(ValueError, match="noise_power_dbm"):
        preset("aagnn", noise_power_dbm=-90.0)
    with pytest.raises(ValueError, match="cell_edge_distance_m"):
        preset("aagnn", ue_layout="uniform", ue_disc_radius_m=None)
    with pytest.raises(ValueError, match="L = 8"):
        preset("aagnn", ap_layout="hex_isd", L=8)
    with pytest.raises(ValueError, match="min_distance_m"):
        preset("aagnn", min_distance_m=-1.0)
    assert (
        preset("aagnn", ue_layout="uniform", ue_disc_radius_m=None, cell_edge_distance_m=200.0).noise_dbm < 0
    )
