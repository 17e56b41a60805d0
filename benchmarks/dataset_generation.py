"""Benchmark: generate the full tree-transformer training set (issue #4). Prints one JSON object.

5 x 8000 samples (K in {2,4,6,8,10}, L = 16) with UatF statistics (100 realizations, MMSE) and
max-min labels, on a Dask LocalCluster with one single-threaded worker per core. Reports wall
time, samples/s, and peak resident memory summed over this process and its workers (sampled
every 0.2 s). Target on 2 cores: <= 15 minutes and < 4 GB.

Usage: python benchmarks/dataset_generation.py [--samples 8000] [--workers 2] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time

import psutil

from cfmimo import __version__
from cfmimo.data.generation import run_generation
from cfmimo.data.spec import dataset_preset


class PeakMemory(threading.Thread):
    """Peak of the summed RSS of this process and all its children."""

    def __init__(self, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.interval, self.peak, self._done = interval, 0, threading.Event()

    def run(self) -> None:
        me = psutil.Process()
        while not self._done.is_set():
            total = 0
            for p in [me, *me.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            time.sleep(self.interval)

    def stop(self) -> int:
        self._done.set()
        self.join()
        return self.peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=8000)
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--out", default=None, help="dataset folder (default: a temporary one)")
    args = ap.parse_args()
    spec = dataset_preset("tree-transformer-train", samples=args.samples)
    folder = args.out or tempfile.mkdtemp(prefix="cfmimo-bench-")
    monitor = PeakMemory()
    monitor.start()
    start = time.perf_counter()
    summary = run_generation(spec, folder, scheduler="local", workers=args.workers)
    wall = time.perf_counter() - start
    peak = monitor.stop()
    size = sum(f.stat().st_size for f in os.scandir(folder) if f.is_file())
    print(
        json.dumps(
            {
                "benchmark": "dataset_generation",
                "cfmimo": __version__,
                "dataset": "tree-transformer-train",
                "sizes": spec.sizes,
                "samples_per_size": spec.samples,
                "samples": summary["total_samples"],
                "realizations": spec.scenario.realizations,
                "workers": args.workers,
                "wall_time_s": wall,
                "samples_per_s": summary["new_samples"] / wall,
                "peak_rss_mib_all_processes": peak / 2**20,
                "dataset_mib": size / 2**20,
                "folder": folder,
                "complete": summary["complete"],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
