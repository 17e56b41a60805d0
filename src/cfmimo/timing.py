"""Wall-clock timing shared by the benchmarks and the reproductions' latency tables."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def synchronize(device: torch.device | str | None) -> None:
    """Wait for queued CUDA work on ``device`` (a no-op on the CPU), so timings cover the work."""
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn: Callable[[], object], device: torch.device | str | None, repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls after one warm-up call, synchronized."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    fn()  # warm-up
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)
