"""Weighted sum-rate precoding with a UE-AP association (AAGNN eqs. (1)-(2); EGAT's WSR without fronthaul).

    max_V  sum_k w_k log2(1 + gamma_k)                                    (1a), weights w_k > 0
    s.t.   sum_k ||v_lk||^2 <= P_l          for every AP l                (1b)

    gamma_k = |sum_l d_lk h_lk^H v_lk|^2 / (sum_{i != k} |sum_l d_li h_lk^H v_li|^2 + sigma^2)   (2)

One small-scale realization per instance with perfect CSI: h_lk = sqrt(beta_lk) z_lk, z ~ CN(0, I_N)
(no estimation). ``d_lk`` (``association``) says which APs may serve UE k (AAGNN: APs within 300 m).
A precoder on an unserved link (d_lk = 0) carries no signal in (2), but (1b) as printed sums over
*every* v_lk, masked or not: ``violation`` and the ``per_ap_power`` metric count all of them, and
``unserved_power`` reports the power wasted on unserved links (0 for every policy in cfmimo, which
emit exact zeros there). (``sim.instantaneous.per_ap_power`` with a mask counts served links only.)

The paper's eq. (2) prints "+ delta^2" outside the fraction; it is the noise of the denominator
(``sim.instantaneous.sinr``). Rates are log2 (bit/s/Hz); the paper writes an unspecified "log".
With the default weights (all 1) the objective is the sum rate of AAGNN; the fronthaul paper (EGAT)
reuses the same weighted objective.

Units (DESIGN.md section 2): channels are gains over the noise power, so ``noise`` is 1 and
``||v||^2`` and ``p_max`` are in mW.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from cfmimo.config import Scenario
from cfmimo.problems.base import Allocation, DecisionSpec, Problem, relative_excess
from cfmimo.sim.instantaneous import check_channel, rate, sinr
from cfmimo.sim.network import sample_perfect_csi

__all__ = ["PrecodingInstance", "SumRatePrecoding", "permute_precoder_antennas", "precoding_instance"]


def _real_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.empty((), dtype=dtype).real.dtype


def _check_real(
    name: str, t: object, shape: tuple[int, ...], dims: str, h: Tensor, *, positive: bool
) -> None:
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor {dims}, got {type(t).__name__}")
    if t.is_complex() or not t.is_floating_point():
        raise TypeError(f"{name} must be a real floating tensor {dims}, got dtype {t.dtype}")
    if tuple(t.shape) != shape:
        raise ValueError(f"{name} must have shape {dims} = {shape}, got {tuple(t.shape)}")
    if t.dtype != _real_dtype(h.dtype):
        raise TypeError(f"{name} must have dtype {_real_dtype(h.dtype)} (the real dtype of h), got {t.dtype}")
    if t.device != h.device:
        raise ValueError(f"{name} must be on h's device {h.device}, got {t.device}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    if positive and not bool((t > 0).all()):
        raise ValueError(f"{name} must be > 0, got minimum {t.min().item():.4g}")


@dataclass(frozen=True)
class PrecodingInstance:
    """B sum-rate precoding instances.

    Shapes:
        h complex [B, L, K, N] (perfect CSI, gains over noise: h_lk = sqrt(beta_lk) z_lk);
        association bool [B, L, K] (AP l may serve UE k); p_max real [B, L] (mW, > 0);
        noise real [B] (> 0, in units of |h|^2 * mW: 1 for noise-normalized channels);
        weights real [B, K] (> 0; all 1 = sum rate).
    """

    h: Tensor
    association: Tensor
    p_max: Tensor
    noise: Tensor
    weights: Tensor

    def __post_init__(self) -> None:
        h = check_channel(self.h)
        B, L, K, _ = h.shape
        a = self.association
        if not isinstance(a, Tensor):
            raise TypeError(f"association must be a bool torch.Tensor [B, L, K], got {type(a).__name__}")
        if a.dtype != torch.bool:
            raise TypeError(f"association must be a bool tensor [B, L, K], got dtype {a.dtype}")
        if tuple(a.shape) != (B, L, K):
            raise ValueError(f"association must have shape [B, L, K] = {(B, L, K)}, got {tuple(a.shape)}")
        if a.device != h.device:
            raise ValueError(f"association must be on h's device {h.device}, got {a.device}")
        if not bool(torch.isfinite(h).all()):
            raise ValueError("h must be finite (no NaN or inf)")
        _check_real("p_max", self.p_max, (B, L), "[B, L]", h, positive=True)
        _check_real("noise", self.noise, (B,), "[B]", h, positive=True)
        _check_real("weights", self.weights, (B, K), "[B, K]", h, positive=True)

    # sizes ---------------------------------------------------------------------------------------
    @property
    def batch(self) -> int:
        return self.h.shape[0]

    @property
    def L(self) -> int:
        return self.h.shape[1]

    @property
    def K(self) -> int:
        return self.h.shape[2]

    @property
    def N(self) -> int:
        return self.h.shape[3]

    # sub-batches and permutations ------------------------------------------------------------------
    def take(self, index: Tensor | slice) -> PrecodingInstance:
        """A sub-batch (``index``: slice or 1-D long tensor)."""
        return PrecodingInstance(
            self.h[index], self.association[index], self.p_max[index], self.noise[index], self.weights[index]
        )

    def permute_ues(self, perm: Tensor) -> PrecodingInstance:
        """UEs reordered: new UE k = old UE perm[k]. Shapes: perm [K] long."""
        p = perm.to(self.h.device)
        return PrecodingInstance(
            self.h[:, :, p], self.association[:, :, p], self.p_max, self.noise, self.weights[:, p]
        )

    def permute_aps(self, perm: Tensor) -> PrecodingInstance:
        """APs reordered: new AP l = old AP perm[l]. Shapes: perm [L] long."""
        p = perm.to(self.h.device)
        return PrecodingInstance(
            self.h[:, p], self.association[:, p], self.p_max[:, p], self.noise, self.weights
        )

    def permute_antennas(self, perm: Tensor) -> PrecodingInstance:
        """Antennas of each AP reordered independently: new antenna n of AP l = old antenna perm[l, n].

        Shapes: perm [L, N] long (each row a permutation of 0..N-1).
        """
        if tuple(perm.shape) != (self.L, self.N):
            raise ValueError(f"perm must have shape [L, N] = {(self.L, self.N)}, got {tuple(perm.shape)}")
        return PrecodingInstance(
            permute_precoder_antennas(self.h, perm), self.association, self.p_max, self.noise, self.weights
        )


def permute_precoder_antennas(x: Tensor, perm: Tensor) -> Tensor:
    """``x[b, l, k, n] -> x[b, l, k, perm[l, n]]`` (channels or precoders, per-AP antenna order).

    Shapes: x [B, L, K, N]; perm [L, N] long -> [B, L, K, N].
    """
    B, L, K, N = x.shape
    index = perm.to(x.device)[None, :, None, :].expand(B, L, K, N)  # [B, L, K, N]
    return torch.gather(x, -1, index)


def precoding_instance(
    h: Tensor,
    association: Tensor,
    p_max: float | Tensor,
    noise: float | Tensor = 1.0,
    weights: Tensor | None = None,
    *,
    allow_unserved: bool = False,
) -> PrecodingInstance:
    """Build a :class:`PrecodingInstance` from tensors, broadcasting scalars.

    ``p_max`` may be a scalar or [B, L]; ``noise`` a scalar or [B]; ``weights`` None (all 1) or [B, K].
    Real inputs are cast to the real dtype of ``h``. A UE that no AP serves gets rate 0 whatever the
    precoder, which is almost always a configuration error: ValueError unless ``allow_unserved``.

    Shapes:
        h complex [B, L, K, N]; association bool [B, L, K] -> PrecodingInstance.
    """
    if not isinstance(h, Tensor) or not h.is_complex():
        got = h.dtype if isinstance(h, Tensor) else type(h).__name__
        raise TypeError(f"h must be a complex torch.Tensor [B, L, K, N], got {got}")
    if h.dim() != 4:
        raise ValueError(f"h must have shape [B, L, K, N], got {tuple(h.shape)}")
    B, L, K, _ = h.shape
    real = _real_dtype(h.dtype)

    def full(name: str, value: float | Tensor, shape: tuple[int, ...]) -> Tensor:
        if isinstance(value, Tensor):
            if value.is_complex():
                raise TypeError(f"{name} must be real, got dtype {value.dtype}")
            return value.to(dtype=real, device=h.device)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"{name} must be a float or a tensor, got {type(value).__name__}")
        if math.isnan(value) or value <= 0:
            raise ValueError(f"{name} must be > 0, got {value}")
        return torch.full(shape, float(value), dtype=real, device=h.device)

    w = torch.ones(B, K, dtype=real, device=h.device) if weights is None else full("weights", weights, (B, K))
    inst = PrecodingInstance(h, association, full("p_max", p_max, (B, L)), full("noise", noise, (B,)), w)
    if not allow_unserved:
        unserved = ~association.any(dim=1)  # [B, K]
        if bool(unserved.any()):
            b, k = (int(i) for i in unserved.nonzero()[0])
            raise ValueError(
                f"association leaves {int(unserved.sum())} UE(s) without a serving AP (first: instance {b}, "
                f"UE {k}); pass allow_unserved=True if intended"
            )
    return inst


class SumRatePrecoding(Problem[PrecodingInstance]):
    """Weighted sum-rate precoding under per-AP power budgets (module docstring).

    ``sample`` draws one perfect-CSI realization per setup of the scenario (association from its
    clustering rule, P_l = ``dl_power_per_ap_mw``, unit noise, unit weights).
    """

    decision_fields = ("precoders",)

    def __init__(self, *, allow_unserved: bool = False) -> None:
        self.allow_unserved = allow_unserved

    def sample(
        self,
        scenario: Scenario,
        batch: int,
        *,
        seed: int,
        first_index: int = 0,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> PrecodingInstance:
        net, h = sample_perfect_csi(
            scenario, batch, seed=seed, first_index=first_index, dtype=dtype, device=device
        )
        return precoding_instance(
            h, net.serving, scenario.dl_power_per_ap_mw, 1.0, allow_unserved=self.allow_unserved
        )

    def decision_shapes(self, instance: PrecodingInstance) -> dict[str, DecisionSpec]:
        """precoders: complex [B, L, K, N], exactly h's shape, dtype and device (no broadcasting)."""
        if not isinstance(instance, PrecodingInstance):
            raise TypeError(f"instance must be a PrecodingInstance, got {type(instance).__name__}")
        h = instance.h
        return {"precoders": DecisionSpec(tuple(h.shape), h.dtype, h.device)}

    def metrics(self, instance: PrecodingInstance, allocation: Allocation) -> dict[str, Tensor]:
        """rate [B, K] (bit/s/Hz, unweighted), sum_rate [B], weighted_sum_rate [B], sinr [B, K],
        per_ap_power [B, L] (every link, as (1b)), unserved_power [B] (links with d_lk = 0)."""
        v = self._precoders(instance, allocation)
        gamma = sinr(instance.h, v, instance.association, instance.noise[:, None])  # [B, K]
        r = rate(gamma)
        power = v.real.square() + v.imag.square()  # [B, L, K, N]
        link = power.sum(-1)  # [B, L, K]
        return {
            "sinr": gamma,
            "rate": r,
            "sum_rate": r.sum(-1),
            "weighted_sum_rate": (instance.weights * r).sum(-1),
            "per_ap_power": link.sum(-1),
            "unserved_power": link.masked_fill(instance.association, 0.0).sum(dim=(-2, -1)),
        }

    def objective(self, instance: PrecodingInstance, allocation: Allocation) -> Tensor:
        """sum_k w_k log2(1 + gamma_k), eqs. (1a)-(2). Shapes: -> [B]."""
        v = self._precoders(instance, allocation)
        gamma = sinr(instance.h, v, instance.association, instance.noise[:, None])  # [B, K]
        return (instance.weights * rate(gamma)).sum(-1)

    def violation(self, instance: PrecodingInstance, allocation: Allocation) -> Tensor:
        """max_l (sum_k ||v_lk||^2 - P_l)^+ / P_l over every link, masked or not (1b). Shapes: -> [B]."""
        v = self._precoders(instance, allocation)
        load = (v.real.square() + v.imag.square()).sum(dim=(-2, -1))  # [B, L]
        return relative_excess(load, instance.p_max)

    def _precoders(self, instance: PrecodingInstance, allocation: Allocation) -> Tensor:
        v = getattr(allocation, "precoders", None)
        if isinstance(v, Tensor) and not v.is_complex():
            raise TypeError(f"precoders must be complex [B, L, K, N], got dtype {v.dtype}")
        self.check(instance, allocation)  # shape, dtype, device and finiteness (decision_shapes)
        return allocation.precoders
