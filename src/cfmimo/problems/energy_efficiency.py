"""Energy-efficient DL power allocation with distributed MRT (the ee-gnn paper, eqs. (1)-(2)).

    max_P  J(P) = sum_k B_r log_b(1 + SINR_k(P)) / (mu sum_l p_kl + P_c)          (eq. (1), "sum")
    or     GEE(P) = B_r sum_k log_b(1 + SINR_k(P)) / (mu sum_{l,k} p_kl + P_c)    ("global" option)
    s.t.   0 <= p_kl <= P_l on served links, p_kl = 0 on unserved links,

with SINR_k = sum_l h_{l,kk} p_kl / (1 + sum_{j != k} sum_l h_{l,kj} p_jl) (noise-normalized MRT
gains, eq. (2), one perfect-CSI realization per sample). Eq. (1) has no power limit; the cap P_l
(the scenario's ``dl_power_per_ap_mw``, 1 W in the ee-gnn preset) bounds *each link* of AP l, so the
feasible set is the box in which the paper's uniform prior U(a, b) (eq. (5)) lives.

Units: powers in mW, consumed power in W, and the objective in Mbit/J: ``B_r`` (the scenario's
``ee_bandwidth_hz``) is divided by 1e6, so with the preset's B_r = 1 MHz and log2 the value is
sum_k log2(1 + SINR_k) / (consumed power in W) (docs/physics.md).
Indexing: ``link_power[b, l, k]`` is the paper's p_kl, ``gains[b, l, k, j]`` its h_{l,kj}.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from cfmimo.config import Scenario
from cfmimo.problems.base import Allocation, DecisionSpec, Problem
from cfmimo.sim.energy import energy_efficiency_terms, global_energy_efficiency, mrt_effective_gains, mrt_sinr
from cfmimo.sim.network import sample_perfect_csi

EEObjective = Literal["sum", "global"]

#: a UE counts as active when its total power exceeds this fraction of the largest cap
ACTIVE_FRACTION = 1e-6


@dataclass(frozen=True)
class EEInstance:
    """B energy-efficiency instances: MRT gains, serving mask, per-AP link cap and the EE constants.

    ``seed``/``indices`` name each sample's random streams (random policies and random starts draw
    from ``(seed, name, index)``, so a sample's result does not depend on the batch it sits in).

    Shapes:
        gains [B, L, K, K] (real, >= 0, noise-normalized; ``gains[b, l, k, j]`` = h_{l,kj});
        serving [B, L, K] bool; cap [B, L] (mW, > 0, bounds each link p_lk of AP l).
    """

    gains: torch.Tensor
    serving: torch.Tensor
    cap: torch.Tensor
    mu: float = 1.0
    static_power_mw: float = 4000.0
    bandwidth_hz: float = 1e6
    log_base: float = 2.0
    seed: int = 0
    indices: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        g = self.gains
        if not isinstance(g, torch.Tensor) or g.is_complex() or not g.is_floating_point():
            raise TypeError(
                f"gains must be a real floating tensor [B, L, K, K], got {getattr(g, 'dtype', g)}"
            )
        if g.dim() != 4 or g.shape[-1] != g.shape[-2]:
            raise ValueError(f"gains must have shape [B, L, K, K], got {tuple(g.shape)}")
        if bool((torch.isnan(g) | (g < 0)).any()):
            raise ValueError("gains must be >= 0 and not NaN")
        B, L, K = g.shape[:3]
        if not isinstance(self.serving, torch.Tensor) or tuple(self.serving.shape) != (B, L, K):
            raise ValueError(
                f"serving must be a tensor [B, L, K] = {(B, L, K)}, got {tuple(getattr(self.serving, 'shape', ()))}"
            )
        if self.serving.dtype != torch.bool:
            raise TypeError(f"serving must be a bool tensor, got {self.serving.dtype}")
        c = self.cap
        if not isinstance(c, torch.Tensor) or tuple(c.shape) != (B, L):
            raise ValueError(
                f"cap must be a tensor [B, L] = {(B, L)} (mW), got {tuple(getattr(c, 'shape', ()))}"
            )
        if c.dtype != g.dtype:
            raise TypeError(f"cap must have the dtype of gains ({g.dtype}), got {c.dtype}")
        if not bool((c > 0).all()):
            raise ValueError("cap must be > 0 (mW) for every AP")
        if not self.mu > 0:
            raise ValueError(f"mu must be > 0, got {self.mu}")
        if not self.static_power_mw >= 0:
            raise ValueError(f"static_power_mw must be >= 0, got {self.static_power_mw}")
        if not self.bandwidth_hz > 0:
            raise ValueError(f"bandwidth_hz must be > 0, got {self.bandwidth_hz}")
        if not self.log_base > 1:
            raise ValueError(f"log_base must be > 1, got {self.log_base}")
        if self.indices is None:
            object.__setattr__(self, "indices", tuple(range(B)))
        elif len(self.indices) != B:
            raise ValueError(f"indices must have B = {B} entries, got {len(self.indices)}")

    @property
    def batch(self) -> int:
        return self.gains.shape[0]

    @property
    def upper(self) -> torch.Tensor:
        """Largest feasible power of every link: cap_l on served links, 0 elsewhere. Shapes: [B, L, K]."""
        return self.cap.unsqueeze(-1) * self.serving.to(self.cap.dtype)

    def _replace(self, gains, serving, cap, indices) -> EEInstance:
        return EEInstance(
            gains,
            serving,
            cap,
            self.mu,
            self.static_power_mw,
            self.bandwidth_hz,
            self.log_base,
            self.seed,
            indices,
        )

    def take(self, index: torch.Tensor | slice) -> EEInstance:
        """A sub-batch (``index``: slice or 1-D long tensor of positions)."""
        pos = torch.arange(self.batch)[index] if isinstance(index, slice) else index.cpu()
        sel = pos.to(self.gains.device)
        return self._replace(
            self.gains[sel], self.serving[sel], self.cap[sel], tuple(self.indices[i] for i in pos.tolist())
        )

    def permute_ues(self, perm: torch.Tensor) -> EEInstance:
        """UEs reordered: new UE k = old UE perm[k] (both gain axes)."""
        p = perm.to(self.gains.device)
        return self._replace(self.gains[:, :, p][:, :, :, p], self.serving[:, :, p], self.cap, self.indices)

    def permute_aps(self, perm: torch.Tensor) -> EEInstance:
        """APs reordered: new AP l = old AP perm[l]."""
        p = perm.to(self.gains.device)
        return self._replace(self.gains[:, p], self.serving[:, p], self.cap[:, p], self.indices)

    def to(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> EEInstance:
        """The same instances with floating tensors in ``dtype`` and everything on ``device``."""
        return self._replace(
            self.gains.to(dtype=dtype, device=device),
            self.serving.to(device=device),
            self.cap.to(dtype=dtype, device=device),
            self.indices,
        )


def ee_instance(
    gains: torch.Tensor,
    scenario: Scenario,
    serving: torch.Tensor | None = None,
    *,
    seed: int = 0,
    indices: tuple[int, ...] | None = None,
) -> EEInstance:
    """An instance for given MRT gains [B, L, K, K] with the scenario's cap and EE constants."""
    B, L, K = gains.shape[0], gains.shape[1], gains.shape[-1]
    if serving is None:
        serving = torch.ones(B, L, K, dtype=torch.bool, device=gains.device)
    cap = torch.full((B, L), scenario.dl_power_per_ap_mw, dtype=gains.dtype, device=gains.device)
    return EEInstance(
        gains,
        serving,
        cap,
        scenario.ee_mu,
        scenario.ee_static_power_mw,
        scenario.ee_bandwidth_hz,
        scenario.ee_log_base,
        seed,
        indices,
    )


def sample_ee_instances(
    scenario: Scenario,
    batch: int,
    *,
    seed: int,
    first_index: int = 0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> EEInstance:
    """Draw setups and one perfect-CSI realization each (the setup's own "channels" stream)."""
    net, h = sample_perfect_csi(
        scenario, batch, seed=seed, first_index=first_index, dtype=dtype, device=device
    )
    return ee_instance(mrt_effective_gains(h), scenario, net.serving, seed=seed, indices=net.indices)


class EnergyEfficiency(Problem[EEInstance]):
    """Sum-of-ratios EE (eq. (1)) or global EE, per-link caps (module docstring)."""

    decision_fields = ("link_power",)

    def __init__(self, objective: EEObjective = "sum") -> None:
        if objective not in ("sum", "global"):
            raise ValueError(f"objective must be 'sum' or 'global', got {objective!r}")
        self.kind = objective

    def sample(self, scenario, batch, *, seed, first_index=0, dtype=torch.float32, device=None) -> EEInstance:
        return sample_ee_instances(
            scenario, batch, seed=seed, first_index=first_index, dtype=dtype, device=device
        )

    def _constants(self, inst: EEInstance) -> dict:
        # bandwidth / 1e6: the objective is reported in Mbit/J
        return dict(
            mu=inst.mu,
            static_power_mw=inst.static_power_mw,
            bandwidth_hz=inst.bandwidth_hz / 1e6,
            log_base=inst.log_base,
        )

    def metrics(self, instance: EEInstance, allocation: Allocation) -> dict[str, torch.Tensor]:
        """rate [B, K] (Mbit/s), ee_term [B, K] (Mbit/J, eq. (1)'s terms), sinr [B, K], ee_sum and
        ee_global [B] (Mbit/J), total_power_w [B] (radiated, served links), active_ues [B]."""
        self.check(instance, allocation)
        self._check_values(allocation)
        p, x = allocation.link_power, instance.serving
        c = self._constants(instance)
        sinr = mrt_sinr(instance.gains, p, x)
        terms = energy_efficiency_terms(instance.gains, p, x, **c)
        rate = (
            c["bandwidth_hz"]
            * torch.log1p(sinr)
            / torch.log(torch.tensor(instance.log_base, dtype=sinr.dtype))
        )
        pe = p * x.to(p.dtype)
        per_ue = pe.sum(-2)  # [B, K]
        threshold = ACTIVE_FRACTION * instance.cap.amax(-1, keepdim=True)  # [B, 1]
        return {
            "sinr": sinr,
            "rate": rate,
            "ee_term": terms,
            "ee_sum": terms.sum(-1),
            "ee_global": global_energy_efficiency(instance.gains, p, x, **c),
            "total_power_w": pe.sum((-2, -1)) / 1000.0,
            "active_ues": (per_ue > threshold).sum(-1),
        }

    def decision_shapes(self, instance: EEInstance) -> dict[str, DecisionSpec]:
        """link_power: [B, L, K] with the gains' dtype and device, finite (a NaN power is an input error,
        never a score); ``violation`` scores negative powers, objective/metrics refuse them."""
        if not isinstance(instance, EEInstance):
            raise TypeError(f"instance must be an EEInstance, got {type(instance).__name__}")
        g = instance.gains
        return {"link_power": DecisionSpec(tuple(instance.serving.shape), g.dtype, g.device)}

    def check(self, instance: EEInstance, allocation: Allocation) -> None:
        """The decision must be ``link_power`` [B, L, K]; objective/metrics also need it >= 0, not NaN."""
        super().check(instance, allocation)
        p = allocation.link_power
        if tuple(p.shape) != tuple(instance.serving.shape):
            raise ValueError(
                f"link_power must be [B, L, K] = {tuple(instance.serving.shape)}, got {tuple(p.shape)}"
            )

    def _check_values(self, allocation: Allocation) -> None:
        p = allocation.link_power
        if bool((torch.isnan(p) | (p < 0)).any()):
            raise ValueError(
                "link_power must be >= 0 and not NaN (mW); see violation() to score such a decision"
            )

    def objective(self, instance: EEInstance, allocation: Allocation) -> torch.Tensor:
        self.check(instance, allocation)
        self._check_values(allocation)
        c = self._constants(instance)
        p, x = allocation.link_power, instance.serving
        if self.kind == "global":
            return global_energy_efficiency(instance.gains, p, x, **c)
        return energy_efficiency_terms(instance.gains, p, x, **c).sum(-1)

    def violation(self, instance: EEInstance, allocation: Allocation) -> torch.Tensor:
        """Largest of: negative power, power on unserved links, excess over the link cap, all
        relative to the AP's cap. Shapes: -> [B]."""
        self.check(instance, allocation)
        p = allocation.link_power
        cap = instance.cap.unsqueeze(-1)  # [B, L, 1]
        rel = p / cap
        negative = (-rel).clamp_min(0)
        unserved = rel.abs().masked_fill(instance.serving, 0.0)
        excess = (rel - 1.0).clamp_min(0)
        worst = torch.maximum(torch.maximum(negative, unserved), excess).flatten(1).amax(-1)
        return torch.where(torch.isnan(p).flatten(1).any(-1), torch.full_like(worst, float("inf")), worst)
