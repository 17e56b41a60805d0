"""Clustering baselines for ``ClusteringPower``, each followed by the exact max-min powers.

The elu-cosformer paper's baselines (Sect. VI):
  * ``ClusteredMaxMin(Clustering(kind="all"))``: "Optimal CF", every AP serves every UE;
  * ``ClusteredMaxMin(Clustering(kind="q_strongest", q=8))``: its "DCC", Q = 8 strongest APs;
  * ``ClusteredMaxMin(Clustering(kind="dcc"))``: the book's DCC (master AP + strongest per pilot);
  * ``GivenClustersMaxMin(masks)``: given clusters (e.g. a model's) with optimal powers,
    its "Optimal UC-CF";
  * ``StrongestPerAPMaxMin()``: each AP serves its tau_p strongest UEs (a reference for what a
    mask head that ranks UEs by their gains would achieve).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cfmimo.config import Clustering
from cfmimo.policies.classical.power import MaxMinClosedForm, check_number
from cfmimo.problems.base import Allocation
from cfmimo.problems.clustering_power import ClusteringInstance
from cfmimo.sim.clustering import serving_mask


def checked_clustering_instance(instance: object, policy: str) -> ClusteringInstance:
    """``instance`` if it is a valid ClusteringInstance (re-validated); TypeError/ValueError naming
    the policy and the field otherwise."""
    if not isinstance(instance, ClusteringInstance):
        raise TypeError(f"{policy} needs a ClusteringInstance, got {type(instance).__name__}")
    try:
        instance.validate()
    except ValueError as err:
        raise ValueError(f"{policy}: invalid instance: {err}") from None
    return instance


def check_serving(serving: object, instance: ClusteringInstance, name: str = "serving") -> torch.Tensor:
    """A [B, L, K] cluster mask for ``instance`` (bool, or 0/1 numbers), as bool; else ValueError/TypeError."""
    if not isinstance(serving, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor [B, L, K], got {type(serving).__name__}")
    shape = tuple(instance.network.gain_db.shape)
    if tuple(serving.shape) != shape:
        raise ValueError(f"{name} must have shape {list(shape)} [B, L, K], got {list(serving.shape)}")
    if serving.dtype != torch.bool:
        if serving.is_complex() or not bool(((serving == 0) | (serving == 1)).all()):
            raise ValueError(f"{name} must be a bool mask (or hold only 0 and 1), got dtype {serving.dtype}")
        serving = serving.to(torch.bool)
    return serving


def _with_powers(instance: ClusteringInstance, serving: torch.Tensor, rtol: float) -> Allocation:
    pinst = instance.for_clusters(serving)
    powers = MaxMinClosedForm(rtol=rtol)(pinst)
    return Allocation(
        serving=pinst.network.serving,
        p_ul=powers.p_ul,
        p_dl=powers.p_dl,
        info={**powers.info, "power_instance": pinst},
    )


@dataclass(frozen=True)
class ClusteredMaxMin:
    """A clustering rule from the instance's gains, then closed-form max-min powers."""

    rule: Clustering
    rtol: float = 1e-12

    def __post_init__(self) -> None:
        if not isinstance(self.rule, Clustering):
            raise TypeError(f"ClusteredMaxMin.rule must be a Clustering, got {type(self.rule).__name__}")
        check_number("ClusteredMaxMin", "rtol", self.rtol, low=0.0, positive=True)

    def __call__(self, instance: ClusteringInstance) -> Allocation:
        instance = checked_clustering_instance(instance, "ClusteredMaxMin")
        net = instance.network
        serving = serving_mask(
            self.rule, net.gain_db, net.distance_2d, net.pilot, net.master, net.scenario.tau_p
        )
        return _with_powers(instance, serving, self.rtol)


@dataclass(frozen=True)
class GivenClustersMaxMin:
    """Closed-form max-min powers for given clusters [B, L, K] (e.g. predicted by a model)."""

    serving: torch.Tensor
    rtol: float = 1e-12

    def __post_init__(self) -> None:
        if not isinstance(self.serving, torch.Tensor) or self.serving.dim() != 3:
            got = tuple(self.serving.shape) if isinstance(self.serving, torch.Tensor) else type(self.serving)
            raise ValueError(f"GivenClustersMaxMin.serving must be a [B, L, K] mask, got {got}")
        check_number("GivenClustersMaxMin", "rtol", self.rtol, low=0.0, positive=True)

    def __call__(self, instance: ClusteringInstance) -> Allocation:
        instance = checked_clustering_instance(instance, "GivenClustersMaxMin")
        return _with_powers(
            instance, check_serving(self.serving, instance, "GivenClustersMaxMin.serving"), self.rtol
        )


@dataclass(frozen=True)
class StrongestPerAPMaxMin:
    """Each AP serves its ``max_ues`` strongest UEs (by gain), every UE kept served (the repair of
    ``cluster_mask``), then closed-form max-min powers: the user-centric clustering that a mask head
    ranking UEs by their gains would produce under the elu-cosformer per-AP limit (eq. (16) with
    scores monotone in the gains and no threshold). A reference for learned clusters.
    ``max_ues=None`` takes the instance's limit (tau_p)."""

    max_ues: int | None = None
    rtol: float = 1e-12

    def __post_init__(self) -> None:
        bad = isinstance(self.max_ues, bool) or not isinstance(self.max_ues, int) or self.max_ues < 1
        if self.max_ues is not None and bad:
            raise ValueError(
                f"StrongestPerAPMaxMin.max_ues must be an int >= 1 or None, got {self.max_ues!r}"
            )
        check_number("StrongestPerAPMaxMin", "rtol", self.rtol, low=0.0, positive=True)

    def __call__(self, instance: ClusteringInstance) -> Allocation:
        instance = checked_clustering_instance(instance, "StrongestPerAPMaxMin")
        from cfmimo.models.cluster_models import cluster_mask  # models import sim; avoid a cycle

        gain = instance.network.gain_db
        scores = torch.sigmoid((gain - gain.mean(dim=(1, 2), keepdim=True)) / 10.0)  # monotone, in (0, 1)
        serving = cluster_mask(scores, self.max_ues or instance.max_ues_per_ap, threshold=0.0)
        return _with_powers(instance, serving, self.rtol)


def book_pilots_over_cap(
    instance: ClusteringInstance, serving: torch.Tensor
) -> tuple[ClusteringInstance, torch.Tensor]:
    """``instance`` with the book's estimator on the setups whose clusters break the tau_p cap.

    Under ``pilot_model: per_ap_orthogonal`` (the elu-cosformer paper's eq. (2)) a clustering with
    more than tau_p UEs at an AP has no orthogonal pilots to give them and is a ValueError
    (docs/physics.md). References that ignore the cap (its "Optimal CF" at K > tau_p, its Q-strongest
    "DCC" wherever an AP collects more than tau_p UEs) are scored here with the book's estimator
    instead, on exactly those setups: the network's Algorithm 4.1 pilots (computed under both pilot
    models), the same realizations h and the first tau_p pilot-noise columns (i.i.d. columns, so
    the book's estimator in law). Setups within the cap keep their eq. (2) estimates. The returned
    network carries ``pilot_model: book`` so the statistics accept the clusters; only the estimates
    (h_hat, B, C: all the UatF statistics read) differ per setup.

    Shapes:
        serving [B, L, K] bool -> (instance, over [B] bool: the setups moved to the book's estimator).
        Under pilot_model "book" (over all False), or with no setup over the cap, ``instance`` itself
        is returned.
    """
    net, state = instance.network, instance.state
    tau_p = net.scenario.tau_p
    over = (serving.to(torch.int64).sum(-1) > tau_p).any(-1)  # [B]
    if net.scenario.pilot_model != "per_ap_orthogonal":
        return instance, torch.zeros_like(over)  # already the book's estimator: nothing falls back
    if not bool(over.any()):
        return instance, over
    if state.pilot_noise is None:
        raise ValueError("state.pilot_noise is None: the book's estimates of over-cap setups need it")
    from dataclasses import replace

    from cfmimo.sim.network import ChannelState, estimate

    book_net = replace(net, scenario=net.scenario.with_(pilot_model="book"))
    book = estimate(book_net, state.h, state.pilot_noise[..., :tau_p, :].contiguous())
    pick = over.view(-1, 1, 1, 1, 1)  # broadcasts over [B, T, L, K, N] and [B, L, K, N, N]
    mixed = ChannelState(
        h=state.h,
        h_hat=torch.where(pick.to(state.h_hat.device), book.h_hat, state.h_hat),
        estimate_cov=torch.where(pick, book.estimate_cov, state.estimate_cov),
        error_cov=torch.where(pick, book.error_cov, state.error_cov),
        pilot_noise=state.pilot_noise,
    )
    return replace(instance, network=book_net, state=mixed), over


@dataclass(frozen=True)
class BookPilotsOverCap:
    """A clustering rule + closed-form max-min powers, scored under ``pilot_model:
    per_ap_orthogonal`` with the book's estimator on the setups where the rule breaks the tau_p cap
    (``book_pilots_over_cap``); ``info["book_pilots"]`` [B] bool says which. Under the book's
    pilot model it is ``ClusteredMaxMin(rule)``."""

    rule: Clustering
    rtol: float = 1e-12

    def __post_init__(self) -> None:
        if not isinstance(self.rule, Clustering):
            raise TypeError(f"BookPilotsOverCap.rule must be a Clustering, got {type(self.rule).__name__}")
        check_number("BookPilotsOverCap", "rtol", self.rtol, low=0.0, positive=True)

    def __call__(self, instance: ClusteringInstance) -> Allocation:
        instance = checked_clustering_instance(instance, "BookPilotsOverCap")
        net = instance.network
        serving = serving_mask(
            self.rule, net.gain_db, net.distance_2d, net.pilot, net.master, net.scenario.tau_p
        )
        scored, over = book_pilots_over_cap(instance, serving)
        alloc = _with_powers(scored, serving, self.rtol)
        alloc.info["book_pilots"] = over
        return alloc
