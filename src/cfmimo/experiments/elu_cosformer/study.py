"""The site study of issue 15 (item 4) in the ELU-CosFormer reproduction: how far the positions-only
model and its gain-aware counterpart are from the max-min optimum, under the book's drops, a fixed
AP layout, or a site with a fixed shadowing field (``EluCosFormerConfig.deployment``).

The optimum is **Optimal CF** (every AP serves every UE, closed-form max-min powers; the book's
estimator where all-AP service breaks the tau_p cap under ``per_ap_orthogonal``, as the evaluation
scores it with ``BookPilotsOverCap``): the best max-min allocation of the setup, which the model's
clusters can only approach.
Gaps are in b/s/Hz, averaged over the test K: worst UE (the max-min objective) and mean per-UE SE,
UL and DL (as ``experiments.tree_transformer``'s study); and the power-only gaps
(``*_se_power_gap_*``) to the closed-form max-min powers of the model's own clusters (Optimal
UC-CF for ELU-CosFormer), which separate what the power head misses from what the clusters cost.

The positions-only references (``experiments.position_references.size_references``: constant
powers, the shadowing-free optimum and, on a site, the exact optimum of the site read at UE
positions with the evaluation's noise) are computed on the first ``reference_samples`` test setups
of each K, all APs serving (so their ``opt`` is Optimal CF on those setups: exactly, except under
``per_ap_orthogonal`` at K > tau_p, where they use the book's pilot model, whose pilot-noise draws
differ from ``BookPilotsOverCap``'s reuse of the first tau_p columns: equal in law), against their
own optimum. On a site, ``noisy_site`` perturbs the UE positions only (the model's inputs also perturb
the AP positions) with a noise stream of its own: the same law as the model's inputs, not the
same draws.
"""

from __future__ import annotations

from typing import Any

from cfmimo.config import Clustering
from cfmimo.experiments.elu_cosformer.config import (
    GAIN_MODEL,
    MAIN,
    OWN_CLUSTERS_OPTIMUM,
    EluCosFormerConfig,
    _scenario,
    _test_seed,
)
from cfmimo.experiments.position_references import reference_gaps, size_references
from cfmimo.rng import stream_seed
from cfmimo.sim.network import sample_networks

#: settings of the study: setting -> (deployment, model)
STUDY_SETTINGS = {
    "a": ("book", MAIN),
    "b": ("fixed", MAIN),
    "c": ("site", MAIN),
    "d": ("book", GAIN_MODEL),
}
#: the optimum of the study and the scheme of each model's predicted allocation
OPTIMUM = "optimal_cf"
MODEL_SCHEMES = {MAIN: "predicted_uc_cf", GAIN_MODEL: f"variant={GAIN_MODEL}"}


def study_setting(deployment: str, model: str) -> str:
    """The study setting (a-d) of a model under a deployment; "c+gains" (the gain-aware model on
    the site, the upper reference of setting c) and "b+gains" otherwise."""
    for key, pair in STUDY_SETTINGS.items():
        if pair == (deployment, model):
            return key
    base = next(k for k, (d, m) in STUDY_SETTINGS.items() if d == deployment and m == MAIN)
    return f"{base}+gains" if model == GAIN_MODEL else f"{base}:{model}"


def model_gaps(
    rows: list[dict[str, Any]], scheme: str, optimum: str = OPTIMUM, suffix: str = ""
) -> dict[str, float]:
    """Gaps of ``scheme`` to ``optimum``, averaged over the K of ``rows`` (the evaluation's rows:
    scheme, K, mean_se_* and min_se_*, means over the test setups): ``{kind}_se{suffix}_gap_{link}``
    for kind min (worst UE) and mean, link ul and dl."""
    by = {(r["scheme"], r["K"]): r for r in rows}
    Ks = sorted(K for s, K in by if s == scheme)
    if not Ks:
        raise ValueError(f"rows: no rows of scheme {scheme!r}")
    return {
        f"{kind}_se{suffix}_gap_{link}": sum(
            by[(optimum, K)][f"{kind}_se_{link}"] - by[(scheme, K)][f"{kind}_se_{link}"] for K in Ks
        )
        / len(Ks)
        for link in ("ul", "dl")
        for kind in ("min", "mean")
    }


def reference_rows(config: EluCosFormerConfig) -> list[dict[str, float]]:
    """Per test K, the positions-only references on the first ``reference_samples`` test setups
    (module docstring): keys K, L and ``size_references``' opt / constant / shadowing_free /
    noisy_site worst-UE and mean SEs."""
    rows = []
    for K in config.test_K:
        scenario = _scenario(config, K).with_(clustering=Clustering(kind="all"))
        if scenario.pilot_model == "per_ap_orthogonal" and K > scenario.tau_p:
            scenario = scenario.with_(pilot_model="book")  # as BookPilotsOverCap scores Optimal CF
        n = min(config.reference_samples, config.test_samples)
        net = sample_networks(scenario, n, seed=_test_seed(config, K))
        refs = size_references(
            scenario,
            _test_seed(config, K),
            net.ue_positions,
            net.ap_positions,
            range(n),
            sigma_ue_m=config.eval_sigma_m,
            noise_seed=stream_seed(config.seed, "elu-cosformer/study-noise"),
        )
        rows.append({"K": K, "L": config.L, **refs})
    return rows


def site_study(config: EluCosFormerConfig, rows: list[dict[str, Any]], trained: set[str]) -> dict[str, Any]:
    """``metrics.study`` of results.json: the deployment, each trained study model's setting and
    gaps to the optimum (``model_gaps``), and the references' gaps (``reference_gaps``) with their
    per-K rows."""
    refs = reference_rows(config)
    return {
        "deployment": config.deployment,
        "deployment_seed": None if config.deployment == "book" else config.deployment_seed,
        "test_sizes": len(config.test_K),
        "optimum": OPTIMUM,
        "models": {
            name: {
                "setting": study_setting(config.deployment, name),
                **model_gaps(rows, scheme),
                # power-only: to the closed-form max-min powers of the model's own clusters
                **model_gaps(rows, scheme, OWN_CLUSTERS_OPTIMUM[name], suffix="_power"),
            }
            for name, scheme in MODEL_SCHEMES.items()
            if name in trained
        },
        "references": reference_gaps(refs),
        "reference_samples": min(config.reference_samples, config.test_samples),
        "reference_rows": refs,
    }
