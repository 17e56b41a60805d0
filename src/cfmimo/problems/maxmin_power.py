"""Max-min fair UL and DL power control for given clusters (tree-transformer eqs. (8)-(9),
elu-cosformer eqs. (9)-(10), the book's Section 7).

    UL:  max_{p >= 0} min_k SE_k^UL   s.t.  p_k <= P_UL                      (per-UE caps)
    DL:  max_{rho >= 0} min_k SE_k^DL s.t.  sum_k rho_k <= sum_l P_l          ("sum", the papers)
                                       or   sum_k rho_k E{||w_kl||^2} <= P_l  ("per_ap", the book)

SEs are UatF bounds for combiners/precoders computed once (centralized MMSE at full UL power by
default, the book's Section 7.1); only the powers are decided. The DL constraint follows the
precoder normalization unless given: per-realization w_k = v_k/||v_k|| goes with "sum", the
book's average normalization with "per_ap".
The objective is min_k SE_k^UL + min_k SE_k^DL; ``metrics`` reports both links separately.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import torch

from cfmimo.config import Scenario
from cfmimo.problems.base import Allocation, DecisionSpec, Problem, check_finite, relative_excess
from cfmimo.sim.network import (
    ChannelState,
    Network,
    network_statistics,
    permute_ues,
    sample_channel_state,
    sample_networks,
    take_setups,
)
from cfmimo.sim.uatf import (
    DownlinkStatistics,
    UplinkStatistics,
    downlink_sinr,
    spectral_efficiency,
    uplink_sinr,
)

DLConstraint = Literal["sum", "per_ap"]


@dataclass(frozen=True)
class PowerInstance:
    """B max-min power instances: statistics of fixed combiners/precoders plus the budgets.

    Shapes:
        uplink/downlink statistics with K UEs; ul_budget [B, K] (mW); dl_weights [B, J, K] and
        dl_budget [B, J] encode the DL constraints dl_weights @ rho <= dl_budget (J = 1 for "sum",
        J = L for "per_ap").
    """

    network: Network
    uplink: UplinkStatistics
    downlink: DownlinkStatistics
    ul_budget: torch.Tensor
    dl_weights: torch.Tensor
    dl_budget: torch.Tensor
    dl_constraint: DLConstraint
    prelog_ul: float
    prelog_dl: float

    def __post_init__(self) -> None:
        B, K = self.uplink.signal.shape
        if self.ul_budget.shape != (B, K):
            raise ValueError(f"ul_budget must be [B, K] = {(B, K)}, got {tuple(self.ul_budget.shape)}")
        if self.dl_weights.dim() != 3 or self.dl_weights.shape[0] != B or self.dl_weights.shape[2] != K:
            raise ValueError(
                f"dl_weights must be [B, J, K] with B = {B}, K = {K}, got {tuple(self.dl_weights.shape)}"
            )
        if self.dl_budget.shape != self.dl_weights.shape[:2]:
            raise ValueError(f"dl_budget must be [B, J] = {tuple(self.dl_weights.shape[:2])}")
        if self.dl_constraint not in ("sum", "per_ap"):
            raise ValueError(f"dl_constraint must be 'sum' or 'per_ap', got {self.dl_constraint!r}")
        self.validate()

    def validate(self) -> None:
        """ValueError naming the field unless the statistics and budgets are finite, of the shapes
        in the class docstring and of one dtype, budgets > 0 and weights/statistics >= 0. Run at
        construction and again by the policies (tensors can be changed in place)."""
        ul, dl = self.uplink, self.downlink
        B, K = ul.signal.shape
        shapes = {
            "uplink.interference": (ul.interference, (B, K, K)),
            "uplink.noise": (ul.noise, (B, K)),
            "downlink.signal": (dl.signal, (B, K)),
            "downlink.interference": (dl.interference, (B, K, K)),
        }
        for name, (value, shape) in shapes.items():
            if not isinstance(value, torch.Tensor) or tuple(value.shape) != shape:
                got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
                raise ValueError(f"{name} must be {list(shape)} (B = {B}, K = {K}), got {got}")
        share = dl.ap_power_share
        if share.dim() != 3 or share.shape[0] != B or share.shape[2] != K:
            raise ValueError(f"downlink.ap_power_share must be [B, L, K] with B = {B}, K = {K}")
        dtype = ul.signal.dtype
        if not ul.signal.is_floating_point():
            raise ValueError(f"uplink.signal must be a floating tensor, got {dtype}")
        fields = {
            "uplink.signal": ul.signal,
            "uplink.interference": ul.interference,
            "uplink.noise": ul.noise,
            "downlink.signal": dl.signal,
            "downlink.interference": dl.interference,
            "downlink.ap_power_share": share,
            "dl_weights": self.dl_weights,
        }
        for name, value in {**fields, "ul_budget": self.ul_budget, "dl_budget": self.dl_budget}.items():
            if value.dtype != dtype:
                raise ValueError(f"{name} has dtype {value.dtype}, uplink.signal {dtype}: use one dtype")
        for name, value in fields.items():
            check_finite(name, value, minimum=0.0)
        check_finite("ul_budget", self.ul_budget, positive=True)
        check_finite("dl_budget", self.dl_budget, positive=True)
        check_network(self.network)
        for name in ("prelog_ul", "prelog_dl"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
                raise ValueError(f"{name} must be a number in (0, 1], got {value!r}")

    @property
    def batch(self) -> int:
        return self.ul_budget.shape[0]

    def take(self, index: torch.Tensor | slice) -> PowerInstance:
        """A sub-batch of instances (``index``: slice or 1-D long tensor)."""
        ul, dl = self.uplink, self.downlink
        return PowerInstance(
            take_setups(self.network, index),
            UplinkStatistics(ul.signal[index], ul.interference[index], ul.noise[index]),
            DownlinkStatistics(dl.signal[index], dl.interference[index], dl.ap_power_share[index]),
            self.ul_budget[index],
            self.dl_weights[index],
            self.dl_budget[index],
            self.dl_constraint,
            self.prelog_ul,
            self.prelog_dl,
        )

    def permute_ues(self, perm: torch.Tensor) -> PowerInstance:
        """The same instances with UEs reordered (new UE k = old UE perm[k])."""
        ul, dl, p = self.uplink, self.downlink, perm
        return PowerInstance(
            permute_ues(self.network, p),
            UplinkStatistics(ul.signal[:, p], ul.interference[:, p][:, :, p], ul.noise[:, p]),
            DownlinkStatistics(dl.signal[:, p], dl.interference[:, p][:, :, p], dl.ap_power_share[:, :, p]),
            self.ul_budget[:, p],
            self.dl_weights[:, :, p],
            self.dl_budget,
            self.dl_constraint,
            self.prelog_ul,
            self.prelog_dl,
        )


def dl_constraints(
    scenario: Scenario, downlink: DownlinkStatistics, constraint: DLConstraint
) -> tuple[torch.Tensor, torch.Tensor]:
    """(weights [B, J, K], budget [B, J]) of the DL power constraint."""
    share = downlink.ap_power_share  # [B, L, K]
    B, L, K = share.shape
    if constraint == "sum":
        weights = torch.ones(B, 1, K, dtype=share.dtype, device=share.device)
        return weights, torch.full(
            (B, 1), L * scenario.dl_power_per_ap_mw, dtype=share.dtype, device=share.device
        )
    return share, torch.full((B, L), scenario.dl_power_per_ap_mw, dtype=share.dtype, device=share.device)


def power_instance(
    net: Network,
    state: ChannelState,
    *,
    combiner: str = "mmse",
    dl_constraint: DLConstraint | None = None,
    serving: torch.Tensor | None = None,
) -> PowerInstance:
    """Statistics of ``net`` (or of the clusters ``serving`` [B, L, K]) as a PowerInstance."""
    sc = net.scenario
    if serving is not None:
        if serving.shape != net.serving.shape:
            raise ValueError(
                f"serving must be [B, L, K] = {tuple(net.serving.shape)}, got {tuple(serving.shape)}"
            )
        net = replace(net, serving=serving.to(torch.bool))
    constraint = dl_constraint or ("sum" if sc.dl_normalization == "per_realization" else "per_ap")
    ul, dl = network_statistics(net, state, combiner)
    weights, budget = dl_constraints(sc, dl, constraint)
    ul_budget = torch.full(net.pilot.shape, sc.ul_power_mw, dtype=ul.signal.dtype, device=ul.signal.device)
    return PowerInstance(net, ul, dl, ul_budget, weights, budget, constraint, sc.prelog_ul, sc.prelog_dl)


def check_network(net: Network, name: str = "network") -> None:
    """ValueError naming the field unless the network's positions, gains and correlation are finite."""
    if not isinstance(net, Network):
        raise TypeError(f"{name} must be a Network, got {type(net).__name__}")
    for field in ("ap_positions", "ue_positions", "distance_2d", "gain_db", "correlation"):
        check_finite(f"{name}.{field}", getattr(net, field))


class MaxMinPower(Problem[PowerInstance]):
    """Max-min fair UL/DL powers for given clusters (module docstring)."""

    decision_fields = ("p_ul", "p_dl")

    def __init__(self, combiner: str = "mmse", dl_constraint: DLConstraint | None = None) -> None:
        self.combiner = combiner
        self.dl_constraint = dl_constraint

    def sample(
        self, scenario, batch, *, seed, first_index=0, dtype=torch.float32, device=None
    ) -> PowerInstance:
        net = sample_networks(scenario, batch, seed=seed, first_index=first_index, dtype=dtype, device=device)
        return power_instance(
            net, sample_channel_state(net), combiner=self.combiner, dl_constraint=self.dl_constraint
        )

    def decision_shapes(self, instance: PowerInstance) -> dict[str, DecisionSpec]:
        """p_ul and p_dl: [B, K] in the instance's dtype and device."""
        if not isinstance(instance, PowerInstance):
            raise TypeError(f"instance must be a PowerInstance, got {type(instance).__name__}")
        b = instance.ul_budget
        spec = DecisionSpec(tuple(b.shape), b.dtype, b.device)
        return {"p_ul": spec, "p_dl": spec}

    def metrics(self, instance: PowerInstance, allocation: Allocation) -> dict[str, torch.Tensor]:
        """SINRs and SEs of non-negative powers (a negative power has no SE: ValueError naming it;
        ``violation`` measures it)."""
        self.check(instance, allocation)
        for name in ("p_ul", "p_dl"):
            value = getattr(allocation, name)
            if bool((value < 0).any()):
                raise ValueError(
                    f"decision '{name}' has negative powers (min {float(value.min()):.6g} mW): SEs are "
                    "defined for powers >= 0 (violation() reports how far they are from feasible)"
                )
        sinr_ul = uplink_sinr(instance.uplink, allocation.p_ul)
        sinr_dl = downlink_sinr(instance.downlink, allocation.p_dl)
        se_ul = spectral_efficiency(sinr_ul, instance.prelog_ul)
        se_dl = spectral_efficiency(sinr_dl, instance.prelog_dl)
        return {
            "sinr_ul": sinr_ul,
            "sinr_dl": sinr_dl,
            "se_ul": se_ul,
            "se_dl": se_dl,
            "min_se_ul": se_ul.amin(-1),
            "min_se_dl": se_dl.amin(-1),
            "mean_se_ul": se_ul.mean(-1),
            "mean_se_dl": se_dl.mean(-1),
        }

    def objective(self, instance: PowerInstance, allocation: Allocation) -> torch.Tensor:
        m = self.metrics(instance, allocation)
        return m["min_se_ul"] + m["min_se_dl"]

    def violation(self, instance: PowerInstance, allocation: Allocation) -> torch.Tensor:
        self.check(instance, allocation)
        p, rho = allocation.p_ul, allocation.p_dl
        negative = torch.maximum(
            (-p / instance.ul_budget).clamp_min(0).amax(-1),
            (-rho).clamp_min(0).amax(-1) / instance.dl_budget.amin(-1),
        )
        ul = relative_excess(p, instance.ul_budget)
        dl = relative_excess((instance.dl_weights @ rho[..., None]).squeeze(-1), instance.dl_budget)
        return torch.maximum(torch.maximum(ul, dl), negative)
