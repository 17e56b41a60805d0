"""Benchmark: inference latency vs K for the four Table II models (issue #5). Prints one JSON object.

Batch-1 latency (median over repeats, features + forward, no rescaler) at L = 16 for K up to
10 000, with freshly initialized weights (latency does not depend on the weights), plus the
log-log slope between the two largest K: ~1 for linear models, ~2 for softmax attention.

Backends (issue #15): at ``--onnx-K`` (default 40) each model also runs exported to ONNX in
onnxruntime (``cfmimo.export.OnnxRuntimeModel``, as ``cfmimo predict --backend onnxruntime``),
timed interleaved with the PyTorch forward on the same inputs (``backends`` in the JSON; forward
only, the features are left out of both). ``--threads``: torch and onnxruntime intra-op threads.

Usage: python benchmarks/inference_latency.py [--K 10,40,100,1000,10000] [--onnx-K 40] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
from pathlib import Path

import torch

from cfmimo import __version__
from cfmimo.experiments.common import latency_ms
from cfmimo.models import build_model, count_parameters

MODELS = ("tree_transformer", "tree_transformer_lean", "transformer", "cosformer", "performer")


def backends_ms(model: torch.nn.Module, ks: list[int], L: int, threads: int) -> dict[str, dict[str, float]]:
    """Median batch-1 forward (ms) in PyTorch (inference mode) and onnxruntime, interleaved."""
    from cfmimo.export import OnnxRuntimeModel, export_onnx

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        export_onnx(model, path, check=False)
        ort_model = OnnxRuntimeModel(path, threads=threads)
        g = torch.Generator().manual_seed(0)
        for K in ks:
            ue, ap = torch.rand(1, K, 2, generator=g), torch.rand(1, L, 2, generator=g)
            times: dict[str, list[float]] = {"torch_ms": [], "onnxruntime_ms": []}
            with torch.inference_mode():
                for i in range(220):
                    for key, fn in (("torch_ms", model), ("onnxruntime_ms", ort_model))[
                        :: 1 if i % 2 else -1
                    ]:
                        start = time.perf_counter()
                        fn(ue, ap)
                        if i >= 20:
                            times[key].append(1e3 * (time.perf_counter() - start))
            out[str(K)] = {k: statistics.median(v) for k, v in times.items()}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--K", default="10,40,100,1000,10000")
    ap.add_argument("--L", type=int, default=16)
    ap.add_argument("--onnx-K", default="40", help="K values timed in both backends ('' = none)")
    ap.add_argument("--threads", type=int, default=None, help="intra-op threads (default: torch's)")
    args = ap.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    ks = [int(k) for k in args.K.split(",")]
    onnx_ks = [int(k) for k in args.onnx_K.split(",") if k]
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
        if onnx_ks:
            out["models"][name]["backends"] = backends_ms(model, onnx_ks, args.L, torch.get_num_threads())
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
