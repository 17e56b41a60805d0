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


def sumrate_policies(wmmse_starts: int = 4, wmmse_iterations: int = 500) -> dict[str, Any]:
    """The policies of ``cfmimo solve sum-rate``: WMMSE (the reference) and MRT/ZF/RZF with both scalings."""
    from cfmimo.policies.classical.precoders import MRTPrecoder, RZFPrecoder, ZFPrecoder
    from cfmimo.policies.classical.wmmse import WMMSE

    policies: dict[str, Any] = {"wmmse": WMMSE(random_starts=wmmse_starts, max_iterations=wmmse_iterations)}
    for scaling in ("per_ap", "common"):
        policies[f"rzf_{scaling}"] = RZFPrecoder(scaling)
        policies[f"zf_{scaling}"] = ZFPrecoder(scaling)
        policies[f"mrt_{scaling}"] = MRTPrecoder(scaling)
    return policies


def compare_sumrate_policies(
    scenario: Scenario,
    setups: int,
    *,
    seed: int = 0,
    batch: int = 50,
    wmmse_starts: int = 4,
    wmmse_iterations: int = 500,
    dtype: torch.dtype = torch.float64,
    progress=None,
) -> dict[str, Any]:
    """Score WMMSE and the closed-form precoders on the same ``SumRatePrecoding`` instances.

    Returns {"scenario", "setups", "noise_dbm", "policies": {name: {"sum_rate" (mean over setups,
    bit/s/Hz), "percent_of_wmmse" (ratio of means), "mean_percent_of_wmmse" (mean of per-setup
    ratios), "seconds_per_setup", "feasibility_probability"}}, "wmmse": {"iterations_mean",
    "converged_fraction", "best_start_counts"}}.
    """
    from cfmimo.problems.sumrate_precoding import SumRatePrecoding

    problem = SumRatePrecoding()
    policies = sumrate_policies(wmmse_starts, wmmse_iterations)
    rates: dict[str, list[torch.Tensor]] = {n: [] for n in policies}
    seconds = dict.fromkeys(policies, 0.0)
    feasible = dict.fromkeys(policies, 0.0)
    iterations, converged, best = [], [], []
    for first in range(0, setups, batch):
        size = min(batch, setups - first)
        inst = problem.sample(scenario, size, seed=seed, first_index=first, dtype=dtype)
        for name, policy in policies.items():
            r = evaluate(problem, policy, inst)
            rates[name].append(r["objective"].double().cpu())
            seconds[name] += r["seconds"]
            feasible[name] += r["feasibility_probability"] * size
            if name == "wmmse":
                info = r["allocation"].info
                iterations.append(info["iterations"].double().flatten())
                converged.append(info["converged"].flatten())
                best.append(info["best_start"].flatten())
        if progress is not None:
            progress(size)
    ref = torch.cat(rates["wmmse"])
    out: dict[str, Any] = {}
    for name in policies:
        x = torch.cat(rates[name])
        out[name] = {
            "sum_rate": float(x.mean()),
            "percent_of_wmmse": 100.0 * float(x.mean() / ref.mean()),
            "mean_percent_of_wmmse": 100.0 * float((x / ref).mean()),
            "seconds_per_setup": seconds[name] / setups,
            "feasibility_probability": feasible[name] / setups,
        }
    best_idx = torch.cat(best)
    return {
        "scenario": scenario.model_dump(mode="json"),
        "setups": setups,
        "noise_dbm": scenario.noise_dbm,
        "policies": out,
        "wmmse": {
            "random_starts": wmmse_starts,
            "max_iterations": wmmse_iterations,
            "iterations_mean": float(torch.cat(iterations).mean()),
            "converged_fraction": float(torch.cat(converged).double().mean()),
            "best_start_counts": torch.bincount(best_idx, minlength=1 + wmmse_starts).tolist(),
            "start_names": ["rzf"] + [f"random{s}" for s in range(wmmse_starts)],
        },
    }


# ----------------------------------------------------------------------------- fronthaul-constrained WSR
def wsr_policies() -> dict[str, Any]:
    """The classical policies of ``cfmimo solve wsr`` (egat-fronthaul.md Sect. V-A), by name."""
    from cfmimo.policies.classical.fronthaul import AOSCA, FCZF, PCWMMSE

    return {
        "ao_sca": AOSCA(variant="reweighted"),
        "ao_sca_literal": AOSCA(variant="literal"),
        "pc_wmmse": PCWMMSE(),
        "fc_zf": FCZF(),
    }


def compare_wsr_policies(
    scenario: Scenario,
    setups: int,
    *,
    seed: int = 0,
    batch: int = 16,
    capacity_bps: float | None = None,
    policies: list[str] | None = None,
    progress=None,
) -> dict[str, Any]:
    """Score the fronthaul-WSR policies on the same perfect-CSI instances (float64).

    Each policy's decision is scored as returned; a decision that violates (3b)-(3d) is repaired by the
    problem's projection (Sect. V-A) first, and "feasible_without_repair" is the fraction that needed none
    (for AO-SCA: its thresholded beams before its own repair).

    Returns {"scenario", "setups", "capacity_bps", "policies": {name: {"wsr" (bit/s/Hz), "wsr_mbps",
    "wsr_before_repair", "feasible_without_repair", "aps_per_ue", "seconds_per_setup"}}} with means over
    setups.
    """
    from cfmimo.problems.fronthaul_wsr import FronthaulWSR

    available = wsr_policies()
    names = policies or list(available)
    unknown = [n for n in names if n not in available]
    if unknown:
        raise ValueError(f"unknown policy {unknown[0]!r}; choose from: {', '.join(available)}")
    problem = FronthaulWSR()
    cap = scenario.fronthaul_capacity_bps if capacity_bps is None else capacity_bps
    if cap <= 0:
        raise ValueError(f"capacity_bps must be > 0, got {cap}")
    sums: dict[str, dict[str, float]] = {n: {} for n in names}
    for first in range(0, setups, batch):
        size = min(batch, setups - first)
        inst = problem.sample(scenario, size, seed=seed, first_index=first, dtype=torch.float64)
        inst = inst.with_capacity(cap)
        for name in names:
            start = time.perf_counter()
            alloc = available[name](inst)
            seconds = time.perf_counter() - start
            violation = problem.violation(inst, alloc)
            raw_ok = alloc.info.get("feasible_before_repair", violation <= 1e-6)
            before = alloc.info.get("wsr_before_repair", problem.objective(inst, alloc))
            if "feasible_before_drop" in alloc.info:  # PC-WMMSE: its dropping is its own repair
                raw_ok, before = alloc.info["feasible_before_drop"], alloc.info["wsr_before_drop"]
            if bool((violation > 1e-6).any()):
                alloc = problem.repair(inst, alloc)
            m = problem.metrics(inst, alloc)
            acc = sums[name]
            for key, value in (
                ("wsr", m["wsr"]),
                ("wsr_mbps", m["wsr_mbps"]),
                ("wsr_before_repair", before),
                ("feasible_without_repair", raw_ok.double()),
                ("aps_per_ue", m["mean_aps_per_ue"]),
            ):
                acc[key] = acc.get(key, 0.0) + float(value.sum())
            acc["seconds"] = acc.get("seconds", 0.0) + seconds
        if progress is not None:
            progress(size)
    return {
        "scenario": scenario.model_dump(mode="json"),
        "setups": setups,
        "capacity_bps": cap,
        "policies": {
            name: {
                **{k: v / setups for k, v in acc.items() if k != "seconds"},
                "seconds_per_setup": acc["seconds"] / setups,
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
