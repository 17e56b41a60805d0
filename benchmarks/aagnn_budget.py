"""FLOPs and wall time of one unsupervised training step of the AAGNN-paper precoders, for the
full-mode budget proof (docs/learning.md, "Reproducing the AAGNN paper").

Prints one JSON object:
  {"threads", "batch", "recipe", "load_average", "rows": [{"model", "K", "params", "gflop_per_step",
   "seconds_per_step", "cpu_seconds_per_step", "gflop_per_s"}]}

FLOPs: ``torch.utils.flop_counter.FlopCounterMode`` over forward + backward of the loss
(-mean sum rate, batch ``--batch``, M = 4, N = 16): it counts matmuls, bmm and einsums (2 per
multiply-add), not elementwise work, so it is a lower bound of the work. Time: median of
``--repeats`` full steps (forward, backward, Adam) after one warm-up, wall and process CPU time
(``time.process_time``: on a shared machine the CPU seconds, not the wall time, are what one
quiet core would take; ``gflop_per_s`` uses them).

    python benchmarks/aagnn_budget.py [--recipe paper|cpu] [--ks 4 8 16] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from cfmimo.config import preset
from cfmimo.experiments.aagnn.config import MODELS, AagnnConfig
from cfmimo.experiments.aagnn.run import model_config
from cfmimo.models import build_model, count_parameters
from cfmimo.policies.neural import PrecoderPolicy
from cfmimo.problems.sumrate_precoding import SumRatePrecoding
from cfmimo.timing import median_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", choices=["paper", "cpu"], default="paper")
    parser.add_argument("--ks", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = AagnnConfig() if args.recipe == "paper" else AagnnConfig.cpu()
    problem = SumRatePrecoding()
    rows = []
    for K in args.ks:
        snr = cfg.table_snr_db if K == cfg.table_K else cfg.snr_db
        scenario = preset("aagnn", K=K, N=cfg.N, L=cfg.M, cell_edge_snr_db=snr)
        inst = problem.sample(scenario, args.batch, seed=0)
        for name in args.models:
            torch.manual_seed(0)
            model = build_model(model_config(cfg, name))
            model.fit_input_scale(inst.h, inst.association, inst.p_max, inst.noise)
            policy = PrecoderPolicy(model)
            optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)

            def step(inst=inst, policy=policy, optimizer=optimizer) -> None:
                loss = -problem.objective(inst, policy(inst)).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()

            counter = FlopCounterMode(display=False)
            with counter:
                loss = -problem.objective(inst, policy(inst)).mean()
                loss.backward()
            model.zero_grad()
            flops = counter.get_total_flops()
            seconds = median_seconds(step, "cpu", args.repeats)
            cpu = []
            for _ in range(args.repeats):
                start = time.process_time()
                step()
                cpu.append(time.process_time() - start)
            rows.append(
                {
                    "model": name,
                    "K": K,
                    "params": count_parameters(model),
                    "gflop_per_step": flops / 1e9,
                    "seconds_per_step": seconds,
                    "cpu_seconds_per_step": statistics.median(cpu),
                    "gflop_per_s": flops / 1e9 / statistics.median(cpu),
                }
            )
            print(json.dumps(rows[-1]), flush=True, file=sys.stderr)
    result = {"threads": args.threads, "batch": args.batch, "recipe": args.recipe}
    result["load_average"] = os.getloadavg()[0]
    print(json.dumps({**result, "rows": rows}))


if __name__ == "__main__":
    main()
