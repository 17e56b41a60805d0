import torch

from cfmimo.config import Clustering, preset
from cfmimo.policies.classical.clustering import ClusteredMaxMin, GivenClustersMaxMin
from cfmimo.problems.base import evaluate
from cfmimo.problems.clustering_power import ClusteringPower


def _instance(K=20):
    sc = preset("elu-cosformer", K=K, realizations=30)
    return ClusteringPower().sample(sc, 3, seed=2, dtype=torch.float64)


def test_baselines_scored_by_one_problem():
    inst = _instance()
    problem = ClusteringPower()
    limited = Clustering(kind="q_strongest", q=8, max_ues_per_ap=10)
    results = {
        name: evaluate(problem, ClusteredMaxMin(rule), inst)
        for name, rule in {
            "optimal_cf": Clustering(kind="all"),
            "q8": Clustering(kind="q_strongest", q=8),
            "q8_limited": limited,
            "book_dcc": Clustering(kind="dcc"),
        }.items()
    }
    # all APs serve all 20 UEs: the tau_p = 10 limit is violated and reported as such
    assert results["optimal_cf"]["feasibility_probability"] == 0.0
    assert bool((results["optimal_cf"]["connections"] == 16 * 20).all())
    assert results["q8_limited"]["feasibility_probability"] == 1.0
    assert int(results["q8_limited"]["ues_per_ap_max"].max()) <= 10
    assert bool((results["q8"]["aps_per_ue"] == 8).all())
    for r in results.values():  # powers are optimal for their clusters: SINRs equalized
        spread = (r["sinr_ul"].amax(-1) - r["sinr_ul"].amin(-1)) / r["sinr_ul"].amin(-1)
        assert spread.max().item() < 1e-8


def test_given_clusters_equal_rule_clusters():
    inst = _instance(K=8)
    rule = ClusteredMaxMin(Clustering(kind="dcc"))
    a = rule(inst)
    b = GivenClustersMaxMin(a.serving.clone())(inst)
    problem = ClusteringPower()
    assert torch.allclose(problem.objective(inst, a), problem.objective(inst, b))


def test_statistics_follow_the_mask():
    inst = _instance(K=6)
    problem = ClusteringPower()
    full = ClusteredMaxMin(Clustering(kind="all"))(inst)
    one = torch.zeros_like(full.serving)
    one[:, 0] = True  # only AP 0 serves, everyone
    alloc = GivenClustersMaxMin(one)(inst)
    m = problem.metrics(inst, alloc)
    assert bool((m["min_se_ul"] < problem.metrics(inst, full)["min_se_ul"]).all())
    assert bool((alloc.info["power_instance"].downlink.ap_power_share[:, 1:] == 0).all())


def test_strongest_per_ap_reference_respects_the_limit_and_serves_everyone() -> None:
    from cfmimo.config import preset
    from cfmimo.policies.classical.clustering import StrongestPerAPMaxMin

    problem = ClusteringPower()
    inst = problem.sample(preset("elu-cosformer", K=14, L=4, realizations=10), 3, seed=2)
    alloc = StrongestPerAPMaxMin()(inst)
    m = problem.metrics(inst, alloc)
    assert int(m["ues_per_ap_max"].max()) <= 10 and int(m["unserved_ues"].sum()) == 0
    assert float(problem.violation(inst, alloc).max()) <= 1e-6
    # every AP serves its strongest UE
    strongest = inst.network.gain_db.argmax(-1)  # [B, L]
    assert bool(alloc.serving.gather(-1, strongest[..., None]).all())


def test_cluster_pilots_match_network_pilots_when_orthogonal() -> None:
    """K <= tau_p: both pilot rules give every UE its own pilot, so the SEs agree; K > tau_p runs."""
    from cfmimo.config import preset
    from cfmimo.policies.classical.clustering import StrongestPerAPMaxMin

    sc = preset("elu-cosformer", K=6, L=4, realizations=20)
    got = {}
    for rule in ("network", "clusters"):
        problem = ClusteringPower(pilots=rule)
        inst = problem.sample(sc, 2, seed=9)
        got[rule] = problem.metrics(inst, StrongestPerAPMaxMin()(inst))["se_ul"]
    torch.testing.assert_close(got["clusters"], got["network"], rtol=1e-4, atol=1e-5)
    problem = ClusteringPower(pilots="clusters")
    inst = problem.sample(preset("elu-cosformer", K=14, L=4, realizations=10), 2, seed=9)
    m = problem.metrics(inst, StrongestPerAPMaxMin()(inst))
    assert bool(torch.isfinite(m["se_ul"]).all()) and bool((m["min_se_ul"] > 0).all())
