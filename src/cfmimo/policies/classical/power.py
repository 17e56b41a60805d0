"""Power-control policies for ``MaxMinPower`` instances (and the power part of clustering ones).

* ``MaxMinClosedForm``: the exact optimum (``maxmin.maxmin_closed_form``), UL and DL.
* ``MaxMinFixedPoint``: the book's Algorithms 7.1/7.3 with its stopping rule (SINR spread < 0.01);
  ``start="book"`` also takes the book's start points (UL full power, DL rho_max / K).
* ``FullPower``: every UE at P_UL; equal DL powers under the instance's DL constraint.
* ``FractionalPower``: the book's fractional power control heuristic (Section 7.1, UL:
  p_k = P (min_i g_i)^nu / g_k^nu with g_k = sum_{l in M_k} beta_lk, so weak UEs get more power
  for nu > 0); DL: rho_k proportional to g_k^nu_dl, scaled so the binding DL constraint is tight.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from cfmimo.policies.classical.maxmin import (
    MaxMinSolution,
    downlink_affine,
    maxmin_closed_form,
    maxmin_fixed_point,
    uplink_affine,
)
from cfmimo.problems.base import Allocation
from cfmimo.problems.maxmin_power import PowerInstance


def checked_power_instance(instance: object, policy: str) -> PowerInstance:
    """``instance`` if it is a valid PowerInstance (re-validated: tensors can change in place);
    TypeError/ValueError naming the policy and the field otherwise."""
    if not isinstance(instance, PowerInstance):
        raise TypeError(f"{policy} needs a PowerInstance, got {type(instance).__name__}")
    try:
        instance.validate()
    except ValueError as err:
        raise ValueError(f"{policy}: invalid instance: {err}") from None
    return instance


def check_number(owner: str, name: str, value: object, *, low: float, positive: bool = False) -> None:
    """ValueError naming ``owner.name`` unless ``value`` is a finite real number >= low (> low with
    ``positive``)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < low or (positive and value <= low):
        rule = f"> {low:g}" if positive else f">= {low:g}"
        raise ValueError(f"{owner}.{name} must be a finite number {rule}, got {value!r}")


def _ul_caps(instance: PowerInstance) -> torch.Tensor:
    K = instance.ul_budget.shape[-1]
    return torch.eye(K, dtype=instance.ul_budget.dtype, device=instance.ul_budget.device).expand(
        instance.batch, K, K
    )


def _info(ul: MaxMinSolution, dl: MaxMinSolution) -> dict:
    return {
        "sinr_ul": ul.min_sinr,
        "sinr_dl": dl.min_sinr,
        "iterations_ul": ul.iterations,
        "iterations_dl": dl.iterations,
        "converged": ul.converged & dl.converged,
    }


@dataclass(frozen=True)
class MaxMinClosedForm:
    """Exact max-min UL and DL powers (Miretti et al. 2022; DESIGN 9.10)."""

    rtol: float = 1e-12

    def __post_init__(self) -> None:
        check_number("MaxMinClosedForm", "rtol", self.rtol, low=0.0, positive=True)

    def __call__(self, instance: PowerInstance) -> Allocation:
        instance = checked_power_instance(instance, "MaxMinClosedForm")
        ul = maxmin_closed_form(
            uplink_affine(instance.uplink), _ul_caps(instance), instance.ul_budget, rtol=self.rtol
        )
        dl = maxmin_closed_form(
            downlink_affine(instance.downlink), instance.dl_weights, instance.dl_budget, rtol=self.rtol
        )
        return Allocation(p_ul=ul.power, p_dl=dl.power, info=_info(ul, dl))


def book_start(instance: PowerInstance) -> tuple[torch.Tensor, torch.Tensor]:
    """The start points of the book's codes (``functionUplinkSE_maxmin`` /
    ``functionDownlinkSE_maxmin``): UL full power p_k = P_UL (Algorithm 7.1), DL rho_k = rho_max / K
    (Algorithm 7.3, rho_max the per-AP budget; under the papers' sum constraint the analogous
    P_total / K). rho_max is the smallest budget of the instance's DL constraints.

    Shapes: -> (p_ul [B, K], p_dl [B, K])."""
    K = instance.ul_budget.shape[-1]
    rho = instance.dl_budget.amin(-1, keepdim=True) / K  # [B, 1]
    return instance.ul_budget.clone(), rho.expand_as(instance.ul_budget).to(instance.ul_budget.dtype)


@dataclass(frozen=True)
class MaxMinFixedPoint:
    """The book's fixed-point algorithms 7.1 (UL) / 7.3 (DL); ``tolerance`` on the SINR spread.

    ``start``: ``"scaled"`` (default) starts both links from equal powers scaled so the binding
    constraint is tight; ``"book"`` from the book's start points (``book_start``: UL full power,
    DL rho_max / K), which reproduces the book's code exactly at its 0.01 tolerance (the DL start
    differs, and at that tolerance the outputs differ by up to ~3e-2 b/s/Hz)."""

    tolerance: float = 0.01
    max_iter: int = 100_000
    start: Literal["scaled", "book"] = "scaled"

    def __post_init__(self) -> None:
        check_number("MaxMinFixedPoint", "tolerance", self.tolerance, low=0.0, positive=True)
        if isinstance(self.max_iter, bool) or not isinstance(self.max_iter, int) or self.max_iter < 1:
            raise ValueError(f"MaxMinFixedPoint.max_iter must be an int >= 1, got {self.max_iter!r}")

    def __call__(self, instance: PowerInstance) -> Allocation:
        instance = checked_power_instance(instance, "MaxMinFixedPoint")
        if self.start not in ("scaled", "book"):
            raise ValueError(f"start must be 'scaled' or 'book', got {self.start!r}")
        ul_start, dl_start = book_start(instance) if self.start == "book" else (None, None)
        ul = maxmin_fixed_point(
            uplink_affine(instance.uplink),
            _ul_caps(instance),
            instance.ul_budget,
            tolerance=self.tolerance,
            max_iter=self.max_iter,
            start=ul_start,
        )
        dl = maxmin_fixed_point(
            downlink_affine(instance.downlink),
            instance.dl_weights,
            instance.dl_budget,
            tolerance=self.tolerance,
            max_iter=self.max_iter,
            start=dl_start,
        )
        return Allocation(p_ul=ul.power, p_dl=dl.power, info=_info(ul, dl))


def scale_to_budget(power: torch.Tensor, weights: torch.Tensor, budget: torch.Tensor) -> torch.Tensor:
    """Scale each instance's powers so the most loaded constraint is tight.

    Shapes: power [B, K], weights [B, J, K], budget [B, J] -> [B, K].
    """
    load = ((weights @ power[..., None]).squeeze(-1) / budget).amax(-1, keepdim=True)
    return power / load.clamp_min(torch.finfo(power.dtype).tiny)


@dataclass(frozen=True)
class FullPower:
    """UL: every UE at its cap. DL: equal powers, scaled to the DL constraint."""

    def __call__(self, instance: PowerInstance) -> Allocation:
        instance = checked_power_instance(instance, "FullPower")
        rho = scale_to_budget(torch.ones_like(instance.ul_budget), instance.dl_weights, instance.dl_budget)
        return Allocation(p_ul=instance.ul_budget.clone(), p_dl=rho)


@dataclass(frozen=True)
class FractionalPower:
    """Fractional power control (module docstring); ``nu_ul``/``nu_dl`` are the exponents."""

    nu_ul: float = 0.5
    nu_dl: float = 0.5

    def __post_init__(self) -> None:
        check_number("FractionalPower", "nu_ul", self.nu_ul, low=-math.inf)
        check_number("FractionalPower", "nu_dl", self.nu_dl, low=-math.inf)

    def __call__(self, instance: PowerInstance) -> Allocation:
        instance = checked_power_instance(instance, "FractionalPower")
        net = instance.network
        g = (net.beta * net.serving).sum(1).to(instance.ul_budget.dtype)  # [B, K]: sum_{l in M_k} beta_lk
        served = g > 0
        g_safe = torch.where(served, g, torch.ones_like(g))
        g_min = torch.where(served, g, torch.full_like(g, torch.inf)).amin(-1, keepdim=True)
        p = instance.ul_budget * (g_min / g_safe) ** self.nu_ul
        rho = scale_to_budget(g_safe**self.nu_dl, instance.dl_weights, instance.dl_budget)
        zero = torch.zeros_like(p)
        return Allocation(p_ul=torch.where(served, p, zero), p_dl=torch.where(served, rho, zero))
