"""Benchmark: WMMSE speed for sum-rate precoding (issue #12). Prints one JSON object.

* ``batched``: instances per second of ``wmmse`` (the solver core, one start per instance) with a
  fixed number of iterations (``tol = 0``, so every instance runs all of them) vs the batch size, at
  K in {4, 8, 16}, N = 16, M = 4 (aagnn preset);
* ``loop``: the same solver called instance by instance (batch 1), to show what batching buys;
* ``policy``: the full ``WMMSE`` policy (RZF start + ``--starts`` random starts, run to convergence
  with the default tolerance) at K = 8: instances per second, mean iterations, converged fraction.

Target (issue #12): >= 50 instances/s at K = 8, N = 16, M = 4, 100 iterations on 2 cores.
Timings are medians over ``--repeats`` runs, wall and process-CPU time; on a shared machine wall time
varies a lot (the load average is reported), CPU time much less.

Usage: python benchmarks/wmmse_throughput.py [--iterations 100] [--batches 1 16 64 256] [--dtype float32]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from cfmimo import __version__
from cfmimo.config import preset
from cfmimo.policies.classical.precoders import RZFPrecoder
from cfmimo.policies.classical.wmmse import WMMSE, wmmse
from cfmimo.problems.sumrate_precoding import SumRatePrecoding


def _median_s(fn, repeats: int) -> tuple[float, float]:
    """Median wall and process-CPU seconds of ``fn()``. On a shared machine the CPU time (what this
    process actually ran) is the load-robust figure; wall time includes waiting for a core."""
    times, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return sorted(times)[len(times) // 2], sorted(cpu)[len(cpu) // 2]


def _solve(inst, v0, iterations: int):
    return wmmse(
        inst.h, inst.association, inst.p_max, inst.noise, inst.weights, v0, max_iterations=iterations, tol=0.0
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=100)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 16, 64, 256])
    ap.add_argument("--ks", type=int, nargs="+", default=[4, 8, 16])
    ap.add_argument("--loop-instances", type=int, default=8)
    ap.add_argument("--policy-instances", type=int, default=64)
    ap.add_argument("--starts", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    args = ap.parse_args()
    dtype = getattr(torch, args.dtype)
    problem = SumRatePrecoding()
    out: dict = {
        "benchmark": "wmmse_throughput",
        "cfmimo": __version__,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "load_average": os.getloadavg(),
        "dtype": args.dtype,
        "iterations": args.iterations,
        "N": 16,
        "M": 4,
        "batched": {},
        "loop": {},
    }
    for K in args.ks:
        sc = preset("aagnn", K=K)
        big = problem.sample(sc, max(args.batches), seed=0, dtype=dtype)
        start = RZFPrecoder()(big).precoders
        rows = {}
        for b in args.batches:
            inst = big.take(slice(0, b))
            _solve(inst, start[:b], 2)  # warm-up
            s, c = _median_s(lambda inst=inst, v0=start[:b]: _solve(inst, v0, args.iterations), args.repeats)
            rows[str(b)] = {
                "seconds": s,
                "instances_per_s": b / s,
                "cpu_seconds": c,
                "instances_per_cpu_s": b / c,
            }
        out["batched"][f"K={K}"] = rows
        n = args.loop_instances
        s, c = _median_s(
            lambda big=big, start=start, n=n: [
                _solve(big.take(slice(i, i + 1)), start[i : i + 1], args.iterations) for i in range(n)
            ],
            max(1, args.repeats // 2),
        )
        out["loop"][f"K={K}"] = {"instances": n, "seconds": s, "instances_per_s": n / s, "cpu_seconds": c}
    sc = preset("aagnn", K=8)
    inst = problem.sample(sc, args.policy_instances, seed=1, dtype=dtype)
    policy = WMMSE(random_starts=args.starts)
    begin, begin_cpu = time.perf_counter(), time.process_time()
    alloc = policy(inst)
    s, c = time.perf_counter() - begin, time.process_time() - begin_cpu
    out["policy"] = {
        "K": 8,
        "instances": args.policy_instances,
        "starts": 1 + args.starts,
        "tol": policy.tol,
        "max_iterations": policy.max_iterations,
        "seconds": s,
        "instances_per_s": args.policy_instances / s,
        "cpu_seconds": c,
        "iterations_mean": float(alloc.info["iterations"].double().mean()),
        "converged_fraction": float(alloc.info["converged"].double().mean()),
    }
    out["target_instances_per_s_at_K8"] = 50.0
    k8 = out["batched"].get("K=8", {}).values()
    out["best_batched_instances_per_s_at_K8"] = max((r["instances_per_s"] for r in k8), default=0.0)
    out["best_batched_instances_per_cpu_s_at_K8"] = max((r["instances_per_cpu_s"] for r in k8), default=0.0)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
