"""Closed-form precoders as policies for ``SumRatePrecoding`` instances: MRT, ZF, RZF.

Directions come from :mod:`cfmimo.sim.instantaneous` (each UE's precoder uses only its serving APs,
unserved links exactly zero); the power scaling is an explicit option (``normalize_per_ap``):

* ``"per_ap"`` (default, the AAGNN issue's baselines and EGAT (37)): every AP that serves anyone
  transmits at exactly P_l, ``V_l <- V_l sqrt(P_l)/||V_l||_F``. Changes the network-wide beam (ZF's
  nulls are no longer exact) but uses all the power.
* ``"common"``: one factor per instance so the most loaded AP is at its limit; keeps the direction
  (ZF nulls, the split between APs) but leaves the other APs below their budgets.

RZF's regularization defaults to ``K sigma^2 / sum_l P_l`` per instance (the usual sum-power choice).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from cfmimo.problems.base import Allocation
from cfmimo.problems.sumrate_precoding import PrecodingInstance
from cfmimo.sim.instantaneous import mrt, normalize_per_ap, rzf, zf

Scaling = Literal["per_ap", "common"]


def _check_scaling(scaling: str) -> None:
    if scaling not in ("per_ap", "common"):
        raise ValueError(f"scaling must be 'per_ap' or 'common', got {scaling!r}")


def _scaled(instance: PrecodingInstance, w: torch.Tensor, scaling: Scaling) -> Allocation:
    v = normalize_per_ap(w, instance.association, instance.p_max, mode=scaling)
    return Allocation(precoders=v, info={"scaling": scaling})


def rzf_regularization(instance: PrecodingInstance) -> torch.Tensor:
    """``K sigma^2 / sum_l P_l`` per instance. Shapes: -> [B, 1] (broadcasts over UEs)."""
    return (instance.K * instance.noise / instance.p_max.sum(-1))[:, None]


@dataclass(frozen=True)
class MRTPrecoder:
    """Maximum-ratio transmission ``v_lk = d_lk h_lk``, then scaled (module docstring)."""

    scaling: Scaling = "per_ap"

    def __post_init__(self) -> None:
        _check_scaling(self.scaling)

    def __call__(self, instance: PrecodingInstance) -> Allocation:
        return _scaled(instance, mrt(instance.h, instance.association), self.scaling)


@dataclass(frozen=True)
class ZFPrecoder:
    """Centralized zero forcing over each UE's serving APs (``sim.instantaneous.zf``), then scaled."""

    scaling: Scaling = "per_ap"
    rtol: float | None = None

    def __post_init__(self) -> None:
        _check_scaling(self.scaling)

    def __call__(self, instance: PrecodingInstance) -> Allocation:
        return _scaled(instance, zf(instance.h, instance.association, rtol=self.rtol), self.scaling)


@dataclass(frozen=True)
class RZFPrecoder:
    """Regularized ZF over each UE's serving APs (``sim.instantaneous.rzf``), then scaled.

    ``regularization``: a float > 0 in units of |h|^2, or None for ``K sigma^2 / sum_l P_l``.
    """

    scaling: Scaling = "per_ap"
    regularization: float | None = None

    def __post_init__(self) -> None:
        _check_scaling(self.scaling)
        if self.regularization is not None and not self.regularization > 0:
            raise ValueError(f"regularization must be > 0 or None, got {self.regularization}")

    def __call__(self, instance: PrecodingInstance) -> Allocation:
        lam = rzf_regularization(instance) if self.regularization is None else self.regularization
        return _scaled(instance, rzf(instance.h, instance.association, lam), self.scaling)
