"""The site study (issue 15, item 4) in the elu-cosformer reproduction: its optimum, its gaps, its
settings, and a tiny run on a site with the gain-aware model."""

import json

import pydantic
import pytest

from cfmimo.config import Clustering
from cfmimo.experiments.elu_cosformer import EluCosFormerConfig, run
from cfmimo.experiments.elu_cosformer.config import (
    GAIN_MODEL,
    MAIN,
    OWN_CLUSTERS_OPTIMUM,
    _scenario,
    _test_seed,
)
from cfmimo.experiments.elu_cosformer.study import model_gaps, reference_rows, study_setting
from cfmimo.policies.classical.clustering import BookPilotsOverCap
from cfmimo.problems.clustering_power import ClusteringPower

TINY = dict(
    mode="quick",
    train_samples=32,
    test_K=[5, 12],
    test_samples=4,
    eval_batch=4,
    realizations=8,
    epochs=1,
    batch_size=16,
    models=[MAIN, GAIN_MODEL],
    activations=["elu1"],
    noise_sigmas_m=[],
    layout_K=12,
    runtime_K=12,
    runtime_repeats=2,
    reference_samples=3,
)


@pytest.mark.parametrize("pilot_model", ["book", "per_ap_orthogonal"])
def test_reference_optimum_is_optimal_cf_on_the_same_setups(pilot_model):
    """The references' optimum is Optimal CF of the evaluation on the first test setups (same
    positions, shadowing and channel realizations); where all-AP service breaks the tau_p cap
    (K = 12 > tau_p = 10 under per_ap_orthogonal) both use the book's estimator: the references
    with the book's pilot model, BookPilotsOverCap on the per_ap_orthogonal draws (equal in law)."""
    config = EluCosFormerConfig(**{**TINY, "pilot_model": pilot_model})
    rows = {r["K"]: r for r in reference_rows(config)}
    prob, cf = ClusteringPower(), BookPilotsOverCap(Clustering(kind="all"))
    for K in config.test_K:
        scenario = _scenario(config, K)
        if K > scenario.tau_p:  # over the cap: the book's pilot model (BookPilotsOverCap in law)
            scenario = scenario.with_(pilot_model="book")
        inst = prob.sample(scenario, 3, seed=_test_seed(config, K))
        m = prob.metrics(inst, cf(inst))
        for link in ("ul", "dl"):
            assert rows[K][f"opt_{link}"] == pytest.approx(m[f"min_se_{link}"].mean().item(), rel=1e-4)
            assert rows[K][f"opt_mean_{link}"] == pytest.approx(m[f"se_{link}"].mean().item(), rel=1e-4)
            # the optimum maximizes the worst UE: no reference beats it (float32 statistics: margin)
            for name in ("constant", "shadowing_free"):
                assert rows[K][f"{name}_{link}"] <= rows[K][f"opt_{link}"] * (1 + 1e-4)


def test_model_gaps_average_over_K():
    def row(scheme, K, base):
        return {
            "scheme": scheme,
            "K": K,
            **{
                f"{kind}_se_{link}": base + (0.5 if kind == "mean" else 0.0)
                for kind in ("min", "mean")
                for link in ("ul", "dl")
            },
        }

    rows = [
        row("optimal_cf", 5, 2.0),
        row("optimal_cf", 10, 1.0),
        row("predicted_uc_cf", 5, 1.5),
        row("predicted_uc_cf", 10, 0.9),
    ]
    rows[-1]["min_se_dl"] = 1.2  # above the optimum's worst UE: a negative gap is kept, not clipped
    gaps = model_gaps(rows, "predicted_uc_cf")
    assert gaps["min_se_gap_ul"] == pytest.approx((0.5 + 0.1) / 2)
    assert gaps["min_se_gap_dl"] == pytest.approx((0.5 - 0.2) / 2)
    assert gaps["mean_se_gap_ul"] == pytest.approx((0.5 + 0.1) / 2)
    with pytest.raises(ValueError, match="no rows of scheme 'dcc'"):
        model_gaps(rows, "dcc")


def test_study_settings():
    assert [study_setting(d, MAIN) for d in ("book", "fixed", "site")] == ["a", "b", "c"]
    assert study_setting("book", GAIN_MODEL) == "d"
    assert study_setting("site", GAIN_MODEL) == "c+gains"


def test_bad_deployment_names_the_field(tmp_path):
    with pytest.raises(pydantic.ValidationError, match="deployment"):
        EluCosFormerConfig(deployment="campus")
    with pytest.raises(ValueError, match=r"models: unknown variants \['tree_transformer'\]"):
        run(
            EluCosFormerConfig(**{**TINY, "models": ["tree_transformer"]}),
            tmp_path / "out",
            log=lambda m: None,
        )
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_tiny_site_run_with_the_gain_aware_model(tmp_path):
    config = EluCosFormerConfig(**{**TINY, "deployment": "site", "deployment_seed": 3})
    results = run(config, tmp_path, scheduler="sync", log=lambda m: None)
    saved = json.loads((tmp_path / "results.json").read_text())
    study = saved["metrics"]["study"]
    assert study["deployment"] == "site" and study["deployment_seed"] == 3 and study["test_sizes"] == 2
    assert {n: g["setting"] for n, g in study["models"].items()} == {MAIN: "c", GAIN_MODEL: "c+gains"}
    # the model gaps are those of the evaluation's rows (se_by_scheme.csv), recomputed here
    csv_rows = (tmp_path / "se_by_scheme.csv").read_text().splitlines()
    header = csv_rows[0].split(",")
    table = [dict(zip(header, r.split(","), strict=True)) for r in csv_rows[1:]]
    rows = [{**r, "K": int(r["K"]), **{k: float(v) for k, v in r.items() if "_se_" in k}} for r in table]
    for name, scheme in ((MAIN, "predicted_uc_cf"), (GAIN_MODEL, f"variant={GAIN_MODEL}")):
        own = model_gaps(rows, scheme, OWN_CLUSTERS_OPTIMUM[name], suffix="_power")
        for key, value in (model_gaps(rows, scheme) | own).items():
            assert study["models"][name][key] == pytest.approx(value, rel=1e-4, abs=1e-5)
        # the closed form is the max-min optimum for the model's own clusters: no worst UE above it
        assert own["min_se_power_gap_ul"] >= -1e-4 and own["min_se_power_gap_dl"] >= -1e-4
    # on a site with input noise: the site's own optimum at noisy positions is a reference
    assert {"constant_gap_ul", "shadowing_free_gap_dl", "noisy_site_gap_ul", "noisy_site_mean_gap_dl"} <= set(
        study["references"]
    )
    assert len(study["reference_rows"]) == 2 and study["reference_samples"] == 3
    assert (tmp_path / "position_references.csv").read_text().startswith("K,L,opt_ul,opt_mean_ul")
    # the gain-aware model: in Table IV's output without paper values, no parameter claim, not a
    # Fig. 11 contender
    gain = saved["models"][GAIN_MODEL]
    assert gain["params"] > saved["models"][MAIN]["params"] and gain["paper_params"] is None
    assert gain["trained"] and gain["flops"] > 0 and gain["latency_ms"] > 0
    ids = {c["id"] for c in saved["claims"]}
    assert f"params_{GAIN_MODEL}" not in ids and f"params_{MAIN}" in ids
    variant = next(c for c in saved["claims"] if c["id"] == "elu_best_variant")
    assert set(variant["ours"]) == {MAIN}
    report = (tmp_path / "report.md").read_text()
    assert "## Site study (issue 15)" in report and "| elu_cosformer_gain | c+gains |" in report
    assert "exact optimum of the site at the noisy positions" in report and "Power-only gaps" in report
    assert results["metrics"]["study"]["models"] == study["models"]
