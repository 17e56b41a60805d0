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
from typing import Any, Generic, Protocol, TypeVar

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

    def check(self, instance: InstanceT, allocation: Allocation) -> None:
        """Raise ValueError naming the decision field that is missing."""
        for name in self.decision_fields:
            if getattr(allocation, name) is None:
                raise ValueError(f"{type(self).__name__} needs the decision field '{name}' in the Allocation")

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
