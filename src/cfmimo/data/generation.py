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
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cfmimo import __version__
from cfmimo.data.spec import DatasetSpec, ShardTask
from cfmimo.data.storage import (
    ensure_manifest,
    read_shard,
    remove_stale_temporaries,
    shard_name,
    spec_hash,
    write_shard,
)
from cfmimo.policies.classical.power import MaxMinClosedForm
from cfmimo.problems.maxmin_power import MaxMinPower, power_instance
from cfmimo.sim.network import ChannelState, Network, sample_channel_state, sample_networks

COMPUTE_BATCH = 64  # setups processed at once inside a shard (memory); does not change results


@contextmanager
def _single_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def regenerate(spec: DatasetSpec, K: int, L: int, index: int, count: int = 1) -> tuple[Network, ChannelState]:
    """The networks and channel states of samples index..index+count-1 of group (K, L)."""
    net = sample_networks(spec.group_scenario(K, L), count, seed=spec.group_seed(K, L), first_index=index)
    return net, sample_channel_state(net)


def generate_shard(spec: DatasetSpec, task: ShardTask) -> dict[str, np.ndarray]:
    """Compute the arrays of one shard (pure: depends only on spec and task)."""
    parts: list[dict[str, torch.Tensor]] = []
    problem, solver = MaxMinPower(), MaxMinClosedForm()
    with _single_thread(), torch.no_grad():
        for offset in range(0, task.count, COMPUTE_BATCH):
            size = min(COMPUTE_BATCH, task.count - offset)
            start = task.start + offset
            net = sample_networks(
                spec.group_scenario(task.K, task.L),
                size,
                seed=spec.group_seed(task.K, task.L),
                first_index=start,
            )
            out = {
                "ap_positions": net.ap_positions,
                "ue_positions": net.ue_positions,
                "gain_db": net.gain_db,
                "pilot": net.pilot.to(torch.int16),
                "serving": net.serving,
                "sample_index": torch.arange(start, start + size, dtype=torch.int64),
            }
            if spec.labels:
                inst = power_instance(
                    net, sample_channel_state(net), combiner=spec.combiner, dl_constraint=spec.dl_constraint
                )
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
    return {
        "K": task.K,
        "L": task.L,
        "start": task.start,
        "count": task.count,
        "seed": spec.seed,
        "group_seed": spec.group_seed(task.K, task.L),
        "spec_hash": spec_hash(spec.identity()),
        "scenario": spec.group_scenario(task.K, task.L).model_dump_json(),
        "cfmimo": __version__,
    }


def _shard_is_done(folder: Path, spec: DatasetSpec, task: ShardTask) -> bool:
    path = folder / shard_name(task.K, task.L, task.start)
    if not path.exists():
        return False
    _, attrs = read_shard(path)  # raises, naming the file, if corrupt
    if attrs.get("spec_hash") != spec_hash(spec.identity()):
        raise ValueError(f"shard {path} belongs to another dataset (spec hash {attrs.get('spec_hash')})")
    return True


def _compute(spec_json: dict, task: ShardTask) -> tuple[ShardTask, dict[str, np.ndarray]]:
    """Worker entry point (top-level so Dask can ship it)."""
    return task, generate_shard(DatasetSpec.model_validate(spec_json), task)


def run_generation(
    spec: DatasetSpec,
    folder: str | os.PathLike,
    *,
    scheduler: str = "local",
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
    stop_after: int | None = None,
) -> dict[str, Any]:
    """Generate the missing shards of ``spec`` into ``folder``; returns a summary.

    ``scheduler``: "local" (LocalCluster, ``workers`` processes, default: CPU count), "sync"
    (this process), or a scheduler address. ``progress(n)`` is called with the samples of each
    finished shard. ``stop_after`` stops after that many new shards (tests of resumption).
    """
    folder = Path(folder)
    ensure_manifest(folder, spec.identity(), __version__)
    remove_stale_temporaries(folder)
    todo = [t for t in spec.plan() if not _shard_is_done(folder, spec, t)]
    if stop_after is not None:
        todo = todo[:stop_after]
    start = time.perf_counter()
    written = 0

    def store(task: ShardTask, arrays: dict[str, np.ndarray]) -> None:
        nonlocal written
        write_shard(folder / shard_name(task.K, task.L, task.start), arrays, shard_attributes(spec, task))
        written += task.count
        if progress is not None:
            progress(task.count)

    if todo and scheduler == "sync":
        for task in todo:
            store(task, generate_shard(spec, task))
    elif todo:
        try:
            from dask.distributed import Client, LocalCluster, as_completed
        except ImportError:
            raise ValueError(
                f"scheduler {scheduler!r} needs Dask: pip install 'cfmimo[parallel]' (or use scheduler 'sync')"
            ) from None

        cluster = None
        if scheduler == "local":
            cluster = LocalCluster(
                n_workers=workers or os.cpu_count() or 1,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
            )
            client = Client(cluster)
        else:
            client = Client(scheduler)
        try:
            spec_json = spec.identity()
            # Largest shards first so the tail of the run stays busy.
            ordered = sorted(todo, key=lambda t: -(t.count * t.K * t.L))
            futures = [client.submit(_compute, spec_json, t, pure=False) for t in ordered]
            for future in as_completed(futures):
                task, arrays = future.result()
                store(task, arrays)
                future.release()
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    seconds = time.perf_counter() - start
    total = sum(t.count for t in spec.plan())
    missing = [t for t in spec.plan() if not (folder / shard_name(t.K, t.L, t.start)).exists()]
    return {
        "folder": str(folder),
        "new_samples": written,
        "total_samples": total,
        "seconds": seconds,
        "samples_per_s": written / seconds if seconds > 0 and written else 0.0,
        "complete": not missing,
    }
