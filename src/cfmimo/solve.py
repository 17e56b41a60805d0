"""Policy comparison behind ``cfmimo solve max-min``: every classical power policy on the same
instances, scored by one problem (min/mean per-UE SE per link, time per setup, feasibility)."""

from __future__ import annotations

import time
from typing import Any

import torch

from cfmimo.config import Scenario
from cfmimo.policies.classical.power import FractionalPower, FullPower, MaxMinClosedForm, MaxMinFixedPoint
from cfmimo.problems.base import evaluate
from cfmimo.problems.maxmin_power import DLConstraint, MaxMinPower

POLICIES = {
    "closed_form": MaxMinClosedForm(),
    "fixed_point": MaxMinFixedPoint(),
    "full_power": FullPower(),
    "fractional": FractionalPower(),
}


def compare_maxmin_policies(
    scenario: Scenario,
    setups: int,
    *,
    seed: int = 0,
    batch: int = 32,
    dl_constraint: DLConstraint | None = None,
    progress=None,
) -> dict[str, Any]:
    """Sample ``setups`` instances in batches and score each policy on all of them.

    Returns {"scenario", "setups", "statistics_seconds_per_setup", "policies": {name: {"min_se_ul",
    "mean_se_ul", "min_se_dl", "mean_se_dl" (averages over setups of the per-setup min/mean per-UE
    SE), "seconds_per_setup", "feasibility_probability"}}}.
    """
    problem = MaxMinPower(dl_constraint=dl_constraint)
    sums: dict[str, dict[str, float]] = {n: {} for n in POLICIES}
    stats_seconds = 0.0
    for first in range(0, setups, batch):
        size = min(batch, setups - first)
        start = time.perf_counter()
        inst = problem.sample(scenario, size, seed=seed, first_index=first, dtype=torch.float64)
        stats_seconds += time.perf_counter() - start
        for name, policy in POLICIES.items():
            r = evaluate(problem, policy, inst)
            acc = sums[name]
            for key in ("min_se_ul", "mean_se_ul", "min_se_dl", "mean_se_dl"):
                acc[key] = acc.get(key, 0.0) + float(r[key].sum())
            acc["seconds"] = acc.get("seconds", 0.0) + r["seconds"]
            acc["feasible"] = acc.get("feasible", 0.0) + r["feasibility_probability"] * size
        if progress is not None:
            progress(size)
    return {
        "scenario": scenario.model_dump(mode="json"),
        "setups": setups,
        "dl_constraint": problem.dl_constraint
        or ("sum" if scenario.dl_normalization == "per_realization" else "per_ap"),
        "statistics_seconds_per_setup": stats_seconds / setups,
        "policies": {
            name: {
                **{k: v / setups for k, v in acc.items() if k.endswith("_se_ul") or k.endswith("_se_dl")},
                "seconds_per_setup": acc["seconds"] / setups,
                "feasibility_probability": acc["feasible"] / setups,
            }
            for name, acc in sums.items()
        },
    }
