"""Benchmark: training samples/s on CPU for the Table II models (issue #5). Prints one JSON object.

Generates (or reuses) a small labelled dataset (K in {2,4,6,8,10}, L = 16, 512 samples each) and
trains each model for 2 epochs at batch 128 through ``cfmimo.learn.train`` (Lightning, the real
path), reporting the framework's training samples/s (validation excluded).

Usage: python benchmarks/train_throughput.py [--samples 512] [--epochs 2] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from cfmimo import __version__
from cfmimo.config import preset
from cfmimo.data.generation import run_generation
from cfmimo.data.spec import DatasetSpec
from cfmimo.learn.config import TrainConfig
from cfmimo.learn.trainer import train

MODELS = ("tree_transformer", "transformer", "cosformer", "performer", "deepsets")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=512)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="cfmimo-train-bench-"))
    spec = DatasetSpec(
        scenario=preset("tree-transformer", realizations=20),
        sizes=[(k, 16) for k in (2, 4, 6, 8, 10)],
        samples=args.samples,
        shard_size=256,
    )
    run_generation(spec, out / "data", scheduler="sync")
    result = {
        "benchmark": "train_throughput",
        "cfmimo": __version__,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "batch_size": 128,
        "train_samples": int(0.9 * 5 * args.samples),
        "models": {},
    }
    for name in MODELS:
        config = TrainConfig.from_dict(
            {
                "model": {"name": name},
                "data": {"train": str(out / "data")},
                "trainer": {"epochs": args.epochs, "batch_size": 128, "out_dir": str(out / "runs" / name)},
            }
        )
        r = train(config)
        result["models"][name] = {"train_samples_per_s": r.train_samples_per_s, "seconds": r.seconds}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
