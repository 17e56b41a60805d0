"""Training data plumbing (no Lightning here): the validation split, model features computed
once per dataset, whole-batch fetching, and a DDP-aware size-bucketed batch sampler.

In-memory format as in ``cfmimo.data.loaders``: ``groups: dict[(K, L), dict[str, Tensor]]``, every
tensor with a leading sample dimension n, samples of a group in "sample_index" order.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch.utils.data import Sampler

from cfmimo.data.loaders import BucketBatchSampler, GroupedDataset, collate_same_size
from cfmimo.data.transforms import PrepareBatch
from cfmimo.sim.uatf import STORED_STATISTIC_KEYS

__all__ = [
    "FEATURE_KEYS",
    "GAIN_KEY",
    "SE_TERM_KEYS",
    "BatchedDataset",
    "DistributedBucketBatchSampler",
    "balance_batches",
    "prepare_features",
    "select_keys",
    "split_validation",
]

Groups = dict[tuple[int, int], dict[str, torch.Tensor]]

#: What a training step reads: model inputs and normalized targets (``PrepareBatch`` outputs),
#: plus the positions a ``GroupedDataset`` requires.
FEATURE_KEYS = (
    "sample_index",
    "ue_positions",
    "ap_positions",
    "ue_features",
    "ap_features",
    "p_ul_norm",
    "p_dl_norm",
)
#: What ``PrepareBatch`` needs to compute them (kept instead when noise is drawn per epoch).
RAW_KEYS = ("sample_index", "ue_positions", "ap_positions", "p_ul", "p_dl")
#: The stored large-scale gains [n, L, K] (dB), passed through unchanged to the gain-aware models
#: (``cfmimo.models.gain_aware``), which normalize them themselves.
GAIN_KEY = "gain_db"
#: What the worst-UE SE term (``TrainConfig.se_term``) reads per sample, also passed through
#: unchanged: the stored UatF statistics and the scenario's constants, "prelog" [n, 2] (UL, DL)
#: and "dl_total_power" [n] (Σ_l P_l^DL, mW; the DL rescaler's budget).
SE_TERM_KEYS = (*STORED_STATISTIC_KEYS, "prelog", "dl_total_power")


def split_validation(
    groups: Mapping[tuple[int, int], Mapping[str, torch.Tensor]], fraction: float
) -> tuple[Groups, Groups]:
    """Hold out, in every (K, L) group, the ``round(fraction * n)`` samples (at least 1, at most
    n - 1) with the highest sample indices. Deterministic and independent of any seed.

    Shapes:
        groups[(K, L)][name] [n, ...] -> (train [n - m, ...], val [m, ...]) per group and name.
    """
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 < fraction < 1:
        raise ValueError(f"fraction must be a number in (0, 1), got {fraction!r}")
    train: Groups = {}
    val: Groups = {}
    for key, group in sorted(groups.items()):
        n = int(group["sample_index"].shape[0])
        if n < 2:
            raise ValueError(f"group (K, L) = {key} has {n} sample(s); a validation split needs at least 2")
        m = min(max(round(fraction * n), 1), n - 1)
        order = torch.argsort(group["sample_index"])
        train_idx, val_idx = order[: n - m], order[n - m :]
        train[key] = {name: t[train_idx] for name, t in group.items()}
        val[key] = {name: t[val_idx] for name, t in group.items()}
    return train, val


def select_keys(
    groups: Mapping[tuple[int, int], Mapping[str, torch.Tensor]], keys: tuple[str, ...]
) -> Groups:
    """Only ``keys`` of every group (less to collate); ValueError naming a missing key."""
    out: Groups = {}
    for key, group in groups.items():
        missing = [k for k in keys if k not in group]
        if missing:
            raise ValueError(f"group (K, L) = {key} lacks {missing} (is the dataset labelled?)")
        out[key] = {k: group[k] for k in keys}
    return out


def prepare_features(
    groups: Mapping[tuple[int, int], Mapping[str, torch.Tensor]], prepare: PrepareBatch
) -> Groups:
    """``prepare`` (noise with ``epoch=None`` + min-max + power scaling) applied to every group
    at once. A sample's noise depends only on (seed, K, L, sample_index), so this equals applying
    ``prepare`` to each batch, done once instead of every epoch. Returns ``FEATURE_KEYS``, plus the
    gains and the SE-term inputs (``SE_TERM_KEYS``) unchanged where a group has them.

    Shapes:
        groups[(K, L)]: "ue_positions" [n, K, 2], "ap_positions" [n, L, 2], "p_ul"/"p_dl" [n, K],
        "sample_index" [n] -> the same positions and "sample_index", "ue_features" [n, K, 2],
        "ap_features" [n, L, 2], "p_ul_norm"/"p_dl_norm" [n, K].
    """
    out: Groups = {}
    for (K, L), group in groups.items():
        n = int(group["sample_index"].shape[0])
        passthrough = tuple(k for k in (GAIN_KEY, *SE_TERM_KEYS) if k in group)
        batch = {k: group[k] for k in (*RAW_KEYS, *passthrough)}
        batch["K"] = torch.full((n,), K, dtype=torch.int64)
        batch["L"] = torch.full((n,), L, dtype=torch.int64)
        prepared = prepare(batch)
        keys = FEATURE_KEYS + passthrough
        out[(K, L)] = select_keys({(K, L): prepared}, keys)[(K, L)]
    return out


class BatchedDataset(GroupedDataset):
    """A ``GroupedDataset`` that fetches a whole same-size batch with one gather per tensor
    (``DataLoader`` calls ``__getitems__`` with the batch's indices), instead of per-sample
    indexing and stacking. Use with ``collate_fn=unwrap_batch``.

    Shapes:
        __getitems__(indices of one (K, L)) -> the batch as ``collate_same_size`` returns it.
    """

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        (K, L), _ = self.locate(indices[0])
        start = self.buckets[(K, L)].start
        local = torch.as_tensor(indices, dtype=torch.int64) - start
        if local.min() < 0 or local.max() >= len(self.buckets[(K, L)]):
            raise ValueError(f"a batch must hold samples of one (K, L); got indices {indices[:8]}...")
        group = self._groups[self.keys.index((K, L))]
        B = len(indices)
        out = {name: t[local] for name, t in group.items()}
        out["K"] = torch.full((B,), K, dtype=torch.int64)
        out["L"] = torch.full((B,), L, dtype=torch.int64)
        out["ue_mask"] = torch.ones(B, K, dtype=torch.bool)
        out["ap_mask"] = torch.ones(B, L, dtype=torch.bool)
        return out


def unwrap_batch(batch: Any) -> dict[str, torch.Tensor]:
    """collate_fn for ``BatchedDataset``: the batch is already collated (a list of samples, as a
    plain ``Dataset`` would give, is collated with ``collate_same_size``)."""
    return batch if isinstance(batch, dict) else collate_same_size(batch)


def balance_batches(batches: list[list[int]], parts: int) -> list[list[int]]:
    """Split the largest batches in two (first largest first) until the count is a multiple of
    ``parts``: every sample stays exactly once and batches stay single-size.

    Shapes:
        lists of sample indices -> a list of length ceil(len / parts) * parts.
    """
    out = [list(b) for b in batches]
    target = math.ceil(len(out) / parts) * parts
    while len(out) < target:
        i = max(range(len(out)), key=lambda j: len(out[j]))
        if len(out[i]) < 2:
            raise ValueError(
                f"cannot share {sum(map(len, batches))} samples among {parts} processes with equal batch counts"
            )
        half = (len(out[i]) + 1) // 2
        out[i : i + 1] = [out[i][:half], out[i][half:]]
    return out


class DistributedBucketBatchSampler(Sampler[list[int]]):
    """Size-bucketed batches shared among ``num_replicas`` processes (DDP).

    Every process builds the same epoch's batches from ``sampler`` (a ``BucketBatchSampler``: one
    (K, L) per batch, shuffled per epoch from its seed), makes their count a multiple of
    ``num_replicas`` by halving the largest batches (``balance_batches``; no sample dropped or
    repeated), and takes every ``num_replicas``-th batch from ``rank``. So the processes get
    disjoint shares with equal batch counts (DDP needs the same number of steps everywhere) and
    together cover every sample exactly once per epoch. Deterministic per epoch:
    ``set_epoch`` is forwarded to ``sampler``, which Lightning calls before each epoch through
    the ``.sampler`` attribute (also after resuming). With one process it is ``sampler`` itself.

    Shapes:
        yields lists of global indices into the dataset (at most the batch size each).
    """

    def __init__(self, sampler: BucketBatchSampler, *, num_replicas: int = 1, rank: int = 0) -> None:
        if not isinstance(sampler, BucketBatchSampler):
            raise TypeError(f"sampler must be a BucketBatchSampler, got {type(sampler).__name__}")
        if isinstance(num_replicas, bool) or not isinstance(num_replicas, int) or num_replicas < 1:
            raise ValueError(f"num_replicas must be an int >= 1, got {num_replicas!r}")
        if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be an int in [0, {num_replicas}), got {rank!r}")
        self.sampler, self.num_replicas, self.rank = sampler, num_replicas, rank
        epoch = sampler.epoch
        total = sum(len(b) for b in sampler)  # one dry pass: the sample count (order is irrelevant)
        sampler.set_epoch(epoch)
        self._per_rank = math.ceil(len(sampler) / num_replicas)
        if total < self._per_rank * num_replicas:
            raise ValueError(
                f"{total} samples cannot fill {self._per_rank} batches on each of {num_replicas} processes; "
                "use fewer devices or more data"
            )

    def set_epoch(self, epoch: int) -> None:
        """Use ``epoch`` for the next iteration (the same on every process)."""
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return self._per_rank

    def __iter__(self) -> Iterator[list[int]]:
        batches = list(self.sampler)
        if self.num_replicas > 1:
            batches = balance_batches(batches, self.num_replicas)[self.rank :: self.num_replicas]
        yield from batches
