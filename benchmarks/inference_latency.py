"""Benchmark: inference latency vs K for the four Table II models (issue #5). Prints one JSON object.

Batch-1 latency (median over repeats, features + forward, no rescaler) at L = 16 for K up to
10 000, with freshly initialized weights (latency does not depend on the weights), plus the
log-log slope between the two largest K: ~1 for linear models, ~2 for softmax attention.

Usage: python benchmarks/inference_latency.py [--K 10,40,100,1000,10000]
"""

from __future__ import annotations

import argparse
import json
import math

import torch

from cfmimo import __version__
from cfmimo.experiments.common import latency_ms
from cfmimo.models import build_model, count_parameters

MODELS = ("tree_transformer", "tree_transformer_lean", "transformer", "cosformer", "performer")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--K", default="10,40,100,1000,10000")
    ap.add_argument("--L", type=int, default=16)
    args = ap.parse_args()
    ks = [int(k) for k in args.K.split(",")]
    torch.manual_seed(0)
    out = {
        "benchmark": "inference_latency",
        "cfmimo": __version__,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "L": args.L,
        "K": ks,
        "models": {},
    }
    for name in MODELS:
        model = build_model({"name": name})
        latency_ms(model, ks[0], args.L, repeats=3, warmup=3)  # one-time costs (allocator, thread pool)
        lat = [
            latency_ms(model, k, args.L, repeats=5 if k >= 1000 else 30, warmup=1 if k >= 1000 else 5)
            for k in ks
        ]
        slope = math.log(lat[-1] / lat[-2]) / math.log(ks[-1] / ks[-2]) if len(ks) > 1 else None
        out["models"][name] = {
            "params": count_parameters(model),
            "latency_ms": dict(zip(map(str, ks), lat, strict=True)),
            "loglog_slope_last": slope,
        }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
