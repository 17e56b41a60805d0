"""Benchmark: batch-1 Tree-Transformer latency, ours vs the authors' public model.py (issue #15).

Prints one JSON object. In ONE process, with ONE torch thread, the same inputs and the same
weights (ours copied into theirs; the max |difference| of the outputs is reported). ``vs_*``: our
fast path and one other column alternated call by call (so that load from other jobs hits both
alike, and each runs with the other's weights in the cache: 2.3 MB of float32 weights, mostly the
two 64 x 2048 feed-forward layers, do not stay in cache across a call of the other model); their
medians and ratio = other / ours. ``alone``: each column in a block of its own calls (warm caches,
as a process serving one model). Timed: the model's
forward on already normalized positions (the min-max features are the same for every column and
left out), under ``torch.inference_mode``. L = 16 APs, the 584,354-parameter configuration
(Table I: d_enc 32, d_mod 64, 4 heads, 2 layers, dim_feedforward 2048).

Columns:
- ``ours_ms``: ``TreeTransformerPower.forward`` without masks (its inference fast path);
- ``ours_masked_ms``: the padding-aware path (``decode(encode(...))``), what every call used before;
- ``authors_ms``: ``HybridPowerAllocator`` of github.com/irchchaf/Hybrid-Tree-Transformer-Model
  (``model.py``, read from ``--authors-model``; not part of cfmimo; column skipped without it);
- ``onnxruntime_ms``: our exported graph (fixed-depth tree, dynamic K) in onnxruntime with one
  intra-op thread through ``OnnxRuntimeModel`` (tensor conversion included, as in ``cfmimo predict
  --backend onnxruntime``), at ``--onnx-K`` (skipped with ``--onnx-K ''`` or without onnxruntime).

Usage: python benchmarks/authors_latency.py [--authors-model /path/to/model.py]
       [--K 10,40,640,10240] [--onnx-K 40]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from cfmimo import __version__
from cfmimo.models import build_model, count_parameters

# our parameter name prefix -> theirs (model.py: HybridPowerAllocator)
NAME_MAP = (
    ("ap_encoder.", "ap_encoder.mlp."),
    ("ue_embedding.", "user_embed."),
    ("tree.project.", "compressor.embed."),
    ("tree.merge.", "compressor.merge."),
    ("root_encoder.", "transformer.encoder."),
    ("decoder.", "decoder.fc."),
)


def load_authors_model(path: Path, ours: torch.nn.Module) -> torch.nn.Module:
    """The authors' HybridPowerAllocator(32, 64, 4, 2) from their model.py, with our weights."""
    if not path.is_file():
        raise SystemExit(f"--authors-model {path}: no such file (their model.py)")
    spec = importlib.util.spec_from_file_location("authors_tree_transformer", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cfg = ours.config
    theirs = module.HybridPowerAllocator(cfg.d_enc, cfg.d_mod, cfg.heads, cfg.layers)
    state = {}
    for name, value in ours.state_dict().items():
        prefix = next(p for p in NAME_MAP if name.startswith(p[0]))
        state[prefix[1] + name[len(prefix[0]) :]] = value
    theirs.load_state_dict(state)  # strict: every tensor maps one to one
    return theirs.eval()


def interleaved_medians(fns: dict[str, Callable[[], object]], repeats: int, warmup: int) -> dict[str, float]:
    """Median ms of each function, calls interleaved (the order rotates every repeat)."""
    names = list(fns)
    times: dict[str, list[float]] = {n: [] for n in names}
    for i in range(warmup + repeats):
        shift = i % len(names)
        for n in names[shift:] + names[:shift]:
            start = time.perf_counter()
            fns[n]()
            if i >= warmup:
                times[n].append(1e3 * (time.perf_counter() - start))
    return {n: statistics.median(t) for n, t in times.items()}


def onnx_model(model: torch.nn.Module, folder: Path):
    """Our model exported and run by onnxruntime (1 intra-op thread) through ``OnnxRuntimeModel``
    (what ``cfmimo predict --backend onnxruntime`` runs), or None without onnxruntime."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return None
    from cfmimo.export import OnnxRuntimeModel, export_onnx

    path = folder / "tree_transformer.onnx"
    export_onnx(model, path, check=False)
    return OnnxRuntimeModel(path, threads=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--authors-model", type=Path, default=None, help="their model.py (skipped without)")
    ap.add_argument("--K", default="10,40,640,10240")
    ap.add_argument("--L", type=int, default=16)
    ap.add_argument("--onnx-K", default="40", help="K values for the onnxruntime column ('' = none)")
    ap.add_argument("--repeats", type=int, default=200, help="repeats at K <= 1000 (30 above)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    ks = [int(k) for k in args.K.split(",")]
    onnx_ks = {int(k) for k in args.onnx_K.split(",") if k}
    torch.manual_seed(0)
    ours = build_model({"name": "tree_transformer"}).eval()
    theirs = load_authors_model(args.authors_model, ours) if args.authors_model else None
    g = torch.Generator().manual_seed(1)
    out = {
        "benchmark": "authors_latency",
        "cfmimo": __version__,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "L": args.L,
        "params": count_parameters(ours),
        "authors_params": None if theirs is None else count_parameters(theirs),
        "authors_model": None if args.authors_model is None else str(args.authors_model),
        "timed": "forward on normalized positions, batch 1, torch.inference_mode, medians; vs_*: two "
        "columns alternated call by call (ratio = other / ours); alone: one model in a block (warm caches)",
        "K": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        session = onnx_model(ours, Path(tmp)) if onnx_ks else None
        if session is not None:
            import onnxruntime

            out["onnxruntime"] = onnxruntime.__version__
        for K in ks:
            ue, ap_pos = torch.rand(1, K, 2, generator=g), torch.rand(1, args.L, 2, generator=g)
            fns: dict[str, Callable[[], object]] = {
                "ours_ms": lambda ue=ue, ap_pos=ap_pos: ours(ue, ap_pos),
                "ours_masked_ms": lambda ue=ue, ap_pos=ap_pos: ours.decode(*ours.encode(ue, ap_pos)),
            }
            row: dict[str, float | None] = {}
            with torch.inference_mode():
                want = ours(ue, ap_pos)
                row["max_abs_diff_masked"] = float((ours.decode(*ours.encode(ue, ap_pos)) - want).abs().max())
                if theirs is not None:
                    fns["authors_ms"] = lambda ue=ue, ap_pos=ap_pos: theirs(ue, ap_pos)
                    got = theirs(ue, ap_pos).view(1, 2, K).transpose(1, 2)  # their [B, 2K]: UL then DL
                    row["max_abs_diff_authors"] = float((got - want).abs().max())
                if session is not None and K in onnx_ks:
                    fns["onnxruntime_ms"] = lambda ue=ue, ap_pos=ap_pos: session(ue, ap_pos)
                    row["max_abs_diff_onnxruntime"] = float((session(ue, ap_pos) - want).abs().max())
                big = K > 1000
                repeats, warmup = (30, 3) if big else (args.repeats, 20)
                ref = fns.pop("ours_ms")
                # Pairs alternated call by call: each column's weights are cold after the other's
                # call in both directions (ours and the masked path share weights, so both are warm
                # there). Then each model alone (warm caches, as a server running one model).
                for name, fn in fns.items():
                    pair = interleaved_medians({"ours_ms": ref, name: fn}, repeats, warmup)
                    row[f"vs_{name.removesuffix('_ms')}"] = {**pair, "ratio": pair[name] / pair["ours_ms"]}
                for name, fn in {"ours_ms": ref, **fns}.items():
                    row.setdefault("alone", {})[name] = interleaved_medians({name: fn}, repeats, warmup)[name]
            out["K"][str(K)] = row
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
