"""Shared building blocks of the graph models over APs, UEs and antennas (DESIGN.md section 11).

One dense, masked, batched layout for every GNN paper (AAGNN precoding, EGAT fronthaul, EE-GNN):

* link (AP-UE edge) features ``[B, L, K, C]``; antenna-level link features ``[B, L, K, N, C]``;
* AP node features ``[B, L, C]``; UE node features ``[B, K, C]``;
* a boolean association / validity mask ``[B, L, K]`` (True = AP l serves UE k).

Aggregations are masked sums or means over one axis with the **empty set defined**: an AP serving
nobody, or a UE served by nobody, receives a zero message, and neither outputs nor gradients contain
NaN (counts are clamped to 1, softmax logits of absent neighbours are a large finite negative number and
their weights are zeroed afterwards).

The feasibility head (``power_head``) is the only place where precoders are made feasible: exactly zero
on unserved links, then each AP scaled to its budget, either exactly (``"exact"``: ``V_l sqrt(P_l) /
||V_l||_F``, every AP that serves someone transmits at full power) or only when over budget (``"clip"``:
``min(1, sqrt(P_l) / ||V_l||_F)``).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

__all__ = [
    "EdgeAttentionScore",
    "attend",
    "attend_pairs",
    "channels_to_complex",
    "complex_to_channels",
    "link_input",
    "masked_aggregate",
    "masked_softmax",
    "others_aggregate",
    "power_head",
]

Aggregation = Literal["sum", "mean"]


def masked_aggregate(
    x: Tensor, weight: Tensor, dim: int, how: Aggregation = "sum", keepdim: bool = False
) -> Tensor:
    """Sum or mean of ``x`` over ``dim`` with 0/1 (or bool) ``weight`` broadcast against ``x``.

    The mean of an empty set is zero (count clamped to 1), so gradients stay finite.

    Shapes: x [..., D_dim, ..., C]; weight broadcastable to x (without the channel axis it needs a
    trailing singleton) -> x with ``dim`` reduced.
    """
    w = weight.to(x.dtype)
    total = (x * w).sum(dim, keepdim=keepdim)
    if how == "sum":
        return total
    if how != "mean":
        raise ValueError(f"aggregation must be 'sum' or 'mean', got {how!r}")
    count = torch.broadcast_to(w, torch.broadcast_shapes(w.shape, x.shape)).sum(dim, keepdim=keepdim)
    return total / count.clamp_min(1.0)


def others_aggregate(x: Tensor, weight: Tensor, dim: int, how: Aggregation = "sum") -> Tensor:
    """Sum (or mean) over the *other* elements of ``dim``: out_i = agg_{j != i, w_j = 1} x_j.

    Computed as (total - own) so it costs one reduction; the own term is removed with its own weight.
    Empty sets (no other element with weight 1) give zero.

    Shapes: x [..., D, ..., C], weight broadcastable to x -> x's shape.
    """
    w = weight.to(x.dtype)
    xw = x * w
    total = xw.sum(dim, keepdim=True) - xw
    if how == "sum":
        return total
    if how != "mean":
        raise ValueError(f"aggregation must be 'sum' or 'mean', got {how!r}")
    wb = torch.broadcast_to(w, torch.broadcast_shapes(w.shape, x.shape))
    count = wb.sum(dim, keepdim=True) - wb
    return total / count.clamp_min(1.0)


def masked_softmax(scores: Tensor, mask: Tensor, dim: int) -> Tensor:
    """Softmax over ``dim`` restricted to ``mask``; an empty neighbour set gets all-zero weights.

    Absent entries get a large finite negative logit (not -inf, whose softmax over an empty set is NaN)
    and are zeroed after the softmax, so outputs and gradients stay finite.

    Shapes: scores [..., J, ...]; mask broadcastable to scores (bool) -> scores' shape.
    """
    mask = torch.broadcast_to(mask, scores.shape)
    low = torch.finfo(scores.dtype).min / 4
    weights = torch.softmax(scores.masked_fill(~mask, low), dim=dim)
    return weights * mask.to(weights.dtype)


class EdgeAttentionScore(nn.Module):
    """GAT-style additive attention logits (EGAT ref. [15]; egat-fronthaul eqs. (17), (20), (23)-(24)):
    ``e_tj = LeakyReLU(a_t^T x_t + a_j^T y_j)`` per head, i.e. ``a^T [x_t || y_j]`` split in two so the
    [T, J] score matrix costs O(T + J) projections. Extra context (a node feature shared by all pairs,
    e.g. egat-fronthaul's W_AP f_AP,b) is added by the caller to the target term.

    Shapes: x [..., T, Dt], y [..., J, Dj] -> logits [..., T, J, H].
    """

    def __init__(
        self,
        d_target: int,
        d_neighbour: int,
        heads: int = 1,
        negative_slope: float = 0.2,
        d_edge: int | None = None,
    ) -> None:
        super().__init__()
        self.target = nn.Linear(d_target, heads, bias=False)
        self.neighbour = nn.Linear(d_neighbour, heads, bias=False)
        # optional pair term a_e^T e_tj (egat-fronthaul (17), (20): the edge feature of the pair)
        self.edge = nn.Linear(d_edge, heads, bias=False) if d_edge is not None else None
        self.negative_slope = negative_slope
        self.heads = heads

    def forward(self, x: Tensor, y: Tensor, e: Tensor | None = None) -> Tensor:
        """Shapes: x [..., T, Dt], y [..., J, Dj], e [..., T, J, De] (only with ``d_edge``) ->
        [..., T, J, H]."""
        st = self.target(x).unsqueeze(-2)  # [..., T, 1, H]
        sj = self.neighbour(y).unsqueeze(-3)  # [..., 1, J, H]
        s = st + sj
        if self.edge is not None:
            if e is None:
                raise ValueError("this EdgeAttentionScore has an edge term: pass e [..., T, J, d_edge]")
            s = s + self.edge(e)
        return nn.functional.leaky_relu(s, self.negative_slope)


def attend(weights: Tensor, values: Tensor) -> Tensor:
    """Attention-weighted sum of neighbour values, heads splitting the channels.

    Shapes: weights [..., T, J, H]; values [..., J, C] with C divisible by H -> [..., T, C].
    """
    heads = weights.shape[-1]
    *lead, J, C = values.shape
    if C % heads:
        raise ValueError(f"channels {C} must be divisible by heads {heads}")
    v = values.reshape(*lead, J, heads, C // heads).movedim(-2, -3)  # [..., H, J, C/H]
    out = weights.movedim(-1, -3) @ v  # [..., H, T, C/H]: one batched matmul (einsum broadcasts here)
    return out.movedim(-3, -2).reshape(*out.shape[:-3], out.shape[-2], C)


def attend_pairs(weights: Tensor, values: Tensor) -> Tensor:
    """Attention-weighted sum of *pair* values (a value per target-neighbour pair, e.g. an edge
    feature concatenated with the neighbour's node feature, egat-fronthaul (18), (21)), heads
    splitting the channels as in :func:`attend`.

    Shapes: weights [..., T, J, H]; values [..., T, J, C] with C divisible by H -> [..., T, C].
    """
    heads = weights.shape[-1]
    *lead, T, J, C = values.shape
    if C % heads:
        raise ValueError(f"channels {C} must be divisible by heads {heads}")
    v = values.reshape(*lead, T, J, heads, C // heads)
    return (weights.unsqueeze(-1) * v).sum(-3).reshape(*lead, T, C)


def complex_to_channels(z: Tensor) -> Tensor:
    """Complex [...] -> real [..., 2] (real, imaginary): the only place complex values enter a model."""
    return torch.view_as_real(z.resolve_conj()) if z.is_complex() else z.unsqueeze(-1)


def channels_to_complex(x: Tensor) -> Tensor:
    """Real [..., 2] -> complex [...]."""
    return torch.complex(x[..., 0], x[..., 1])


def link_input(h: Tensor, p_max: Tensor, noise: Tensor, scale: Tensor | float = 1.0) -> tuple[Tensor, Tensor]:
    """Scale-compressed channel input shared by the antenna-level models.

    Link SNRs span tens of dB (70+ dB between a close and a far AP), far beyond what a linear
    equivariant layer handles, so each link keeps its direction and its magnitude is replaced by the
    log-SNR: ``g_lk = h_lk / ||h_lk|| * log(1 + P_l ||h_lk||^2 / sigma^2) / scale`` (``scale``: a
    training-set statistic stored in the model's buffers). Direction, phase and the antenna profile
    are kept exactly; the map permutes with UEs, APs and antennas.

    Shapes: h complex [B, L, K, N]; p_max [B, L]; noise [B] -> (g complex [B, L, K, N],
    log-SNR [B, L, K] real, before dividing by ``scale``).
    """
    real = h.real.dtype
    power = h.real.square().sum(-1) + h.imag.square().sum(-1)  # [B, L, K]
    snr = power * (p_max.to(real) / noise.to(real)[:, None])[..., None]
    log_snr = torch.log1p(snr)
    norm = power.clamp_min(torch.finfo(real).tiny).sqrt()
    factor = torch.where(power > 0, log_snr / norm, torch.zeros_like(norm)) / scale
    return h * factor[..., None].to(h.dtype), log_snr


def power_head(
    v: Tensor, association: Tensor, p_max: Tensor, mode: Literal["exact", "clip"] = "exact"
) -> Tensor:
    """The feasibility head: zero on unserved links, then every AP scaled to its budget (1b).

    ``"exact"``: ``V_l sqrt(P_l) / ||V_l||_F`` (full power at every AP that serves someone);
    ``"clip"``: ``V_l min(1, sqrt(P_l) / ||V_l||_F)``. An AP whose precoders are all zero (serving
    nobody) sends zero, with finite gradients.

    Shapes: v complex [B, L, K, N]; association [B, L, K] bool; p_max [B, L] -> complex [B, L, K, N].
    """
    if mode not in ("exact", "clip"):
        raise ValueError(f"power scaling mode must be 'exact' or 'clip', got {mode!r}")
    real = v.real.dtype
    v = v * association[..., None].to(real)
    # The scaling is invariant to a positive factor per AP: divide by the (detached) largest entry
    # first so that squares neither overflow nor underflow, in the forward or the backward pass.
    peak = v.detach().abs().amax((-2, -1), keepdim=True)  # [B, L, 1, 1]
    v = v / torch.where(peak > 0, peak, torch.ones_like(peak)).to(v.dtype)
    power = (v.real.square() + v.imag.square()).sum((-2, -1))  # [B, L]
    safe = power.clamp_min(torch.finfo(real).tiny)
    factor = torch.where(power > 0, (p_max.to(real) / safe).sqrt(), torch.zeros_like(power))
    if mode == "clip":  # min(1, sqrt(P)/||V||) on the original scale = min(peak, sqrt(P)/||V/peak||) here
        factor = torch.minimum(factor, peak[..., 0, 0].to(real))
    return v * factor[..., None, None].to(v.dtype)
