"""Benchmark: setups per second for UL + DL UatF statistics with centralized MMSE.

Configuration of issue #2: tree-transformer preset, L = 16, N = 4, K = 10, tau_p = 10,
100 realizations per setup, batches of 64 setups. Prints one JSON object:

  * ``statistics``: combiners + UL/DL UatF statistics from given realizations and estimates
    (what the book's functionComputeSE_uplink/downlink compute: ~2.4 s per setup in MATLAB);
  * ``end_to_end``: everything from scratch: layout, shadowing, local-scattering R, pilots,
    clusters, channel realizations, pilot noise, MMSE estimation and the statistics;
  * ``statistics_reference``: the same with ``method="reference"`` (the pre-issue-16 code), timed
    in the same process, interleaved with the fast path (``statistics_speedup`` = their ratio);
  * a per-stage breakdown, and peak memory (process RSS high-water mark).

Usage: python benchmarks/uatf_throughput.py [--batch 64] [--K 10] [--repeats 5] [--clustering all|dcc|q8]
       [--direct-solver lapack|torch]  (per-UE solves of the clustered path, ``combining.DIRECT_SOLVER``)
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time

import torch

from cfmimo import __version__
from cfmimo.config import preset
from cfmimo.sim import combining
from cfmimo.sim.estimation import hermitian_sqrt, sample_channels, sample_pilot_noise
from cfmimo.sim.network import estimate, network_statistics, sample_networks


def timed(fn, repeats):
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        out = fn()
    return (time.perf_counter() - start) / repeats, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--K", type=int, default=10)
    ap.add_argument("--L", type=int, default=16)
    ap.add_argument("--realizations", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2, help="interleaved fast/reference rounds (min taken)")
    ap.add_argument("--clustering", default="all", help="all | dcc | q8 (Q = 8 strongest)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--direct-solver", default=combining.DIRECT_SOLVER, choices=("lapack", "torch"))
    args = ap.parse_args()
    combining.DIRECT_SOLVER = args.direct_solver
    cl = {"all": {"kind": "all"}, "dcc": {"kind": "dcc"}, "q8": {"kind": "q_strongest", "q": 8}}[
        args.clustering
    ]
    sc = preset("tree-transformer", K=args.K, L=args.L, realizations=args.realizations, clustering=cl)
    b, t = args.batch, args.realizations
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def run(fn):
        def wrapped():
            out = fn()
            sync()
            return out

        return timed(wrapped, args.repeats)

    t_net, net = run(lambda: sample_networks(sc, b, seed=0, device=dev))
    t_sqrt, root = run(lambda: hermitian_sqrt(net.correlation))
    t_ch, h = run(lambda: sample_channels(net.correlation, t, seed=0, indices=net.indices, r_sqrt=root))
    t_noise, noise = run(
        lambda: sample_pilot_noise(
            (b, t, sc.L), sc.tau_p, sc.N, seed=0, indices=net.indices, dtype=h.dtype, device=dev
        )
    )
    t_est, state = run(lambda: estimate(net, h, noise))
    # fast and reference statistics side by side, interleaved so machine load hits both alike
    t_ref, t_stats = float("inf"), float("inf")
    for _ in range(max(1, args.rounds)):
        t_ref = min(t_ref, run(lambda: network_statistics(net, state, "mmse", method="reference"))[0])
        t_stats = min(t_stats, run(lambda: network_statistics(net, state, "mmse"))[0])
    end_to_end = t_net + t_sqrt + t_ch + t_noise + t_est + t_stats
    result = {
        "benchmark": "uatf_throughput",
        "cfmimo": __version__,
        "torch": torch.__version__,
        "device": str(dev),
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "config": {
            "L": sc.L,
            "N": sc.N,
            "K": sc.K,
            "tau_p": sc.tau_p,
            "realizations": t,
            "batch": b,
            "clustering": args.clustering,
            "combiner": "mmse",
            "dtype": "complex64",
            "direct_solver": combining.DIRECT_SOLVER,
            "direct_chunk": combining.DIRECT_CHUNK,
        },
        "statistics": {"setups_per_s": b / t_stats, "ms_per_batch": 1e3 * t_stats},
        "statistics_reference": {"setups_per_s": b / t_ref, "ms_per_batch": 1e3 * t_ref},
        "statistics_speedup": t_ref / t_stats,
        "end_to_end": {"setups_per_s": b / end_to_end, "ms_per_batch": 1e3 * end_to_end},
        "stages_ms_per_batch": {
            "networks (layout, shadowing, R, pilots, clusters)": 1e3 * t_net,
            "R^(1/2)": 1e3 * t_sqrt,
            "channel realizations": 1e3 * t_ch,
            "pilot noise": 1e3 * t_noise,
            "MMSE estimation": 1e3 * t_est,
            "combiners + UL/DL statistics": 1e3 * t_stats,
        },
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_cuda_mib": torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else None,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
