"""Benchmark: statistics and max-min solver at large sizes (issue #16), time and peak memory.

Default: K = 1000 UEs, L = 100 APs, N = 4 antennas (tree-transformer preset otherwise, area
scaled to keep the AP density: side = 500 m * sqrt(L / 16)), one setup, centralized MMSE,
full cell-free and Q = 8 strongest APs. Each configuration runs in its own subprocess so that
its peak RSS (``resource.getrusage(...).ru_maxrss``) is its own. Realizations are chunked
automatically from the memory estimate (``cfmimo.sim.memory``); ``--limit-gib`` caps it
(default 24).

Prints one JSON object: per configuration the seconds for networks (layout, R, pilots,
clusters), channel state (realizations + estimation), statistics, UL + DL closed-form max-min,
the chunk the statistics used, the estimated and the measured peak memory.

Usage: python benchmarks/scale.py [--K 1000] [--L 100] [--realizations 100] [--limit-gib 24]
       [--clustering all q8]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import resource
import subprocess
import sys
import time

import torch


def run_one(args: argparse.Namespace) -> dict:
    from cfmimo.config import preset
    from cfmimo.policies.classical.maxmin import downlink_affine, maxmin_closed_form, uplink_affine
    from cfmimo.sim.memory import estimate_statistics_bytes, statistics_chunk
    from cfmimo.sim.network import network_statistics, sample_channel_state, sample_networks

    cl = {"all": {"kind": "all"}, "q8": {"kind": "q_strongest", "q": 8}}[args.one]
    side = 500.0 * math.sqrt(args.L / 16)
    sc = preset(
        "tree-transformer",
        K=args.K,
        L=args.L,
        N=args.N,
        realizations=args.realizations,
        area_side_m=side,
        clustering=cl,
    )
    limit = int(args.limit_gib * 2**30)
    cluster = None if args.one == "all" else 8
    estimate = estimate_statistics_bytes(args.K, args.L, args.N, args.realizations, 1, cluster_aps=cluster)
    out: dict = {"clustering": args.one, "area_side_m": side}
    start = time.perf_counter()
    net = sample_networks(sc, 1, seed=0)
    out["networks_s"] = time.perf_counter() - start
    start = time.perf_counter()
    state = sample_channel_state(net)
    out["channel_state_s"] = time.perf_counter() - start
    chunk = statistics_chunk(
        args.K,
        args.L,
        args.N,
        args.realizations,
        1,
        state.h.dtype,
        cluster_aps=cluster,
        limit_bytes=limit // 2,  # the other half for the state and the solver
    )
    start = time.perf_counter()
    ul, dl = network_statistics(net, state, "mmse", chunk=chunk)
    out["statistics_s"] = time.perf_counter() - start
    del state
    K = args.K
    start = time.perf_counter()
    sol_ul = maxmin_closed_form(
        uplink_affine(ul), torch.eye(K).expand(1, K, K), torch.full((1, K), sc.ul_power_mw)
    )
    sol_dl = maxmin_closed_form(
        downlink_affine(dl), torch.ones(1, 1, K), torch.full((1, 1), args.L * sc.dl_power_per_ap_mw)
    )
    out["maxmin_ul_dl_s"] = time.perf_counter() - start
    out["maxmin_newton_steps_ul_dl"] = [sol_ul.iterations, sol_dl.iterations]
    out["maxmin_converged"] = bool(sol_ul.converged.all() and sol_dl.converged.all())
    out["min_se_ul_dl"] = [
        sc.prelog_ul * math.log2(1 + sol_ul.min_sinr.item()),
        sc.prelog_dl * math.log2(1 + sol_dl.min_sinr.item()),
    ]
    out["statistics_chunk_realizations"] = chunk
    out["estimated_peak_gib"] = estimate / 2**30
    out["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--K", type=int, default=1000)
    ap.add_argument("--L", type=int, default=100)
    ap.add_argument("--N", type=int, default=4)
    ap.add_argument("--realizations", type=int, default=100)
    ap.add_argument("--limit-gib", type=float, default=24.0)
    ap.add_argument("--clustering", nargs="+", default=["all", "q8"])
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: one subprocess
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(args)))
        return
    result = {
        "benchmark": "scale",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "config": {
            "K": args.K,
            "L": args.L,
            "N": args.N,
            "realizations": args.realizations,
            "limit_gib": args.limit_gib,
            "dtype": "complex64",
        },
        "runs": {},
    }
    for name in args.clustering:
        cmd = [sys.argv[0], *sys.argv[1:], "--one", name]
        done = subprocess.run([sys.executable, *cmd], capture_output=True, text=True, check=True)
        result["runs"][name] = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
