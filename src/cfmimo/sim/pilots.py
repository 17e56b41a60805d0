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


def assign_pilots_for_clusters(gain_db: torch.Tensor, serving: torch.Tensor, tau_p: int) -> torch.Tensor:
    """Pilots given the clusters: each UE takes the pilot that contaminates its cluster least.

    The elu-cosformer paper (Sect. II) limits every AP to tau_p UEs "to prevent pilot
    contamination"; physically that needs pilots that follow the clusters. UEs are processed in
    index order (as in Algorithm 4.1); UE k takes the pilot t minimizing the mutual contamination
    with the UEs i already on t, measured where it matters, at the serving APs:

        cost_k(t) = sum_{i on t} [ s_ik + s_ki ],  s_ik = sum_{l in M_k} beta_li / sum_{l in M_k} beta_lk,

    the co-pilot UE's received power over k's cluster relative to k's own (and vice versa), i.e.
    how much each would leak into the other's combined estimate, after the number of co-pilot UEs
    that share a serving AP with k (lexicographic: such "conflicts" first; first minimum on ties).
    So no AP serves two UEs on one pilot whenever a greedy colouring finds a free pilot (always
    when K <= tau_p), and otherwise the least harmful reuse is chosen. With all APs in every
    cluster this is Algorithm 4.1's idea measured over the whole network instead of the master AP. A UE without serving AP
    uses its master AP as its cluster. The estimator still models contamination from every co-pilot
    UE, so the rule is a choice of pilots, not an idealization.

    Sequential over UEs by definition; each step is batched over setups.

    Shapes:
        gain_db [B, L, K], serving [B, L, K] bool -> pilot [B, K] long (0-based).
    """
    if tau_p < 1:
        raise ValueError(f"tau_p must be >= 1, got {tau_p}")
    if serving.shape != gain_db.shape:
        raise ValueError(f"serving {tuple(serving.shape)} must match gain_db {tuple(gain_db.shape)}")
    batch, L, K = gain_db.shape
    device = gain_db.device
    master = master_aps(gain_db)
    cluster = serving.to(torch.bool) | (
        ~serving.any(dim=1, keepdim=True)
        & torch.nn.functional.one_hot(master, L).transpose(1, 2).to(torch.bool)
    )  # [B, L, K]
    c = cluster.to(torch.float64)
    g = gain_db.double() / 10.0
    beta = torch.pow(10.0, g)  # [B, L, K]
    own = (c * beta).sum(dim=1)  # [B, K]: sum_{l in M_k} beta_lk
    # ratio[b, i, k] = s_ik: UE i's power over k's cluster relative to k's own.
    ratio = torch.einsum("blk,bli->bik", c, beta) / own[:, None, :]  # [B, K, K]
    mutual = ratio + ratio.transpose(1, 2)  # [B, K, K], symmetric
    shared = (torch.einsum("blk,bli->bik", c, c) > 0).to(torch.float64)  # [B, K, K]: share an AP
    pilot = torch.zeros(batch, K, dtype=torch.long, device=device)
    holders = torch.zeros(batch, K, tau_p, dtype=torch.float64, device=device)  # one-hot of assigned UEs
    for k in range(K):
        conflicts = torch.einsum("bi,bit->bt", shared[:, :, k], holders)  # [B, tau_p], integers
        leak = torch.einsum("bi,bit->bt", mutual[:, :, k], holders)  # [B, tau_p]
        cost = conflicts + 0.5 * leak / (leak.amax(dim=-1, keepdim=True) + 1e-300)  # lexicographic
        choice = cost.argmin(dim=-1)  # [B], first minimum
        pilot[:, k] = choice
        holders[:, k] = torch.nn.functional.one_hot(choice, tau_p).to(torch.float64)
    return pilot
