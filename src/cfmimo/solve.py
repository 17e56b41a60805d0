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


# ---------------------------------------------------------------------------------------------- energy efficiency
def ee_policies() -> dict[str, Any]:
    """The classical EE policies behind ``cfmimo solve ee`` (policies.classical.energy)."""
    from cfmimo.policies.classical.energy import SCA, EqualPower, MultiStart, RandomPower, SCADinkelbach

    return {
        "equal": EqualPower(),
        "random": RandomPower(),
        "sca": SCA(),
        "sca_cvxpy": SCA(inner="cvxpy"),
        "sca_best_of_8": SCA(restarts=8, one_ue_starts=True),
        "multistart": MultiStart(),
        "dinkelbach": SCADinkelbach(),
    }


DEFAULT_EE_POLICIES = ("equal", "random", "sca", "dinkelbach", "multistart")


def compare_ee_policies(
    scenario: Scenario,
    setups: int,
    *,
    seed: int = 0,
    batch: int = 100,
    policies: tuple[str, ...] = DEFAULT_EE_POLICIES,
    progress=None,
) -> dict[str, Any]:
    """Score EE policies on the same ``setups`` instances (float64), in batches.

    Returns {"scenario", "setups", "units", "policies": {name: {"ee_sum" (eq. (1)), "ee_global",
    "active_ues", "total_power_w", "rate_sum" (means over setups), "seconds_per_setup",
    "feasibility_probability"}}}. Dinkelbach maximizes the global EE; the others eq. (1).
    """
    from cfmimo.problems.energy_efficiency import EnergyEfficiency

    available = ee_policies()
    unknown = [p for p in policies if p not in available]
    if unknown:
        raise ValueError(f"unknown EE policies {unknown}; choose from {sorted(available)}")
    problem = EnergyEfficiency()
    keys = ("ee_sum", "ee_global", "active_ues", "total_power_w")
    sums: dict[str, dict[str, float]] = {n: {} for n in policies}
    for first in range(0, setups, batch):
        size = min(batch, setups - first)
        inst = problem.sample(scenario, size, seed=seed, first_index=first, dtype=torch.float64)
        for name in policies:
            r = evaluate(problem, available[name], inst)
            acc = sums[name]
            for key in keys:
                acc[key] = acc.get(key, 0.0) + float(r[key].double().sum())
            acc["rate_sum"] = acc.get("rate_sum", 0.0) + float(r["rate"].sum())
            acc["seconds"] = acc.get("seconds", 0.0) + r["seconds"]
            acc["feasible"] = acc.get("feasible", 0.0) + r["feasibility_probability"] * size
        if progress is not None:
            progress(size)
    return {
        "scenario": scenario.model_dump(mode="json"),
        "setups": setups,
        "units": {"ee": "Mbit/J", "rate_sum": "Mbit/s", "power": "W"},
        "policies": {
            name: {
                **{k: acc[k] / setups for k in (*keys, "rate_sum")},
                "seconds_per_setup": acc["seconds"] / setups,
                "feasibility_probability": acc["feasible"] / setups,
            }
            for name, acc in sums.items()
        },
    }
