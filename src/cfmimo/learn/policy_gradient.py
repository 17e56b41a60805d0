"""Primal-dual training pieces with REINFORCE for binary associations (egat-fronthaul.md Sect. IV-D).

GNN-free building blocks of Algorithm 2; a training recipe calls :func:`fronthaul_pg_loss` with its
model's raw beams and association logits, then :func:`dual_step` with the returned loads.

The paper's equations and what is implemented (L APs = the paper's B, K UEs, S samples per instance):

* Association policy: ``x_lk ~ Bernoulli(pi_lk)``, ``pi = sigmoid(logits)`` (27), log-probability (31)
  ``log P(X | Pi) = sum_lk x_lk log pi_lk + (1 - x_lk) log(1 - pi_lk)`` (computed from the logits).
* Beams: (36) ``v_lk <- x_lk v_lk`` then (37) ``V_l <- sqrt(P_l) V_l / ||V_l||_F`` (per-AP full power).
* Partial Lagrangian (29), with the constraint normalized by C so that mu is dimensionless per unit
  of the objective (bit/s/Hz): ``L2 = sum_k w_k log2(1 + SINR_k) - sum_l mu_l (load_l / C_l - 1)``.
* Reward (32): ``Q(X) = L2`` evaluated at the sampled X, **detached** (REINFORCE differentiates only
  ``log P``; a gradient through Q would be a second, biased term).
* Loss (33), minimized by gradient **descent**:
  ``Loss = -mean_{s,b}[ L2(V(X_s), X_s) + (Q_s - baseline_s) log P(X_s | Pi) ]``.
  Its gradient in the beam parameters is -grad L2 (the paper's (38) prints ``theta + eta grad Loss``,
  ascent on a loss: a sign error); in the association parameters it is minus the REINFORCE estimate
  of ``grad E[Q]``, i.e. (34) as descent.
* Baseline: leave-one-out over the S >= 2 samples of the same instance,
  ``b_s = (sum_{s'} Q_s' - Q_s) / (S - 1)``: independent of X_s, so the estimator stays unbiased
  (tested against the exact gradient by enumeration) and its variance drops.
* Dual step: ``mu <- [mu + eta_mu (load / C - 1)]_+`` — projected gradient *descent* of the dual
  function in mu; Algorithm 2 prints ``mu - (load - C)``, which lowers mu under violation (sign error).
  ``mu`` is shared, one per AP index, ``[L]`` (the paper's ``mu in R_+^B``), updated with the batch mean
  (the expectation over instances); a 0-d ``mu`` is one multiplier for every AP (APs are exchangeable
  under i.i.d. placement, and it also serves models evaluated on other AP counts); ``[B, L]`` is the
  per-instance option (multipliers indexed by training sample, kept by the caller).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from cfmimo.problems.fronthaul_wsr import FronthaulInstance
from cfmimo.sim.instantaneous import normalize_per_ap, sinr

__all__ = [
    "bernoulli_log_prob",
    "dual_step",
    "fronthaul_pg_loss",
    "lagrangian",
    "leave_one_out_baseline",
    "reinforce_surrogate",
    "sample_associations",
]

Baseline = Literal["loo", "none"]


def sample_associations(logits: Tensor, samples: int, *, generator: torch.Generator) -> Tensor:
    """Draw S binary association matrices per instance, ``x ~ Bernoulli(sigmoid(logits))``.

    Uniforms come from ``generator`` on its own device (CPU generators work for any logits device).

    Shapes:
        logits [B, L, K] -> bool [S, B, L, K].
    """
    if not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples must be a positive int, got {samples!r}")
    u = torch.rand((samples, *logits.shape), generator=generator, device=generator.device, dtype=logits.dtype)
    return u.to(logits.device) < torch.sigmoid(logits.detach())


def bernoulli_log_prob(logits: Tensor, x: Tensor) -> Tensor:
    """log P(X | Pi) of (31), summed over links, from logits (stable: log sigmoid = -softplus(-z)).

    Shapes:
        logits [B, L, K]; x [..., B, L, K] (bool or 0/1) -> [..., B].
    """
    xf = x.to(logits.dtype)
    # x log(pi) + (1 - x) log(1 - pi) = x z - softplus(z)
    return (xf * logits - F.softplus(logits)).sum(dim=(-2, -1))


def leave_one_out_baseline(reward: Tensor) -> Tensor:
    """``b_s = mean of the other samples' rewards`` over the sample axis 0. Shapes: [S, ...] -> [S, ...]."""
    S = reward.shape[0]
    if S < 2:
        raise ValueError(f"the leave-one-out baseline needs S >= 2 samples per instance, got {S}")
    return (reward.sum(0, keepdim=True) - reward) / (S - 1)


def reinforce_surrogate(log_prob: Tensor, reward: Tensor, *, baseline: Baseline = "loo") -> Tensor:
    """A scalar whose gradient is the REINFORCE estimate of ``grad E_X[Q]`` (mean over samples, instances).

    ``mean_{s,b} (Q_sb - baseline_sb).detach() * log P(X_sb)``; maximize it (or minimize its negative).

    Shapes:
        log_prob, reward [S, B] -> scalar.
    """
    if log_prob.shape != reward.shape or log_prob.dim() != 2:
        raise ValueError(
            f"log_prob and reward must both be [S, B], got {tuple(log_prob.shape)}, {tuple(reward.shape)}"
        )
    q = reward.detach()
    if baseline == "loo":
        q = q - leave_one_out_baseline(q)
    elif baseline != "none":
        raise ValueError(f"baseline must be 'loo' or 'none', got {baseline!r}")
    return (q * log_prob).mean()


def lagrangian(wsr: Tensor, load: Tensor, capacity: Tensor, mu: Tensor) -> Tensor:
    """Partial Lagrangian (29) with the normalized constraint: ``wsr - sum_l mu_l (load_l / C_l - 1)``.

    Shapes:
        wsr [..., B] (bit/s/Hz); load [..., B, L], capacity [B, L] (same unit); mu [], [L] or [B, L]
        (>= 0) -> [..., B].
    """
    excess = load / capacity - 1.0  # [..., B, L]
    return wsr - (mu * excess).sum(-1)


def dual_step(mu: Tensor, load: Tensor, capacity: Tensor, step: float) -> Tensor:
    """Projected dual descent ``mu <- [mu + step * (load / C - 1)]_+`` (Algorithm 2, sign fixed).

    The constraint excess is averaged over every axis that ``mu`` does not have: a shared ``mu`` [L]
    (or 0-d) sees the batch mean, a per-instance ``mu`` [B, L] the mean over the S samples.

    Shapes:
        mu [], [L] or [B, L]; load [..., B, L]; capacity [B, L] -> the shape of mu.
    """
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if bool((mu < 0).any()):
        raise ValueError("mu must be >= 0")
    excess = (load.detach() / capacity - 1.0).to(mu.dtype)  # [..., B, L]
    if mu.dim() == 0:
        g = excess.mean()
    elif mu.dim() == 1 and mu.shape[0] == excess.shape[-1]:
        g = excess.reshape(-1, mu.shape[0]).mean(0)
    elif mu.dim() == 2 and tuple(mu.shape) == tuple(excess.shape[-2:]):
        g = excess.reshape(-1, *mu.shape).mean(0)
    else:
        raise ValueError(f"mu must be [], [L] or [B, L] for loads {tuple(load.shape)}, got {tuple(mu.shape)}")
    return (mu + step * g).clamp_min(0.0)


def fronthaul_pg_loss(
    instance: FronthaulInstance,
    beams: Tensor,
    logits: Tensor,
    mu: Tensor,
    *,
    samples: int = 2,
    generator: torch.Generator,
    baseline: Baseline = "loo",
) -> tuple[Tensor, dict[str, Tensor]]:
    """Loss (33) for a model's raw outputs, as descent (module docstring).

    Args:
        instance: the batch (h, weights, noise, P, C, BW).
        beams: the model's raw complex beams (27)/(35), before masking (36) and normalization (37).
        logits: association logits, ``pi = sigmoid(logits)`` (27).
        mu: multipliers, [], [L] (shared) or [B, L] (per instance), >= 0; not differentiated.
        samples: S Bernoulli draws of X per instance (S >= 2 for the leave-one-out baseline).
        generator: the sampling stream.
        baseline: "loo" (default) or "none".

    Returns:
        loss (scalar), and detached diagnostics: "wsr" [S, B] (bit/s/Hz), "load" [S, B, L] (bit/s, for
        :func:`dual_step`), "lagrangian" [S, B], "feasible" [S, B] bool (fronthaul met by the sampled X,
        before any repair), "aps_per_ue" [S, B], "log_prob" [S, B].

    Shapes:
        beams complex [B, L, K, N]; logits [B, L, K]; mu [], [L] or [B, L].
    """
    if beams.shape != instance.h.shape or not beams.is_complex():
        raise ValueError(
            f"beams must be complex [B, L, K, N] = {tuple(instance.h.shape)}, got {tuple(beams.shape)}"
        )
    if logits.shape != instance.h.shape[:-1] or logits.is_complex():
        raise ValueError(
            f"logits must be real [B, L, K] = {tuple(instance.h.shape[:-1])}, got {tuple(logits.shape)}"
        )
    if baseline == "loo" and samples < 2:
        raise ValueError("the leave-one-out baseline needs samples >= 2")
    mu = mu.detach().to(instance.power.dtype)
    x = sample_associations(logits, samples, generator=generator)  # [S, B, L, K]
    v = normalize_per_ap(beams.expand(samples, *beams.shape), x, instance.power, mode="per_ap")  # (36)-(37)
    s = sinr(instance.h.expand(samples, *instance.h.shape), v, x, instance.noise)  # [S, B, K]
    se = torch.log2(1.0 + s)  # [S, B, K] bit/s/Hz
    wsr = (instance.weights * se).sum(-1)  # [S, B]
    load = instance.bandwidth_hz * (x.to(se.dtype) * se.unsqueeze(-2)).sum(-1)  # [S, B, L] bit/s (3b)
    lag = lagrangian(wsr, load, instance.capacity, mu)  # [S, B], differentiable in the beams
    logp = bernoulli_log_prob(logits, x)  # [S, B], differentiable in the logits
    loss = -lag.mean() - reinforce_surrogate(logp, lag, baseline=baseline)
    stats = {
        "wsr": wsr.detach(),
        "load": load.detach(),
        "lagrangian": lag.detach(),
        "feasible": (load <= instance.capacity).all(-1).detach(),
        "aps_per_ue": x.to(se.dtype).sum(-2).mean(-1),
        "log_prob": logp.detach(),
    }
    return loss, stats
