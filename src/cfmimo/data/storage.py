"""Dataset storage: a folder with a manifest and HDF5 shards, written atomically and checksummed.

Layout of a dataset folder::

    DIR/dataset.json                  manifest (format 2): format, cfmimo version, the dataset spec
                                      (with its full scenario), spec hash, the SHA-256 of every
                                      shard file, and a SHA-256 of the manifest itself
    DIR/K010-L016-0000000.h5          one shard: samples start..start+count-1 of group (K, L)
    DIR/.lock                         taken (fcntl.flock) by the one process writing the folder

Integrity, in the order a reader checks it:

1. The manifest is parsed strictly (UTF-8, JSON without duplicate keys or NaN, a size cap), its
   structure is validated field by field, its ``spec_hash`` is recomputed from the stored spec (an
   edited spec is an error, never a dataset whose ``regenerate()`` gives other channels) and its
   own ``manifest_sha256`` is recomputed over everything else (shard table, version, format).
2. A shard's file bytes are read into memory and their SHA-256 compared with the manifest's entry
   *before* h5py sees them; h5py then parses the verified bytes from memory (no second read of
   the file, so nothing can change in between). Every h5py error is reported naming the file.
3. The shard's attributes (K, L, start, count, seeds, spec hash, scenario) must equal what the
   manifest's spec implies, and its arrays must have the names, dtypes and shapes of the format,
   ``sample_index`` = start..start+count-1, and the in-file array checksum must hold.

Writes: a shard is encoded in memory, its SHA-256 recorded in the manifest (atomic rewrite), then
its bytes written to a temporary file, fsynced, renamed into place and the folder fsynced. The
manifest is written the same way. All files are created with mode 0o666 minus the umask (the
same for manifest and shards). A folder written by cfmimo before format 2 (no file checksums) is
refused with a message that says to regenerate it. No pickle anywhere.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from cfmimo.fileio import atomic_write_bytes, fsync_dir  # noqa: F401 (re-exported)

MANIFEST = "dataset.json"
LOCK = ".lock"
FORMAT_VERSION = 2
#: a manifest larger than this is refused before parsing (a real one holds ~100 bytes per shard)
MAX_MANIFEST_BYTES = 256 << 20
#: a shard file larger than this is refused before reading it into memory
MAX_SHARD_BYTES = 8 << 30
_SHARD_RE = re.compile(r"K(\d{3,})-L(\d{3,})-(\d{7,})\.h5")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX16 = re.compile(r"[0-9a-f]{16}")

#: The arrays of a shard: name -> (dtype, per-sample axes: "K", "L" or a fixed size).
BASE_FIELDS: dict[str, tuple[str, tuple[str | int, ...]]] = {
    "ap_positions": ("float32", ("L", 2)),
    "ue_positions": ("float32", ("K", 2)),
    "gain_db": ("float32", ("L", "K")),
    "pilot": ("int16", ("K",)),
    "serving": ("bool", ("L", "K")),
    "sample_index": ("int64", ()),
}
LABEL_FIELDS: dict[str, tuple[str, tuple[str | int, ...]]] = {
    "ul_signal": ("float32", ("K",)),
    "ul_interference": ("float32", ("K", "K")),
    "ul_noise": ("float32", ("K",)),
    "dl_signal": ("float32", ("K",)),
    "dl_interference": ("float32", ("K", "K")),
    "dl_ap_power_share": ("float32", ("L", "K")),
    "p_ul": ("float32", ("K",)),
    "p_dl": ("float32", ("K",)),
    "se_ul": ("float32", ("K",)),
    "se_dl": ("float32", ("K",)),
}


def shard_name(K: int, L: int, start: int) -> str:
    return f"K{K:03d}-L{L:03d}-{start:07d}.h5"


def checksum(arrays: Mapping[str, np.ndarray]) -> str:
    """SHA-256 over the arrays' names, dtypes, shapes and bytes, in name order (stored in-file)."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(name.encode())
        h.update(str(a.dtype).encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def file_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def spec_hash(spec_json: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec_json, sort_keys=True).encode()).hexdigest()[:16]


# durable writes: cfmimo.fileio (re-exported here for the dataset code and its tests)


# ----------------------------------------------------------------------------- shards
def encode_shard(arrays: Mapping[str, np.ndarray], attrs: Mapping[str, Any]) -> bytes:
    """The HDF5 bytes of one shard (built in memory; deterministic for equal content)."""
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        for name, a in arrays.items():
            f.create_dataset(name, data=a)
        for key, value in attrs.items():
            f.attrs[key] = value
        f.attrs["checksum"] = checksum(arrays)
    return buffer.getvalue()


def write_shard(path: str | os.PathLike, arrays: Mapping[str, np.ndarray], attrs: Mapping[str, Any]) -> str:
    """Write one shard atomically and durably; returns the SHA-256 of its file bytes.

    (``run_generation`` records the SHA-256 in the manifest before the rename; see the module doc.)
    """
    data = encode_shard(arrays, attrs)
    atomic_write_bytes(path, data)
    return file_sha256(data)


def _read_bytes(path: Path, what: str) -> bytes:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ValueError(f"missing {what} {path}") from None
    except OSError as err:
        raise ValueError(f"unreadable {what} {path}: {err.strerror or err}") from None
    if not path.is_file():
        raise ValueError(f"{what} {path} is not a regular file")
    limit = MAX_MANIFEST_BYTES if what == "manifest" else MAX_SHARD_BYTES
    if size > limit:
        raise ValueError(
            f"{what} {path} is {size} bytes, more than the {limit}-byte limit: not a cfmimo {what}"
        )
    try:
        return path.read_bytes()
    except OSError as err:
        raise ValueError(f"unreadable {what} {path}: {err.strerror or err}") from None


def _attr_value(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


def _parse_shard(path: Path, data: bytes) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Arrays and attributes from shard bytes; any h5py/numpy failure becomes a ValueError naming the file."""
    try:
        with h5py.File(io.BytesIO(data), "r") as f:
            arrays = {}
            for name in f:
                node = f[name]
                if not isinstance(node, h5py.Dataset):
                    raise ValueError(f"entry {name!r} is not an array")
                arrays[name] = node[()]
            attrs = {k: _attr_value(v) for k, v in f.attrs.items()}
    except ValueError as err:
        raise ValueError(f"corrupt shard {path}: {err}") from None
    except Exception as err:  # h5py raises OSError, KeyError, RuntimeError, TypeError, ... on bad files
        raise ValueError(
            f"corrupt shard {path}: HDF5 could not read it ({type(err).__name__}: {err})"
        ) from None
    return arrays, attrs


def read_shard(
    path: str | os.PathLike, *, sha256: str | None = None, verify: bool = True
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Arrays and attributes of one shard; ValueError naming the file if missing, unreadable or corrupt.

    With ``verify`` (default) the file's SHA-256 must equal ``sha256`` (by default the entry of the
    manifest in the shard's folder) before HDF5 parses it, and the in-file array checksum must hold.
    ``verify=False`` skips both: only for files you trust (HDF5 parses unverified bytes then).
    """
    path = Path(path)
    data = _read_bytes(path, "shard")
    if verify:
        if sha256 is None:
            sha256 = read_manifest(path.parent)["shards"].get(path.name)
            if sha256 is None:
                raise ValueError(
                    f"shard {path} is not recorded in {path.parent / MANIFEST} (a file cfmimo did not "
                    "finish writing, or not part of this dataset): delete it and re-run `cfmimo data generate`"
                )
        actual = file_sha256(data)
        if actual != sha256:
            raise ValueError(
                f"corrupt shard {path}: its SHA-256 {actual[:16]}... differs from the one recorded in the "
                f"manifest ({sha256[:16]}...); delete the file and re-run `cfmimo data generate` with the "
                "same spec to regenerate it"
            )
    arrays, attrs = _parse_shard(path, data)
    if verify and attrs.get("checksum") != checksum(arrays):
        raise ValueError(
            f"corrupt shard {path}: checksum mismatch (delete the file and re-run to regenerate it)"
        )
    return arrays, attrs


def check_shard(
    path: Path,
    arrays: Mapping[str, np.ndarray],
    attrs: Mapping[str, Any],
    expected_attrs: Mapping[str, Any],
    labels: bool,
) -> None:
    """The shard's attributes equal ``expected_attrs`` and its arrays follow the format (names,
    dtypes, shapes [count, ...], sample_index = start..start+count-1); ValueError naming the file."""
    for key, want in expected_attrs.items():
        if key == "cfmimo":
            continue  # the writing version is informative; the format is what must match
        if attrs.get(key) != want:
            raise ValueError(
                f"shard {path}: attribute {key!r} is {repr(attrs.get(key))[:200]}, but the manifest's spec "
                f"implies {repr(want)[:200]}"
            )
    fields = {**BASE_FIELDS, **(LABEL_FIELDS if labels else {})}
    if set(arrays) != set(fields):
        raise ValueError(f"shard {path} holds arrays {sorted(arrays)}, expected {sorted(fields)}")
    K, L, n, start = (
        expected_attrs["K"],
        expected_attrs["L"],
        expected_attrs["count"],
        expected_attrs["start"],
    )
    for name, (dtype, axes) in fields.items():
        a = arrays[name]
        shape = (n, *(K if ax == "K" else L if ax == "L" else ax for ax in axes))
        if str(a.dtype) != dtype or tuple(a.shape) != shape:
            raise ValueError(
                f"shard {path}: array {name!r} is {a.dtype}{list(a.shape)}, expected {dtype}{list(shape)}"
            )
    if not np.array_equal(arrays["sample_index"], np.arange(start, start + n, dtype=np.int64)):
        raise ValueError(f"shard {path}: sample_index is not {start}..{start + n - 1}")


# ----------------------------------------------------------------------------- manifest
def _differences(old: Any, new: Any, where: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new)):
            out += _differences(old.get(key), new.get(key), f"{where}.{key}" if where else key)
        return out
    return [] if old == new else [f"{where}: {old!r} -> {new!r}"]


def _manifest_digest(body: Mapping[str, Any]) -> str:
    rest = {k: v for k, v in body.items() if k != "manifest_sha256"}
    return hashlib.sha256(json.dumps(rest, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name}")


def _parse_json(path: Path, data: bytes) -> Any:
    try:
        text = data.decode("utf-8")
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except UnicodeDecodeError as err:
        raise ValueError(f"unreadable manifest {path}: not UTF-8 text (byte {err.start})") from None
    except RecursionError:
        raise ValueError(f"unreadable manifest {path}: nested too deeply") from None
    except ValueError as err:  # json.JSONDecodeError is a ValueError
        raise ValueError(f"unreadable manifest {path}: {err}") from None


MANIFEST_KEYS = ("format", "cfmimo", "spec_hash", "spec", "shards", "manifest_sha256")


def validate_manifest(path: Path, body: Any) -> dict[str, Any]:
    """The checks of step 1 of the module doc; returns the body (spec still as JSON)."""
    from cfmimo.data.spec import DatasetSpec  # spec imports nothing from storage; avoid a cycle at import

    if not isinstance(body, dict):
        raise ValueError(f"manifest {path} must hold a JSON object, got {type(body).__name__}")
    fmt = body.get("format")
    if fmt == 1 or (fmt is None and "shards" not in body and "spec" in body):
        raise ValueError(
            f"{path.parent} was written by an older cfmimo (dataset format 1, without file checksums), "
            "which this version does not read: regenerate it with `cfmimo data generate` into a new folder "
            "(the same spec gives the same samples)"
        )
    if type(fmt) is not int or fmt != FORMAT_VERSION:
        raise ValueError(
            f"manifest {path}: field 'format' is {fmt!r}; this cfmimo reads format {FORMAT_VERSION}"
        )
    missing = [k for k in MANIFEST_KEYS if k not in body]
    extra = sorted(set(body) - set(MANIFEST_KEYS))
    if missing or extra:
        raise ValueError(f"manifest {path}: missing fields {missing}, unknown fields {extra}")
    if not isinstance(body["cfmimo"], str) or len(body["cfmimo"]) > 100:
        raise ValueError(f"manifest {path}: field 'cfmimo' must be a version string")
    if not isinstance(body["spec"], dict):
        raise ValueError(f"manifest {path}: field 'spec' must be an object")
    if not isinstance(body["spec_hash"], str) or not _HEX16.fullmatch(body["spec_hash"]):
        raise ValueError(f"manifest {path}: field 'spec_hash' must be 16 hex digits")
    recomputed = spec_hash(body["spec"])
    if recomputed != body["spec_hash"]:
        raise ValueError(
            f"manifest {path}: the stored spec does not match its 'spec_hash' ({recomputed} != "
            f"{body['spec_hash']}): the spec was edited after the data was generated. The shards hold the "
            "original spec's samples; restore the manifest, or generate the edited spec into a new folder"
        )
    if not isinstance(body["manifest_sha256"], str) or not _HEX64.fullmatch(body["manifest_sha256"]):
        raise ValueError(f"manifest {path}: field 'manifest_sha256' must be 64 hex digits")
    if _manifest_digest(body) != body["manifest_sha256"]:
        raise ValueError(
            f"manifest {path} was modified after it was written (its 'manifest_sha256' does not match its "
            "content); restore it or regenerate the dataset"
        )
    try:
        spec = DatasetSpec.model_validate(body["spec"])
    except ValueError as err:
        raise ValueError(f"manifest {path}: invalid field 'spec': {err}") from None
    shards = body["shards"]
    if not isinstance(shards, dict):
        raise ValueError(f"manifest {path}: field 'shards' must be an object name -> SHA-256")
    sizes = set(spec.sizes)
    for name, digest in shards.items():
        match = _SHARD_RE.fullmatch(name)
        ok = match is not None and isinstance(digest, str) and _HEX64.fullmatch(digest) is not None
        if ok:
            K, L, start = (int(x) for x in match.groups())
            ok = (K, L) in sizes and start % spec.shard_size == 0 and start < spec.samples
        if not ok:
            raise ValueError(f"manifest {path}: field 'shards' has an invalid entry {name[:80]!r}")
    return body


def read_manifest(folder: str | os.PathLike) -> dict[str, Any]:
    """The validated manifest of a dataset folder (spec as JSON); ValueError naming the file."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a cfmimo dataset: no such folder")
    if not path.exists():
        raise ValueError(f"{folder} is not a cfmimo dataset: no {MANIFEST}")
    return validate_manifest(path, _parse_json(path, _read_bytes(path, "manifest")))


def write_manifest(folder: Path, body: Mapping[str, Any]) -> None:
    body = {k: v for k, v in body.items() if k != "manifest_sha256"}
    body["manifest_sha256"] = _manifest_digest(body)
    atomic_write_bytes(folder / MANIFEST, json.dumps(body, indent=2).encode())


def ensure_manifest(folder: str | os.PathLike, spec_json: dict[str, Any], version: str) -> dict[str, Any]:
    """Create the manifest, or check that an existing one describes the same dataset; returns it.

    Raises ValueError listing the differing fields when the folder holds another dataset.
    """
    folder = Path(folder)
    if (folder / MANIFEST).exists():
        old = read_manifest(folder)
        diff = _differences(old["spec"], spec_json)
        if diff:
            raise ValueError(
                f"{folder} holds a different dataset; refusing to mix them. Differences (existing -> new): "
                + "; ".join(diff[:12])
                + (" ..." if len(diff) > 12 else "")
            )
        return old
    folder.mkdir(parents=True, exist_ok=True)
    body = {
        "format": FORMAT_VERSION,
        "cfmimo": version,
        "spec_hash": spec_hash(spec_json),
        "spec": spec_json,
        "shards": {},
    }
    write_manifest(folder, body)
    return read_manifest(folder)


def remove_stale_temporaries(folder: str | os.PathLike) -> int:
    """Delete temporary files left by an interrupted writer; returns how many.

    Only call it while holding the folder's lock (``dataset_lock``): another writer's temporaries
    are not stale.
    """
    stale = list(Path(folder).glob(".*.tmp-*"))
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)


@contextlib.contextmanager
def dataset_lock(folder: str | os.PathLike) -> Iterator[Path]:
    """Hold ``folder/.lock`` exclusively (fcntl.flock, released by the OS if the process dies).

    Raises ValueError naming the folder if another process holds it.
    """
    import fcntl

    path = Path(folder) / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
            raise ValueError(
                f"{folder} is being written by another `cfmimo data generate` (lock {path} held"
                + (f" by process {holder}" if holder.isdigit() else "")
                + "); wait for it to finish, or choose another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield path
    finally:
        os.close(fd)  # closing releases the lock


# ----------------------------------------------------------------------------- loading
@dataclass(frozen=True)
class DatasetContent:
    """A loaded dataset: the manifest and, per (K, L), the concatenated arrays as tensors."""

    manifest: dict[str, Any]
    groups: dict[tuple[int, int], dict[str, torch.Tensor]]

    def counts(self) -> dict[tuple[int, int], int]:
        return {key: int(g["sample_index"].shape[0]) for key, g in self.groups.items()}


def expected_attributes(spec: Any, task: Any) -> dict[str, Any]:
    """The attributes a shard of ``task`` carries (``generation.shard_attributes`` writes them)."""
    return {
        "K": task.K,
        "L": task.L,
        "start": task.start,
        "count": task.count,
        "seed": spec.seed,
        "group_seed": spec.group_seed(task.K, task.L),
        "spec_hash": spec_hash(spec.identity()),
        "scenario": spec.group_scenario(task.K, task.L).model_dump_json(),
    }


def load_dataset(folder: str | os.PathLike, *, verify: bool = True) -> DatasetContent:
    """Read every planned shard of a dataset folder, grouped by (K, L), in sample order.

    The shard plan is walked lazily (one shard at a time), so a manifest that claims an absurd
    dataset fails at its first missing shard. Raises ValueError naming the first missing or corrupt
    shard, or the manifest.
    """
    from cfmimo.data.spec import DatasetSpec

    folder = Path(folder)
    manifest = read_manifest(folder)
    spec = DatasetSpec.model_validate(manifest["spec"])
    recorded = manifest["shards"]
    if spec_hash(spec.identity()) != manifest["spec_hash"]:
        raise ValueError(
            f"manifest {folder / MANIFEST}: its spec validates to another spec than the one stored "
            "(written by a cfmimo with another spec schema?): regenerate the dataset"
        )
    parts: dict[tuple[int, int], list[dict[str, np.ndarray]]] = {}
    for task in spec.iter_plan():
        path = folder / shard_name(task.K, task.L, task.start)
        if verify and path.name not in recorded:
            if path.exists():
                raise ValueError(
                    f"shard {path} is not recorded in the manifest {folder / MANIFEST}: delete it and "
                    "re-run `cfmimo data generate` with the same spec"
                )
            raise ValueError(f"missing shard {path} (re-run `cfmimo data generate` to finish the dataset)")
        arrays, attrs = read_shard(path, sha256=recorded.get(path.name), verify=verify)
        check_shard(path, arrays, attrs, expected_attributes(spec, task), spec.labels)
        parts.setdefault((task.K, task.L), []).append(arrays)
    groups = {
        key: {name: torch.from_numpy(np.concatenate([a[name] for a in arrs])) for name in arrs[0]}
        for key, arrs in parts.items()
    }
    return DatasetContent(manifest, groups)
