"""Pilot assignment (book Algorithm 4.1) and master APs.

UE k's master AP is argmax_l beta_lk. The first tau_p UEs get pilots 1..tau_p (orthogonal when
K <= tau_p); each later UE takes the pilot with the least sum of gains, at its master AP, of the
UEs already holding that pilot (first minimum on ties), as in the book's setup code.
"""

from __future__ import annotations

import torch


def master_aps(gain_db: torch.Tensor) -> torch.Tensor:
    """Index of each UE's strongest AP.

    Shapes:
        gain_db: [B, L, K] -> [B, K] long.
    """
    return gain_db.argmax(dim=1)


def assign_pilots(gain_db: torch.Tensor, tau_p: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Book Algorithm 4.1. Returns (pilot index [B, K] long, 0-based; master AP [B, K] long).

    UEs are processed in index order (the algorithm is sequential by definition); each step is
    batched over setups.

    Shapes:
        gain_db: [B, L, K] -> ([B, K], [B, K]).
    """
    if tau_p < 1:
        raise ValueError(f"tau_p must be >= 1, got {tau_p}")
    batch, _, K = gain_db.shape
    master = master_aps(gain_db)
    pilot = torch.empty(batch, K, dtype=torch.long, device=gain_db.device)
    first = min(K, tau_p)
    pilot[:, :first] = torch.arange(first, device=gain_db.device)
    if K > tau_p:
        beta = torch.pow(10.0, gain_db.double() / 10.0)  # [B, L, K]
        rows = torch.arange(batch, device=gain_db.device)
        # load[b, l, t]: sum of gains at AP l of the UEs already on pilot t
        load = torch.zeros(batch, gain_db.shape[1], tau_p, dtype=torch.float64, device=gain_db.device)
        load.scatter_add_(2, pilot[:, None, :first].expand(-1, gain_db.shape[1], -1), beta[:, :, :first])
        for k in range(tau_p, K):
            choice = load[rows, master[:, k]].argmin(dim=-1)  # [B], first minimum
            pilot[:, k] = choice
            load[rows, :, choice] += beta[:, :, k]
    return pilot, master


def pilot_one_hot(pilot: torch.Tensor, tau_p: int, dtype: torch.dtype) -> torch.Tensor:
    """Shapes: pilot [B, K] -> [B, K, tau_p] with ones where UE k uses pilot t."""
    return torch.nn.functional.one_hot(pilot, tau_p).to(dtype)
