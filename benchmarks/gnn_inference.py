"""Inference latency vs K and parameter counts of the six AAGNN-paper precoders, and training steps/s.

Prints one JSON object:
  {"device", "threads", "models": {name: {"params", "latency_ms": {K: {"per_batch", "per_sample"}}}},
   "training": {name: {"steps_per_s", "batch"}}}

Latency: median over ``--repeats`` forward passes (after a warm-up) of a batch of ``--batch``
instances, synchronized on CUDA; scenario M = 4 APs, N = 16 antennas (the paper's). Training:
optimizer steps per second of the unsupervised loss (-mean sum rate, batch 64) with Adam.

    python benchmarks/gnn_inference.py [--ks 2 4 8 16] [--batch 1000] [--device cpu|cuda] [--threads T]
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from cfmimo.config import preset
from cfmimo.models import ModelConfig, build_model, count_parameters
from cfmimo.models.gnn import PRECODER_MODEL_NAMES
from cfmimo.policies.neural import PrecoderPolicy
from cfmimo.problems.sumrate_precoding import SumRatePrecoding
from cfmimo.timing import median_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ks", type=int, nargs="+", default=[2, 4, 8, 16])
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--train-steps", type=int, default=5)
    parser.add_argument("--models", nargs="+", default=list(PRECODER_MODEL_NAMES))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    problem = SumRatePrecoding()
    result = {"device": str(device), "threads": torch.get_num_threads(), "batch": args.batch, "models": {}}
    result["training"] = {}
    instances = {K: problem.sample(preset("aagnn", K=K), args.batch, seed=0, device=device) for K in args.ks}
    for name in args.models:
        torch.manual_seed(0)
        model = build_model(ModelConfig(name=name)).to(device).eval()
        entry = {"params": count_parameters(model), "latency_ms": {}}
        for K, inst in instances.items():
            args_ = (inst.h, inst.association, inst.p_max, inst.noise)
            with torch.inference_mode():
                seconds = median_seconds(lambda a=args_, m=model: m(*a), device, args.repeats)
            entry["latency_ms"][K] = {"per_batch": 1e3 * seconds, "per_sample": 1e3 * seconds / args.batch}
        result["models"][name] = entry
        # training steps/s at K = 8 (or the largest K asked for below it), batch 64
        K = max(k for k in args.ks if k <= 8) if min(args.ks) <= 8 else min(args.ks)
        train = instances[K].take(slice(0, 64))
        model.train()
        policy = PrecoderPolicy(model)
        optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)

        def step(policy=policy, optimizer=optimizer, train=train) -> None:
            loss = -problem.objective(train, policy(train)).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        seconds = median_seconds(step, device, args.train_steps)
        result["training"][name] = {"steps_per_s": 1.0 / seconds, "batch": train.batch, "K": K}
        print(json.dumps({name: entry, "training": result["training"][name]}), flush=True, file=sys.stderr)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
