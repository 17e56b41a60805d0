"""Fronthaul models (EGAT, ENGNN, BGNN, DNN; egat-fronthaul.md): parameters, FLOPs per sample,
inference latency vs K and training steps/s of the primal-dual + REINFORCE recipe.

Prints one JSON object:
  {"device", "threads", "batch", "models": {name: {"params", "flops_per_sample", "latency_ms":
   {K: {"per_batch", "per_sample"}}, "training": {"steps_per_s", "batch", "samples"}}},
   "flops_ratio_egat_engnn"}

* FLOPs: ``torch.utils.flop_counter.FlopCounterMode`` on one forward pass of one sample at the
  Table I size (L = 8 APs, K = 4 UEs, N = 2), counting matmuls (the paper's Table V: EGAT/ENGNN
  = 1.08-1.14, 2.5e6-1.2e7 per sample). Feature preparation and the (36)-(37) head are excluded.
* Latency: median over ``--repeats`` forward passes (after a warm-up) of a batch of ``--batch``
  instances (``egat`` preset, L = 8, N = 2), features included, synchronized on CUDA. The DNN has a
  fixed size: one DNN per K (built with num_ues = K).
* Training: optimizer steps/s of the recipe's loss (``FronthaulPrimalDual.training_loss``: forward,
  S Bernoulli draws, loss (33), dual step) + backward + Adam at K = 4, batch ``--train-batch``.

    python benchmarks/fronthaul_models.py [--ks 2 4 8 16] [--batch 256] [--device cpu|cuda] [--threads T]
"""

from __future__ import annotations

import argparse
import json
import sys

import torch
from torch.utils.flop_counter import FlopCounterMode

from cfmimo.config import preset
from cfmimo.learn.fronthaul_recipe import fronthaul_config
from cfmimo.learn.unsupervised import UnsupervisedModule, move_instance
from cfmimo.models import ModelConfig, build_model, count_parameters
from cfmimo.models.gnn.fronthaul import FRONTHAUL_MODEL_NAMES
from cfmimo.problems.fronthaul_wsr import FronthaulWSR
from cfmimo.timing import median_seconds


def _model(name: str, K: int) -> torch.nn.Module:
    extra = {"num_ues": K, "num_aps": 8} if name == "dnn_fh" else {}
    torch.manual_seed(0)
    return build_model(ModelConfig(name=name, **extra))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ks", type=int, nargs="+", default=[2, 4, 8, 16])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--train-steps", type=int, default=5)
    parser.add_argument("--train-batch", type=int, default=256)
    parser.add_argument("--models", nargs="+", default=list(FRONTHAUL_MODEL_NAMES))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    problem = FronthaulWSR()
    result = {"device": str(device), "threads": torch.get_num_threads(), "batch": args.batch, "models": {}}
    instances = {K: problem.sample(preset("egat", K=K), args.batch, seed=0, device=device) for K in args.ks}
    one = problem.sample(preset("egat"), 1, seed=1)
    for name in args.models:
        model = _model(name, 4).eval()
        model.fit_inputs(one)
        feats = model.graph_inputs(one)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(*feats)
        entry = {
            "params": count_parameters(model),
            "flops_per_sample": counter.get_total_flops(),
            "latency_ms": {},
        }
        for K, inst in instances.items():
            m = _model(name, K).to(device).eval()
            m.fit_inputs(inst)
            with torch.inference_mode():
                seconds = median_seconds(
                    lambda m=m, inst=inst: m.forward_instance(inst), device, args.repeats
                )
            entry["latency_ms"][K] = {"per_batch": 1e3 * seconds, "per_sample": 1e3 * seconds / args.batch}
        cfg = fronthaul_config(model=dict(name=name), train_samples=args.train_batch, val_samples=8)
        module = UnsupervisedModule(cfg.to_dict()).to(device)
        train = problem.sample(preset("egat"), args.train_batch, seed=2)
        train, _ = module.recipe.prepare_sets(train, train)
        train = move_instance(train, device)
        module.model.fit_inputs(train)
        optimizer = torch.optim.Adam(module.model.parameters(), lr=1e-3)

        def step(module=module, optimizer=optimizer, train=train) -> None:
            loss, _ = module.recipe.training_loss(module, train)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        seconds = median_seconds(step, device, args.train_steps)
        entry["training"] = {
            "steps_per_s": 1.0 / seconds,
            "batch": train.batch,
            "samples": module.recipe.options.samples,
            "K": 4,
        }
        result["models"][name] = entry
        print(json.dumps({name: entry}), flush=True, file=sys.stderr)
    if "egat_fh" in result["models"] and "engnn_fh" in result["models"]:
        ratio = (
            result["models"]["egat_fh"]["flops_per_sample"] / result["models"]["engnn_fh"]["flops_per_sample"]
        )
        result["flops_ratio_egat_engnn"] = ratio
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
