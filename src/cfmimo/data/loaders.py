"""Loading datasets for training: one Dataset over all (K, L) groups, size-bucketed batches, and
collation of same-size or padded mixed-size batches.

In-memory format (what ``cfmimo.data.storage.load_dataset(...).groups`` returns)::

    groups: dict[(K, L), dict[str, Tensor]]      every tensor has a leading sample dimension n

with at least "ap_positions" [n, L, 2], "ue_positions" [n, K, 2] and "sample_index" [n] (long;
the index within its group), and, for labelled sets, "p_ul" and "p_dl" [n, K]. Other keys are
carried through unchanged.

Padding (``pad_collate``) is decided per key by an explicit table of which per-sample dims are
UE (K) or AP (L) dims, ``DEFAULT_AXES``, extendable with the ``axes`` argument. Padded entries are
0 (False for bool tensors; note that 0 is also a valid pilot index): always read them with the
masks "ue_mask" [B, K_max] and "ap_mask" [B, L_max] (True = real).
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from cfmimo.data.transforms import PowerScaler
from cfmimo.rng import stream_seed

__all__ = [
    "DEFAULT_AXES",
    "BucketBatchSampler",
    "GroupedDataset",
    "collate_same_size",
    "fit_power_scaler",
    "make_loader",
    "pad_collate",
]

Axes = tuple[str | None, ...]

#: Per-sample dims (after the leading sample dim) of the known keys: "K" = UE dim, "L" = AP dim,
#: None = any other dim (never padded). Keys written by ``cfmimo.data.generation``.
DEFAULT_AXES: dict[str, Axes] = {
    "ap_positions": ("L", None),
    "ue_positions": ("K", None),
    "sample_index": (),
    "gain_db": ("L", "K"),
    "pilot": ("K",),
    "serving": ("L", "K"),
    "ul_signal": ("K",),
    "ul_interference": ("K", "K"),
    "ul_noise": ("K",),
    "dl_signal": ("K",),
    "dl_interference": ("K", "K"),
    "dl_ap_power_share": ("L", "K"),
    "p_ul": ("K",),
    "p_dl": ("K",),
    "se_ul": ("K",),
    "se_dl": ("K",),
}

REQUIRED_KEYS = ("ap_positions", "ue_positions", "sample_index")
_SIZE_KEYS = ("K", "L")


def _expected_shape(axes: Axes, K: int, L: int, shape: Sequence[int]) -> tuple[int, ...] | None:
    """The per-sample shape ``axes`` implies for (K, L), with free dims taken from ``shape``;
    None if the number of dims differs."""
    if len(axes) != len(shape):
        return None
    return tuple(K if a == "K" else L if a == "L" else s for a, s in zip(axes, shape, strict=True))


class GroupedDataset(Dataset):
    """All samples of all (K, L) groups as one map-style dataset.

    Items are ordered by sorted (K, L), then by position in the group. ``dataset[i]`` is a dict
    with one sample of every tensor (views, no copies) plus "K" and "L" (ints).

    Attributes:
        keys: the sorted (K, L) group keys; ``item_sizes``: the (K, L) of every item (for
        samplers); ``buckets``: (K, L) -> range of global indices.

    Shapes:
        groups[(K, L)]: "ap_positions" [n, L, 2], "ue_positions" [n, K, 2], "sample_index" [n],
        other known keys as in ``DEFAULT_AXES`` (checked), unknown keys [n, ...].
    """

    def __init__(self, groups: Mapping[tuple[int, int], Mapping[str, torch.Tensor]]) -> None:
        if not isinstance(groups, Mapping) or not groups:
            raise ValueError("groups must be a non-empty mapping {(K, L): {name: tensor [n, ...]}}")
        self.keys: list[tuple[int, int]] = sorted(groups)
        self._groups: list[dict[str, torch.Tensor]] = []
        self._counts: list[int] = []
        for key in self.keys:
            self._groups.append(self._validate_group(key, groups[key]))
            self._counts.append(int(self._groups[-1]["sample_index"].shape[0]))
        self._starts: list[int] = []
        total = 0
        for n in self._counts:
            self._starts.append(total)
            total += n
        self._len = total
        self.buckets: dict[tuple[int, int], range] = {
            key: range(s, s + n) for key, s, n in zip(self.keys, self._starts, self._counts, strict=True)
        }
        self.item_sizes: list[tuple[int, int]] = [
            key for key, n in zip(self.keys, self._counts, strict=True) for _ in range(n)
        ]

    @staticmethod
    def _validate_group(key: Any, group: Any) -> dict[str, torch.Tensor]:
        if (
            not isinstance(key, tuple)
            or len(key) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in key)
        ):
            raise ValueError(f"groups keys must be (K, L) tuples of positive ints, got {key!r}")
        K, L = key
        if not isinstance(group, Mapping):
            raise ValueError(f"groups[{key}] must be a mapping name -> tensor, got {type(group).__name__}")
        missing = [name for name in REQUIRED_KEYS if name not in group]
        if missing:
            raise ValueError(f"groups[{key}] is missing required keys {missing}")
        n = None
        for name, t in group.items():
            if name in _SIZE_KEYS:
                raise ValueError(
                    f'groups[{key}] must not hold a key named "{name}" (reserved for the group size)'
                )
            if not isinstance(t, torch.Tensor) or t.dim() == 0:
                raise ValueError(
                    f'groups[{key}]["{name}"] must be a tensor with a leading sample dim [n, ...]'
                )
            n = t.shape[0] if n is None else n
            if t.shape[0] != n:
                raise ValueError(f'groups[{key}]["{name}"] has {t.shape[0]} samples, other keys have {n}')
            if name in DEFAULT_AXES:
                axes = DEFAULT_AXES[name]
                want = _expected_shape(axes, K, L, t.shape[1:])
                if want is None or tuple(t.shape[1:]) != want:
                    spec = ", ".join(a or "*" for a in axes)
                    raise ValueError(
                        f'groups[{key}]["{name}"] must have shape [n{", " if axes else ""}{spec}] with '
                        f"K = {K}, L = {L}, got {tuple(t.shape)}"
                    )
        if group["ap_positions"].shape[2] != 2 or group["ue_positions"].shape[2] != 2:
            raise ValueError(f"groups[{key}] positions must be 2-D ([n, P, 2])")
        if group["sample_index"].dtype not in (torch.int64, torch.int32):
            raise ValueError(
                f'groups[{key}]["sample_index"] must be an integer tensor, got {group["sample_index"].dtype}'
            )
        return dict(group)

    def __len__(self) -> int:
        return self._len

    def locate(self, index: int) -> tuple[tuple[int, int], int]:
        """The (K, L) group and position in it of global item ``index``."""
        if isinstance(index, bool) or not isinstance(index, int):
            index = int(index)
        if not 0 <= index < self._len:
            raise IndexError(f"index {index} out of range for a dataset of {self._len} samples")
        g = bisect.bisect_right(self._starts, index) - 1
        return self.keys[g], index - self._starts[g]

    def __getitem__(self, index: int) -> dict[str, Any]:
        key, local = self.locate(index)
        group = self._groups[bisect.bisect_right(self._starts, index) - 1]
        item: dict[str, Any] = {name: t[local] for name, t in group.items()}
        item["K"], item["L"] = key
        return item


class BucketBatchSampler(Sampler[list[int]]):
    """Batches that each hold samples of one (K, L) only (so they stack without padding).

    Per epoch: every bucket's indices are permuted and cut into batches of ``batch_size`` (the
    last one shorter unless ``drop_last``), then the batches of all buckets are shuffled together.
    Every index appears exactly once per epoch (minus dropped remainders). Epoch e uses its own
    stream derived from a base seed drawn once from ``generator`` at construction, so the order
    is a function of (generator seed, epoch) only. Each iteration advances the epoch by one;
    ``set_epoch(e)`` picks the epoch the next iteration uses (resuming, Lightning).
    With ``shuffle=False``: buckets in sorted (K, L) order, indices in order.
    ``by_size=False`` puts all samples in one bucket (mixed-size batches, for ``pad_collate``).

    Shapes:
        yields lists of ``batch_size`` (or fewer) global indices into ``dataset``.
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int,
        *,
        shuffle: bool = True,
        drop_last: bool = False,
        generator: torch.Generator | None = None,
        by_size: bool = True,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        sizes = getattr(dataset, "item_sizes", None)
        if sizes is None:
            raise ValueError(
                "dataset must have an item_sizes list of (K, L) per item (e.g. a GroupedDataset)"
            )
        if shuffle and not isinstance(generator, torch.Generator):
            raise ValueError("generator (a torch.Generator) is required when shuffle=True")
        self.batch_size, self.shuffle, self.drop_last = batch_size, bool(shuffle), bool(drop_last)
        buckets: dict[Any, list[int]] = {}
        for i, size in enumerate(sizes):
            buckets.setdefault(tuple(size) if by_size else None, []).append(i)
        self._buckets = [
            torch.tensor(buckets[k], dtype=torch.int64) for k in sorted(buckets, key=_bucket_order)
        ]
        self._base_seed = 0
        if generator is not None:
            self._base_seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use ``epoch`` for the next iteration."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch must be an int >= 0, got {epoch!r}")
        self.epoch = epoch

    def __len__(self) -> int:
        bs = self.batch_size
        return sum(len(b) // bs if self.drop_last else -(-len(b) // bs) for b in self._buckets)

    def __iter__(self) -> Iterator[list[int]]:
        epoch, self.epoch = self.epoch, self.epoch + 1
        g = torch.Generator().manual_seed(stream_seed(self._base_seed, "bucket_batch_sampler", epoch))
        batches: list[torch.Tensor] = []
        for idx in self._buckets:
            if self.shuffle:
                idx = idx[torch.randperm(len(idx), generator=g)]
            chunks = list(idx.split(self.batch_size))
            if self.drop_last and chunks and len(chunks[-1]) < self.batch_size:
                chunks.pop()
            batches.extend(chunks)
        if self.shuffle:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=g).tolist()]
        for batch in batches:
            yield batch.tolist()


def _bucket_order(key: Any) -> tuple[int, ...]:
    return () if key is None else tuple(key)


def _split_sizes(samples: Sequence[Mapping[str, Any]]) -> tuple[list[int], list[int]]:
    if not samples:
        raise ValueError("samples must be a non-empty list of dataset items")
    try:
        return [int(s["K"]) for s in samples], [int(s["L"]) for s in samples]
    except KeyError:
        raise ValueError(
            'every sample must carry its sizes "K" and "L" (items of a GroupedDataset)'
        ) from None


def _size_tensors(Ks: list[int], Ls: list[int]) -> dict[str, torch.Tensor]:
    return {"K": torch.tensor(Ks, dtype=torch.int64), "L": torch.tensor(Ls, dtype=torch.int64)}


def _check_same_keys(samples: Sequence[Mapping[str, Any]]) -> list[str]:
    names = [k for k in samples[0] if k not in _SIZE_KEYS]
    for s in samples[1:]:
        if set(s) != set(samples[0]):
            raise ValueError(f"samples have different keys: {sorted(samples[0])} vs {sorted(s)}")
    return names


def collate_same_size(samples: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack samples of one (K, L) (as batched by ``BucketBatchSampler``).

    Adds "K", "L" [B] (long) and all-True "ue_mask" [B, K], "ap_mask" [B, L], so model code is
    the same for padded and unpadded batches.

    Shapes:
        each tensor [...] -> [B, ...].
    """
    Ks, Ls = _split_sizes(samples)
    if len(set(Ks)) != 1 or len(set(Ls)) != 1:
        raise ValueError(
            f"collate_same_size needs samples of one (K, L), got {sorted(set(zip(Ks, Ls, strict=True)))}; "
            "use pad_collate for mixed sizes"
        )
    out = {name: torch.stack([s[name] for s in samples]) for name in _check_same_keys(samples)}
    B, K, L = len(samples), Ks[0], Ls[0]
    device = samples[0]["ue_positions"].device if "ue_positions" in samples[0] else None
    out |= _size_tensors(Ks, Ls)
    out["ue_mask"] = torch.ones(B, K, dtype=torch.bool, device=device)
    out["ap_mask"] = torch.ones(B, L, dtype=torch.bool, device=device)
    return out


def pad_collate(
    samples: Sequence[Mapping[str, Any]], axes: Mapping[str, Axes] | None = None
) -> dict[str, torch.Tensor]:
    """Collate samples of different (K, L) by zero-padding UE dims to K_max and AP dims to L_max.

    Which dims are UE/AP dims comes from ``DEFAULT_AXES`` updated with ``axes`` (per-sample dims,
    "K", "L" or None). Keys in neither table are stacked if they are per-sample scalars and
    rejected otherwise (ValueError naming the key): no guessing from sizes.
    Returns the padded tensors plus "K", "L" [B] (long), "ue_mask" [B, K_max] and "ap_mask"
    [B, L_max] (bool, True = real).

    Shapes:
        each tensor with axes (a_1, ..., a_d) -> [B, s_1, ..., s_d], s_i = K_max / L_max / size.
    """
    Ks, Ls = _split_sizes(samples)
    table = {**DEFAULT_AXES, **(dict(axes) if axes is not None else {})}
    B, K_max, L_max = len(samples), max(Ks), max(Ls)
    out: dict[str, torch.Tensor] = {}
    for name in _check_same_keys(samples):
        first = samples[0][name]
        if not isinstance(first, torch.Tensor):
            raise ValueError(f'sample key "{name}" must be a tensor, got {type(first).__name__}')
        if name not in table:
            if first.dim() == 0:
                out[name] = torch.stack([s[name] for s in samples])
                continue
            raise ValueError(
                f'pad_collate does not know which dims of key "{name}" (per-sample shape {tuple(first.shape)}) '
                f'are UE (K) or AP (L) dims; pass axes={{"{name}": (...)}} with "K", "L" or None per dim'
            )
        ax = tuple(table[name])
        if any(a not in ("K", "L", None) for a in ax):
            raise ValueError(f'axes["{name}"] entries must be "K", "L" or None, got {ax}')
        shape = _expected_shape(ax, K_max, L_max, first.shape)
        if shape is None:
            raise ValueError(f'key "{name}" has per-sample shape {tuple(first.shape)}, but its axes are {ax}')
        buf = first.new_zeros((B, *shape))
        for b, s in enumerate(samples):
            t = s[name]
            want = _expected_shape(ax, Ks[b], Ls[b], t.shape)
            if want is None or tuple(t.shape) != want or _expected_shape(ax, K_max, L_max, t.shape) != shape:
                raise ValueError(
                    f'sample {b} key "{name}" has shape {tuple(t.shape)}, expected axes {ax} with '
                    f"K = {Ks[b]}, L = {Ls[b]}"
                )
            buf[(b, *(slice(0, n) for n in t.shape))] = t
        out[name] = buf
    out |= _size_tensors(Ks, Ls)
    device = samples[0]["ue_positions"].device if "ue_positions" in samples[0] else None
    out["ue_mask"] = torch.arange(K_max, device=device) < out["K"].to(device).unsqueeze(1)  # [B, K_max]
    out["ap_mask"] = torch.arange(L_max, device=device) < out["L"].to(device).unsqueeze(1)  # [B, L_max]
    return out


class _Collate:
    """collate then transform (a top-level class, so it pickles into worker processes)."""

    def __init__(self, collate: Callable, transform: Callable | None) -> None:
        self.collate, self.transform = collate, transform

    def __call__(self, samples: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        batch = self.collate(samples)
        return batch if self.transform is None else self.transform(batch)


def make_loader(
    groups: Mapping[tuple[int, int], Mapping[str, torch.Tensor]],
    batch_size: int,
    *,
    shuffle: bool,
    seed: int | None = None,
    mixed_sizes: bool = False,
    transform: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None,
    drop_last: bool = False,
    axes: Mapping[str, Axes] | None = None,
    num_workers: int = 0,
) -> DataLoader:
    """A DataLoader over ``groups``: one (K, L) per batch (``collate_same_size``), or, with
    ``mixed_sizes``, batches mixing sizes (``pad_collate``). ``transform`` (e.g. a
    ``PrepareBatch``) is applied to every collated batch, in the worker when ``num_workers > 0``.
    ``seed`` is required when shuffling; the loader's ``batch_sampler.set_epoch`` is available.
    """
    if shuffle and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(f"seed (an int) is required when shuffle=True, got {seed!r}")
    if transform is not None and not callable(transform):
        raise TypeError(f"transform must be callable, got {type(transform).__name__}")
    dataset = GroupedDataset(groups)
    generator = (
        torch.Generator().manual_seed(seed) if isinstance(seed, int) and not isinstance(seed, bool) else None
    )
    sampler = BucketBatchSampler(
        dataset,
        batch_size,
        shuffle=shuffle,
        drop_last=drop_last,
        generator=generator,
        by_size=not mixed_sizes,
    )
    collate: Callable = functools.partial(pad_collate, axes=axes) if mixed_sizes else collate_same_size
    return DataLoader(
        dataset, batch_sampler=sampler, collate_fn=_Collate(collate, transform), num_workers=num_workers
    )


def fit_power_scaler(
    groups: Mapping[tuple[int, int], Mapping[str, torch.Tensor]], eps: float = 1e-8
) -> PowerScaler:
    """A ``PowerScaler`` fitted on the "p_ul"/"p_dl" labels of all groups (all samples and UEs)."""
    missing = [key for key, g in groups.items() if "p_ul" not in g or "p_dl" not in g]
    if not groups or missing:
        raise ValueError(f"groups must be non-empty and labelled (p_ul, p_dl); unlabelled groups: {missing}")
    p_ul = torch.cat([g["p_ul"].reshape(-1) for g in groups.values()])
    p_dl = torch.cat([g["p_dl"].reshape(-1) for g in groups.values()])
    return PowerScaler(eps=eps).fit(p_ul, p_dl)
