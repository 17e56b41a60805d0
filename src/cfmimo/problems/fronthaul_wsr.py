"""Fronthaul-constrained weighted sum rate with binary AP-UE association (egat-fronthaul.md, (1)-(3)).

One instance is one perfect-CSI realization of a cell-free downlink with L APs (the paper's B) of N
antennas (its M) and K single-antenna UEs:

    max_{V, X}  sum_k w_k log2(1 + SINR_k)                                           (3a)
    s.t.        sum_k x_lk * BW * log2(1 + SINR_k) <= C_l      for every AP l        (3b)
                ||V_l||_F^2 = sum_k ||v_lk||^2 <= P_l          for every AP l        (3c)
                x_lk in {0, 1},  v_lk = 0 when x_lk = 0                              (3d), (36)

with SINR_k of (2) (coherent joint transmission; :func:`cfmimo.sim.instantaneous.sinr`). Units: the
objective is in bit/s/Hz (``metrics`` adds Mbit/s); loads and capacities in bit/s with
``BW = bandwidth_hz`` (10 MHz in Table I), so (3b) reads ``load_l <= C_l`` in bit/s. Channels are
normalized by the noise power (DESIGN.md), hence ``noise = 1`` for sampled instances and powers in mW.

Decision: ``Allocation(precoders=[B, L, K, N] complex, serving=[B, L, K] bool)``. The effective
beam of link (l, k) is ``x_lk v_lk`` (EGAT (36)); policies should output exact zeros on unserved
links, and :meth:`FronthaulWSR.repair` does. Binary masks only: a real mask with an entry outside
{0, 1} is reported by ``violation`` (its distance to {0, 1}) and rejected by ``objective``/``metrics``.

Repair (Sect. V-A "heuristic scaling", made a projection): see :meth:`FronthaulWSR.repair`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from cfmimo.config import Scenario
from cfmimo.problems.base import Allocation, DecisionSpec, Problem, relative_excess
from cfmimo.sim.instantaneous import binary_mask, check_channel, per_ap_power, sinr
from cfmimo.sim.network import sample_perfect_csi

__all__ = ["FronthaulInstance", "FronthaulWSR", "fronthaul_instance", "loads"]


def _real(name: str, t: object, shape: tuple[int, ...], dims: str, dtype: torch.dtype) -> Tensor:
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor {dims}, got {type(t).__name__}")
    if t.is_complex() or not t.is_floating_point():
        raise TypeError(f"{name} must be a real floating tensor {dims}, got dtype {t.dtype}")
    if tuple(t.shape) != shape:
        raise ValueError(f"{name} must have shape {dims} = {shape}, got {tuple(t.shape)}")
    if t.dtype != dtype:
        raise TypeError(f"{name} must have dtype {dtype} (the real dtype of h), got {t.dtype}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must be finite")
    return t


@dataclass(frozen=True)
class FronthaulInstance:
    """B instances of problem (3): channels, weights, noise and the per-AP budgets.

    Shapes:
        h complex [B, L, K, N] (``h[b, l, k]`` is h_lk of eq. (1)); weights w [B, K] (>= 0);
        noise xi^2 [B, K] (> 0, in the units of |h^H v|^2); power P [B, L] (> 0, units of ||v||^2);
        capacity C [B, L] (> 0, bit/s); bandwidth_hz: float (> 0).
    """

    h: Tensor
    weights: Tensor
    noise: Tensor
    power: Tensor
    capacity: Tensor
    bandwidth_hz: float

    def __post_init__(self) -> None:
        h = check_channel(self.h)
        B, L, K, _ = h.shape
        rd = h.real.dtype
        _real("weights", self.weights, (B, K), "[B, K]", rd)
        _real("noise", self.noise, (B, K), "[B, K]", rd)
        _real("power", self.power, (B, L), "[B, L]", rd)
        _real("capacity", self.capacity, (B, L), "[B, L]", rd)
        if bool((self.weights < 0).any()):
            raise ValueError("weights must be >= 0")
        for name in ("noise", "power", "capacity"):
            if bool((getattr(self, name) <= 0).any()):
                raise ValueError(f"{name} must be > 0")
        bw = self.bandwidth_hz
        if isinstance(bw, bool) or not isinstance(bw, int | float) or not math.isfinite(bw) or bw <= 0:
            raise ValueError(f"bandwidth_hz must be a positive number, got {bw!r}")

    @property
    def batch(self) -> int:
        return self.h.shape[0]

    @property
    def capacity_se(self) -> Tensor:
        """C_l / BW in bit/s/Hz, [B, L] (the unit of the objective)."""
        return self.capacity / self.bandwidth_hz

    def take(self, index: Tensor | slice) -> FronthaulInstance:
        """A sub-batch of instances (``index``: slice or 1-D long tensor)."""
        return FronthaulInstance(
            self.h[index],
            self.weights[index],
            self.noise[index],
            self.power[index],
            self.capacity[index],
            self.bandwidth_hz,
        )

    def permute_ues(self, perm: Tensor) -> FronthaulInstance:
        """The same instances with UEs reordered (new UE k = old UE perm[k])."""
        return replace(self, h=self.h[:, :, perm], weights=self.weights[:, perm], noise=self.noise[:, perm])

    def permute_aps(self, perm: Tensor) -> FronthaulInstance:
        """The same instances with APs reordered (new AP l = old AP perm[l])."""
        return replace(self, h=self.h[:, perm], power=self.power[:, perm], capacity=self.capacity[:, perm])

    def with_capacity(self, capacity_bps: float | Tensor) -> FronthaulInstance:
        """The same channels under another fronthaul capacity (scalar bit/s or [B, L])."""
        c = torch.as_tensor(capacity_bps, dtype=self.power.dtype, device=self.power.device)
        return replace(self, capacity=c.expand_as(self.power).clone())


def fronthaul_instance(
    h: Tensor,
    *,
    power: float | Tensor,
    capacity: float | Tensor,
    bandwidth_hz: float,
    weights: float | Tensor = 1.0,
    noise: float | Tensor = 1.0,
) -> FronthaulInstance:
    """Build an instance from channels and scalars or tensors (broadcast to [B, K] / [B, L]).

    Shapes:
        h complex [B, L, K, N]; weights, noise: scalar or broadcastable to [B, K]; power, capacity:
        scalar or broadcastable to [B, L].
    """
    if not isinstance(h, Tensor) or not h.is_complex() or h.dim() != 4:
        got = tuple(h.shape) if isinstance(h, Tensor) else type(h).__name__
        raise TypeError(f"h must be a complex tensor [B, L, K, N], got {got}")
    B, L, K, _ = h.shape
    rd, dev = h.real.dtype, h.device

    def full(name: str, v: float | Tensor, shape: tuple[int, int]) -> Tensor:
        t = torch.as_tensor(v, dtype=rd, device=dev)
        try:
            return t.expand(shape).clone()
        except RuntimeError:
            raise ValueError(f"{name} must broadcast to {shape}, got {tuple(t.shape)}") from None

    return FronthaulInstance(
        h,
        full("weights", weights, (B, K)),
        full("noise", noise, (B, K)),
        full("power", power, (B, L)),
        full("capacity", capacity, (B, L)),
        float(bandwidth_hz),
    )


def loads(inst: FronthaulInstance, precoders: Tensor, serving: Tensor) -> tuple[Tensor, Tensor]:
    """Per-UE rates ``BW log2(1 + SINR_k)`` [B, K] and fronthaul loads (3b) [B, L], in bit/s.

    ``serving``: bool [B, L, K], or real with entries in {0, 1}; a real-valued (relaxed) mask is a
    ValueError naming ``serving`` (``sim.instantaneous.binary_mask``): the load (3b) counts served links,
    and the SINR functions of ``sim.instantaneous`` would weight the beams by it silently.
    """
    serving = binary_mask(serving, inst.h.shape[:-1], name="serving")
    s = sinr(inst.h, precoders, serving, inst.noise)  # [B, K]
    rate = inst.bandwidth_hz * torch.log2(1.0 + s)  # [B, K] bit/s
    load = (serving.to(rate.dtype) * rate.unsqueeze(-2)).sum(-1)  # [B, L]
    return rate, load


class FronthaulWSR(Problem[FronthaulInstance]):
    """Problem (3) of the EGAT paper (module docstring). Decision fields: precoders, serving."""

    decision_fields = ("precoders", "serving")

    # ------------------------------------------------------------------------------ sampling
    def sample(
        self, scenario: Scenario, batch, *, seed, first_index=0, dtype=torch.float32, device=None
    ) -> FronthaulInstance:
        """One perfect-CSI realization per setup (no estimation) with the scenario's P, C, w, BW.

        Gains are over the noise power, so noise = 1 and P = ``dl_power_per_ap_mw`` (mW).
        """
        _, h = sample_perfect_csi(
            scenario, batch, seed=seed, first_index=first_index, dtype=dtype, device=device
        )
        w = torch.tensor(scenario.weights, dtype=dtype, device=h.device)
        return fronthaul_instance(
            h,
            power=scenario.dl_power_per_ap_mw,
            capacity=scenario.fronthaul_capacity_bps,
            bandwidth_hz=scenario.bandwidth_hz,
            weights=w,
        )

    # ------------------------------------------------------------------------------ checks
    def decision_shapes(self, instance: FronthaulInstance) -> dict[str, DecisionSpec]:
        """precoders: complex [B, L, K, N] with h's dtype and device, finite. ``serving`` is checked by
        ``check`` and ``serving()``: a real-valued mask must reach ``violation`` (it is infeasible, not an
        input error)."""
        if not isinstance(instance, FronthaulInstance):
            raise TypeError(f"instance must be a FronthaulInstance, got {type(instance).__name__}")
        h = instance.h
        return {"precoders": DecisionSpec(tuple(h.shape), h.dtype, h.device)}

    def check(self, instance: FronthaulInstance, allocation: Allocation) -> None:
        v, x = getattr(allocation, "precoders", None), getattr(allocation, "serving", None)
        if isinstance(v, Tensor) and not v.is_complex():
            raise TypeError(f"precoders must be a complex tensor [B, L, K, N], got {v.dtype}")
        super().check(instance, allocation)
        if not isinstance(v, Tensor) or not v.is_complex():
            got = v.dtype if isinstance(v, Tensor) else type(v).__name__
            raise TypeError(f"precoders must be a complex tensor [B, L, K, N], got {got}")
        if v.shape != instance.h.shape:
            raise ValueError(
                f"precoders must have shape [B, L, K, N] = {tuple(instance.h.shape)}, got {tuple(v.shape)}"
            )
        if v.dtype != instance.h.dtype:
            raise TypeError(f"precoders must have the dtype of h ({instance.h.dtype}), got {v.dtype}")
        if not isinstance(x, Tensor) or x.is_complex():
            raise TypeError("serving must be a bool tensor [B, L, K]")
        if x.shape != instance.h.shape[:-1]:
            raise ValueError(
                f"serving must have shape [B, L, K] = {tuple(instance.h.shape[:-1])}, got {tuple(x.shape)}"
            )

    def serving(self, instance: FronthaulInstance, allocation: Allocation) -> Tensor:
        """The validated binary association as bool [B, L, K] (ValueError for a real-valued mask)."""
        self.check(instance, allocation)
        return binary_mask(allocation.serving, instance.h.shape[:-1], name="serving")

    # ------------------------------------------------------------------------------ scoring
    def metrics(self, instance: FronthaulInstance, allocation: Allocation) -> dict[str, Tensor]:
        """Rates (bit/s/Hz and bit/s), WSR (bit/s/Hz, Mbit/s), loads (3b), powers (3c), APs per UE."""
        x = self.serving(instance, allocation)
        v = allocation.precoders
        rate, load = loads(instance, v, x)
        se = rate / instance.bandwidth_hz
        wsr = (instance.weights * se).sum(-1)
        served = x.to(se.dtype).sum(-2)  # [B, K] APs serving each UE
        return {
            "se": se,  # [B, K] bit/s/Hz
            "rate_bps": rate,  # [B, K]
            "wsr": wsr,  # [B] bit/s/Hz
            "wsr_mbps": wsr * instance.bandwidth_hz / 1e6,  # [B]
            "sum_rate_bps": rate.sum(-1),  # [B]
            "load_bps": load,  # [B, L]
            "ap_power": per_ap_power(v, x),  # [B, L]
            "aps_per_ue": served,  # [B, K]
            "mean_aps_per_ue": served.mean(-1),  # [B]
        }

    def objective(self, instance: FronthaulInstance, allocation: Allocation) -> Tensor:
        """(3a) in bit/s/Hz, [B]."""
        x = self.serving(instance, allocation)
        rate, _ = loads(instance, allocation.precoders, x)
        return (instance.weights * rate).sum(-1) / instance.bandwidth_hz

    def violation(self, instance: FronthaulInstance, allocation: Allocation) -> Tensor:
        """max(relative excess of (3b), of (3c), distance of the mask to {0, 1}), [B]."""
        self.check(instance, allocation)
        m = allocation.serving
        if m.dtype == torch.bool:
            binary = torch.zeros(m.shape[0], dtype=instance.power.dtype, device=m.device)
            x = m
        else:
            mf = m.to(instance.power.dtype)
            binary = torch.minimum(mf.abs(), (1 - mf).abs()).flatten(1).amax(-1)  # [B]
            x = mf >= 0.5  # score the loads of the nearest binary mask
        _, load = loads(instance, allocation.precoders, x)
        power = per_ap_power(allocation.precoders, x)
        return torch.maximum(
            torch.maximum(relative_excess(load, instance.capacity), relative_excess(power, instance.power)),
            binary,
        )

    # ------------------------------------------------------------------------------ repair
    def repair(
        self,
        instance: FronthaulInstance,
        allocation: Allocation,
        *,
        factor: float = 0.8,
        drop_below: float = 1e-3,
    ) -> Allocation:
        """Project a decision onto (3b)-(3d) by the paper's heuristic scaling (Sect. V-A), batched.

        1. Unserved links get zero beams (36); APs above their power budget (by more than a relative
           1e-9, so the rounding of an exact normalization is left alone) are scaled to it (3c).
        2. While some AP l is overloaded (load_l > C_l), its *weakest* served UE carrying load (smallest
           ||h_lk||) gets its beam v_lk multiplied by ``factor``; all overloaded APs (of all instances)
           step at once. A link whose beam power has fallen to ``drop_below`` times its power at the start
           of the repair (or that had none) is dropped: x_lk = 0, v_lk = 0.

        Properties (tested): it terminates — every iteration scales at least one link, and a link is
        dropped after at most m = ceil(ln(drop_below) / ln(factor^2)) scalings, so there are at most
        L*K*m iterations; the result is feasible — an AP with no served UE has load 0; it is the identity
        on a feasible decision with zero beams on unserved links, hence idempotent. Scaling only lowers
        powers, so (3c) stays met. ``info["repair_iterations"]`` and ``info["repair_dropped"]`` [B] record
        what it did; ``info`` of the input is kept otherwise.
        """
        if not 0 < factor < 1:
            raise ValueError(f"factor must be in (0, 1), got {factor}")
        if not 0 < drop_below < 1:
            raise ValueError(f"drop_below must be in (0, 1), got {drop_below}")
        x = self.serving(instance, allocation)
        v = allocation.precoders * x.unsqueeze(-1)  # [B, L, K, N] (36)
        power = per_ap_power(v, x)  # [B, L]
        over_p = power > instance.power * (1 + 1e-9)  # rounding of an exact normalization is not an excess
        shrink = torch.where(
            over_p, (instance.power / power.clamp_min(1e-300)).sqrt(), torch.ones_like(power)
        )
        v = v * shrink[..., None, None].to(v.dtype)
        start = v.abs().square().sum(-1)  # [B, L, K] link powers at the start
        gain = instance.h.abs().square().sum(-1)  # [B, L, K] ||h_lk||^2
        m = math.ceil(math.log(drop_below) / math.log(factor**2))
        L, K = x.shape[-2:]
        dropped = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        it = 0
        for it in range(L * K * m + 2):  # noqa: B007 - bound: docstring; exits by break
            rate, load = loads(instance, v, x)
            over = load > instance.capacity  # [B, L]
            if not bool(over.any()):
                break
            carrying = x & (rate.unsqueeze(-2) > 0)  # [B, L, K] links that add to the load
            key = torch.where(carrying, gain, torch.full_like(gain, math.inf))
            weakest = key.argmin(-1, keepdim=True)  # [B, L, 1]
            hit = torch.zeros_like(x).scatter(-1, weakest, True) & carrying & over.unsqueeze(-1)
            v = torch.where(hit.unsqueeze(-1), v * factor, v)
            drop = hit & (v.abs().square().sum(-1) <= drop_below * start)
            dropped += drop.flatten(1).sum(-1)
            x = x & ~drop
            v = v * x.unsqueeze(-1)
        else:  # pragma: no cover - excluded by the termination argument
            raise RuntimeError("repair did not terminate within its bound")
        info = {**allocation.info, "repair_iterations": it, "repair_dropped": dropped}
        return replace(allocation, precoders=v, serving=x, info=info)
