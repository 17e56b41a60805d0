"""Benchmark: classical fronthaul-WSR solvers on the egat preset (issue 14). Prints one JSON object.

* AO-SCA (CVXPY + Clarabel, one compiled parametrized problem per size): seconds per instance, for the
  literal and the reweighted variant, with iterations to converge and the time per subproblem solve.
  The first instance pays CVXPY's compilation; it is reported separately.
* FC-ZF (batched torch): instances per second on batches of ``--batch``.
* PC-WMMSE (batched torch, the shared WMMSE then dropping): instances per second on ``--wmmse-batch``.

Usage: python benchmarks/fronthaul_solvers.py [--instances 20] [--batch 1024] [--wmmse-batch 64]
       [--capacity-mbps 60]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from cfmimo import __version__
from cfmimo.config import preset
from cfmimo.policies.classical.fronthaul import AOSCA, FCZF, PCWMMSE
from cfmimo.problems.fronthaul_wsr import FronthaulWSR


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=20, help="AO-SCA instances per variant")
    ap.add_argument("--batch", type=int, default=1024, help="FC-ZF batch size")
    ap.add_argument("--wmmse-batch", type=int, default=64, help="PC-WMMSE batch size")
    ap.add_argument("--capacity-mbps", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    problem = FronthaulWSR()
    sc = preset("egat", fronthaul_capacity_bps=1e6 * args.capacity_mbps)
    inst = problem.sample(sc, args.instances, seed=args.seed, dtype=torch.float64)
    out = {
        "benchmark": "fronthaul_solvers",
        "cfmimo": __version__,
        "torch": torch.__version__,
        "machine": platform.machine(),
        "threads": torch.get_num_threads(),
        "preset": "egat",
        "L": sc.L,
        "K": sc.K,
        "N": sc.N,
        "capacity_mbps": args.capacity_mbps,
    }
    for variant in ("literal", "reweighted"):
        policy = AOSCA(variant=variant)
        start = time.perf_counter()
        first = policy(inst.take(slice(0, 1)))  # includes the CVXPY compilation of this size
        first_s = time.perf_counter() - start
        start = time.perf_counter()
        alloc = policy(inst)
        total = time.perf_counter() - start
        its = alloc.info["iterations"].double()
        out[f"ao_sca_{variant}"] = {
            "first_instance_s": first_s,
            "seconds_per_instance": total / inst.batch,
            "median_seconds_per_instance": statistics.median(alloc.info["seconds"].tolist()),
            "iterations_mean": float(its.mean()),
            "iterations_max": int(its.max()),
            "seconds_per_iteration": total / float(its.sum()),
            "converged": float(alloc.info["converged"].double().mean()),
            "wsr": float(problem.objective(inst, alloc).mean()),
            "wsr_before_repair": float(alloc.info["wsr_before_repair"].mean()),
            "feasible_before_repair": float(alloc.info["feasible_before_repair"].double().mean()),
            "first_instance_iterations": int(first.info["iterations"][0]),
        }
    big = problem.sample(sc, args.batch, seed=args.seed + 1, dtype=torch.float32)
    fczf = FCZF()
    fczf(big.take(slice(0, 8)))  # warm-up (LAPACK initialization)
    runs = []
    for _ in range(3):
        start = time.perf_counter()
        fczf(big)
        runs.append(time.perf_counter() - start)
    out["fc_zf"] = {
        "batch": args.batch,
        "dtype": "complex64",
        "instances_per_s": args.batch / min(runs),
        "ms_per_batch": 1e3 * min(runs),
    }
    wb = problem.sample(sc, args.wmmse_batch, seed=args.seed + 2, dtype=torch.float64)
    pc = PCWMMSE()
    start = time.perf_counter()
    alloc = pc(wb)
    seconds = time.perf_counter() - start
    out["pc_wmmse"] = {
        "batch": args.wmmse_batch,
        "dtype": "complex128",
        "instances_per_s": args.wmmse_batch / seconds,
        "wmmse_iterations_mean": float(alloc.info["iterations"].double().mean()),
        "dropping_rounds": alloc.info["rounds"],
        "wsr": float(problem.objective(wb, alloc).mean()),
        "wsr_before_drop": float(alloc.info["wsr_before_drop"].mean()),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
