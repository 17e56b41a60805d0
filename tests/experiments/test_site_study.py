"""The site study plumbing of the Tree-Transformer reproduction (issue 15): deployments, the same
site for training and test, the gain-aware model, the study block of results.json and report.md."""

from __future__ import annotations

import json

import pytest
import torch
import typer

from cfmimo.cli import reproduce_overrides
from cfmimo.data.spec import dataset_preset, deployment_scenario
from cfmimo.experiments.tree_transformer import TreeTransformerConfig, run, specs, study_setting
from cfmimo.experiments.tree_transformer.checkpoint_eval import evaluate_checkpoint
from cfmimo.learn.trainer import load_trained
from cfmimo.sim.network import networks_from_positions
from cfmimo.sim.shadowing_field import check_same_site, site_ap_positions

TINY = dict(
    train_K=[2, 4],
    train_samples=32,
    test_K=[2, 5],
    test_samples=4,
    realizations=8,
    epochs=1,
    batch_size=16,
    latency_K=[10, 20],
    reference_samples=3,
)


def test_train_and_test_share_the_site_and_its_gains():
    config = TreeTransformerConfig(mode="quick", deployment="site", deployment_seed=4, **TINY)
    train, test = specs(config)
    assert {L for _, L in test.sizes} == {16} and train.seed != test.seed
    a, b = train.group_scenario(2, 16), test.group_scenario(5, 16)
    ap = site_ap_positions(a).expand(1, -1, -1).clone()
    ue_a = torch.tensor([[[120.5, 333.3], [40.0, 480.0]]], dtype=torch.float64)
    ue_b = torch.tensor(
        [[[7.0, 7.0], [120.5, 333.3], [260.0, 10.0], [40.0, 480.0], [499.0, 250.0]]], dtype=torch.float64
    )
    ga = networks_from_positions(a, ap, ue_a, seed=train.group_seed(2, 16), indices=[3]).gain_db
    gb = networks_from_positions(b, ap, ue_b, seed=test.group_seed(5, 16), indices=[11]).gain_db
    assert torch.equal(ga[0, :, 0], gb[0, :, 1]) and torch.equal(ga[0, :, 1], gb[0, :, 3])  # bitwise
    other = a.with_(deployment_seed=5)
    go = networks_from_positions(other, ap, ue_a, seed=train.group_seed(2, 16), indices=[3]).gain_db
    assert not torch.equal(go, ga)  # another deployment seed: another field
    # the fixed layout: every sample of both sets on the same APs
    assert torch.equal(site_ap_positions(a), site_ap_positions(b))
    fixed_train, _ = specs(config.model_copy(update={"deployment": "fixed"}))
    assert fixed_train.scenario.ap_deployment == "fixed" and not fixed_train.scenario.shadowing_field
    assert dataset_preset("tree-transformer-site-test").scenario.shadowing_field


def test_a_site_seed_on_another_area_is_an_error_naming_the_field():
    site = deployment_scenario(specs(TreeTransformerConfig(**TINY))[0].scenario, "site", 2)
    with pytest.raises(
        ValueError, match=r"test set: .*deployment_seed = 2 was built for area_side_m = 500.0"
    ):
        check_same_site(site, site.with_(area_side_m=800.0), what="test set")
    with pytest.raises(ValueError, match="deployment_seed"):
        check_same_site(site, site.with_(deployment_seed=3))
    with pytest.raises(ValueError, match="L = 16"):
        check_same_site(site, site.with_(L=9))
    check_same_site(site, site.with_(K=33))  # K is not part of the site
    book = specs(TreeTransformerConfig(**TINY))[0].scenario
    check_same_site(book, book.with_(area_side_m=800.0))  # book drops: no site to check


def test_settings_and_cli_overrides():
    assert [study_setting(d, m) for d, m in [("book", "tree_transformer"), ("site", "tree_transformer")]] == [
        "a",
        "c",
    ]
    assert study_setting("book", "tree_transformer_gain") == "d"
    assert study_setting("site", "tree_transformer_gain") == "c+gains"
    # a model name + "_se": the same model trained with the worst-UE SE term
    assert study_setting("book", "tree_transformer_gain_se") == "d+se"
    assert study_setting("site", "tree_transformer_se") == "c+se"
    base = TreeTransformerConfig.quick()
    c = reproduce_overrides(base, "site", ["deployment_seed=7", "models=[tree_transformer_gain]"])
    assert (c.deployment, c.deployment_seed, c.models, c.mode) == (
        "site",
        7,
        ["tree_transformer_gain"],
        "quick",
    )
    with pytest.raises(typer.BadParameter, match="deployment"):
        reproduce_overrides(base, "moon", [])
    with pytest.raises(typer.BadParameter, match="epochz"):
        reproduce_overrides(base, None, ["epochz=3"])
    with pytest.raises(typer.BadParameter, match="KEY=VALUE"):
        reproduce_overrides(base, None, ["epochs"])


def test_site_run_reports_the_study(tmp_path):
    config = TreeTransformerConfig(
        mode="quick",
        deployment="site",
        models=["tree_transformer", "tree_transformer_gain", "tree_transformer_gain_se"],
        se_term_lam=0.2,
        **TINY,
    )
    run(config, tmp_path, scheduler="sync", log=lambda m: None)
    se_run = load_trained(next((tmp_path / "runs" / "tree_transformer_gain_se").rglob("best*.ckpt")))
    assert se_run.config.model.name == "tree_transformer_gain" and se_run.config.se_term.lam == 0.2
    assert (
        load_trained(next((tmp_path / "runs" / "tree_transformer_gain").rglob("best*.ckpt"))).config.se_term
        is None
    )
    study = json.loads((tmp_path / "results.json").read_text())["metrics"]["study"]
    assert study["deployment"] == "site" and study["test_sizes"] == 2
    cached = json.loads((tmp_path / "position_references.json").read_text())  # reused by a rerun
    assert cached["key"]["samples"] == 3 and len(cached["rows"]) == 2
    assert study["models"]["tree_transformer"]["setting"] == "c"
    assert study["models"]["tree_transformer_gain"]["setting"] == "c+gains"
    assert study["models"]["tree_transformer_gain_se"]["setting"] == "c+gains+se"
    refs = study["references"]
    for name in ("constant", "shadowing_free", "noisy_site"):
        for key in ("gap_ul", "gap_dl", "mean_gap_ul", "mean_gap_dl"):
            assert abs(refs[f"{name}_{key}"]) < 5.0, (name, key)
        # the optimum is max-min optimal: no allocation beats its worst UE (up to solver tolerance)
        assert refs[f"{name}_gap_ul"] > -1e-3 and refs[f"{name}_gap_dl"] > -1e-3
    for g in study["models"].values():
        assert g["min_se_gap_ul"] > -1e-3 and g["min_se_gap_dl"] > -1e-3
    # an outside checkpoint scored on the run's test grid: the run's own model gives the run's gaps
    ckpt = next((tmp_path / "runs" / "tree_transformer_gain").rglob("best*.ckpt"))
    scored = evaluate_checkpoint(tmp_path, ckpt, name="tree_transformer_gain")
    own = study["models"]["tree_transformer_gain"]
    assert scored["grid"] == {k: v for k, v in own.items() if k != "setting"}
    assert scored["training_sizes"] == [[2, 16], [4, 16]]  # of which only K = 2 is a test size
    k2 = next(r for r in scored["rows"] if r["K"] == 2)
    assert scored["training_sizes_only"]["min_se_gap_dl"] == k2["min_se_dl_opt"] - k2["min_se_dl_pred"]
    report = (tmp_path / "report.md").read_text()
    assert "## Site study" in report and "exact optimum of the site at the noisy positions" in report
