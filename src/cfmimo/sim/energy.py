"""Energy efficiency with distributed MRT and non-coherent joint transmission (the ee-gnn model).

Raghunath, Peng & Jorswieck, "Energy-Efficient Power Allocation in Cell-Free Massive MIMO via Graph
Neural Networks" (ICMLCN 2024), section II. Each AP ``l`` beams to UE ``j`` along its own unit-norm MRT
direction ``h_lj / ||h_lj||`` with power ``p_jl``; the APs transmit non-coherently (received *powers* add
across APs). The MRT effective gain of AP ``l``'s beam for UE ``j`` at UE ``k`` is (eq. (2))

    h_{l,kj} = | h_lk^H h_lj / ||h_lj|| |^2,        so h_{l,kk} = ||h_lk||^2,

UE ``k``'s SINR is (inside eq. (1))

    SINR_k = sum_l h_{l,kk} p_kl / (sigma^2 + sum_{j != k} sum_l h_{l,kj} p_jl),

and the objective is the *sum of per-UE ratios* of eq. (1),

    J(P) = sum_k log2(1 + SINR_k) / (mu * sum_l p_kl + P_c),      p_kl >= 0,

with the power-amplifier inefficiency ``mu = 1`` and the static power ``P_c = 4 W`` (section V), which
the paper adds once per UE term, exactly as written here.

Units. Powers are in mW (DESIGN.md section 2) and the gains are normalized by the noise power, so the
default noise is 1 and the SINR needs no conversion. The energy-efficiency denominator is converted to
W (``/ 1000``) because the paper's constants are in W: ``J`` comes out in (bit/s/Hz)/W, i.e. bit/J per Hz
(log2; the paper writes "log" and reports "Mbit/Joule", which matches log2 with an implicit 1 MHz);
pass ``bandwidth_hz`` to get bit/J.

Indexing. The paper's ``P`` is ``K x L`` with ``p_kl`` = power of AP ``l`` for UE ``k``; cfmimo orders
AP before UE, so ``p[..., l, k]`` is the paper's ``p_kl`` and ``gains[..., l, k, j]`` its ``h_{l,kj}``.
An association mask (the paper's gain threshold, section II-A) zeroes the powers of unserved links.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "energy_efficiency",
    "energy_efficiency_terms",
    "global_energy_efficiency",
    "mrt_effective_gains",
    "mrt_sinr",
]

MW_PER_W = 1000.0


def _broadcasts_into(shape: torch.Size | tuple[int, ...], target: torch.Size | tuple[int, ...]) -> bool:
    try:
        return tuple(torch.broadcast_shapes(tuple(shape), tuple(target))) == tuple(target)
    except RuntimeError:
        return False


def mrt_effective_gains(h: Tensor) -> Tensor:
    """MRT effective gains ``h_{l,kj} = |h_lk^H h_lj / ||h_lj|| |^2`` (ee-gnn eq. (2)).

    ``gains[..., l, k, j]`` is the power gain at UE ``k`` of AP ``l``'s unit-norm MRT beam for UE ``j``;
    the diagonal ``gains[..., l, k, k] = ||h_lk||^2`` is the desired-signal gain. A zero channel
    ``h_lj = 0`` gives a zero beam (column ``j`` of AP ``l`` is 0), not NaN.

    Shapes:
        h: complex ``[..., L, K, N]`` (noise-normalized) -> real ``[..., L, K (receiver k), K (beam j)]``.
    """
    if not isinstance(h, Tensor) or not h.is_complex():
        raise TypeError(
            f"h must be a complex tensor [..., L, K, N], got {getattr(h, 'dtype', type(h).__name__)}"
        )
    if h.dim() < 3:
        raise ValueError(f"h must have shape [..., L, K, N] (at least 3 dims), got {tuple(h.shape)}")
    inner = torch.einsum("...lkn,...ljn->...lkj", h.conj(), h)  # h_lk^H h_lj, [..., L, K, K]
    num = inner.real.square() + inner.imag.square()  # [..., L, K, K]
    norm2 = (h.real.square() + h.imag.square()).sum(-1)  # ||h_lj||^2, [..., L, K]
    active = norm2 > 0
    safe = torch.where(active, norm2, torch.ones_like(norm2))
    return torch.where(active.unsqueeze(-2), num / safe.unsqueeze(-2), torch.zeros_like(num))


def _check_gains_powers(gains: Tensor, p: Tensor, mask: Tensor | None) -> Tensor:
    """Validate and return the effective powers ``p * mask`` broadcast to ``[..., L, K]``."""
    if not isinstance(gains, Tensor) or gains.is_complex() or not gains.is_floating_point():
        raise TypeError("gains must be a real floating tensor [..., L, K, K] (see mrt_effective_gains)")
    if gains.dim() < 3 or gains.shape[-1] != gains.shape[-2]:
        raise ValueError(f"gains must have shape [..., L, K, K], got {tuple(gains.shape)}")
    if not isinstance(p, Tensor) or p.is_complex() or not p.is_floating_point():
        raise TypeError("p must be a real floating tensor [..., L, K] (powers in mW)")
    if p.dtype != gains.dtype:
        raise TypeError(f"p must have the dtype of gains ({gains.dtype}), got {p.dtype}")
    L, K = gains.shape[-3], gains.shape[-1]
    if p.dim() < 2 or tuple(p.shape[-2:]) != (L, K):
        raise ValueError(
            f"p must have shape [..., L, K] = [..., {L}, {K}] (from gains), got {tuple(p.shape)}"
        )
    # A negative power makes the rate's log argument meaningless (silent NaN): reject it here.
    bad = torch.isnan(p) | (p < 0)
    if bool(bad.any()):
        raise ValueError(
            f"p must be >= 0 and not NaN (powers in mW); got {int(bad.sum())} bad entries, min {p.min().item():.3g}"
        )
    try:
        batch = torch.broadcast_shapes(p.shape[:-2], gains.shape[:-3])
    except RuntimeError as err:
        raise ValueError(
            f"p leading dims {tuple(p.shape[:-2])} do not broadcast with gains' {tuple(gains.shape[:-3])}"
        ) from err
    if mask is None:
        return p
    if not isinstance(mask, Tensor) or mask.is_complex():
        raise TypeError("mask must be a bool or real tensor [..., L, K] or None")
    if mask.dim() < 2 or tuple(mask.shape[-2:]) != (L, K) or not _broadcasts_into(mask.shape[:-2], batch):
        raise ValueError(
            f"mask must have shape [..., L, K] = [..., {L}, {K}] broadcastable to the batch {tuple(batch)}, "
            f"got {tuple(mask.shape)}"
        )
    return p * mask.to(p.dtype)


def mrt_sinr(gains: Tensor, p: Tensor, mask: Tensor | None, noise: float | Tensor = 1.0) -> Tensor:
    """Per-UE SINR with MRT and non-coherent joint transmission (the SINR inside ee-gnn eq. (1)).

    ``SINR_k = sum_l g_{l,kk} p_lk / (noise + sum_{j != k} sum_l g_{l,kj} p_lj)``.

    Args:
        gains: MRT effective gains from :func:`mrt_effective_gains` (noise-normalized).
        p: per-link powers in mW, ``p[..., l, k]`` = the paper's ``p_kl`` (AP ``l`` -> UE ``k``); ``>= 0``.
        mask: association (0 = unserved: that power is ignored); ``None``: all links served.
        noise: noise power in the units of ``gains * p``; 1 for noise-normalized gains. Scalar or ``[..., K]``.

    Shapes:
        gains: ``[..., L, K, K]``; p, mask: ``[..., L, K]`` (leading dims may broadcast) -> ``[..., K]``.
    """
    pe = _check_gains_powers(gains, p, mask)
    rx = torch.einsum("...lkj,...lj->...kj", gains, pe)  # received power at k from stream j, [..., K, K]
    k = rx.shape[-1]
    eye = torch.eye(k, dtype=torch.bool, device=rx.device)
    signal = torch.diagonal(rx, dim1=-2, dim2=-1)  # [..., K]
    interference = rx.masked_fill(eye, 0.0).sum(-1)  # [..., K]
    if isinstance(noise, Tensor):
        if not _broadcasts_into(noise.shape, signal.shape):
            raise ValueError(f"noise must be a scalar or broadcastable to [..., K], got {tuple(noise.shape)}")
        noise = noise.to(signal.dtype)
    elif isinstance(noise, bool) or not isinstance(noise, int | float) or noise < 0:
        raise ValueError(f"noise must be a float >= 0 or a tensor, got {noise!r}")
    return signal / (noise + interference)


def energy_efficiency_terms(
    gains: Tensor,
    p: Tensor,
    mask: Tensor | None,
    *,
    noise: float | Tensor = 1.0,
    mu: float = 1.0,
    static_power_mw: float = 4000.0,
    bandwidth_hz: float = 1.0,
    log_base: float = 2.0,
) -> Tensor:
    """Per-UE terms of ee-gnn eq. (1): ``bandwidth * log_b(1 + SINR_k) / (mu * sum_l p_kl + P_c)``.

    The denominator is converted from mW to W (the paper's ``P_c = 4 W``, ``mu = 1``), so each term is in
    (bit/s/Hz)/W for ``bandwidth_hz = 1`` and in bit/J for a bandwidth in Hz.

    Args:
        gains, p, mask, noise: as in :func:`mrt_sinr` (powers in mW).
        mu: power-amplifier inefficiency ``mu`` (1 in the paper).
        static_power_mw: static power ``P_c`` in mW, added once per UE term (4 W = 4000 mW in the paper).
        bandwidth_hz: factor on the rate (1: spectral efficiency).
        log_base: base ``b`` of the rate logarithm (2: bits; the project's convention, docs/physics.md).

    Shapes:
        gains: ``[..., L, K, K]``; p, mask: ``[..., L, K]`` -> ``[..., K]``.
    """
    _check_constants(mu, static_power_mw, bandwidth_hz, log_base)
    s = mrt_sinr(gains, p, mask, noise)  # [..., K]
    pe = _check_gains_powers(gains, p, mask)
    consumed_w = (mu * pe.sum(-2) + static_power_mw) / MW_PER_W  # mu * sum_l p_kl + P_c, in W, [..., K]
    return bandwidth_hz * _log(1.0 + s, log_base) / consumed_w


def _check_constants(mu: float, static_power_mw: float, bandwidth_hz: float, log_base: float) -> None:
    if not mu > 0:
        raise ValueError(f"mu must be > 0, got {mu}")
    if not static_power_mw >= 0:
        raise ValueError(f"static_power_mw must be >= 0, got {static_power_mw}")
    if not bandwidth_hz > 0:
        raise ValueError(f"bandwidth_hz must be > 0, got {bandwidth_hz}")
    if not log_base > 1:
        raise ValueError(f"log_base must be > 1, got {log_base}")


def _log(x: Tensor, base: float) -> Tensor:
    return torch.log2(x) if base == 2.0 else torch.log(x) / math.log(base)


def energy_efficiency(
    gains: Tensor,
    p: Tensor,
    mask: Tensor | None,
    *,
    noise: float | Tensor = 1.0,
    mu: float = 1.0,
    static_power_mw: float = 4000.0,
    bandwidth_hz: float = 1.0,
    log_base: float = 2.0,
) -> Tensor:
    """Sum energy efficiency ``J(P)`` of ee-gnn eq. (1), a sum over UEs of rate / consumed power.

    ``J = sum_k bandwidth * log2(1 + SINR_k) / (mu * sum_l p_kl + P_c)`` in (bit/s/Hz)/W (denominator in W,
    powers given in mW); see :func:`energy_efficiency_terms` for the arguments. Differentiable in ``p``.

    Shapes:
        gains: ``[..., L, K, K]``; p, mask: ``[..., L, K]`` -> ``[...]``.
    """
    return energy_efficiency_terms(
        gains,
        p,
        mask,
        noise=noise,
        mu=mu,
        static_power_mw=static_power_mw,
        bandwidth_hz=bandwidth_hz,
        log_base=log_base,
    ).sum(-1)


def global_energy_efficiency(
    gains: Tensor,
    p: Tensor,
    mask: Tensor | None,
    *,
    noise: float | Tensor = 1.0,
    mu: float = 1.0,
    static_power_mw: float = 4000.0,
    bandwidth_hz: float = 1.0,
    log_base: float = 2.0,
) -> Tensor:
    """Global energy efficiency: total rate over total consumed power (one ratio, the issue's option).

    ``GEE = bandwidth * sum_k log_b(1 + SINR_k) / (mu * sum_{l,k} p_kl + P_c)``, the denominator in W
    with ``P_c`` counted once for the network (not once per UE as in eq. (1)). Arguments as in
    :func:`energy_efficiency_terms`.

    Shapes:
        gains: ``[..., L, K, K]``; p, mask: ``[..., L, K]`` -> ``[...]``.
    """
    _check_constants(mu, static_power_mw, bandwidth_hz, log_base)
    s = mrt_sinr(gains, p, mask, noise)  # [..., K]
    pe = _check_gains_powers(gains, p, mask)
    consumed_w = (mu * pe.sum((-2, -1)) + static_power_mw) / MW_PER_W  # [...]
    return bandwidth_hz * _log(1.0 + s, log_base).sum(-1) / consumed_w
