"""Benchmark: inference latency vs K for the four Table II models (issue #5). Prints one JSON object.

Batch-1 latency (median over repeats, features + forward, no rescaler) at L = 16 for K up to
10 000, with freshly initialized weights (latency does not depend on the weights), plus the
log-log slope between the two largest K: ~1 for linear models, ~2 for softmax attention.

Backends (issue #15): at ``--onnx-K`` (default 40) each model also runs exported to ONNX in
onnxruntime (``cfmimo.export.OnnxRuntimeModel``, as ``cfmimo predict --backend onnxruntime``),
all (model, backend) pairs timed interleaved in one loop on the same inputs (``backends`` in the
JSON; forward only, the features are left out of both). ``--threads``: torch and onnxruntime intra-op threads.

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


def backends_ms(
    models: dict[str, torch.nn.Module], ks: list[int], L: int, threads: int, repeats: int = 200
) -> dict[str, dict[str, dict[str, float]]]:
    """Median batch-1 forward (ms) of every model in PyTorch (inference mode) and onnxruntime, all
    (model, backend) pairs interleaved in one loop whose order rotates every repeat, so that load
    from other jobs hits every column alike (each call finds the other models' weights in the
    cache), then each pair alone in a block (warm caches, ``*_alone_ms``).
    -> {K: {model: {torch_ms, onnxruntime_ms, torch_alone_ms, onnxruntime_alone_ms}}}."""
    from cfmimo.export import OnnxRuntimeModel, export_onnx

    out: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        fns = {}
        for name, model in models.items():
            export_onnx(model, Path(tmp) / f"{name}.onnx", check=False)
            fns[(name, "torch_ms")] = model
            fns[(name, "onnxruntime_ms")] = OnnxRuntimeModel(Path(tmp) / f"{name}.onnx", threads=threads)
        g = torch.Generator().manual_seed(0)
        keys = list(fns)
        for K in ks:
            ue, ap = torch.rand(1, K, 2, generator=g), torch.rand(1, L, 2, generator=g)
            times: dict[tuple[str, str], list[float]] = {k: [] for k in keys}
            with torch.inference_mode():
                for i in range(20 + repeats):
                    shift = i % len(keys)
                    for key in keys[shift:] + keys[:shift]:
                        start = time.perf_counter()
                        fns[key](ue, ap)
                        if i >= 20:
                            times[key].append(1e3 * (time.perf_counter() - start))
            row: dict[str, dict[str, float]] = {}
            for (name, backend), t in times.items():
                row.setdefault(name, {})[backend] = statistics.median(t)
            with torch.inference_mode():  # each pair alone: warm caches, as a process serving one model
                for (name, backend), fn in fns.items():
                    for _ in range(20):
                        fn(ue, ap)
                    alone = []
                    for _ in range(repeats):
                        start = time.perf_counter()
                        fn(ue, ap)
                        alone.append(1e3 * (time.perf_counter() - start))
                    row[name][backend.replace("_ms", "_alone_ms")] = statistics.median(alone)
            out[str(K)] = row
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
        models = {name: build_model({"name": name}).eval() for name in MODELS}
        out["backends"] = backends_ms(models, onnx_ks, args.L, torch.get_num_threads())
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
