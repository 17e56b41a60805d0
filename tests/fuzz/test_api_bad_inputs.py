"""Bad numbers and mis-shaped decisions through the Python API: NaN/inf/negative/mis-shaped inputs to
the policies, the problems' ``check``/``metrics``/``violation``/``objective``, ``evaluate``,
``networks_from_positions`` and the max-min solvers each end in a ValueError/TypeError naming the
argument or field (never NaN powers, a silent broadcast or an SE of 0 for a NaN power).

Instances are small (K = 3, L = 4, 5 realizations, B = 2, float64) and built once per worker.
"""

from __future__ import annotations

from dataclasses import replace
from functools import cache

import numpy as np
import pytest
import torch
from fuzz_harness import Case, assert_clear


@cache
def _power():
    from cfmimo.config import preset
    from cfmimo.problems.maxmin_power import MaxMinPower

    sc = preset("tree-transformer", K=3, L=4, realizations=5)
    return MaxMinPower().sample(sc, 2, seed=0, dtype=torch.float64)


@cache
def _clustering():
    from cfmimo.config import preset
    from cfmimo.problems.clustering_power import ClusteringPower

    sc = preset("elu-cosformer", K=4, L=4, realizations=5)
    return ClusteringPower().sample(sc, 2, seed=0, dtype=torch.float64)


def _fresh_power():
    """A copy whose tensors can be changed in place (the cached one stays valid)."""
    from cfmimo.problems.maxmin_power import PowerInstance
    from cfmimo.sim.uatf import DownlinkStatistics, UplinkStatistics

    i = _power()
    ul, dl = i.uplink, i.downlink
    return PowerInstance(
        replace(i.network, gain_db=i.network.gain_db.clone(), ue_positions=i.network.ue_positions.clone()),
        UplinkStatistics(ul.signal.clone(), ul.interference.clone(), ul.noise.clone()),
        DownlinkStatistics(dl.signal.clone(), dl.interference.clone(), dl.ap_power_share.clone()),
        i.ul_budget.clone(),
        i.dl_weights.clone(),
        i.dl_budget.clone(),
        i.dl_constraint,
        i.prelog_ul,
        i.prelog_dl,
    )


def _alloc(**fields):
    from cfmimo.problems.base import Allocation

    i = _power()
    base = {"p_ul": i.ul_budget.clone(), "p_dl": torch.full_like(i.ul_budget, 10.0)}
    return Allocation(**{**base, **fields})


def _nan_at(t: torch.Tensor, value: float = float("nan")) -> torch.Tensor:
    t = t.clone()
    t[tuple(int(i) for i in np.unravel_index(min(1, t.numel() - 1), t.shape))] = value  # one entry
    return t


def _problem():
    from cfmimo.problems.maxmin_power import MaxMinPower

    return MaxMinPower()


# ---- instance fields (validated at construction, again by every policy)


def _replace_stat(link: str, field: str, value: float):
    def call(folder):
        from cfmimo.sim.uatf import DownlinkStatistics, UplinkStatistics

        i = _power()
        stats = getattr(i, link)
        kind = UplinkStatistics if link == "uplink" else DownlinkStatistics
        new = kind(**{**stats.__dict__, field: _nan_at(getattr(stats, field), value)})
        replace(i, **{link: new})

    return call


def _replace_field(field: str, value: float):
    return lambda folder: replace(_power(), **{field: _nan_at(getattr(_power(), field), value)})


def _mutated_policy(policy_name: str, field: str, value: float = float("nan"), **params):
    """Change a validated instance in place, then run a policy on it."""

    def call(folder):
        from cfmimo.policies.classical import power

        inst = _fresh_power()
        *parents, name = field.split(".")
        target = inst
        for part in parents:
            target = getattr(target, part)
        tensor = getattr(target, name)
        tensor[(0,) * tensor.dim()] = value
        getattr(power, policy_name)(**params)(inst)

    return call


def _make(name: str, *args, call_with=None, **params):
    """Construct ``cfmimo.policies.classical.power.<name>(**params)`` (and call it on ``call_with``)."""

    def call(folder):
        from cfmimo.policies.classical import power

        policy = getattr(power, name)(*args, **params)
        if call_with is not None:
            policy(call_with)

    return call


def _metrics(method: str = "metrics", **fields):
    def call(folder):
        getattr(_problem(), method)(_power(), _alloc(**{k: v() for k, v in fields.items()}))

    return call


def _nfp(ap=None, ue=None, indices=range(1)):
    def call(folder):
        from cfmimo.config import preset
        from cfmimo.sim.network import networks_from_positions

        sc = preset("tree-transformer", K=2, L=2)
        a = torch.tensor([[[100.0, 100.0], [300.0, 300.0]]]) if ap is None else ap()
        u = torch.tensor([[[10.0, 20.0], [250.0, 300.0]]]) if ue is None else ue()
        networks_from_positions(sc, a, u, seed=0, indices=indices)

    return call


def _clustering_metrics(method: str = "metrics", serving=None, p_ul=None):
    def call(folder):
        from cfmimo.problems.base import Allocation
        from cfmimo.problems.clustering_power import ClusteringPower

        inst = _clustering()
        net = inst.network
        alloc = Allocation(
            serving=net.serving.clone() if serving is None else serving(net.serving),
            p_ul=torch.ones(net.batch, net.pilot.shape[1], dtype=torch.float64) if p_ul is None else p_ul(),
            p_dl=torch.ones(net.batch, net.pilot.shape[1], dtype=torch.float64),
        )
        getattr(ClusteringPower(), method)(inst, alloc)

    return call


def _evaluate(policy=None, tol=1e-6, problem=None):
    def call(folder):
        from cfmimo.policies.classical.power import FullPower
        from cfmimo.problems.base import evaluate

        evaluate(_problem() if problem is None else problem, policy or FullPower(), _power(), tol=tol)

    return call


class _NaNModel(torch.nn.Module):
    """A position model whose output is NaN (a broken checkpoint, an overflow)."""

    def forward(self, ue, ap):
        return torch.full((*ue.shape[:2], 2), float("nan"))


def _scaler():
    from cfmimo.data.transforms import PowerScaler

    g = torch.Generator().manual_seed(0)
    return PowerScaler().fit(torch.rand(20, 3, generator=g) * 100, torch.rand(20, 3, generator=g) * 500)


def _neural(**params):
    def call(folder):
        from cfmimo.models import build_model
        from cfmimo.policies.neural import PositionPowerPolicy

        model = params.pop("model", None) or build_model({"name": "deepsets"})
        PositionPowerPolicy(model, params.pop("scaler", None) or _scaler(), **params)(_power())

    return call


def _solver(name: str, broken: str):
    def call(folder):
        from cfmimo.policies.classical import maxmin

        inst = _power()
        prob = maxmin.uplink_affine(inst.uplink)
        K = inst.ul_budget.shape[1]
        A = torch.eye(K, dtype=torch.float64).expand(2, K, K).clone()
        budget = inst.ul_budget.clone()
        if broken == "budget":
            budget[0, 0] = float("nan")
        elif broken == "A":
            A[1, 0, 0] = float("inf")
        elif broken == "u":
            prob = maxmin.AffineSINR(prob.T, _nan_at(prob.u), prob.active)
        getattr(maxmin, name)(prob, A, budget)

    return call


def _cluster_policy(name: str, **params):
    def call(folder):
        from cfmimo.policies.classical import clustering

        getattr(clustering, name)(**params)(_clustering())

    return call


def _given_clusters(make):
    def call(folder):
        from cfmimo.policies.classical.clustering import GivenClustersMaxMin

        GivenClustersMaxMin(make(_clustering().network.serving))(_clustering())

    return call


def _clustering_state_nan(folder):
    from cfmimo.problems.clustering_power import ClusteringInstance

    inst = _clustering()
    state = replace(inst.state, h=_nan_at(inst.state.h, complex(float("nan"), 0.0)))
    ClusteringInstance(inst.network, state, inst.max_ues_per_ap)


def _cluster_power_policy(**params):
    def call(folder):
        from cfmimo.models import build_model
        from cfmimo.policies.neural import ClusterPowerPolicy

        ClusterPowerPolicy(build_model({"name": "deepsets"}), _scaler(), **params)

    return call


def _predict_powers_nan(folder):
    from cfmimo.models import build_model
    from cfmimo.policies.neural import predict_powers

    ue = torch.tensor([[[10.0, float("nan")], [250.0, 300.0]]])
    ap = torch.tensor([[[100.0, 100.0], [300.0, 300.0]]])
    predict_powers(build_model({"name": "deepsets"}), _scaler(), ue, ap, 800.0, (0,))


def _predict_setup(ue):
    def call(folder):
        import numpy as np

        from cfmimo.config import preset
        from cfmimo.models import build_model
        from cfmimo.predict import predict_setup

        predict_setup(
            build_model({"name": "deepsets"}),
            _scaler(),
            np.array(ue),
            np.array([[100.0, 100.0], [300.0, 300.0]]),
            preset("tree-transformer", realizations=5),
        )

    return call


NAN, INF = float("nan"), float("inf")

CASES = [
    # instance construction: statistics and budgets
    Case("instance-nan-ul-signal", names=("uplink.signal",), call=_replace_stat("uplink", "signal", NAN)),
    Case(
        "instance-inf-ul-interference",
        names=("uplink.interference",),
        call=_replace_stat("uplink", "interference", INF),
    ),
    Case("instance-negative-ul-noise", names=("uplink.noise",), call=_replace_stat("uplink", "noise", -1.0)),
    Case("instance-nan-dl-signal", names=("downlink.signal",), call=_replace_stat("downlink", "signal", NAN)),
    Case(
        "instance-neg-dl-interference",
        names=("downlink.interference",),
        call=_replace_stat("downlink", "interference", -5.0),
    ),
    Case(
        "instance-nan-ap-share",
        names=("ap_power_share",),
        call=_replace_stat("downlink", "ap_power_share", NAN),
    ),
    Case("instance-nan-ul-budget", names=("ul_budget",), call=_replace_field("ul_budget", NAN)),
    Case("instance-zero-ul-budget", names=("ul_budget",), call=_replace_field("ul_budget", 0.0)),
    Case("instance-inf-dl-budget", names=("dl_budget",), call=_replace_field("dl_budget", INF)),
    Case("instance-negative-dl-budget", names=("dl_budget",), call=_replace_field("dl_budget", -800.0)),
    Case("instance-nan-dl-weights", names=("dl_weights",), call=_replace_field("dl_weights", NAN)),
    Case(
        "instance-float32-budget",
        names=("ul_budget",),
        call=lambda f: replace(_power(), ul_budget=_power().ul_budget.float()),
    ),
    Case("instance-prelog-above-one", names=("prelog_ul",), call=lambda f: replace(_power(), prelog_ul=2.0)),
    Case("instance-prelog-nan", names=("prelog_dl",), call=lambda f: replace(_power(), prelog_dl=NAN)),
    Case(
        "instance-wrong-noise-shape",
        names=("uplink.noise",),
        call=lambda f: replace(_power(), uplink=replace(_power().uplink, noise=_power().uplink.noise[:, :2])),
    ),
    Case(
        "instance-nan-gain",
        names=("gain_db",),
        call=lambda f: replace(
            _power(), network=replace(_power().network, gain_db=_nan_at(_power().network.gain_db))
        ),
    ),
    # policies on instances changed in place after validation, and bad policy parameters
    Case(
        "closed-form-mutated-nan-budget",
        names=("ul_budget",),
        call=_mutated_policy("MaxMinClosedForm", "ul_budget"),
    ),
    Case(
        "fixed-point-mutated-inf-signal",
        names=("uplink.signal",),
        call=_mutated_policy("MaxMinFixedPoint", "uplink.signal", INF),
    ),
    Case(
        "full-power-mutated-nan-dl-weights",
        names=("dl_weights",),
        call=_mutated_policy("FullPower", "dl_weights"),
    ),
    Case(
        "fractional-mutated-nan-gain",
        names=("gain_db",),
        call=_mutated_policy("FractionalPower", "network.gain_db"),
    ),
    Case(
        "fractional-mutated-nan-position",
        names=("ue_positions",),
        call=_mutated_policy("FractionalPower", "network.ue_positions"),
    ),
    Case(
        "closed-form-mutated-negative-noise",
        names=("uplink.noise",),
        call=_mutated_policy("MaxMinClosedForm", "uplink.noise", -1.0),
    ),
    Case("closed-form-rtol-inf", names=("rtol",), call=_make("MaxMinClosedForm", rtol=INF)),
    Case(
        "fixed-point-tolerance-negative",
        names=("tolerance",),
        call=_make("MaxMinFixedPoint", tolerance=-0.01),
    ),
    Case("fixed-point-max-iter-zero", names=("max_iter",), call=_make("MaxMinFixedPoint", max_iter=0)),
    Case("fractional-nu-nan", names=("nu_ul",), call=_make("FractionalPower", nu_ul=NAN)),
    Case(
        "closed-form-not-an-instance",
        names=("PowerInstance",),
        call=_make("MaxMinClosedForm", call_with={"K": 3}),
    ),
    # decisions: metrics / violation / objective / check
    Case("metrics-nan-p-ul", names=("p_ul",), call=_metrics(p_ul=lambda: _nan_at(_power().ul_budget))),
    Case("metrics-inf-p-dl", names=("p_dl",), call=_metrics(p_dl=lambda: _nan_at(_power().ul_budget, INF))),
    Case("metrics-negative-p-ul", names=("p_ul",), call=_metrics(p_ul=lambda: -_power().ul_budget)),
    Case("metrics-broadcast-k-vector", names=("p_ul",), call=_metrics(p_ul=lambda: _power().ul_budget[0])),
    Case(
        "metrics-float32-on-float64", names=("p_ul",), call=_metrics(p_ul=lambda: _power().ul_budget.float())
    ),
    Case("metrics-wrong-batch", names=("p_dl",), call=_metrics(p_dl=lambda: _power().ul_budget[:1])),
    Case("metrics-wrong-k", names=("p_ul",), call=_metrics(p_ul=lambda: _power().ul_budget[:, :2])),
    Case(
        "metrics-complex-power",
        names=("p_ul",),
        call=_metrics(p_ul=lambda: _power().ul_budget.to(torch.complex128)),
    ),
    Case("metrics-list-power", names=("p_ul",), call=_metrics(p_ul=lambda: [1.0, 2.0, 3.0])),
    Case(
        "violation-nan-p-dl",
        names=("p_dl",),
        call=_metrics("violation", p_dl=lambda: _nan_at(_power().ul_budget)),
    ),
    Case(
        "violation-wrong-batch",
        names=("p_ul",),
        call=_metrics("violation", p_ul=lambda: _power().ul_budget.repeat(2, 1)),
    ),
    Case(
        "violation-float32-on-float64",
        names=("p_dl",),
        call=_metrics("violation", p_dl=lambda: _power().ul_budget.float()),
    ),
    Case(
        "objective-extra-dim",
        names=("p_ul",),
        call=_metrics("objective", p_ul=lambda: _power().ul_budget[..., None]),
    ),
    Case("check-missing-p-dl", names=("p_dl",), call=_metrics("check", p_dl=lambda: None)),
    Case(
        "check-not-an-allocation",
        names=("Allocation",),
        call=lambda f: _problem().check(_power(), {"p_ul": 1}),
    ),
    Case(
        "clustering-metrics-float-serving",
        names=("serving",),
        call=_clustering_metrics(serving=lambda s: s.double()),
    ),
    Case(
        "clustering-violation-wrong-serving",
        names=("serving",),
        call=_clustering_metrics("violation", serving=lambda s: s[:, :2]),
    ),
    Case(
        "clustering-check-nan-p-ul",
        names=("p_ul",),
        call=_clustering_metrics("check", p_ul=lambda: torch.full((2, 4), NAN, dtype=torch.float64)),
    ),
    Case(
        "clustering-metrics-float32-p-ul",
        names=("p_ul",),
        call=_clustering_metrics(p_ul=lambda: torch.ones(2, 4)),
    ),
    # evaluate
    Case(
        "evaluate-nan-policy",
        names=("p_ul",),
        call=_evaluate(policy=lambda i: _alloc(p_ul=_nan_at(i.ul_budget))),
    ),
    Case(
        "evaluate-broadcast-policy",
        names=("p_dl",),
        call=_evaluate(policy=lambda i: _alloc(p_dl=i.ul_budget[0])),
    ),
    Case("evaluate-tol-nan", names=("tol must",), call=_evaluate(tol=NAN)),
    Case("evaluate-not-a-problem", names=("problem",), call=_evaluate(problem="max-min")),
    # networks_from_positions
    Case(
        "positions-nan-ap",
        names=("ap positions",),
        call=_nfp(ap=lambda: torch.tensor([[[NAN, 100.0], [300.0, 300.0]]])),
    ),
    Case(
        "positions-inf-ue",
        names=("ue positions",),
        call=_nfp(ue=lambda: torch.tensor([[[10.0, INF], [250.0, 300.0]]])),
    ),
    Case(
        "positions-far-ue",
        names=("ue positions",),
        call=_nfp(ue=lambda: torch.tensor([[[10.0, 20.0], [2.5e5, 300.0]]])),
    ),
    Case(
        "positions-far-negative-ap",
        names=("ap positions",),
        call=_nfp(ap=lambda: torch.tensor([[[-1e4, 100.0], [300.0, 300.0]]])),
    ),
    Case("positions-three-coords", names=("positions",), call=_nfp(ue=lambda: torch.zeros(1, 2, 3))),
    Case(
        "positions-integer",
        names=("ue positions",),
        call=_nfp(ue=lambda: torch.tensor([[[10, 20], [250, 300]]])),
    ),
    Case("positions-batch-mismatch", names=("positions",), call=_nfp(ue=lambda: torch.zeros(2, 2, 2))),
    Case("positions-indices-mismatch", names=("indices",), call=_nfp(indices=range(3))),
    # max-min solvers
    Case(
        "closed-form-solver-nan-budget",
        names=("budget has non-finite",),
        call=_solver("maxmin_closed_form", "budget"),
    ),
    Case("fixed-point-solver-inf-a", names=("A has non-finite",), call=_solver("maxmin_fixed_point", "A")),
    Case("closed-form-solver-nan-u", names=("problem.u",), call=_solver("maxmin_closed_form", "u")),
    # clustering policies and instances
    Case("clustered-rtol-zero", names=("rtol",), call=lambda f: _clustered_rtol_zero()),
    Case(
        "strongest-max-ues-zero", names=("max_ues",), call=_cluster_policy("StrongestPerAPMaxMin", max_ues=0)
    ),
    Case("given-clusters-wrong-shape", names=("serving",), call=_given_clusters(lambda s: s[:, :, :2])),
    Case("given-clusters-values-two", names=("serving",), call=_given_clusters(lambda s: s.long() * 2)),
    Case("given-clusters-not-a-tensor", names=("serving",), call=lambda f: _given_not_tensor()),
    Case("clustering-instance-nan-h", names=("state.h",), call=_clustering_state_nan),
    Case(
        "clustering-policy-on-power-instance",
        names=("ClusteringInstance",),
        call=lambda f: _cluster_on_power(),
    ),
    # neural policies
    Case("neural-nan-model-output", names=("model output",), call=_neural(model=_NaNModel())),
    Case("neural-negative-sigma", names=("sigma_ue_m",), call=_neural(sigma_ue_m=-1.0)),
    Case("neural-scaler-dict", names=("scaler",), call=_neural(scaler={"ul_min": 0})),
    Case("neural-on-clustering-instance", names=("PowerInstance",), call=lambda f: _neural_on_clustering()),
    Case("cluster-policy-threshold", names=("threshold",), call=_cluster_power_policy(threshold=1.5)),
    Case("cluster-policy-tau-p-zero", names=("tau_p",), call=_cluster_power_policy(tau_p=0)),
    Case("predict-powers-nan-ue", names=("ue has",), call=_predict_powers_nan),
    Case("predict-setup-far-ue", names=("ue positions",), call=_predict_setup([[10.0, 20.0], [1e6, 0.0]])),
    Case("predict-setup-nan-ue", names=("ue positions",), call=_predict_setup([[10.0, NAN]])),
]


def _clustered_rtol_zero():
    from cfmimo.config import Clustering
    from cfmimo.policies.classical.clustering import ClusteredMaxMin

    ClusteredMaxMin(Clustering(kind="all"), rtol=0.0)


def _given_not_tensor():
    from cfmimo.policies.classical.clustering import GivenClustersMaxMin

    GivenClustersMaxMin([[1, 0]])


def _cluster_on_power():
    from cfmimo.policies.classical.clustering import StrongestPerAPMaxMin

    StrongestPerAPMaxMin()(_power())


def _neural_on_clustering():
    from cfmimo.models import build_model
    from cfmimo.policies.neural import PositionPowerPolicy

    PositionPowerPolicy(build_model({"name": "deepsets"}), _scaler())(_clustering())


@pytest.mark.parametrize("case_id", [c.id for c in CASES])
def test_bad_input_is_a_clear_error(fuzz_results, case_id):
    assert_clear(fuzz_results, case_id)


def test_enough_distinct_cases():
    assert len({c.id for c in CASES}) == len(CASES) >= 55
