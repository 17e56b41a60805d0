"""Serving-AP masks D [B, L, K] (True where AP l serves UE k) and the per-AP UE limit.

The rules of the papers and the book:
  * all APs serve all UEs (canonical cell-free; "Optimal CF");
  * the book's DCC (Section 4.4, its setup code): each UE's master AP, plus at every AP the UE
    with the largest gain on each pilot;
  * the Q strongest APs of each UE ("DCC" with Q = 8 in the elu-cosformer paper);
  * APs within a radius (300 m in aagnn); links with gain above a threshold (ee-gnn).
``limit_ues_per_ap`` projects any mask so that each AP serves at most ``max_ues`` UEs, keeping
those with the largest score (gain by default). A UE may lose all its APs in that projection;
``unserved_ues`` reports it so callers can handle it explicitly.
"""

from __future__ import annotations

import torch

from cfmimo.config import Clustering


def all_aps(gain_db: torch.Tensor) -> torch.Tensor:
    """Shapes: gain_db [B, L, K] -> [B, L, K] bool, all True."""
    return torch.ones_like(gain_db, dtype=torch.bool)


def book_dcc(gain_db: torch.Tensor, pilot: torch.Tensor, master: torch.Tensor, tau_p: int) -> torch.Tensor:
    """The book's DCC: master AP, plus the strongest UE of each used pilot at every AP.

    Shapes:
        gain_db [B, L, K], pilot [B, K], master [B, K] -> [B, L, K] bool.
    """
    L, K = gain_db.shape[1:]
    onehot = torch.nn.functional.one_hot(pilot, tau_p).bool()  # [B, K, tau_p]
    masked = torch.where(onehot[:, None], gain_db[..., None], -torch.inf)  # [B, L, K, tau_p]
    best = masked.argmax(dim=2)  # [B, L, tau_p] strongest UE per pilot
    used = onehot.any(dim=1)[:, None, :, None]  # [B, 1, tau_p, 1] pilots held by some UE
    d = (torch.nn.functional.one_hot(best, K).bool() & used).any(dim=2)  # [B, L, K]
    d = d | torch.nn.functional.one_hot(master, L).bool().transpose(1, 2)  # [B, L, K] master links
    return d


def q_strongest(gain_db: torch.Tensor, q: int) -> torch.Tensor:
    """Each UE served by its ``q`` strongest APs (all APs if q >= L).

    Shapes:
        gain_db [B, L, K] -> [B, L, K] bool.
    """
    L = gain_db.shape[1]
    if q >= L:
        return all_aps(gain_db)
    top = gain_db.topk(q, dim=1).indices  # [B, q, K]
    return torch.zeros_like(gain_db, dtype=torch.bool).scatter_(1, top, True)


def within_radius(d2d: torch.Tensor, radius_m: float) -> torch.Tensor:
    """Shapes: d2d [B, L, K] metres -> [B, L, K] bool (distance <= radius)."""
    return d2d <= radius_m


def gain_threshold(gain_db: torch.Tensor, threshold_db: float) -> torch.Tensor:
    """Shapes: gain_db [B, L, K] -> [B, L, K] bool (gain over noise >= threshold)."""
    return gain_db >= threshold_db


def limit_ues_per_ap(mask: torch.Tensor, score: torch.Tensor, max_ues: int) -> torch.Tensor:
    """Keep, at every AP, at most ``max_ues`` of its served UEs: those with the largest score.

    The result is a subset of ``mask``; ties are broken by UE index (stable sort).

    Shapes:
        mask [B, L, K] bool, score [B, L, K] -> [B, L, K] bool.
    """
    if max_ues < 1:
        raise ValueError(f"max_ues must be >= 1, got {max_ues}")
    if mask.shape != score.shape:
        raise ValueError(f"mask {tuple(mask.shape)} and score {tuple(score.shape)} must have the same shape")
    masked = torch.where(mask, score.to(torch.float64), -torch.inf)
    order = torch.sort(masked, dim=-1, descending=True, stable=True).indices  # [B, L, K]
    rank = torch.empty_like(order).scatter_(
        -1, order, torch.arange(mask.shape[-1], device=mask.device).expand_as(order)
    )
    return mask & (rank < max_ues)


def unserved_ues(mask: torch.Tensor) -> torch.Tensor:
    """Shapes: mask [B, L, K] -> [B, K] bool, True where no AP serves the UE."""
    return ~mask.any(dim=1)


def serving_mask(
    clustering: Clustering,
    gain_db: torch.Tensor,
    d2d: torch.Tensor,
    pilot: torch.Tensor,
    master: torch.Tensor,
    tau_p: int,
) -> torch.Tensor:
    """The mask a Clustering config describes.

    Shapes:
        gain_db, d2d [B, L, K]; pilot, master [B, K] -> [B, L, K] bool.
    """
    kind = clustering.kind
    if kind == "all":
        d = all_aps(gain_db)
    elif kind == "dcc":
        d = book_dcc(gain_db, pilot, master, tau_p)
    elif kind == "q_strongest":
        d = q_strongest(gain_db, clustering.q)
    elif kind == "radius":
        d = within_radius(d2d, clustering.radius_m)
    else:
        d = gain_threshold(gain_db, clustering.threshold_db)
    if clustering.max_ues_per_ap is not None:
        d = limit_ues_per_ap(d, gain_db, clustering.max_ues_per_ap)
    return d
