"""Labelled dataset generation: shards computed in parallel on Dask, written atomically, resumable.

Per sample (leading dimension n of every array):
    ap_positions [n, L, 2], ue_positions [n, K, 2] (clean, metres), gain_db [n, L, K] (over noise),
    pilot [n, K], serving [n, L, K] (the scenario's clusters), sample_index [n];
with labels also the UatF statistics of the MMSE combiners/precoders (full UL power design):
    ul_signal [n, K], ul_interference [n, K, K], ul_noise [n, K],
    dl_signal [n, K], dl_interference [n, K, K], dl_ap_power_share [n, L, K],
so the SE of any predicted power vector is an exact, cheap function of the stored data, and the
max-min optimal powers and SEs: p_ul, p_dl, se_ul, se_dl [n, K].
The small-scale realizations are not stored: ``regenerate`` rebuilds a sample's network and
channels from (spec, K, L, index).

Execution (``run_generation``): ``scheduler="local"`` starts a Dask LocalCluster with one
single-threaded worker process per core (default); an address (``tcp://host:8786``) uses an
existing cluster (e.g. started with dask-jobqueue on SLURM, or on Kubernetes); ``"sync"`` runs in
this process (debugging). Workers return arrays and this process writes the files, so a remote
cluster needs no shared filesystem. Each shard is computed with one torch thread, which makes
the arrays bit-identical whatever the number of workers.

A sample's arrays depend only on (spec, K, L, index), bitwise, whatever the shard size or the
samples computed alongside it: each sample's network (positions, gains, the local-scattering
quadrature of its correlation matrices, pilots, clusters) is built on its own, the UatF sums run
over realization chunks fixed by (K, L, N, T) (never by the batch), and the solver freezes each
sample at its own convergence. What remains batched (per-matrix LAPACK, matmuls of fixed per-sample
shapes, elementwise ops) does not mix samples. Tested: shard_size 7 vs 60, bit-identical.

One process writes a folder at a time (``storage.dataset_lock``); a second gets a clear error.
A remote scheduler is contacted (with ``connect_timeout_s``) before the folder is touched.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cfmimo import __version__
from cfmimo.data.spec import DatasetSpec, ShardTask
from cfmimo.data.storage import (
    LOCK,
    MANIFEST,
    atomic_write_bytes,
    check_shard,
    dataset_lock,
    encode_shard,
    ensure_manifest,
    expected_attributes,
    file_sha256,
    read_shard,
    remove_stale_temporaries,
    shard_name,
    write_manifest,
)
from cfmimo.policies.classical.power import MaxMinClosedForm
from cfmimo.problems.maxmin_power import MaxMinPower, PowerInstance, dl_constraints
from cfmimo.sim.network import (
    SETUP_TENSORS,
    ChannelState,
    Network,
    network_statistics,
    sample_channel_state,
    sample_networks,
)

COMPUTE_BATCH = 64  # setups processed at once inside a shard (memory); does not change results
STATISTICS_CHUNK_BYTES = 512 * 2**20  # realization chunk bound for a full COMPUTE_BATCH (memory)
DEFAULT_CONNECT_TIMEOUT_S = 10.0


@contextmanager
def _single_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _concat_networks(nets: list[Network]) -> Network:
    """One batched Network from single-sample ones (same scenario and seed)."""
    first = nets[0]
    fields = {name: torch.cat([getattr(n, name) for n in nets]) for name in SETUP_TENSORS}
    indices = tuple(i for n in nets for i in n.indices)
    return replace(first, indices=indices, **fields)


def sample_networks_per_sample(spec: DatasetSpec, K: int, L: int, index: int, count: int) -> Network:
    """Samples index..index+count-1 of group (K, L), each built on its own (batch size 1), so the
    result is bitwise independent of ``count`` (the correlation quadrature is a matrix-vector
    product whose summation order depends on how many links it covers)."""
    scenario, seed = spec.group_scenario(K, L), spec.group_seed(K, L)
    return _concat_networks(
        [sample_networks(scenario, 1, seed=seed, first_index=i) for i in range(index, index + count)]
    )


def statistics_chunk(spec: DatasetSpec, K: int, L: int) -> int:
    """Realizations per UatF chunk: fixed by (K, L, T) so sums over realizations are associated the
    same way whatever the batch; sized so a full COMPUTE_BATCH stays within ~512 MiB."""
    per_realization = COMPUTE_BATCH * (K**3 + L * K * K) * 8 * 4  # complex64 Gram temporaries
    return max(1, min(spec.scenario.realizations, STATISTICS_CHUNK_BYTES // per_realization))


def regenerate(spec: DatasetSpec, K: int, L: int, index: int, count: int = 1) -> tuple[Network, ChannelState]:
    """The networks and channel states of samples index..index+count-1 of group (K, L), bitwise
    those ``generate_shard`` used."""
    net = sample_networks_per_sample(spec, K, L, index, count)
    return net, sample_channel_state(net)


def regenerate_ee(spec: DatasetSpec, K: int, L: int, index: int, count: int = 1, *, dtype=torch.float32):
    """The energy-efficiency instances (ee-gnn eqs. (1)-(2)) of samples index..index+count-1 of group
    (K, L): each sample's network is the stored one (built per sample, as ``generate_shard``) and its
    one perfect-CSI realization comes from the sample's own "channels" stream, so an instance depends
    only on (spec, K, L, index), never on ``count``.

    Shapes: -> EEInstance with gains [count, L, K, K]."""
    from cfmimo.problems.energy_efficiency import EEInstance, EnergyEfficiency

    if count < 1 or index < 0 or index + count > spec.samples:
        raise ValueError(f"index/count: samples {index}..{index + count - 1} outside 0..{spec.samples - 1}")
    if (K, L) not in [tuple(s) for s in spec.sizes]:
        raise ValueError(f"(K, L) = ({K}, {L}) is not one of the spec's sizes {spec.sizes}")
    scenario, seed = spec.group_scenario(K, L), spec.group_seed(K, L)
    parts = [
        EnergyEfficiency().sample(scenario, 1, seed=seed, first_index=i, dtype=dtype)
        for i in range(index, index + count)
    ]
    first = parts[0]
    return EEInstance(
        torch.cat([p.gains for p in parts]),
        torch.cat([p.serving for p in parts]),
        torch.cat([p.cap for p in parts]),
        first.mu,
        first.static_power_mw,
        first.bandwidth_hz,
        first.log_base,
        seed,
        tuple(range(index, index + count)),
    )


def _power_instance(spec: DatasetSpec, net: Network, state: ChannelState, K: int, L: int) -> PowerInstance:
    """``problems.maxmin_power.power_instance`` with the fixed realization chunk."""
    sc = net.scenario
    constraint = spec.dl_constraint or ("sum" if sc.dl_normalization == "per_realization" else "per_ap")
    ul, dl = network_statistics(net, state, spec.combiner, chunk=statistics_chunk(spec, K, L))
    weights, budget = dl_constraints(sc, dl, constraint)
    ul_budget = torch.full(net.pilot.shape, sc.ul_power_mw, dtype=ul.signal.dtype, device=ul.signal.device)
    return PowerInstance(net, ul, dl, ul_budget, weights, budget, constraint, sc.prelog_ul, sc.prelog_dl)


def generate_shard(spec: DatasetSpec, task: ShardTask) -> dict[str, np.ndarray]:
    """Compute the arrays of one shard (pure: depends only on spec and task)."""
    parts: list[dict[str, torch.Tensor]] = []
    problem, solver = MaxMinPower(), MaxMinClosedForm()
    with _single_thread(), torch.no_grad():
        for offset in range(0, task.count, COMPUTE_BATCH):
            size = min(COMPUTE_BATCH, task.count - offset)
            start = task.start + offset
            net = sample_networks_per_sample(spec, task.K, task.L, start, size)
            out = {
                "ap_positions": net.ap_positions,
                "ue_positions": net.ue_positions,
                "gain_db": net.gain_db,
                "pilot": net.pilot.to(torch.int16),
                "serving": net.serving,
                "sample_index": torch.arange(start, start + size, dtype=torch.int64),
            }
            if spec.labels:
                inst = _power_instance(spec, net, sample_channel_state(net), task.K, task.L)
                alloc = solver(inst)
                m = problem.metrics(inst, alloc)
                ul, dl = inst.uplink, inst.downlink
                out |= {
                    "ul_signal": ul.signal,
                    "ul_interference": ul.interference,
                    "ul_noise": ul.noise,
                    "dl_signal": dl.signal,
                    "dl_interference": dl.interference,
                    "dl_ap_power_share": dl.ap_power_share,
                    "p_ul": alloc.p_ul,
                    "p_dl": alloc.p_dl,
                    "se_ul": m["se_ul"],
                    "se_dl": m["se_dl"],
                }
            parts.append(out)
    return {name: torch.cat([p[name] for p in parts]).numpy() for name in parts[0]}


def shard_attributes(spec: DatasetSpec, task: ShardTask) -> dict[str, Any]:
    return {**expected_attributes(spec, task), "cfmimo": __version__}


def _shard_is_done(folder: Path, spec: DatasetSpec, task: ShardTask, recorded: dict[str, str]) -> bool:
    path = folder / shard_name(task.K, task.L, task.start)
    if not path.exists():
        return False
    if path.name not in recorded:
        # renamed into place only after its checksum was recorded, so cfmimo did not write this file
        raise ValueError(
            f"shard {path} is not recorded in the manifest {folder / MANIFEST}: cfmimo did not write it; "
            "move it away and re-run"
        )
    arrays, attrs = read_shard(path, sha256=recorded[path.name])  # raises, naming the file, if corrupt
    check_shard(path, arrays, attrs, expected_attributes(spec, task), spec.labels)
    return True


def _compute(spec_json: dict, task: ShardTask) -> tuple[ShardTask, dict[str, np.ndarray]]:
    """Worker entry point (top-level so Dask can ship it)."""
    return task, generate_shard(DatasetSpec.model_validate(spec_json), task)


_SCHEMES = ("tcp://", "tls://", "ucx://", "inproc://", "ws://", "wss://")


def _check_scheduler(scheduler: Any, workers: Any, connect_timeout_s: Any) -> None:
    if not isinstance(scheduler, str) or not (
        scheduler in ("local", "sync") or (scheduler.startswith(_SCHEMES) and len(scheduler) > 8)
    ):
        raise ValueError(
            f"scheduler must be 'local', 'sync' or a Dask scheduler address like tcp://host:8786, got {scheduler!r}"
        )
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be an int >= 1, got {workers!r}")
    if (
        isinstance(connect_timeout_s, bool)
        or not isinstance(connect_timeout_s, (int, float))
        or not 0 < connect_timeout_s <= 3600
    ):
        raise ValueError(
            f"connect_timeout_s must be a number of seconds in (0, 3600], got {connect_timeout_s!r}"
        )


def _connect(scheduler: str, workers: int | None, connect_timeout_s: float):
    """(client, cluster or None) for a 'local' or remote scheduler; ValueError if unreachable."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise ValueError(
            f"scheduler {scheduler!r} needs Dask: pip install 'cfmimo[parallel]' (or use scheduler 'sync')"
        ) from None
    if scheduler == "local":
        cluster = LocalCluster(
            n_workers=workers or os.cpu_count() or 1,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        )
        try:
            return Client(cluster), cluster
        except BaseException:
            cluster.close()
            raise
    try:
        return Client(scheduler, timeout=connect_timeout_s), None
    except Exception as err:  # refused, timed out, or something else answered there
        raise ValueError(
            f"cannot connect to the Dask scheduler {scheduler} (timeout {connect_timeout_s:g} s, "
            f"connect_timeout_s / --connect-timeout): {type(err).__name__}: {err}"
        ) from None


def _remove_unfinished(created: list[Path]) -> None:
    """Remove the files of a run that wrote no shard, and the folders it created (deepest first)."""
    folder = created[0]
    for name in (MANIFEST, LOCK):
        (folder / name).unlink(missing_ok=True)
    remove_stale_temporaries(folder)
    for path in created:
        with contextlib.suppress(OSError):
            path.rmdir()  # only if empty: never delete what is not ours


def run_generation(
    spec: DatasetSpec,
    folder: str | os.PathLike,
    *,
    scheduler: str = "local",
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
    stop_after: int | None = None,
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
) -> dict[str, Any]:
    """Generate the missing shards of ``spec`` into ``folder``; returns a summary.

    ``scheduler``: "local" (LocalCluster, ``workers`` processes, default: CPU count), "sync"
    (this process), or a scheduler address (reached within ``connect_timeout_s`` seconds, before
    the folder is created). ``progress(n)`` is called with the samples of each finished shard.
    ``stop_after`` stops after that many new shards (tests of resumption). Raises ValueError if
    another process is writing ``folder``, or if it holds another dataset or a corrupt shard.
    """
    if not isinstance(spec, DatasetSpec):
        raise TypeError(f"spec must be a DatasetSpec, got {type(spec).__name__}")
    _check_scheduler(scheduler, workers, connect_timeout_s)
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"dataset folder {folder} exists and is not a folder")
    blocking = next((p for p in folder.parents if p.exists()), None)
    if blocking is not None and not blocking.is_dir():
        raise ValueError(f"dataset folder {folder}: {blocking} is a file, not a folder")
    client = cluster = None
    if scheduler not in ("local", "sync"):  # reach the scheduler before touching the folder
        client, cluster = _connect(scheduler, workers, connect_timeout_s)
    created = [p for p in (folder, *folder.parents) if not p.exists()]  # deepest first
    start = time.perf_counter()
    written = 0
    try:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ValueError(f"cannot create the dataset folder {folder}: {err.strerror or err}") from None
        with dataset_lock(folder):
            try:
                manifest = ensure_manifest(folder, spec.identity(), __version__)
                remove_stale_temporaries(folder)
                recorded: dict[str, str] = dict(manifest["shards"])
                todo: Iterator[ShardTask] = (
                    t for t in spec.iter_plan() if not _shard_is_done(folder, spec, t, recorded)
                )
                pending = list(todo) if stop_after is None else list(itertools.islice(todo, stop_after))

                def store(task: ShardTask, arrays: dict[str, np.ndarray]) -> None:
                    nonlocal written
                    name = shard_name(task.K, task.L, task.start)
                    expected = expected_attributes(spec, task)
                    check_shard(folder / name, arrays, expected, expected, spec.labels)  # what readers accept
                    for field, a in arrays.items():
                        if a.dtype.kind == "f" and not np.isfinite(a).all():
                            bad = int(np.flatnonzero(~np.isfinite(a).reshape(len(a), -1).all(1))[0])
                            raise ValueError(
                                f"shard {folder / name}: {field} of sample {task.start + bad} of group "
                                f"(K={task.K}, L={task.L}) is not finite; refusing to store it"
                            )
                    data = encode_shard(arrays, shard_attributes(spec, task))
                    recorded[name] = file_sha256(data)
                    write_manifest(folder, {**manifest, "shards": recorded})  # checksum first, then the file
                    atomic_write_bytes(folder / name, data)
                    written += task.count
                    if progress is not None:
                        progress(task.count)

                if pending and scheduler == "sync":
                    for task in pending:
                        store(task, generate_shard(spec, task))
                elif pending:
                    if client is None:
                        client, cluster = _connect(scheduler, workers, connect_timeout_s)
                    from dask.distributed import as_completed

                    spec_json = spec.identity()
                    # Largest shards first so the tail of the run stays busy.
                    ordered = sorted(pending, key=lambda t: -(t.count * t.K * t.L))
                    futures = [client.submit(_compute, spec_json, t, pure=False) for t in ordered]
                    for future in as_completed(futures):
                        task, arrays = future.result()
                        store(task, arrays)
                        future.release()
            except BaseException:
                # a run that created the folder and wrote nothing leaves no half-made dataset
                # behind (cleaned while holding the lock: never another run's files)
                if created and written == 0:
                    _remove_unfinished(created)
                raise
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    seconds = time.perf_counter() - start
    total = len(spec.sizes) * spec.samples
    complete = all(
        shard_name(t.K, t.L, t.start) in recorded and (folder / shard_name(t.K, t.L, t.start)).exists()
        for t in spec.iter_plan()
    )
    return {
        "folder": str(folder),
        "new_samples": written,
        "total_samples": total,
        "seconds": seconds,
        "samples_per_s": written / seconds if seconds > 0 and written else 0.0,
        "complete": complete,
    }
