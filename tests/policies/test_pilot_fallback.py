"""Over-cap references under pilot_model 'per_ap_orthogonal' scored with the book's estimator
(``BookPilotsOverCap``; docs/physics.md, the elu-cosformer reproduction's CF and DCC)."""

from __future__ import annotations

import pytest
import torch

from cfmimo.config import Clustering, preset
from cfmimo.policies.classical.clustering import (
    BookPilotsOverCap,
    ClusteredMaxMin,
    book_pilots_over_cap,
)
from cfmimo.problems.clustering_power import ClusteringInstance, ClusteringPower
from cfmimo.sim.network import estimate


def small(**overrides):
    """L = 4 APs, N = 2, 150 m square, tau_p = 3 (the per_ap_orthogonal tests' network)."""
    fields = dict(L=4, K=6, N=2, tau_p=3, tau_u=97, area_side_m=150.0, realizations=6)
    return preset("tree-transformer", **{**fields, **overrides})


def _se(prob, inst, alloc):
    m = prob.metrics(inst, alloc)
    return torch.stack([m["se_ul"], m["se_dl"]])  # [2, B, K]


def _book_reference(inst: ClusteringInstance) -> ClusteringInstance:
    """The same setups, realizations and first tau_p noise columns under the book's estimator."""
    net = inst.network
    book_net = type(net)(**{**net.__dict__, "scenario": net.scenario.with_(pilot_model="book")})
    tau_p = net.scenario.tau_p
    state = estimate(book_net, inst.state.h, inst.state.pilot_noise[..., :tau_p, :].contiguous())
    return ClusteringInstance(book_net, state, inst.max_ues_per_ap)


def test_over_cap_setups_get_the_book_estimator_and_the_others_keep_eq2():
    # Q = 1 strongest AP per UE: an AP is over the cap (3) in some setups only (K = 6, L = 4)
    sc = small(pilot_model="per_ap_orthogonal")
    prob, rule, B = ClusteringPower(), Clustering(kind="q_strongest", q=1), 8
    inst = prob.sample(sc, B, seed=11, dtype=torch.float64)
    alloc = BookPilotsOverCap(rule)(inst)
    over = alloc.info["book_pilots"]
    assert 0 < int(over.sum()) < B  # the batch mixes both kinds of setups
    assert torch.equal(over, (alloc.serving.sum(-1) > sc.tau_p).any(-1))
    got = _se(prob, inst, alloc)
    # the reference: every setup alone (a sample depends only on its seed and index), scored with
    # eq. (2) when within the cap and with the book's estimator otherwise
    for b in range(B):
        one = prob.sample(sc, 1, seed=11, first_index=b, dtype=torch.float64)
        if bool(over[b]):
            with pytest.raises(ValueError, match="pilot_model"):
                ClusteredMaxMin(rule)(one)
            one = _book_reference(one)
        ref = _se(prob, one, ClusteredMaxMin(rule)(one))[:, 0]
        torch.testing.assert_close(got[:, b], ref, rtol=1e-9, atol=1e-12)


def test_book_estimator_is_worse_than_eq2_on_over_cap_setups():
    # all APs serve all K = 6 > tau_p = 3 UEs: contamination only costs under the book's estimator,
    # so the fallback must not be silently eq. (2) (which would overstate Optimal CF)
    sc = small(pilot_model="per_ap_orthogonal")
    prob = ClusteringPower()
    inst = prob.sample(sc, 4, seed=3, dtype=torch.float64)
    alloc = BookPilotsOverCap(Clustering(kind="all"))(inst)
    assert bool(alloc.info["book_pilots"].all())
    scored, _ = book_pilots_over_cap(inst, alloc.serving)
    own = scored.state.estimate_cov.diagonal(dim1=-2, dim2=-1).real.sum(-1)  # tr B_lk [B, L, K]
    eq2 = inst.state.estimate_cov.diagonal(dim1=-2, dim2=-1).real.sum(-1)
    assert bool((own <= eq2 * (1 + 1e-12)).all()) and bool((own < eq2 * (1 - 1e-3)).any())


@pytest.mark.parametrize("kind", ["all", "q_strongest"])
def test_book_pilot_model_and_within_cap_are_plain_clustered_maxmin(kind):
    prob = ClusteringPower()
    rule = Clustering(kind=kind, q=2) if kind == "q_strongest" else Clustering(kind=kind)
    for sc in (small(), small(K=3, pilot_model="per_ap_orthogonal")):  # book; K <= tau_p: never over
        inst = prob.sample(sc, 3, seed=5, dtype=torch.float64)
        alloc = BookPilotsOverCap(rule)(inst)
        assert not bool(alloc.info["book_pilots"].any())
        assert torch.equal(_se(prob, inst, alloc), _se(prob, inst, ClusteredMaxMin(rule)(inst)))


def test_bad_rule_is_a_type_error_naming_it():
    with pytest.raises(TypeError, match=r"BookPilotsOverCap\.rule"):
        BookPilotsOverCap("all")  # type: ignore[arg-type]
