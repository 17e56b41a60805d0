import math

import pytest
import torch

from cfmimo.config import Cost231ThreeSlopePathLoss, preset
from cfmimo.sim.geometry import disc_union_positions, distances_2d, grid_positions, link_angles
from cfmimo.sim.pathloss import correlated_normal, cost231_constant_db, cost231_gain_db, pathloss_gain_db


def test_wrap_around_distance_hand_solved():
    a = torch.tensor([[[10.0, 10.0]]])
    b = torch.tensor([[[990.0, 500.0], [500.0, 500.0]]])
    plain = distances_2d(a, b, 1000.0, wrap_around=False)
    wrapped = distances_2d(a, b, 1000.0, wrap_around=True)
    assert plain[0, 0, 0].item() == pytest.approx(math.hypot(980, 490))
    assert wrapped[0, 0, 0].item() == pytest.approx(math.hypot(20, 490))  # shorter through the x edge
    assert wrapped[0, 0, 1].item() == pytest.approx(math.hypot(490, 490))


def test_wrap_equals_minimum_over_nine_copies():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(2, 5, 2, generator=g) * 300, torch.rand(2, 7, 2, generator=g) * 300
    shifts = torch.tensor([[dx, dy] for dx in (-300, 0, 300) for dy in (-300, 0, 300)], dtype=a.dtype)
    brute = (a[:, :, None, None, :] - (b[:, None, None, :, :] + shifts[None, None, :, None, :])).norm(dim=-1)
    assert torch.allclose(distances_2d(a, b, 300.0, True), brute.min(dim=2).values, atol=1e-4)


def test_grid_layout():
    g = grid_positions(10, 100.0, 2)
    assert g.shape == (2, 10, 2)
    assert sorted(set(g[0, :, 0].tolist())) == [10.0, 30.0, 50.0, 70.0, 90.0]
    assert sorted(set(g[0, :, 1].tolist())) == [25.0, 75.0]


def test_elevation_and_book_pathloss():
    ap = torch.tensor([[[0.0, 0.0]]], dtype=torch.float64)
    ue = torch.tensor([[[30.0, 40.0]]], dtype=torch.float64)
    d2d, az, el = link_angles(ap, ue, 500.0, False, 10.0)
    d3d = math.sqrt(50**2 + 10**2)
    assert d2d.item() == pytest.approx(50.0) and az.item() == pytest.approx(math.atan2(40, 30))
    assert el.item() == pytest.approx(math.asin(10 / d3d))
    gain = pathloss_gain_db(d2d, preset("tree-transformer"))
    assert gain.item() == pytest.approx(-30.5 - 36.7 * math.log10(d3d), abs=1e-9)


def test_cost231_constant_and_slopes():
    m = Cost231ThreeSlopePathLoss(ap_height_m=15.0, ue_height_m=1.65)
    big_l = cost231_constant_db(m, 1.9)
    assert big_l == pytest.approx(140.715, abs=5e-3)  # Ngo et al. 2017: 140.7 dB
    d = torch.tensor([5.0, 10.0, 30.0, 50.0, 100.0, 1000.0], dtype=torch.float64)
    g = cost231_gain_db(d, m, 1.9)
    assert g[0].item() == pytest.approx(g[1].item())  # flat below d0
    assert g[3].item() == pytest.approx(-big_l - 15 * math.log10(0.05) - 20 * math.log10(0.05))
    assert g[4].item() - g[5].item() == pytest.approx(35.0)  # 35 dB/decade beyond d1
    assert g[2].item() - g[3].item() == pytest.approx(20 * math.log10(50 / 30))


def test_disc_union_points_lie_in_some_disc():
    centers = torch.tensor([[[0.0, 0.0], [400.0, 0.0]]])
    pts = disc_union_positions(centers, 230.9, 500, seed=0, name="ue", indices=[0])
    dist = torch.cdist(pts[0], centers[0]).min(dim=1).values
    assert bool((dist <= 230.9 + 1e-6).all())
    assert (pts[0, :, 0] > 200).float().mean().item() == pytest.approx(0.5, abs=0.08)  # symmetric union


def test_shadowing_correlation_follows_two_to_minus_d_over_9():
    # Two UEs at 9 m and 18 m from a third: correlations 1/2 and 1/4 over many independent draws.
    pts = torch.tensor([[[0.0, 0.0], [9.0, 0.0], [0.0, 18.0]]], dtype=torch.float64)
    z = correlated_normal(pts, 500.0, False, 9.0, 200_000, seed=1, name="s", indices=[0])[0]  # [3, draws]
    c = torch.corrcoef(z)
    assert c[0, 1].item() == pytest.approx(0.5, abs=0.01)
    assert c[0, 2].item() == pytest.approx(0.25, abs=0.01)
    assert c[1, 2].item() == pytest.approx(2 ** (-math.hypot(9, 18) / 9), abs=0.01)
    assert z.std(dim=1).tolist() == pytest.approx([1.0, 1.0, 1.0], abs=0.01)
