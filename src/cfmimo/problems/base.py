"""One interface for every allocation method (DESIGN.md section 4).

* An **instance** is a frozen dataclass of batched tensors describing B problem instances
  (each problem family defines its own), validated once at construction.
* An **Allocation** is a batch of decisions. Every family uses the fields it needs: powers
  ``p_ul``/``p_dl`` [B, K], a serving mask ``serving`` [B, L, K], per-link powers ``link_power``
  [B, L, K], precoders ``precoders`` [B, L, K, N]; diagnostics go in ``info``.
* A **Problem** samples instances from a scenario, scores decisions (``objective``: [B], larger is
  better; ``metrics``: named tensors) and checks them (``violation``: [B], 0 iff feasible).
  One scoring function serves solvers, training losses and experiment tables alike.
* A **Policy** is any callable ``instance -> Allocation``: a function, a frozen dataclass of
  algorithm parameters, or an ``nn.Module``.

``evaluate`` scores any policy on any instances the same way, including the feasibility
probability that constrained problems (e.g. fronthaul limits) report.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, fields
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

import torch

from cfmimo.config import Scenario

InstanceT = TypeVar("InstanceT")


@dataclass(frozen=True)
class Allocation:
    """A batch of decisions; unused fields stay None.

    Shapes:
        p_ul, p_dl [B, K] (mW); serving [B, L, K] bool; link_power [B, L, K] (mW);
        precoders [B, L, K, N] complex.
    """

    p_ul: torch.Tensor | None = None
    p_dl: torch.Tensor | None = None
    serving: torch.Tensor | None = None
    link_power: torch.Tensor | None = None
    precoders: torch.Tensor | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def decisions(self) -> dict[str, torch.Tensor]:
        """The decision tensors that are set (not ``info``)."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name != "info" and getattr(self, f.name) is not None
        }


class DecisionSpec(NamedTuple):
    """What a decision field must look like for one batch of instances (``Problem.decision_shapes``).

    shape: the full shape, batch first (e.g. (B, K)); dtype: the exact dtype (the instance's
    floating dtype for powers, ``torch.bool`` for masks); device: the instance's device (None: any).
    """

    shape: tuple[int, ...]
    dtype: torch.dtype
    device: torch.device | None = None


def check_decision(name: str, value: Any, spec: DecisionSpec) -> None:
    """ValueError/TypeError naming ``name`` unless ``value`` is a finite tensor matching ``spec``."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"decision '{name}' must be a torch.Tensor, got {type(value).__name__}")
    shape = tuple(spec.shape)
    if tuple(value.shape) != shape:
        hint = ""
        if value.dim() == len(shape) and value.dim() > 0 and value.shape[1:] == shape[1:]:
            hint = f" (batch size {value.shape[0]} != the instance's {shape[0]})"
        elif value.dim() < len(shape):
            hint = " (no broadcasting: give every instance of the batch its own decision)"
        raise ValueError(f"decision '{name}' must have shape {list(shape)}, got {list(value.shape)}{hint}")
    if value.dtype != spec.dtype:
        raise ValueError(
            f"decision '{name}' must have dtype {spec.dtype} (the instance's), got {value.dtype}; "
            f"convert it with .to({spec.dtype})"
        )
    if spec.device is not None and value.device != torch.device(spec.device):
        raise ValueError(f"decision '{name}' is on {value.device}, the instance on {spec.device}")
    if (value.is_floating_point() or value.is_complex()) and not bool(torch.isfinite(value).all()):
        bad = int((~torch.isfinite(value)).sum())
        raise ValueError(f"decision '{name}' has {bad} non-finite entries (NaN or inf) of {value.numel()}")


def check_finite(name: str, value: Any, *, minimum: float | None = None, positive: bool = False) -> None:
    """ValueError naming ``name`` if the tensor ``value`` has a NaN/inf entry, or an entry below
    ``minimum`` (or <= 0 with ``positive``); TypeError if it is not a tensor. For instance fields."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.is_floating_point() or value.is_complex():
        finite = torch.isfinite(value)
        if not bool(finite.all()):
            raise ValueError(f"{name} has {int((~finite).sum())} non-finite entries (NaN or inf)")
    if value.is_complex():
        return
    if positive and value.numel() and not bool((value > 0).all()):
        raise ValueError(f"{name} must be > 0 everywhere, got min {float(value.min()):.6g}")
    if minimum is not None and value.numel() and not bool((value >= minimum).all()):
        raise ValueError(f"{name} must be >= {minimum:g} everywhere, got min {float(value.min()):.6g}")


class Policy(Protocol[InstanceT]):
    """Anything that maps a batch of instances to a batch of decisions."""

    def __call__(self, instance: InstanceT) -> Allocation: ...


class Problem(ABC, Generic[InstanceT]):
    """A problem family: sampling, scoring and feasibility of its decisions."""

    #: the Allocation fields a decision of this family must set
    decision_fields: tuple[str, ...] = ()

    @abstractmethod
    def sample(
        self,
        scenario: Scenario,
        batch: int,
        *,
        seed: int,
        first_index: int = 0,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> InstanceT:
        """Draw ``batch`` instances (sample indices first_index...) from the scenario."""

    @abstractmethod
    def metrics(self, instance: InstanceT, allocation: Allocation) -> dict[str, torch.Tensor]:
        """Named per-instance or per-UE tensors (e.g. ``se_ul`` [B, K], ``min_se_ul`` [B])."""

    @abstractmethod
    def objective(self, instance: InstanceT, allocation: Allocation) -> torch.Tensor:
        """Shapes: -> [B], larger is better."""

    @abstractmethod
    def violation(self, instance: InstanceT, allocation: Allocation) -> torch.Tensor:
        """Largest relative constraint violation. Shapes: -> [B], 0 iff feasible."""

    def decision_shapes(self, instance: InstanceT) -> dict[str, DecisionSpec]:
        """Expected shape, dtype (and device) of each decision field for ``instance``, checked by
        ``check``; a family overrides this (the default checks presence only)."""
        return {}

    def check(self, instance: InstanceT, allocation: Allocation) -> None:
        """Raise ValueError/TypeError naming the decision field that is missing, is not a tensor,
        has another shape (batch size included), dtype or device than ``decision_shapes(instance)``
        says, or holds a NaN or an infinity (a NaN power must never score as SE 0)."""
        needed = (*self.decision_fields, *self.decision_shapes(instance))
        if not isinstance(allocation, Allocation) and not all(hasattr(allocation, n) for n in needed):
            raise TypeError(f"allocation must be an Allocation, got {type(allocation).__name__}")
        for name in self.decision_fields:
            if getattr(allocation, name, None) is None:
                raise ValueError(f"{type(self).__name__} needs the decision field '{name}' in the Allocation")
        for name, spec in self.decision_shapes(instance).items():
            value = getattr(allocation, name, None)
            if value is not None:
                check_decision(name, value, spec)

    def feasible(self, instance: InstanceT, allocation: Allocation, tol: float = 1e-6) -> torch.Tensor:
        """Shapes: -> [B] bool."""
        return self.violation(instance, allocation) <= tol


def relative_excess(load: torch.Tensor, budget: torch.Tensor) -> torch.Tensor:
    """max_j (load_j - budget_j)^+ / budget_j over the last dimension. Shapes: [B, J] -> [B]."""
    return ((load - budget) / budget).clamp_min(0).amax(-1)


def evaluate(problem: Problem, policy: Policy, instance: Any, tol: float = 1e-6) -> dict[str, Any]:
    """Run ``policy`` on ``instance`` and score it with ``problem``.

    Returns {"allocation", "seconds", "objective" [B], "violation" [B], "feasibility_probability",
    and every metric}.
    """
    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be a Problem, got {type(problem).__name__}")
    if not callable(policy):
        raise TypeError(f"policy must be callable (instance -> Allocation), got {type(policy).__name__}")
    if not isinstance(tol, (int, float)) or isinstance(tol, bool) or not tol >= 0 or tol == float("inf"):
        raise ValueError(f"tol must be a finite number >= 0, got {tol!r}")
    start = time.perf_counter()
    allocation = policy(instance)
    seconds = time.perf_counter() - start
    problem.check(instance, allocation)
    violation = problem.violation(instance, allocation)
    return {
        "allocation": allocation,
        "seconds": seconds,
        "objective": problem.objective(instance, allocation),
        "violation": violation,
        "feasibility_probability": float((violation <= tol).double().mean()),
        **problem.metrics(instance, allocation),
    }
