"""Instantaneous-CSI downlink metrics and centralized precoders (coherent joint transmission).

Model (one small-scale realization per instance, perfect CSI), as in the precoding papers

* AAGNN (Deng & Han, "Association-Aware GNN for Precoder Learning in Cell-Free Systems"), eqs. (1)-(2);
* EGAT (Liu et al., "Resource Allocation in Fronthaul-Constrained Cell-Free Networks Using EGAT"),
  eqs. (1)-(3) and the output normalization (36)-(37).

AP ``l`` serves UE ``k`` iff ``x_lk = 1`` (AAGNN's ``d_km``, EGAT's ``x_bk``); the precoder of an unserved
link is treated as zero (EGAT (36): ``v_bk <- x_bk v_bk``). UE ``k`` receives (EGAT (1))

    r_k = sum_i g_ki s_i + n_k,      g_ki = sum_l h_lk^H (x_li w_li),

so, with ``E[s s^H] = I`` and noise power ``sigma_k^2`` (EGAT (2), AAGNN (2)),

    SINR_k = |g_kk|^2 / (sum_{i != k} |g_ki|^2 + sigma_k^2).

Units follow DESIGN.md: channels are normalized by the noise power, so the default noise is 1 and
``||w_lk||^2`` is a transmit power in mW (or whatever unit the noise normalization used). Rates are in
bit/s/Hz (log2; both papers write an unspecified "log") times an optional pre-log/bandwidth factor.

Note: AAGNN's eq. (2) prints ``+ delta^2`` outside the fraction; it is the noise term of the denominator
(as in EGAT (2)), which is what is implemented here.

Dimension letters (DESIGN.md section 2): arbitrary leading batch dims ``...`` (typically ``B`` or
``B, T``), then ``L`` APs, ``K`` UEs, ``N`` antennas per AP. Channels ``h`` and precoders ``w`` are complex
``[..., L, K, N]`` (``w[..., l, k, :]`` is AP ``l``'s precoding vector for UE ``k``); masks ``[..., L, K]``.
Outputs follow the inputs' dtype and device; all functions are batched and differentiable.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

__all__ = [
    "binary_mask",
    "fronthaul_load",
    "mrt",
    "normalize_per_ap",
    "per_ap_power",
    "rate",
    "received_gains",
    "rzf",
    "sinr",
    "sum_rate",
    "weighted_sum_rate",
    "zf",
]


# --------------------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------------------


def _check_complex(name: str, t: object, what: str) -> Tensor:
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor {what}, got {type(t).__name__}")
    if not t.is_complex():
        raise TypeError(f"{name} must be a complex tensor {what}, got dtype {t.dtype}")
    if t.dim() < 3:
        raise ValueError(f"{name} must have shape {what} (at least 3 dims), got {tuple(t.shape)}")
    return t


def check_channel(h: object, name: str = "h") -> Tensor:
    """One perfect-CSI channel per instance: a complex tensor [B, L, K, N] with no empty dimension
    (TypeError/ValueError naming ``name`` otherwise). The instance checks of every family use it."""
    if not isinstance(h, Tensor):
        raise TypeError(f"{name} must be a complex torch.Tensor [B, L, K, N], got {type(h).__name__}")
    if not h.is_complex():
        raise TypeError(f"{name} must be a complex tensor [B, L, K, N], got dtype {h.dtype}")
    if h.dim() != 4 or min(h.shape) == 0:
        raise ValueError(f"{name} must have shape [B, L, K, N] (4 non-empty dims), got {tuple(h.shape)}")
    return h


def _check_pair(h: Tensor, w: Tensor) -> None:
    _check_complex("h", h, "[..., L, K, N]")
    _check_complex("w", w, "[..., L, K, N]")
    if w.shape != h.shape:
        raise ValueError(
            f"w must have the shape of h {tuple(h.shape)} = [..., L, K, N], got {tuple(w.shape)}"
        )
    if w.dtype != h.dtype:
        raise TypeError(f"w must have the dtype of h ({h.dtype}), got {w.dtype}")


def _real_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.empty((), dtype=dtype).real.dtype


def _broadcasts_into(shape: torch.Size | tuple[int, ...], target: torch.Size | tuple[int, ...]) -> bool:
    try:
        return tuple(torch.broadcast_shapes(tuple(shape), tuple(target))) == tuple(target)
    except RuntimeError:
        return False


def _mask(mask: Tensor | None, shape: torch.Size, dtype: torch.dtype, device: torch.device) -> Tensor:
    """The association mask as a real tensor of ``dtype``, broadcast to ``shape = [..., L, K]``."""
    if mask is None:
        return torch.ones(shape, dtype=dtype, device=device)
    if not isinstance(mask, Tensor):
        raise TypeError(f"mask must be a torch.Tensor [..., L, K] or None, got {type(mask).__name__}")
    if mask.is_complex():
        raise TypeError(f"mask must be a bool or real tensor [..., L, K], got dtype {mask.dtype}")
    if (
        mask.dim() < 2
        or tuple(mask.shape[-2:]) != tuple(shape[-2:])
        or not _broadcasts_into(mask.shape, shape)
    ):
        raise ValueError(
            f"mask must have shape [..., L, K] = {tuple(shape)} (leading dims may broadcast), "
            f"got {tuple(mask.shape)}"
        )
    return mask.to(dtype=dtype, device=device).expand(shape)


def binary_mask(mask: object, shape: torch.Size | tuple[int, ...], *, name: str = "mask") -> Tensor:
    """Validate an association mask that must be binary (EGAT (3d)) and return it as bool.

    The metric functions of this module accept real masks (a relaxed association, useful for
    gradients) and only treat ``0`` as unserved; problems whose constraints count served links
    (EGAT's fronthaul load (3b)) must reject anything but ``{0, 1}``: this check does that.

    Shapes:
        mask: bool, or real with entries in {0, 1}, exactly ``shape = [..., L, K]`` -> bool ``shape``.
    """
    if not isinstance(mask, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor {tuple(shape)}, got {type(mask).__name__}")
    if tuple(mask.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape [..., L, K] = {tuple(shape)}, got {tuple(mask.shape)}")
    if mask.dtype == torch.bool:
        return mask
    if mask.is_complex():
        raise TypeError(f"{name} must be a bool (or 0/1 real) tensor, got dtype {mask.dtype}")
    if not bool(((mask == 0) | (mask == 1)).all()):
        raise ValueError(f"{name} must be binary (entries 0 or 1); got a real-valued mask")
    return mask != 0


def _per_ue(
    name: str,
    value: float | Tensor,
    shape: torch.Size,
    like: Tensor,
    *,
    positive: bool,
    dims: str = "[..., K]",
) -> Tensor:
    """A scalar or a tensor broadcastable to ``shape`` (``dims``), as a real tensor like ``like``."""
    if isinstance(value, Tensor):
        if value.is_complex():
            raise TypeError(f"{name} must be real, got dtype {value.dtype}")
        if not _broadcasts_into(value.shape, shape):
            raise ValueError(
                f"{name} must be a scalar or broadcastable to {dims} = {tuple(shape)}, "
                f"got {tuple(value.shape)}"
            )
        return value.to(dtype=like.dtype, device=like.device)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a float or a tensor, got {type(value).__name__}")
    if value < 0 or (positive and value == 0):
        raise ValueError(f"{name} must be {'> 0' if positive else '>= 0'}, got {value}")
    return torch.as_tensor(float(value), dtype=like.dtype, device=like.device)


def _masked(w: Tensor, x: Tensor) -> Tensor:
    """EGAT (36): the effective precoder ``x_lk * w_lk``."""
    return w * x.unsqueeze(-1)  # [..., L, K, N]


# --------------------------------------------------------------------------------------------------------
# metrics
# --------------------------------------------------------------------------------------------------------


def received_gains(h: Tensor, w: Tensor, mask: Tensor | None) -> Tensor:
    """Effective downlink gains ``g_ki = sum_l h_lk^H x_li w_li`` (EGAT (1), AAGNN (2)).

    ``g[..., k, i]`` is the amplitude with which UE ``k`` receives the stream of UE ``i``: the diagonal is the
    desired signal, the off-diagonal entries of row ``k`` the interference at UE ``k``.

    Args:
        h: channels; ``h[..., l, k, :]`` is the channel from AP ``l`` to UE ``k``.
        w: precoders; ``w[..., l, i, :]`` is AP ``l``'s precoding vector for UE ``i``.
        mask: association ``x``, bool or real (1 = AP ``l`` serves UE ``k``); ``None`` means all served.

    Shapes:
        h, w: complex ``[..., L, K, N]``; mask: ``[..., L, K]`` (leading dims may broadcast)
        -> complex ``[..., K (receiver), K (stream)]``.
    """
    _check_pair(h, w)
    x = _mask(mask, h.shape[:-1], _real_dtype(h.dtype), h.device)
    return torch.einsum("...lkn,...lin->...ki", h.conj(), _masked(w, x))  # [..., K, K]


def sinr(h: Tensor, w: Tensor, mask: Tensor | None, noise: float | Tensor = 1.0) -> Tensor:
    """Per-realization SINR with coherent joint transmission (EGAT (2), AAGNN (2)).

    ``SINR_k = |g_kk|^2 / (sum_{i != k} |g_ki|^2 + noise_k)`` with ``g`` from :func:`received_gains`.

    Args:
        h, w, mask: as in :func:`received_gains`.
        noise: noise power ``sigma_k^2`` (EGAT's ``xi_k^2``) in the units of ``|h^H w|^2``; 1 when the
            channels are normalized by the noise power (the cfmimo convention). Scalar or ``[..., K]``.

    Shapes:
        h, w: complex ``[..., L, K, N]``; mask: ``[..., L, K]``; noise: scalar or ``[..., K]``
        -> real ``[..., K]``.
    """
    g = received_gains(h, w, mask)  # [..., K, K]
    power = g.real.square() + g.imag.square()  # |g_ki|^2, [..., K, K]
    k = power.shape[-1]
    eye = torch.eye(k, dtype=torch.bool, device=power.device)
    signal = torch.diagonal(power, dim1=-2, dim2=-1)  # [..., K]
    # Off-diagonal entries summed directly (not total - signal) to keep ZF's ~0 interference accurate.
    interference = power.masked_fill(eye, 0.0).sum(-1)  # [..., K]
    sigma2 = _per_ue("noise", noise, signal.shape, signal, positive=False)
    return signal / (interference + sigma2)


def rate(sinr: Tensor, *, prelog: float | Tensor = 1.0) -> Tensor:
    """Per-UE rate ``prelog * log2(1 + SINR_k)``: bit/s/Hz for ``prelog = 1``, bit/s for ``prelog = B`` in Hz.

    Shapes:
        sinr: ``[..., K]``; prelog: scalar or broadcastable to ``[..., K]`` -> ``[..., K]``.
    """
    if not isinstance(sinr, Tensor) or sinr.is_complex():
        raise TypeError("sinr must be a real tensor [..., K]")
    return prelog * torch.log2(1.0 + sinr)


def sum_rate(
    h: Tensor, w: Tensor, mask: Tensor | None, noise: float | Tensor = 1.0, *, prelog: float | Tensor = 1.0
) -> Tensor:
    """Sum rate ``sum_k prelog * log2(1 + SINR_k)`` (AAGNN (1a)), in bit/s/Hz times ``prelog``.

    Shapes:
        h, w: complex ``[..., L, K, N]``; mask: ``[..., L, K]``; noise: scalar or ``[..., K]`` -> ``[...]``.
    """
    return rate(sinr(h, w, mask, noise), prelog=prelog).sum(-1)


def weighted_sum_rate(
    h: Tensor,
    w: Tensor,
    mask: Tensor | None,
    weights: Tensor,
    noise: float | Tensor = 1.0,
    *,
    prelog: float | Tensor = 1.0,
) -> Tensor:
    """Weighted sum rate ``sum_k weights_k * prelog * log2(1 + SINR_k)`` (EGAT (3a)).

    Shapes:
        h, w: complex ``[..., L, K, N]``; mask: ``[..., L, K]``; weights: ``[..., K]`` (may broadcast);
        noise: scalar or ``[..., K]`` -> ``[...]``.
    """
    r = rate(sinr(h, w, mask, noise), prelog=prelog)  # [..., K]
    if not isinstance(weights, Tensor) or weights.is_complex():
        raise TypeError("weights must be a real tensor [..., K]")
    if not _broadcasts_into(weights.shape, r.shape):
        raise ValueError(
            f"weights must be broadcastable to [..., K] = {tuple(r.shape)}, got {tuple(weights.shape)}"
        )
    return (weights.to(r.dtype) * r).sum(-1)


def per_ap_power(w: Tensor, mask: Tensor | None) -> Tensor:
    """Transmit power of each AP, ``sum_k ||x_lk w_lk||^2`` (EGAT (3c) ``||V_b||_F^2``, AAGNN (1b)).

    With a mask this counts served links only (the power of the effective precoder ``x_lk w_lk``);
    AAGNN's (1b) as printed sums every ``v_lk``, masked or not: pass ``mask=None`` for it (as
    ``SumRatePrecoding.violation`` does). The two agree for precoders that are zero on unserved links.

    Shapes:
        w: complex ``[..., L, K, N]``; mask: ``[..., L, K]`` -> real ``[..., L]``.
    """
    _check_complex("w", w, "[..., L, K, N]")
    x = _mask(mask, w.shape[:-1], _real_dtype(w.dtype), w.device)
    wm = _masked(w, x)
    return (wm.real.square() + wm.imag.square()).sum(dim=(-2, -1))


def fronthaul_load(sinr: Tensor, mask: Tensor | None, bandwidth_hz: float | Tensor = 1.0) -> Tensor:
    """Fronthaul load of each AP, ``F_l = sum_k x_lk * bandwidth * log2(1 + SINR_k)`` (EGAT (3b)).

    Every AP that serves UE ``k`` must receive UE ``k``'s full data rate. EGAT writes ``log`` without a base
    and quotes ``C_b^max`` in Mbit/s; here the rate is ``bandwidth_hz * log2(1 + SINR)``, i.e. bit/s/Hz for
    the default ``bandwidth_hz = 1`` and bit/s for a bandwidth in Hz (10 MHz in EGAT's Table I).

    Shapes:
        sinr: real ``[..., K]``; mask: ``[..., L, K]`` (``None``: every AP serves every UE) -> ``[..., L]``.
    """
    if not isinstance(sinr, Tensor) or sinr.is_complex() or sinr.dim() < 1:
        raise TypeError("sinr must be a real tensor [..., K]")
    if mask is None:
        raise ValueError("mask must be given for fronthaul_load: [..., L, K] (L is not known from sinr)")
    if not isinstance(mask, Tensor) or mask.dim() < 2 or mask.shape[-1] != sinr.shape[-1]:
        raise ValueError(
            f"mask must have shape [..., L, K] with K = {sinr.shape[-1]} (from sinr), "
            f"got {tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__}"
        )
    try:
        torch.broadcast_shapes(tuple(mask.shape[:-2]), tuple(sinr.shape[:-1]))
    except RuntimeError as err:
        raise ValueError(
            f"mask leading dims {tuple(mask.shape[:-2])} do not broadcast with "
            f"sinr's {tuple(sinr.shape[:-1])}"
        ) from err
    r = rate(sinr, prelog=bandwidth_hz)  # [..., K]
    return (mask.to(r.dtype) * r.unsqueeze(-2)).sum(-1)  # [..., L]


# --------------------------------------------------------------------------------------------------------
# precoders
# --------------------------------------------------------------------------------------------------------


def _served(h: Tensor, mask: Tensor | None) -> Tensor:
    """Binary association (``mask != 0``) as a real tensor like ``h``, ``[..., L, K]``."""
    x = _mask(mask, h.shape[:-1], _real_dtype(h.dtype), h.device)
    return (x != 0).to(x.dtype)


def _restricted_channels(h: Tensor, x: Tensor) -> Tensor:
    """``A_k = G_k^H = H^H D_k``: all UEs' channels seen through UE ``k``'s serving antennas.

    ``A[..., k, i, :] = stack_l(x_lk h_li)^H`` over the ``L*N`` network antennas.

    Shapes:
        h: ``[..., L, K, N]``; x: ``[..., L, K]`` -> ``[..., K (served UE k), K (UE i), L*N]``.
    """
    *batch, L, K, N = h.shape
    hc = h.conj().movedim(-2, -3)  # [..., K(i), L, N]
    xk = x.transpose(-1, -2)  # [..., K(k), L]
    a = xk[..., :, None, :, None] * hc[..., None, :, :, :]  # [..., K(k), K(i), L, N]
    return a.reshape(*batch, K, K, L * N)  # [..., K(k), K(i), L*N]


def _from_stacked(v: Tensor, L: int, N: int) -> Tensor:
    """``v[..., L*N, K]`` (column k = network-wide precoder of UE k) -> ``[..., L, K, N]``."""
    *batch, _, K = v.shape
    return v.reshape(*batch, L, N, K).transpose(-1, -2)  # [..., L, K, N]


def mrt(h: Tensor, mask: Tensor | None) -> Tensor:
    """Maximum-ratio transmission over the serving APs, ``w_lk = x_lk h_lk`` (un-normalized).

    The centralized MRT direction ``w_k = D_k h_k`` over the stacked ``L*N`` antennas, with
    ``D_k = diag(x_1k I_N, ..., x_Lk I_N)``; follow with :func:`normalize_per_ap`. (ee-gnn's distributed
    unit-norm MRT lives in :mod:`cfmimo.sim.energy`.)

    Shapes:
        h: complex ``[..., L, K, N]``; mask: ``[..., L, K]`` -> complex ``[..., L, K, N]``.
    """
    _check_complex("h", h, "[..., L, K, N]")
    return _masked(h, _served(h, mask))


def zf(h: Tensor, mask: Tensor | None, *, rtol: float | None = None) -> Tensor:
    """Centralized zero-forcing over each UE's serving APs (un-normalized).

    Construction: with ``H = [h_1, ..., h_K]`` the ``(L*N) x K`` network channel (``h_k`` stacks
    ``h_1k, ..., h_Lk``) and ``D_k = diag(x_1k I_N, ..., x_Lk I_N)`` UE ``k``'s serving antennas, UE ``k``'s
    precoder is the minimum-norm solution of ``(D_k H)^H w_k = e_k``,

        w_k = pinv(H^H D_k) e_k = D_k H (H^H D_k H)^+ e_k,

    i.e. ``w_k`` uses only UE ``k``'s serving APs, delivers unit amplitude to UE ``k`` and nulls its
    interference at every other UE (served or not) whenever ``rank(D_k H) = K`` (generically when the
    serving APs of ``k`` have ``N |M_k| >= K`` antennas); otherwise it is the least-squares best effort.
    With full association this is the classic ``W = H (H^H H)^{-1}`` (EGAT's FC-ZF baseline, Nayebi et al.
    2017). This is the book's centralized design ``w_k ~ D_k v_k`` with a ZF direction (DESIGN.md
    section 9.7): the per-UE restriction keeps the nulls, which "ZF on the full network, then mask"
    would destroy.
    Because ``received_gains(h, zf(h, m), m)`` is the identity, any *common* scaling (see
    :func:`normalize_per_ap`, ``mode="common"``) keeps the nulls. UEs with no serving AP get ``w_k = 0``.

    Args:
        h: channels; mask: association (``mask != 0`` means served; ``None``: all served).
        rtol: relative singular-value cut-off of the pseudo-inverse (torch's default when ``None``).

    Shapes:
        h: complex ``[..., L, K, N]``; mask: ``[..., L, K]`` -> complex ``[..., L, K, N]``.
    """
    _check_complex("h", h, "[..., L, K, N]")
    L, N = h.shape[-3], h.shape[-1]
    x = _served(h, mask)
    a = _restricted_channels(h, x)  # [..., K(k), K(i), L*N]
    pinv = torch.linalg.pinv(a, rtol=rtol)  # [..., K(k), L*N, K(i)]
    v = torch.diagonal(pinv, dim1=-3, dim2=-1)  # [..., L*N, K(k)]: column k of UE k's pseudo-inverse
    return _masked(_from_stacked(v, L, N), x)  # [..., L, K, N]


def rzf(h: Tensor, mask: Tensor | None, regularization: float | Tensor) -> Tensor:
    """Centralized regularized zero-forcing over each UE's serving APs (un-normalized).

    With ``H`` and ``D_k`` as in :func:`zf` and ``lambda_k > 0``,

        w_k = (D_k H H^H D_k + lambda_k I_{LN})^{-1} D_k h_k = D_k H (H^H D_k H + lambda_k I_K)^{-1} e_k,

    computed with the ``K x K`` form (push-through identity). As ``lambda -> 0`` it tends to :func:`zf`
    (the Tikhonov limit of the pseudo-inverse); as ``lambda -> inf``, ``lambda * w_k -> D_k h_k``, the
    :func:`mrt` direction. ``regularization`` is in units of ``|h|^2`` (noise-normalized gains); the usual
    choice for unit noise is ``K / P`` with ``P`` the total power, i.e. ``K sigma^2 / P``.

    Shapes:
        h: complex ``[..., L, K, N]``; mask: ``[..., L, K]``; regularization: scalar ``> 0`` or real tensor
        broadcastable to ``[..., K]`` (per UE) -> complex ``[..., L, K, N]``.
    """
    _check_complex("h", h, "[..., L, K, N]")
    *batch, L, K, N = h.shape
    x = _served(h, mask)
    lam = _per_ue("regularization", regularization, torch.Size((*batch, K)), x, positive=True)
    if isinstance(regularization, Tensor) and bool((regularization <= 0).any()):
        raise ValueError("regularization must be > 0 (use zf for the limit 0)")
    a = _restricted_channels(h, x)  # [..., K(k), K(i), L*N]
    gram = a @ a.mH  # [..., K(k), K, K]: H^H D_k H
    eye = torch.eye(K, dtype=h.dtype, device=h.device)
    lhs = gram + lam.to(h.dtype)[..., None, None] * eye  # [..., K(k), K, K]
    rhs = eye.unsqueeze(-1)  # [K(k), K, 1]: e_k for each k
    c = torch.linalg.solve(lhs, rhs.expand(*lhs.shape[:-1], 1)).squeeze(-1)  # [..., K(k), K(i)]
    v = torch.einsum("...kin,...ki->...nk", a.conj(), c)  # [..., L*N, K(k)]: D_k H c_k
    return _masked(_from_stacked(v, L, N), x)  # [..., L, K, N]


def normalize_per_ap(
    w: Tensor,
    mask: Tensor | None,
    p_max: float | Tensor,
    *,
    mode: Literal["common", "per_ap"] = "common",
) -> Tensor:
    """Scale precoders to the per-AP power limits ``sum_k ||x_lk w_lk||^2 <= P_l`` (EGAT (3c), AAGNN (1b)).

    The mask is applied first (EGAT (36)); unserved links come out exactly zero.

    * ``mode="common"`` (default): one factor per instance, ``c = min_l sqrt(P_l / P_l(w))`` over the APs
      that transmit, so the most loaded AP (relative to its limit) is exactly at its limit and the others
      below. It keeps the precoder's structure (ZF nulls, the power split between APs), hence the default
      for the classical :func:`mrt` / :func:`zf` / :func:`rzf` baselines.
    * ``mode="per_ap"``: EGAT's output normalization (37), ``V_l <- V_l sqrt(P_l) / ||V_l||_F``: every AP
      that serves anyone transmits at full power. It changes the network-wide beam (breaks ZF nulls).

    AAGNN states the constraint (1b) but not its normalization; use ``"per_ap"`` for learned precoders
    when following EGAT. An AP with zero precoder power stays at zero (no division by zero, finite
    gradients).

    Args:
        w: precoders (powers in mW, or the unit of the noise normalization).
        mask: association; ``None``: all served.
        p_max: per-AP power limit ``P_l >= 0`` in the same unit as ``||w||^2``; scalar or ``[..., L]``.
        mode: ``"common"`` or ``"per_ap"`` (see above).

    Shapes:
        w: complex ``[..., L, K, N]``; mask: ``[..., L, K]``; p_max: scalar or ``[..., L]``
        -> complex ``[..., L, K, N]``.
    """
    _check_complex("w", w, "[..., L, K, N]")
    if mode not in ("common", "per_ap"):
        raise ValueError(f"mode must be 'common' or 'per_ap', got {mode!r}")
    x = _mask(mask, w.shape[:-1], _real_dtype(w.dtype), w.device)
    wm = _masked(w, x)  # [..., L, K, N]
    power = (wm.real.square() + wm.imag.square()).sum(dim=(-2, -1))  # [..., L]
    pmax = _per_ue("p_max", p_max, power.shape, power, positive=False, dims="[..., L]")  # [..., L] or scalar
    if isinstance(p_max, Tensor) and bool((p_max < 0).any()):
        raise ValueError("p_max must be >= 0")
    pmax = pmax.expand(power.shape)
    active = power > 0
    safe = torch.where(active, power, torch.ones_like(power))  # avoid 0/0 (and NaN gradients)
    ratio = pmax / safe  # [..., L]
    if mode == "per_ap":
        scale = torch.where(active, ratio.sqrt(), torch.zeros_like(ratio))  # [..., L]
        return wm * scale[..., None, None].to(wm.dtype)
    big = torch.finfo(ratio.dtype).max
    worst = torch.where(active, ratio, torch.full_like(ratio, big)).amin(dim=-1)  # [...]
    scale = torch.where(active.any(dim=-1), worst.sqrt(), torch.zeros_like(worst))  # [...]
    return wm * scale[..., None, None, None].to(wm.dtype)
