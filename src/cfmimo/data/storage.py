"""Dataset storage: a folder with a manifest and HDF5 shards, written atomically and checksummed.

Layout of a dataset folder::

    DIR/dataset.json                  manifest: format, dataset spec (with its full scenario),
                                      spec hash, cfmimo version
    DIR/K010-L016-0000000.h5          one shard: samples start..start+count-1 of group (K, L)

Each shard holds arrays with a leading sample dimension (see ``generation.SAMPLE_FIELDS``) and
attributes: K, L, start, count, base seed, group seed, spec hash, scenario JSON, cfmimo version and
a SHA-256 checksum over all arrays. Files are written to a temporary name in the same folder and
renamed into place, so a shard either exists complete or not at all; a reader verifies the
checksum and names the file on any problem. No pickle anywhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from cfmimo.config import atomic_write_text

MANIFEST = "dataset.json"
FORMAT_VERSION = 1


def shard_name(K: int, L: int, start: int) -> str:
    return f"K{K:03d}-L{L:03d}-{start:07d}.h5"


def checksum(arrays: Mapping[str, np.ndarray]) -> str:
    """SHA-256 over the arrays' names, dtypes, shapes and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(name.encode())
        h.update(str(a.dtype).encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def write_shard(path: str | os.PathLike, arrays: Mapping[str, np.ndarray], attrs: Mapping[str, Any]) -> Path:
    """Write one shard atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")
    try:
        with h5py.File(tmp, "w") as f:
            for name, a in arrays.items():
                f.create_dataset(name, data=a)
            for key, value in attrs.items():
                f.attrs[key] = value
            f.attrs["checksum"] = checksum(arrays)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def read_shard(
    path: str | os.PathLike, *, verify: bool = True
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Arrays and attributes of one shard; ValueError naming the file if unreadable or corrupt."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"missing shard {path}")
    try:
        with h5py.File(path, "r") as f:
            arrays = {name: f[name][()] for name in f}
            attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()}
    except (OSError, KeyError) as err:
        raise ValueError(f"corrupt shard {path}: {err}") from None
    if verify and attrs.get("checksum") != checksum(arrays):
        raise ValueError(
            f"corrupt shard {path}: checksum mismatch (delete the file and re-run to regenerate it)"
        )
    return arrays, attrs


def spec_hash(spec_json: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec_json, sort_keys=True).encode()).hexdigest()[:16]


def _differences(old: Any, new: Any, where: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new)):
            out += _differences(old.get(key), new.get(key), f"{where}.{key}" if where else key)
        return out
    return [] if old == new else [f"{where}: {old!r} -> {new!r}"]


def ensure_manifest(folder: str | os.PathLike, spec_json: dict[str, Any], version: str) -> None:
    """Create the manifest, or check that an existing one describes the same dataset.

    Raises ValueError listing the differing fields when the folder holds another dataset.
    """
    folder = Path(folder)
    manifest = folder / MANIFEST
    if manifest.exists():
        try:
            old = json.loads(manifest.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"unreadable manifest {manifest}: {err}") from None
        diff = _differences(old.get("spec"), spec_json)
        if diff:
            raise ValueError(
                f"{folder} holds a different dataset; refusing to mix them. Differences (existing -> new): "
                + "; ".join(diff[:12])
                + (" ..." if len(diff) > 12 else "")
            )
        return
    folder.mkdir(parents=True, exist_ok=True)
    body = {"format": FORMAT_VERSION, "cfmimo": version, "spec_hash": spec_hash(spec_json), "spec": spec_json}
    atomic_write_text(manifest, json.dumps(body, indent=2))


def read_manifest(folder: str | os.PathLike) -> dict[str, Any]:
    manifest = Path(folder) / MANIFEST
    try:
        return json.loads(manifest.read_text())
    except FileNotFoundError:
        raise ValueError(f"{folder} is not a cfmimo dataset: no {MANIFEST}") from None
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"unreadable manifest {manifest}: {err}") from None


def remove_stale_temporaries(folder: str | os.PathLike) -> int:
    """Delete temporary files left by an interrupted writer; returns how many."""
    stale = list(Path(folder).glob(".*.tmp-*"))
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)


@dataclass(frozen=True)
class DatasetContent:
    """A loaded dataset: the manifest and, per (K, L), the concatenated arrays as tensors."""

    manifest: dict[str, Any]
    groups: dict[tuple[int, int], dict[str, torch.Tensor]]

    def counts(self) -> dict[tuple[int, int], int]:
        return {key: int(g["sample_index"].shape[0]) for key, g in self.groups.items()}


def load_dataset(folder: str | os.PathLike, *, verify: bool = True) -> DatasetContent:
    """Read every planned shard of a dataset folder, grouped by (K, L), in sample order.

    Raises ValueError naming the first missing or corrupt shard.
    """
    from cfmimo.data.spec import DatasetSpec  # spec imports nothing from storage; avoid a cycle at import

    folder = Path(folder)
    manifest = read_manifest(folder)
    spec = DatasetSpec.model_validate(manifest["spec"])
    parts: dict[tuple[int, int], list[dict[str, np.ndarray]]] = {}
    for task in spec.plan():
        arrays, attrs = read_shard(folder / shard_name(task.K, task.L, task.start), verify=verify)
        if (attrs.get("K"), attrs.get("L"), attrs.get("start"), attrs.get("count")) != (
            task.K,
            task.L,
            task.start,
            task.count,
        ):
            raise ValueError(f"shard {folder / shard_name(task.K, task.L, task.start)} does not hold {task}")
        parts.setdefault((task.K, task.L), []).append(arrays)
    groups = {
        key: {name: torch.from_numpy(np.concatenate([a[name] for a in arrs])) for name in arrs[0]}
        for key, arrs in parts.items()
    }
    return DatasetContent(manifest, groups)
