"""Site-specific deployments: fixed AP layout and spatially consistent shadowing (issue 15, item 2)."""

from __future__ import annotations

import math

import pytest
import torch

from cfmimo.config import preset
from cfmimo.sim.network import networks_from_positions, sample_networks
from cfmimo.sim.pathloss import pathloss_gain_db
from cfmimo.sim.shadowing_field import (
    _cached_field,
    field_values,
    interpolated_correlation,
    sample_fields,
    site_ap_positions,
    site_shadowing_db,
    site_shadowing_field,
)


def site(**overrides):
    fields = dict(
        L=4, K=6, N=2, area_side_m=120.0, ap_deployment="fixed", deployment_seed=5, shadowing_field=True
    )
    return preset("tree-transformer", **{**fields, **overrides})


def _lag_products(z: torch.Tensor, lag: int) -> torch.Tensor:
    """Per-field mean of z(x) z(x + lag) along x and along y on a periodic grid. z [F, n, n] -> [F]."""
    along_x = (z * torch.roll(z, -lag, dims=2)).mean(dim=(1, 2))
    along_y = (z * torch.roll(z, -lag, dims=1)).mean(dim=(1, 2))
    return 0.5 * (along_x + along_y)


def test_grid_field_correlation_is_two_to_minus_d_over_9():
    # 1000 independent fields on a 120 m torus (1 m grid, the law is exact there): the estimate of
    # E{z(x) z(x + d)} per field is one independent sample; standard error from their spread
    fields, clamped = sample_fields(1000, 120, 1.0, 9.0, seed=3)
    assert clamped == 0.0  # the circulant embedding is positive semi-definite (no clamping)
    assert sample_fields(2, 60, 1.0, 9.0, seed=3)[1] > 1e-3  # a too small torus is reported
    for d in (0, 9, 18, 45):
        per_field = _lag_products(fields, d)
        mean, se = per_field.mean().item(), per_field.std().item() / math.sqrt(len(per_field))
        assert se < 0.015, (d, se)
        assert abs(mean - 2.0 ** (-d / 9)) < 4 * se, (d, mean, se)


def test_site_field_read_off_grid_matches_correlation_without_wrap_around():
    # no wrap-around: the 60 m area (61 x 61 grid points) is embedded in a 120 x 120 torus; 800
    # independent AP fields read at 300 random off-grid pairs per distance, in random directions
    sc = site(L=800, area_side_m=60.0)
    field = site_shadowing_field(sc)
    assert (field.points, field.spacing, field.periodic, field.covariance_error) == (61, 1.0, False, 0.0)
    g = torch.Generator().manual_seed(0)
    for d in (0.0, 9.0, 18.0, 45.0):
        p = torch.rand(4000, 2, generator=g, dtype=torch.float64) * 60.0
        ang = torch.rand(4000, generator=g, dtype=torch.float64) * 2 * math.pi
        q = p + d * torch.stack([ang.cos(), ang.sin()], dim=-1)
        inside = ((q >= 0) & (q <= 60.0)).all(dim=-1)
        p, q = p[inside][:300], q[inside][:300]
        assert len(p) == 300
        zp = field_values(field, p[None])[0]  # [L, 300]
        zq = field_values(field, q[None])[0]
        per_ap = (zp * zq).mean(dim=1)  # [L]: independent across APs
        mean, se = per_ap.mean().item(), per_ap.std().item() / math.sqrt(sc.L)
        exact = interpolated_correlation(p, q, field.spacing, 9.0).mean().item()  # law of the read field
        assert se < 0.03, (d, se)
        assert abs(mean - exact) < 4 * se, (d, mean, exact, se)
        assert abs(exact - 2.0 ** (-d / 9)) < 0.01  # nearest-point reading error, averaged over pairs


def test_interpolation_error_of_nearest_reading_is_small():
    g = torch.Generator().manual_seed(1)
    p = torch.rand(20000, 2, generator=g, dtype=torch.float64) * 100
    ang = torch.rand(20000, generator=g, dtype=torch.float64) * 2 * math.pi
    for d, bound in ((9.0, 0.06), (18.0, 0.035), (45.0, 0.004)):
        q = p + d * torch.stack([ang.cos(), ang.sin()], dim=-1)
        err = interpolated_correlation(p, q, 1.0, 9.0) - 2.0 ** (-d / 9)
        assert err.abs().max().item() < bound and abs(err.mean().item()) < 1e-3
    same = interpolated_correlation(p, p, 1.0, 9.0)
    assert torch.equal(same, torch.ones_like(same))  # the same place, the same shadowing


def test_field_is_bit_identical_for_the_same_seed_and_any_chunking():
    a, _ = sample_fields(7, 48, 1.0, 9.0, seed=11, chunk=1)
    b, _ = sample_fields(7, 48, 1.0, 9.0, seed=11, chunk=3)
    c, _ = sample_fields(7, 48, 1.0, 9.0, seed=11)
    assert torch.equal(a, b) and torch.equal(a, c)
    sc = site()
    first = site_shadowing_field(sc).values.clone()
    _cached_field.cache_clear()
    assert torch.equal(site_shadowing_field(sc).values, first)
    other = site_shadowing_field(sc.with_(deployment_seed=6)).values
    assert not torch.equal(other, first)
    assert (other - first).abs().mean().item() > 0.5  # independent fields, not a shifted copy


def test_samples_share_the_site_and_do_not_depend_on_batch_split():
    sc = site()
    whole = sample_networks(sc, 4, seed=2, dtype=torch.float64)
    parts = [sample_networks(sc, 2, seed=2, first_index=i, dtype=torch.float64) for i in (0, 2)]
    for name in ("ap_positions", "ue_positions", "gain_db"):
        assert torch.equal(getattr(whole, name), torch.cat([getattr(p, name) for p in parts])), name
    ap = whole.ap_positions
    assert torch.equal(ap, site_ap_positions(sc).expand(4, -1, -1))  # one layout for every sample
    assert not torch.equal(whole.ue_positions[0], whole.ue_positions[1])  # new UEs per sample
    other = sample_networks(sc.with_(deployment_seed=6), 1, seed=2, dtype=torch.float64)
    assert not torch.equal(other.ap_positions[0], ap[0])


def test_same_position_on_the_same_site_gets_the_same_gains():
    sc = site(K=3)
    ap = site_ap_positions(sc).expand(2, -1, -1).clone()
    ue = torch.tensor([[[30.3, 70.7], [5.0, 5.0], [100.0, 20.0]], [[30.3, 70.7], [60.0, 90.0], [1.0, 119.0]]])
    ue = ue.double()
    a = networks_from_positions(sc, ap, ue, seed=0, indices=range(0, 2))
    b = networks_from_positions(sc, ap[:1], ue[1:], seed=99, indices=range(7, 8))  # other seed and index
    assert torch.equal(a.gain_db[0, :, 0], a.gain_db[1, :, 0])
    assert torch.equal(a.gain_db[1], b.gain_db[0])
    # the shadowing is the gain minus the path loss: 4 dB fields, not zero
    shadow = a.gain_db - pathloss_gain_db(a.distance_2d, sc) + sc.noise_dbm
    assert torch.allclose(shadow, site_shadowing_db(sc, ue), atol=1e-9)
    assert shadow.abs().max().item() > 0.5
    # the book's per-drop shadowing differs between the two samples at the same place
    drop = sc.with_(shadowing_field=False)
    c = networks_from_positions(drop, ap, ue, seed=0, indices=range(0, 2))
    assert not torch.equal(c.gain_db[0, :, 0], c.gain_db[1, :, 0])


def test_wrap_around_field_is_periodic():
    sc = site(wrap_around=True)
    field = site_shadowing_field(sc)
    assert field.periodic and field.points == 120
    x = torch.tensor([[[10.2, 33.0], [10.2 + 120.0, 33.0 - 120.0]]], dtype=torch.float64)
    z = field_values(field, x)
    assert torch.equal(z[0, :, 0], z[0, :, 1])


def test_site_errors_name_the_field():
    sc = site()
    field = site_shadowing_field(sc)
    ue = torch.full((1, 2, 2), 50.0, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"shadowing_field.*area_side_m = 120.0.*area_side_m = 150.0"):
        site_shadowing_db(sc.with_(area_side_m=150.0), ue, field)
    with pytest.raises(ValueError, match=r"shadowing_field.*deployment_seed"):
        site_shadowing_db(sc.with_(deployment_seed=9), ue, field)
    with pytest.raises(ValueError, match=r"shadowing_field: UE positions span .* outside the site's field"):
        field_values(field, torch.tensor([[[50.0, 150.0]]], dtype=torch.float64))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            dict(ap_deployment="fixed", deployment_seed=None, shadowing_field=False),
            "needs the field 'deployment_seed'",
        ),
        (
            dict(ap_deployment="random", deployment_seed=1, shadowing_field=True),
            "shadowing_field needs fixed AP",
        ),
        (
            dict(deployment_seed=None, ap_deployment="random", ap_layout="grid"),
            "shadowing_field needs the field",
        ),
        (dict(shadowing_model="two_component"), "shadowing_field supports shadowing_model"),
        (dict(shadowing_grid_m=5.0), "shadowing_grid_m"),
        (dict(ap_deployment="sometimes"), "ap_deployment"),
        (dict(deployment_seed=-1), "deployment_seed"),
        (dict(pilot_model="orthogonal"), "pilot_model"),
    ],
)
def test_bad_site_fields_are_rejected_naming_the_field(overrides, message):
    with pytest.raises(ValueError, match=message):
        site(**overrides)


def test_defaults_are_left_out_of_dumps_and_fields_round_trip(tmp_path):
    plain = preset("tree-transformer")
    assert not {
        "pilot_model",
        "ap_deployment",
        "deployment_seed",
        "shadowing_field",
        "shadowing_grid_m",
    } & set(plain.model_dump())
    sc = site(pilot_model="per_ap_orthogonal")
    sc.to_yaml(tmp_path / "s.yaml")
    back = type(sc).from_yaml(tmp_path / "s.yaml")
    assert back == sc and back.deployment_seed == 5 and back.shadowing_field


@pytest.mark.slow
def test_site_dataset_is_identical_with_one_and_two_dask_workers(tmp_path):
    from cfmimo.data.generation import run_generation
    from cfmimo.data.spec import DatasetSpec
    from cfmimo.data.storage import load_dataset

    spec = DatasetSpec(scenario=site(realizations=8), sizes=[(3, 4), (5, 6)], samples=6, shard_size=3, seed=5)
    run_generation(spec, tmp_path / "sync", scheduler="sync")
    run_generation(spec, tmp_path / "w2", scheduler="local", workers=2)
    a, b = load_dataset(tmp_path / "sync"), load_dataset(tmp_path / "w2")
    assert a.groups.keys() == b.groups.keys()
    for key in a.groups:
        for name in a.groups[key]:
            assert torch.equal(a.groups[key][name], b.groups[key][name]), (key, name)
