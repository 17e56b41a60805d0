"""Every tau_p-respecting policy returns feasible, finite, non-negative allocations on random instances.

Counted over fresh random instances (small sizes so that 10^4 instances per policy take minutes):
  * max-min power (``MaxMinPower``, K = 4, L = 4, N = 2, 8 realizations), half with the papers' sum
    DL constraint and half with the book's per-AP one: ``MaxMinClosedForm``, ``MaxMinFixedPoint``,
    ``FullPower``, ``FractionalPower``;
  * joint clustering (``ClusteringPower``, K = 6 > tau_p = 3, L = 4, so the per-AP limit binds):
    ``StrongestPerAPMaxMin`` and ``ClusterPowerPolicy`` with a small untrained ELU-CosFormer (its own
    powers, and the optimal powers for its clusters). "all" and "q_strongest" ignore the per-AP limit
    and are reported as infeasible by design (``problems/clustering_power.py``); the book's DCC
    (``ClusteredMaxMin(dcc)``: master links plus the strongest UE per pilot at each AP) is not
    tau_p-respecting either: an AP serves a UE it is master of *and* the strongest other UE on that
    UE's pilot (60 of 96 instances exceed tau_p here), as in the book's own code. The slow test
    prints its count for information.

The default test runs 96 instances per policy; the ``slow`` one 10^4 (5 * 2048 = 10,240) and
prints the counts (docs/problems.md quotes them).
"""

from __future__ import annotations

import pytest
import torch

from cfmimo.config import Clustering, preset
from cfmimo.models import build_model
from cfmimo.policies.classical.clustering import ClusteredMaxMin, StrongestPerAPMaxMin
from cfmimo.policies.classical.power import FractionalPower, FullPower, MaxMinClosedForm, MaxMinFixedPoint
from cfmimo.policies.neural import ClusterPowerPolicy
from cfmimo.problems.clustering_power import ClusteringPower
from cfmimo.problems.maxmin_power import MaxMinPower

TOL = 1e-6

POWER_POLICIES = {
    "MaxMinClosedForm": MaxMinClosedForm(),
    "MaxMinFixedPoint": MaxMinFixedPoint(),
    "FullPower": FullPower(),
    "FractionalPower": FractionalPower(),
}


def _cluster_model():
    torch.manual_seed(0)
    from cfmimo.data.transforms import PowerScaler

    model = build_model({"name": "elu_cosformer", "d_mod": 16, "layers": 1, "heads": 2, "num_aps": 4}).eval()
    g = torch.Generator().manual_seed(0)
    scaler = PowerScaler().fit(torch.rand(50, 6, generator=g) * 100, torch.rand(50, 6, generator=g) * 400)
    return model, scaler


def clustering_policies() -> dict:
    model, scaler = _cluster_model()
    return {
        "StrongestPerAPMaxMin": StrongestPerAPMaxMin(),
        "ClusterPowerPolicy": ClusterPowerPolicy(model, scaler),
        "ClusterPowerPolicy(optimal_powers)": ClusterPowerPolicy(model, scaler, optimal_powers=True),
    }


def count_infeasible(problem, policies: dict, scenarios, instances: int, batch: int, seed: int) -> dict:
    """{policy: (infeasible, non-finite or negative, instances)} over ``instances`` fresh instances,
    spread evenly over ``scenarios`` (each batch from its own first_index)."""
    counts = {name: [0, 0, 0] for name in policies}
    for b, start in enumerate(range(0, instances, batch)):
        sc = scenarios[b % len(scenarios)]
        inst = problem.sample(
            sc, min(batch, instances - start), seed=seed, first_index=start, dtype=torch.float64
        )
        for name, policy in policies.items():
            alloc = policy(inst)
            bad = torch.zeros(inst.batch, dtype=torch.bool)
            for value in alloc.decisions().values():
                if value.is_floating_point():
                    bad |= ~torch.isfinite(value).flatten(1).all(-1) | (value < 0).flatten(1).any(-1)
            violation = problem.violation(inst, alloc)
            counts[name][0] += int((violation > TOL).sum())
            counts[name][1] += int(bad.sum())
            counts[name][2] += inst.batch
    return {k: tuple(v) for k, v in counts.items()}


def power_scenarios():
    base = preset("tree-transformer", K=4, L=4, N=2, realizations=8)
    return [base, base.with_(dl_normalization="average")]  # sum and per-AP DL constraints


def clustering_scenarios():
    return [preset("elu-cosformer", K=6, L=4, N=2, tau_p=3, realizations=8)]


def _assert_all_feasible(counts: dict, instances: int) -> None:
    for name, (infeasible, broken, total) in counts.items():
        assert total == instances, name
        assert (infeasible, broken) == (0, 0), (
            f"{name}: {infeasible} infeasible, {broken} non-finite/negative"
        )


def test_power_policies_feasible_quick():
    counts = count_infeasible(MaxMinPower(), POWER_POLICIES, power_scenarios(), 96, 48, seed=11)
    _assert_all_feasible(counts, 96)


def test_clustering_policies_respect_tau_p_quick():
    counts = count_infeasible(
        ClusteringPower(), clustering_policies(), clustering_scenarios(), 96, 48, seed=12
    )
    _assert_all_feasible(counts, 96)


def test_the_check_detects_an_infeasible_policy():
    """The counter is not vacuous: "all APs serve all UEs" breaks the per-AP limit K > tau_p."""
    counts = count_infeasible(
        ClusteringPower(),
        {"all": ClusteredMaxMin(Clustering(kind="all"))},
        clustering_scenarios(),
        8,
        8,
        seed=3,
    )
    assert counts["all"] == (8, 0, 8)


@pytest.mark.slow
def test_feasible_over_ten_thousand_instances():
    n = 10_240
    power = count_infeasible(MaxMinPower(), POWER_POLICIES, power_scenarios(), n, 512, seed=21)
    dcc = {"ClusteredMaxMin(dcc)": ClusteredMaxMin(Clustering(kind="dcc"))}  # for information
    clustering = count_infeasible(
        ClusteringPower(), {**clustering_policies(), **dcc}, clustering_scenarios(), n, 256, seed=22
    )
    for name, (infeasible, broken, total) in {**power, **clustering}.items():
        print(f"{name}: {infeasible} infeasible, {broken} non-finite/negative of {total} instances")
    _assert_all_feasible(power, n)
    _assert_all_feasible({k: v for k, v in clustering.items() if k not in dcc}, n)
