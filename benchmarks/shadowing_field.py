"""Benchmark: sampling time of the site shadowing field (issue 15). Prints one JSON object.

For each (area side, grid spacing, wrap-around) the time to draw the fields of L APs (FFT
circulant embedding, ``cfmimo.sim.shadowing_field``, best of ``--repeats``), the torus size and the
field memory, plus the measured nearest-grid reading error of the correlation against 2^(-d/9 m)
(exact correlations of 100 000 random point pairs per distance: mean and largest error).

Usage: python benchmarks/shadowing_field.py [--L 16] [--repeats 3] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch

from cfmimo import __version__
from cfmimo.config import preset
from cfmimo.sim.shadowing_field import _cached_field, _field_key, interpolated_correlation


def sampling_rows(L: int, repeats: int) -> list[dict]:
    rows = []
    for side in (250.0, 500.0, 1000.0):
        for grid in (0.5, 1.0, 2.0):
            for wrap in (False, True):
                if side * side / (grid * grid) * L > 4.1e8 / (1 if wrap else 4):
                    continue  # > ~1.6 GB of fields: skip
                sc = preset(
                    "tree-transformer",
                    L=L,
                    area_side_m=side,
                    wrap_around=wrap,
                    ap_deployment="fixed",
                    deployment_seed=0,
                    shadowing_field=True,
                    shadowing_grid_m=grid,
                )
                best = math.inf
                for _ in range(repeats):
                    _cached_field.cache_clear()
                    start = time.perf_counter()
                    field = _cached_field(_field_key(sc))
                    best = min(best, time.perf_counter() - start)
                rows.append(
                    {
                        "area_side_m": side,
                        "grid_m": field.spacing,
                        "wrap_around": wrap,
                        "L": L,
                        "grid_points_per_side": field.points,
                        "field_mib": field.values.numel() * 4 / 2**20,
                        "covariance_error": field.covariance_error,
                        "sampling_s": best,
                    }
                )
    _cached_field.cache_clear()
    return rows


def reading_error(pairs: int = 100_000) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    rows = []
    for grid in (0.5, 1.0, 2.0):
        for d in (1.0, 4.5, 9.0, 18.0, 45.0):
            p = torch.rand(pairs, 2, generator=g, dtype=torch.float64) * 400
            ang = torch.rand(pairs, generator=g, dtype=torch.float64) * 2 * math.pi
            q = p + d * torch.stack([ang.cos(), ang.sin()], dim=-1)
            err = interpolated_correlation(p, q, grid, 9.0) - 2.0 ** (-d / 9)
            rows.append(
                {
                    "grid_m": grid,
                    "distance_m": d,
                    "target": 2.0 ** (-d / 9),
                    "mean_error": err.mean().item(),
                    "max_abs_error": err.abs().max().item(),
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--L", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        json.dumps(
            {
                "benchmark": "shadowing_field",
                "cfmimo": __version__,
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "sampling": sampling_rows(args.L, args.repeats),
                "nearest_reading_error": reading_error(),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
