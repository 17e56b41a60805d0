import math

import pytest

from cfmimo.config import Scenario, build_scenario, preset, preset_names


def test_tree_transformer_preset_numbers():
    s = preset("tree-transformer")
    assert (s.L, s.N, s.area_side_m, s.height_difference_m) == (16, 4, 500.0, 10.0)
    assert (s.tau_c, s.tau_p, s.tau_u, s.tau_d) == (200, 10, 90, 100)
    assert (s.ul_power_mw, s.dl_power_per_ap_mw, s.pilot_power_mw) == (100.0, 200.0, 100.0)
    assert s.noise_dbm == pytest.approx(-93.9897, abs=1e-4)  # -174 + 73.01 + 7
    assert s.pathloss.intercept_db == -30.5 and s.pathloss.exponent == 3.67
    assert (s.shadowing_std_db, s.shadowing_decorrelation_m) == (4.0, 9.0)
    assert s.prelog_ul == 0.45 and s.prelog_dl == 0.5
    assert s.dl_total_power_mw == 3200.0
    assert s.clustering.kind == "all" and s.dl_normalization == "per_realization"


def test_elu_cosformer_uses_q8_dcc():
    s = preset("elu-cosformer")
    assert s.clustering.kind == "q_strongest" and s.clustering.q == 8


def test_every_preset_builds_and_round_trips_yaml(tmp_path):
    for name in preset_names():
        s = preset(name)
        s.to_yaml(tmp_path / f"{name}.yaml")
        assert Scenario.from_yaml(tmp_path / f"{name}.yaml") == s


def test_yaml_preset_key_and_overrides(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("preset: tree-transformer\nK: 33\nclustering: {kind: dcc}\n")
    s = Scenario.from_yaml(f)
    assert s.K == 33 and s.clustering.kind == "dcc" and s.name == "tree-transformer"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"K": 0}, "K"),
        ({"L": -3}, "L"),
        ({"area_side_m": -1.0}, "area_side_m"),
        ({"shadowing_std_db": math.nan}, "shadowing_std_db"),
        ({"tau_p": 50, "tau_u": 90, "tau_d": 100}, "tau_c"),
        ({"colour": 1}, "colour"),
        ({"clustering": {"kind": "q_strongest"}}, "q"),
        ({"ue_layout": "disc_union"}, "ue_disc_radius_m"),
    ],
)
def test_bad_values_raise_naming_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        preset("tree-transformer", **overrides)


def test_unknown_preset_lists_choices():
    with pytest.raises(ValueError, match=r"unknown preset 'nope'.*tree-transformer"):
        preset("nope")


def test_bad_yaml_names_the_file(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("K: -1\n")
    with pytest.raises(ValueError, match=r"bad\.yaml.*K"):
        Scenario.from_yaml(f)


def test_scenario_is_immutable_and_with_validates():
    s = build_scenario({})
    with pytest.raises(Exception):  # noqa: B017 - pydantic frozen instance error
        s.K = 3
    assert s.with_(K=7).K == 7
    with pytest.raises(ValueError, match="K"):
        s.with_(K=0)


def test_other_papers_presets():
    a = preset("aagnn")
    assert (a.L, a.N, a.K, a.clustering.radius_m, a.ue_layout) == (4, 16, 8, 300.0, "disc_union")
    assert a.pathloss.intercept_db == -13.54 and a.pathloss.exponent == pytest.approx(3.908)
    e = preset("ee-gnn")
    assert (e.L, e.N, e.K, e.area_side_m, e.noise_dbm, e.ap_layout) == (5, 5, 10, 100.0, -86.0, "grid")
    g = preset("egat")
    assert (g.L, g.N, g.K, g.wrap_around, g.shadowing_std_db, g.noise_dbm) == (8, 2, 4, True, 8.0, -85.0)
    assert g.pathloss.model == "cost231_three_slope" and g.shadowing_model == "two_component"


# ----------------------------------------------------------------------------- safe YAML reader
def test_safe_yaml_reads_plain_configs_and_a_byte_order_mark(tmp_path):
    from cfmimo.yamlio import load_yaml_file

    f = tmp_path / "s.yaml"
    f.write_bytes(b"\xef\xbb\xbfpreset: aagnn\nK: 4\nclustering: {kind: radius, radius_m: 250}\n")
    assert load_yaml_file(f) == {"preset": "aagnn", "K": 4, "clustering": {"kind": "radius", "radius_m": 250}}
    assert Scenario.from_yaml(f).K == 4


@pytest.mark.parametrize(
    "text, reason",
    [
        ("a: &x [1, 2]\nb: *x\n", "anchors are not allowed"),
        # the classic "billion laughs": 9 levels of 9 aliases, 306 bytes, 3.9e8 nodes when walked
        (
            "a: &a [x,x,x,x,x,x,x,x,x]\n"
            + "".join(
                f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n"
                for p, c in zip("abcdefgh", "bcdefghi", strict=True)
            ),
            "anchors are not allowed",
        ),
        ("K: 4\nL: 9\nK: 5\n", "duplicate key 'K'"),
        ("clustering: {kind: radius, kind: all}\n", "duplicate key 'kind'"),
        ("K: " + "[" * 100 + "]" * 100 + "\n", "nesting deeper"),
        ("K: [1, 2\n", "invalid YAML"),
    ],
)
def test_safe_yaml_rejects_aliases_duplicates_and_deep_nesting(tmp_path, text, reason):
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(ValueError, match=reason) as err:
        Scenario.from_yaml(f)
    assert str(f) in str(err.value)


def test_yaml_must_be_utf8_and_a_file(tmp_path):
    f = tmp_path / "latin1.yaml"
    f.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1.yaml is not UTF-8 text \(byte 9: 0xe9\)"):
        Scenario.from_yaml(f)
    with pytest.raises(ValueError, match="is a directory"):
        Scenario.from_yaml(tmp_path)


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"K": True}, "K"),
        ({"ul_power_mw": False}, "ul_power_mw"),
        ({"tau_p": True}, "tau_p"),
        ({"pathloss": {"model": "log_distance", "exponent": True}}, "pathloss.exponent"),
        ({"clustering": {"kind": "q_strongest", "q": True}}, "clustering.q"),
    ],
)
def test_a_bool_is_not_a_number(overrides, field):
    with pytest.raises(ValueError, match=rf"{field}: a number is required, got the boolean"):
        preset("tree-transformer", **overrides)
    assert preset("tree-transformer", wrap_around=True).wrap_around is True  # real bools still work


def test_bool_in_a_yaml_file_names_the_field(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("preset: aagnn\nK: true\n")
    with pytest.raises(ValueError, match=r"s.yaml.*K: a number is required"):
        Scenario.from_yaml(f)


# ----------------------------------------------------------------------------- disc layouts
@pytest.mark.parametrize("radius", [1e-3, 0.05, 1e200])
def test_disc_union_sampling_is_bounded_and_names_the_radius(radius):
    import time

    from cfmimo.sim.network import sample_networks

    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"ue_disc_radius_m = .* kept 0 of 8 UEs"):
        sample_networks(preset("aagnn", ue_disc_radius_m=radius), 2, seed=0)
    assert time.perf_counter() - start < 20


def test_disc_union_sampling_with_a_low_acceptance_still_succeeds():
    import torch

    from cfmimo.sim.geometry import disc_union_positions

    # two discs of radius 8 m in a 1016 m square box: acceptance 3.9e-4, beyond the 64 small rounds
    centers = torch.tensor([[[0.0, 0.0], [1000.0, 1000.0]]], dtype=torch.float64)
    pts = disc_union_positions(centers, 8.0, 8, seed=0, name="ue", indices=[0])
    assert bool((torch.cdist(pts[0], centers[0]).amin(1) <= 8.0).all())


def test_a_scenario_file_may_rename_its_preset(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("preset: aagnn\nname: my-aagnn\nK: 4\n")
    s = Scenario.from_yaml(f)
    assert (s.name, s.K, s.L) == ("my-aagnn", 4, 4)
