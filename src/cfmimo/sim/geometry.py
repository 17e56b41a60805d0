"""Network layouts and distances, batched over setups.

APs and UEs live in a square of side ``side`` metres, coordinates in [0, side)². With wrap-around
(the book's Section 5.3 convention), every distance is the shortest one over the 9 shifted copies
of the square, which removes edge effects.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from cfmimo.rng import per_sample, stream


def uniform_positions(
    count: int,
    side: float,
    *,
    seed: int,
    name: str,
    indices: Sequence[int],
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Points uniform in [0, side)², one stream per sample.

    Shapes:
        returns [B, count, 2] with B = len(indices).
    """
    pos = per_sample(lambda g: torch.rand(count, 2, generator=g, dtype=torch.float64), seed, name, indices)
    return (pos * side).to(dtype=dtype, device=device)


def grid_positions(
    count: int,
    side: float,
    batch: int,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``count`` points on the most square rows x cols grid (rows = largest divisor <= sqrt(count)),
    each at the centre of its cell, e.g. 16 -> 4x4, 10 -> 2x5, 5 -> 1x5.

    Shapes:
        returns [batch, count, 2].
    """
    rows = max(r for r in range(1, math.isqrt(count) + 1) if count % r == 0)
    cols = count // rows
    x = (torch.arange(cols, dtype=torch.float64) + 0.5) * side / cols
    y = (torch.arange(rows, dtype=torch.float64) + 0.5) * side / rows
    yy, xx = torch.meshgrid(y, x, indexing="ij")
    grid = torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=-1)  # [count, 2]
    return grid.to(dtype=dtype, device=device).expand(batch, count, 2).clone()


def isd_positions(
    count: int,
    isd: float,
    side: float,
    batch: int,
    *,
    lattice: str = "square",
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """A compact cluster of ``count`` APs with inter-site distance ``isd``, centred in the [0, side)² area.

    * ``lattice="square"``: a square lattice filled row by row with ``ceil(sqrt(count))`` columns
      (1 -> 1x1, 3 -> an L of a 2x2, 4 -> 2x2, 5 -> 3+2, 7 -> 3+3+1), the cluster's bounding box centred;
      4 APs at 400 m in an 800 m square are the 2x2 grid.
    * ``lattice="hex"``: a centre AP and up to 6 neighbours on a ring of radius ``isd`` (at most 7).

    Every AP's nearest neighbour is at exactly ``isd`` (count >= 2), whatever ``count`` (unlike
    :func:`grid_positions`, whose spacing depends on how ``count`` factors).

    Shapes:
        returns [batch, count, 2].
    """
    if lattice == "square":
        cols = math.ceil(math.sqrt(count))
        idx = torch.arange(count, dtype=torch.float64)
        pts = (
            torch.stack([idx % cols, torch.div(idx, cols, rounding_mode="floor")], dim=-1) * isd
        )  # [count, 2]
        pts = pts - (pts.amax(0) + pts.amin(0)) / 2  # bounding box centred at the origin
    elif lattice == "hex":
        if count > 7:
            raise ValueError(f"count must be <= 7 for the hex lattice (centre + one ring), got {count}")
        angle = torch.arange(count - 1, dtype=torch.float64) * math.pi / 3
        ring = torch.stack([angle.cos(), angle.sin()], dim=-1) * isd  # [count - 1, 2]
        pts = torch.cat([torch.zeros(1, 2, dtype=torch.float64), ring])  # centre AP at the origin
    else:
        raise ValueError(f"lattice must be 'square' or 'hex', got {lattice!r}")
    pts = pts + side / 2
    return pts.to(dtype=dtype, device=device).expand(batch, count, 2).clone()


def displacement(a: torch.Tensor, b: torch.Tensor, side: float, wrap_around: bool) -> torch.Tensor:
    """Vectors from each point of ``a`` to each point of ``b``, shortest over wrapped copies.

    Shapes:
        a: [B, P, 2], b: [B, Q, 2] -> [B, P, Q, 2] (b - a).
    """
    d = b[:, None, :, :] - a[:, :, None, :]  # [B, P, Q, 2]
    if wrap_around:
        # Shortest image per axis: shifting by -side, 0 or +side independently in x and y is the
        # 9-copy construction of the book (the minimum of |d + shift| is separable per axis).
        d = d - side * torch.round(d / side)
    return d


def distances_2d(a: torch.Tensor, b: torch.Tensor, side: float, wrap_around: bool) -> torch.Tensor:
    """Horizontal distances, wrapped if asked.

    Shapes:
        a: [B, P, 2], b: [B, Q, 2] -> [B, P, Q].
    """
    return torch.linalg.vector_norm(displacement(a, b, side, wrap_around), dim=-1)


def link_angles(
    ap: torch.Tensor, ue: torch.Tensor, side: float, wrap_around: bool, height_difference: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """2-D distance, azimuth and elevation of each UE seen from each AP (nearest wrapped copy).

    The elevation is asin(height / d3D) as in the book's setup code (AP above the UE).

    Shapes:
        ap: [B, L, 2], ue: [B, K, 2] -> (d2d, azimuth, elevation), each [B, L, K]; angles in rad.
    """
    d = displacement(ap, ue, side, wrap_around)  # [B, L, K, 2]
    d2d = torch.linalg.vector_norm(d, dim=-1)
    azimuth = torch.atan2(d[..., 1], d[..., 0])
    d3d = torch.sqrt(d2d**2 + height_difference**2)
    elevation = torch.asin(torch.where(d3d > 0, height_difference / d3d.clamp_min(1e-12), 0.0))
    return d2d, azimuth, elevation


def disc_union_positions(
    centers: torch.Tensor,
    radius: float,
    count: int,
    *,
    seed: int,
    name: str,
    indices: Sequence[int],
) -> torch.Tensor:
    """Points uniform over the union of discs of ``radius`` around ``centers`` (rejection sampling).

    Uniform over the union, not "pick a disc, then a point" (which over-weights overlaps). Draws
    from the bounding box of the discs, one stream per sample, until ``count`` points are kept.

    Shapes:
        centers: [B, P, 2] -> [B, count, 2].
    """
    if len(indices) != centers.shape[0]:
        raise ValueError(f"indices has {len(indices)} entries for {centers.shape[0]} setups")
    out = []
    for b, index in enumerate(indices):
        c = centers[b].double().cpu()
        lo, hi = c.min(0).values - radius, c.max(0).values + radius
        g = stream(seed, name, index)
        kept = torch.empty(0, 2, dtype=torch.float64)
        while kept.shape[0] < count:
            cand = lo + (hi - lo) * torch.rand(4 * count, 2, generator=g, dtype=torch.float64)
            inside = (torch.cdist(cand, c) <= radius).any(dim=1)
            kept = torch.cat([kept, cand[inside]])
        out.append(kept[:count])
    return torch.stack(out).to(dtype=centers.dtype, device=centers.device)
