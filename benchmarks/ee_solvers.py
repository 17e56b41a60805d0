"""Benchmark: energy-efficiency solvers (issue 13). Prints one JSON object.

At (L, K) = (5, 10), (10, 10), (15, 15) (ee-gnn preset, float64, the same setups for every solver):

* ``sca``: batched pseudo-convex SCA for eq. (1) from equal power (closed-form inner step) on
  ``--setups`` setups in one batch: setups per second and mean EE (Mbit/J);
* ``sca_cvxpy``: the same SCA with every inner step solved per setup by CVXPY + Clarabel, on the first
  ``--cvx-setups`` setups, stopped at the looser ``--cvx-tol`` (1e-3) or ``--cvx-max-iter`` (100)
  iterations (the paper's per-sample timing; iterations, seconds per iteration, mean EE of those
  setups next to batched SCA's EE on the same setups);
* ``multistart``: multi-start log-power gradient ascent (SCA point, equal power, K one-UE starts, 8
  random starts; best start polished by SCA): setups per second and mean EE;
* ``equal``/``random``: the fixed baselines' mean EE.

Usage: python benchmarks/ee_solvers.py [--setups 64] [--cvx-setups 2] [--sizes 5x10,10x10,15x15]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from cfmimo import __version__
from cfmimo.config import preset
from cfmimo.policies.classical import energy as E
from cfmimo.policies.classical.energy import SCA, EqualPower, MultiStart, RandomPower
from cfmimo.problems.energy_efficiency import EnergyEfficiency, sample_ee_instances


def timed(policy, inst, problem):
    start = time.perf_counter()
    alloc = policy(inst)
    seconds = time.perf_counter() - start
    return seconds, problem.objective(inst, alloc)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--setups", type=int, default=64)
    ap.add_argument("--cvx-setups", type=int, default=2)
    ap.add_argument("--sizes", default="5x10,10x10,15x15")
    ap.add_argument("--cvx-tol", type=float, default=1e-3, help="SCA tolerance of the CVXPY variant")
    ap.add_argument("--cvx-max-iter", type=int, default=100)
    args = ap.parse_args()
    problem = EnergyEfficiency()
    out: dict = {
        "benchmark": "ee_solvers",
        "cfmimo": __version__,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "setups": args.setups,
        "units": {"ee": "Mbit/J (log2, 1 MHz)", "throughput": "setups/s"},
        "sizes": {},
    }
    for size in args.sizes.split(","):
        L, K = (int(x) for x in size.split("x"))
        inst = sample_ee_instances(preset("ee-gnn", L=L, K=K), args.setups, seed=0, dtype=torch.float64)
        row: dict = {}
        for name, policy in (("equal", EqualPower()), ("random", RandomPower())):
            row[name] = {"ee": float(problem.objective(inst, policy(inst)).mean())}
        start = time.perf_counter()
        alloc = SCA()(inst)
        sec = time.perf_counter() - start
        ee = problem.objective(inst, alloc)
        row["sca"] = {
            "setups_per_s": args.setups / sec,
            "ee": float(ee.mean()),
            "iterations_mean": float(alloc.info["iterations"].double().mean()),
            "converged": float(alloc.info["converged"].double().mean()),
        }
        sub = inst.take(slice(0, args.cvx_setups))
        E.CVXPY_FAILURES["count"] = 0
        start = time.perf_counter()
        alloc_c = SCA(inner="cvxpy", tol=args.cvx_tol, max_iter=args.cvx_max_iter)(sub)
        sec_c = time.perf_counter() - start
        ee_c = problem.objective(sub, alloc_c)
        row["sca_cvxpy"] = {
            "setups": args.cvx_setups,
            "tol": args.cvx_tol,
            "iterations": alloc_c.info["iterations"].tolist(),
            "seconds_per_iteration": sec_c / max(1, int(alloc_c.info["iterations"].sum())),
            "setups_per_s": args.cvx_setups / sec_c,
            "seconds_per_setup": sec_c / args.cvx_setups,
            "ee": float(ee_c.mean()),
            "ee_batched_sca_same_setups": float(ee[: args.cvx_setups].mean()),
            "clarabel_failures_replaced_by_closed_form": E.CVXPY_FAILURES["count"],
        }
        sec_m, ee_m = timed(MultiStart(), inst, problem)
        row["multistart"] = {
            "setups_per_s": args.setups / sec_m,
            "ee": float(ee_m.mean()),
            "gain_over_sca": float((ee_m / ee).mean() - 1.0),
            "setups_improved_by_1e-3": int((ee_m > ee + 1e-3).sum()),
        }
        out["sizes"][f"{L}x{K}"] = row
        print(json.dumps({size: row}), flush=True, file=__import__("sys").stderr)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
