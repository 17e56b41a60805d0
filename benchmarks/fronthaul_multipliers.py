"""Evidence for the multiplier choice of ``cfmimo reproduce egat`` (issue 14, the open decision on mu).

Short EGAT runs of the primal-dual + REINFORCE recipe at one equal step budget, one per multiplier
variant: the shared per-AP ``mu`` [L] (the paper's "mu in R_+^B"), one shared scalar, and a per-instance
``mu`` [train_samples, L], each with dual step sizes ``--dual-lrs``. Every run is scored on the same
fixed test set (C = 40, 60, 90 Mbit/s on the same channels): feasibility without repair (the paper's
Tables II-IV), WSR with repair (bit/s/Hz), the repair loss and APs per UE, test-time association pi > 0.5.

Prints one JSON object: {"config": {...}, "runs": [{"mu", "dual_lr", "seconds", "final_mu_mean",
"test": {C_mbps: {"feasible_unrepaired", "wsr_repaired", "wsr_unrepaired", "repair_loss",
"aps_per_ue"}}}]}.

    python benchmarks/fronthaul_multipliers.py [--steps 300] [--train-samples 1024] [--batch 64]
        [--model egat_fh] [--variants ap:0.1 instance:0.1 instance:1.0] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile

import torch

from cfmimo.config import preset
from cfmimo.learn.fronthaul_recipe import fronthaul_config
from cfmimo.learn.unsupervised import train_unsupervised
from cfmimo.policies.neural import FronthaulPolicy
from cfmimo.problems.fronthaul_wsr import FronthaulWSR
from cfmimo.rng import stream_seed


@torch.no_grad()
def score(model: torch.nn.Module, test, capacities_mbps: list[float]) -> dict[str, dict[str, float]]:
    """Feasibility without repair, WSR with and without repair, repair loss, APs per UE, per C."""
    problem = FronthaulWSR()
    out = {}
    for c in capacities_mbps:
        inst = test.with_capacity(1e6 * c)
        raw = FronthaulPolicy(model)(inst)
        fixed = problem.repair(inst, raw)
        wsr_raw = problem.objective(inst, raw)
        wsr_fixed = problem.objective(inst, fixed)
        out[f"{c:g}"] = {
            "feasible_unrepaired": float((problem.violation(inst, raw) <= 1e-6).double().mean()),
            "wsr_unrepaired": float(wsr_raw.mean()),
            "wsr_repaired": float(wsr_fixed.mean()),
            # relative WSR lost to the repair (0 when the raw WSR is 0: nothing to lose)
            "repair_loss": float(1 - wsr_fixed.sum() / wsr_raw.sum()) if float(wsr_raw.sum()) > 0 else 0.0,
            "aps_per_ue": float(problem.metrics(inst, fixed)["mean_aps_per_ue"].mean()),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="egat_fh")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--train-samples", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--test-samples", type=int, default=200)
    parser.add_argument("--variants", nargs="+", default=["ap:0.1", "instance:0.1", "instance:1.0"])
    parser.add_argument("--capacities", type=float, nargs="+", default=[40.0, 60.0, 90.0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    test = FronthaulWSR().sample(
        preset("egat"), args.test_samples, seed=stream_seed(args.seed, "fronthaul_multipliers/test")
    )
    result = {"config": vars(args), "runs": []}
    for variant in args.variants:
        mu, lr = variant.split(":")
        with tempfile.TemporaryDirectory() as tmp:
            cfg = fronthaul_config(
                model={"name": args.model},
                train_samples=args.train_samples,
                val_samples=64,
                batch_size=args.batch,
                max_steps=args.steps,
                val_every=max(1, args.steps // 3),
                seed=args.seed,
                recipe_options={"mu": mu, "dual_lr": float(lr)},
                out_dir=tmp,
            )
            r = train_unsupervised(cfg)
            # the last weights (equal budgets): the best checkpoint is chosen on repaired WSR only
            from cfmimo.learn.unsupervised import load_unsupervised

            last, _ = load_unsupervised(r["final_checkpoint"])
        state = r["recipe_state"]
        mu_mean = state.get("mu_mean", None)
        if mu_mean is None:
            m = torch.tensor(state["mu"], dtype=torch.float64)
            mu_mean = float(m.mean())
        row = {
            "mu": mu,
            "dual_lr": float(lr),
            "seconds": r["seconds"],
            "steps_per_second": r["steps_per_second"],
            "final_mu_mean": mu_mean,
            "recipe_state": state,
            "test_last": score(last, test, args.capacities),
            "test_best": score(r["model"], test, args.capacities),
        }
        result["runs"].append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
