"""Benchmark: batched small HPD solves in torch (cfmimo.sim.hpd_solve) vs LAPACK, side by side.

The per-UE systems of the clustered MMSE statistics (Q = 8 of L = 16 APs, N = 4, K = 40:
32 x 32 complex64, 64,000 per batch of 16 setups x 100 realizations) dominate that path. Two
parts, each timed in one process, interleaved (every round runs every variant once), reporting
the min and the median over ``--repeats`` rounds:

  * ``solve``: [--matrices, n, n] random HPD systems (S = sum p_i h_i h_i^H + I) with one
    right-hand side: ``hpd_solve`` (torch, chunks of ``--chunk``) vs ``torch.linalg.solve_ex``
    on column-major input (the layout the statistics gather; LAPACK's LU incl. its copy) vs
    ``cholesky_ex`` + ``cholesky_solve``;
  * ``statistics`` (with ``--statistics``): ``network_statistics(..., "mmse")`` on the Q = 8,
    K = 40 configuration with the per-UE solves by LAPACK (``combining.DIRECT_SOLVER = "lapack"``,
    the default) and by the torch solver, at the default chunk of ``DIRECT_CHUNK`` systems and
    with one chunk per setup (all realizations of a setup at once: the cache effect).

Prints one JSON object. Usage:
    python benchmarks/hpd_solve.py [--matrices 64000] [--n 32] [--repeats 3] [--statistics]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics as pystats
import time

import torch

from cfmimo import __version__
from cfmimo.sim import combining
from cfmimo.sim.hpd_solve import CHUNK, hpd_solve


def interleaved(variants: dict, repeats: int) -> dict:
    """Run every variant once per round (after one warm-up round); min and median seconds."""
    for fn in variants.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: {"min_s": min(v), "median_s": pystats.median(v), "all_s": v} for name, v in times.items()}


def solve_part(matrices: int, n: int, chunk: int, repeats: int) -> dict:
    g = torch.Generator().manual_seed(0)
    h = torch.randn(matrices, n, n + 8, dtype=torch.complex64, generator=g)
    a = h @ h.mH / (n + 8) + torch.eye(n, dtype=torch.complex64)
    b = torch.randn(matrices, n, 1, dtype=torch.complex64, generator=g)
    a_colmajor = a.mT.contiguous().mT  # what _direct_rows hands LAPACK
    ref = torch.linalg.solve(a.to(torch.complex128), b.to(torch.complex128))
    x = hpd_solve(a, b, chunk=chunk)
    err = ((x.to(ref.dtype) - ref).abs().max() / ref.abs().max()).item()
    err_lu = (
        (torch.linalg.solve_ex(a_colmajor, b)[0].to(ref.dtype) - ref).abs().max() / ref.abs().max()
    ).item()

    def cholesky():
        return torch.cholesky_solve(b, torch.linalg.cholesky_ex(a)[0])

    res = interleaved(
        {
            "torch_hpd_solve": lambda: hpd_solve(a, b, chunk=chunk),
            "lapack_solve_ex": lambda: torch.linalg.solve_ex(a_colmajor, b),
            "lapack_cholesky": cholesky,
        },
        repeats,
    )
    for v in res.values():
        v["us_per_matrix_min"] = 1e6 * v["min_s"] / matrices
    return {
        "matrices": matrices,
        "n": n,
        "dtype": "complex64",
        "chunk": chunk,
        "times": res,
        "torch_over_lapack_min": res["lapack_solve_ex"]["min_s"] / res["torch_hpd_solve"]["min_s"],
        "torch_over_lapack_median": res["lapack_solve_ex"]["median_s"] / res["torch_hpd_solve"]["median_s"],
        "max_rel_error_vs_complex128": {"torch_hpd_solve": err, "lapack_solve_ex": err_lu},
    }


def statistics_part(batch: int, repeats: int) -> dict:
    from cfmimo.config import preset
    from cfmimo.sim.network import network_statistics, sample_channel_state, sample_networks

    sc = preset("tree-transformer", K=40, L=16, realizations=100, clustering={"kind": "q_strongest", "q": 8})
    net = sample_networks(sc, batch, seed=0)
    state = sample_channel_state(net)

    def variant(solver: str, chunk: int):
        def run():
            combining.DIRECT_SOLVER, combining.DIRECT_CHUNK = solver, chunk
            try:
                return network_statistics(net, state, "mmse")
            finally:
                combining.DIRECT_SOLVER, combining.DIRECT_CHUNK = default

        return run

    default = (combining.DIRECT_SOLVER, combining.DIRECT_CHUNK)
    per_setup = 40 * 100  # one chunk holds all realizations of a setup
    res = interleaved(
        {
            f"lapack_chunk_{default[1]}": variant("lapack", default[1]),
            f"torch_chunk_{default[1]}": variant("torch", default[1]),
            f"lapack_chunk_{per_setup}": variant("lapack", per_setup),
        },
        repeats,
    )
    for v in res.values():
        v["setups_per_s_max"] = batch / v["min_s"]
    return {"config": {"K": 40, "L": 16, "N": 4, "q": 8, "realizations": 100, "batch": batch}, "times": res}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--matrices", type=int, default=64_000)
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--chunk", type=int, default=CHUNK)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--statistics", action="store_true", help="also time the Q = 8 statistics")
    ap.add_argument("--batch", type=int, default=16, help="setups for --statistics")
    args = ap.parse_args()
    out = {
        "benchmark": "hpd_solve",
        "cfmimo": __version__,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "solve": solve_part(args.matrices, args.n, args.chunk, args.repeats),
    }
    if args.statistics:
        out["statistics"] = statistics_part(args.batch, args.repeats)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
