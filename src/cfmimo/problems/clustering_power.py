"""Joint user-centric clustering and max-min UL/DL power (the elu-cosformer paper, Sects. II-III).

Decision: a serving mask D [B, L, K] in which every AP serves at most ``max_ues_per_ap`` UEs
(tau_p, so no AP serves two UEs on one pilot when pilots are assigned per AP), and UL/DL powers
[B, K] for those clusters, scored by the UatF SEs of the MMSE combiners/precoders that the mask
induces (recomputed from the instance's channel realizations for every proposed mask).

Pilots: by default (``pilots="network"``) every scheme uses the network's Algorithm 4.1 pilots
and contamination from co-pilot UEs is modelled physically, whatever the mask. With
``pilots="clusters"`` the pilots are re-assigned for every proposed mask so that UEs sharing a
serving AP get different pilots when possible (``sim.pilots.assign_pilots_for_clusters``) and the
same realizations are re-estimated: the paper's premise ("at most tau_p UEs per AP, so no pilot
contamination") made physical. Measured on 16 elu-cosformer setups (max-min SE UL, b/s/Hz), the
re-assignment did not pay off overall: K = 20: all APs 1.06 vs 1.26 (Algorithm 4.1), Q = 8
strongest 1.19 vs 1.14, top-tau_p UEs per AP 0.99 vs 0.97; K = 40: 0.32 vs 0.48, 0.35 vs 0.44,
0.21 vs 0.20; so it stays an option (docs/problems.md).

The feasibility check includes the per-AP UE limit, so references that ignore it (all APs serve
all UEs, "Optimal CF" in the paper, when K > tau_p) are reported as infeasible, with their SEs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from cfmimo.problems.base import Allocation, DecisionSpec, Problem, check_finite
from cfmimo.problems.maxmin_power import (
    DLConstraint,
    MaxMinPower,
    PowerInstance,
    check_network,
    power_instance,
)
from cfmimo.sim.network import ChannelState, Network, reestimate, sample_channel_state, sample_networks
from cfmimo.sim.pilots import assign_pilots_for_clusters

PilotRule = Literal["clusters", "network"]


@dataclass(frozen=True)
class ClusteringInstance:
    """B instances: large-scale network, channel realizations/estimates, and the per-AP UE limit.

    ``network.serving`` holds the scenario's default clusters (a baseline, not part of the input).
    """

    network: Network
    state: ChannelState
    max_ues_per_ap: int
    combiner: str = "mmse"
    dl_constraint: DLConstraint | None = None
    pilots: PilotRule = "network"

    def __post_init__(self) -> None:
        if self.pilots not in ("clusters", "network"):
            raise ValueError(f"pilots must be 'clusters' or 'network', got {self.pilots!r}")
        if self.max_ues_per_ap < 1:
            raise ValueError(f"max_ues_per_ap must be >= 1, got {self.max_ues_per_ap}")
        if isinstance(self.max_ues_per_ap, bool) or not isinstance(self.max_ues_per_ap, int):
            raise TypeError(f"max_ues_per_ap must be an int, got {type(self.max_ues_per_ap).__name__}")
        if self.state.h.shape[0] != self.network.batch:
            raise ValueError("state and network must hold the same number of setups")
        self.validate()

    def validate(self) -> None:
        """ValueError naming the field unless the network and the channel state are finite. Run at
        construction and again by the policies (tensors can be changed in place)."""
        check_network(self.network)
        for name in ("h", "h_hat", "estimate_cov", "error_cov", "pilot_noise"):
            value = getattr(self.state, name)
            if value is not None:
                check_finite(f"state.{name}", value)

    @property
    def batch(self) -> int:
        return self.network.batch

    def for_clusters(self, serving: torch.Tensor) -> PowerInstance:
        """The max-min power instance of the clusters ``serving`` [B, L, K] (pilots re-assigned
        for them when ``pilots == "clusters"``)."""
        net, state = self.network, self.state
        if self.pilots == "clusters":
            pilot = assign_pilots_for_clusters(net.gain_db, serving.to(torch.bool), net.scenario.tau_p)
            net, state = reestimate(net, state, pilot)
        return power_instance(
            net,
            state,
            combiner=self.combiner,
            dl_constraint=self.dl_constraint,
            serving=serving,
        )


class ClusteringPower(Problem[ClusteringInstance]):
    """Joint clustering and max-min power (module docstring)."""

    decision_fields = ("serving", "p_ul", "p_dl")

    def __init__(
        self,
        combiner: str = "mmse",
        dl_constraint: DLConstraint | None = None,
        max_ues_per_ap: int | None = None,
        pilots: PilotRule = "network",
    ) -> None:
        self.pilots = pilots
        self.combiner = combiner
        self.dl_constraint = dl_constraint
        self.max_ues_per_ap = max_ues_per_ap
        self._powers = MaxMinPower()
        self._last: tuple[object, object, PowerInstance] | None = None

    def sample(
        self, scenario, batch, *, seed, first_index=0, dtype=torch.float32, device=None
    ) -> ClusteringInstance:
        net = sample_networks(scenario, batch, seed=seed, first_index=first_index, dtype=dtype, device=device)
        return ClusteringInstance(
            net,
            sample_channel_state(net),
            self.max_ues_per_ap or scenario.tau_p,
            self.combiner,
            self.dl_constraint,
            self.pilots,
        )

    def decision_shapes(self, instance: ClusteringInstance) -> dict[str, DecisionSpec]:
        """serving: [B, L, K] bool; p_ul, p_dl: [B, K] in the instance's dtype and device."""
        if not isinstance(instance, ClusteringInstance):
            raise TypeError(f"instance must be a ClusteringInstance, got {type(instance).__name__}")
        g = instance.network.gain_db
        B, L, K = g.shape
        power = DecisionSpec((B, K), g.dtype, g.device)
        return {"serving": DecisionSpec((B, L, K), torch.bool, g.device), "p_ul": power, "p_dl": power}

    def power_instance(self, instance: ClusteringInstance, allocation: Allocation) -> PowerInstance:
        """Statistics for the allocation's clusters; reuses the policy's (info['power_instance']) or
        the last computed one for the same mask tensor, since they are costly."""
        self.check(instance, allocation)
        given = allocation.info.get("power_instance")
        if isinstance(given, PowerInstance) and given.network.serving is allocation.serving:
            return given
        if self._last is not None and self._last[0] is instance and self._last[1] is allocation.serving:
            return self._last[2]
        pinst = instance.for_clusters(allocation.serving)
        self._last = (instance, allocation.serving, pinst)
        return pinst

    def metrics(self, instance: ClusteringInstance, allocation: Allocation) -> dict[str, torch.Tensor]:
        m = self._powers.metrics(self.power_instance(instance, allocation), allocation)
        d = allocation.serving.to(torch.bool)
        m["connections"] = d.sum(dim=(1, 2))  # [B] AP-UE links
        m["aps_per_ue"] = d.sum(1).double().mean(-1)  # [B]
        m["ues_per_ap_max"] = d.sum(-1).amax(-1)  # [B]
        m["unserved_ues"] = (~d.any(1)).sum(-1)  # [B]
        return m

    def objective(self, instance: ClusteringInstance, allocation: Allocation) -> torch.Tensor:
        m = self.metrics(instance, allocation)
        return m["min_se_ul"] + m["min_se_dl"]

    def violation(self, instance: ClusteringInstance, allocation: Allocation) -> torch.Tensor:
        power = self._powers.violation(self.power_instance(instance, allocation), allocation)
        load = allocation.serving.to(torch.bool).sum(-1).to(power.dtype)  # [B, L]
        excess = ((load - instance.max_ues_per_ap) / instance.max_ues_per_ap).clamp_min(0).amax(-1)
        return torch.maximum(power, excess)
