"""Benchmark: the ee-gnn GNN with nested SINRnets (issue 13). Prints one JSON object.

Default (speed): at (L, K) = (5, 10), (10, 10), (15, 15) (ee-gnn preset, float32, CPU), the default
``ee_gnn`` model (d_mod 16, sinr_depth 2, rounds 2): parameter count, training steps per second of
the support recipe (batch ``--batch`` 64, S ``--samples`` Monte Carlo powers, Adam; forward, loss (7),
backward, step; the Lightning loop excluded) and inference latency per sample (batch ``--batch``, no
grad; and batch 1).

``--train L,K``: a short real run of the recipe through ``train_unsupervised`` (``--steps`` steps,
``--train-samples``/``--test-samples`` instances from seeds, lr ``--lr`` (1e-3) -> ``--lr-final`` (1e-7), batch 64,
h = 50, delta_kappa = 1e-3), then the best checkpoint's policy (test-time power a, and the midpoint
ablation) against equal power and SCA (from equal power, tol 1e-4) on the same test instances: mean
EE (Mbit/J), GNN / SCA, time per instance, the test support width.

Usage: python benchmarks/ee_gnn.py [--sizes 5x10,10x10,15x15] [--steps 20]
       python benchmarks/ee_gnn.py --train 5,10 [--steps 500] [--out runs/ee_gnn_bench]
       python benchmarks/ee_gnn.py --evaluate runs/ee_gnn_bench/checkpoints/last.ckpt
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from cfmimo import __version__
from cfmimo.config import preset
from cfmimo.learn.support import KappaRule, SupportConfig, support_loss
from cfmimo.learn.unsupervised import (
    UnsupervisedConfig,
    load_unsupervised,
    sample_sets,
    train_unsupervised,
)
from cfmimo.models import ModelConfig, build_model, count_parameters
from cfmimo.policies.classical.energy import SCA, EqualPower
from cfmimo.policies.neural import EEPowerPolicy
from cfmimo.problems.base import Allocation
from cfmimo.problems.energy_efficiency import EnergyEfficiency


def speed(L: int, K: int, args) -> dict:
    problem = EnergyEfficiency()
    inst = problem.sample(preset("ee-gnn", L=L, K=K), args.batch, seed=0)
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="ee_gnn"))
    model.fit_input_stats(inst.gains, inst.serving)
    policy = EEPowerPolicy(model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    rule = KappaRule(SupportConfig(h=50, delta_kappa=1e-3))
    S = args.samples
    repeated = inst.take(torch.arange(inst.batch).repeat(S))
    cap = inst.cap[..., None].expand(-1, -1, K)
    gen = torch.Generator().manual_seed(0)

    def step() -> None:
        a, ell = policy.support(inst)
        loss, parts = support_loss(
            lambda p: problem.objective(repeated, Allocation(link_power=p)),
            a,
            ell,
            cap,
            rule.kappa[0],
            S,
            generator=gen,
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        rule.update(parts["psi"])

    step()  # warm-up
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    train_s = (time.perf_counter() - start) / args.steps
    model.eval()
    with torch.no_grad():
        policy(inst)
        start = time.perf_counter()
        for _ in range(args.repeats):
            policy(inst)
        batched = (time.perf_counter() - start) / args.repeats / inst.batch
        one = inst.take(torch.arange(1))
        start = time.perf_counter()
        for _ in range(args.repeats):
            policy(one)
        single = (time.perf_counter() - start) / args.repeats
    return {
        "L": L,
        "K": K,
        "params": count_parameters(model),
        "train_steps_per_s": 1.0 / train_s,
        "train_batch": args.batch,
        "mc_samples": S,
        "inference_ms_per_sample_batched": 1e3 * batched,
        "inference_ms_batch1": 1e3 * single,
    }


def compare(cfg, model) -> dict:
    """The model's policy (test-time power a, midpoint ablation), equal power and SCA (float64) on
    the config's test (validation) instances: mean EE, ms per instance, feasibility, support width."""
    problem = EnergyEfficiency()
    _, test = sample_sets(cfg, problem)
    rows = {}
    with torch.no_grad():
        for name, policy in (
            ("gnn_a", EEPowerPolicy(model, power="low")),
            ("gnn_midpoint", EEPowerPolicy(model, power="midpoint")),
            ("equal", EqualPower()),
            ("sca", SCA()),
        ):
            inst = test.to(torch.float64) if name == "sca" else test
            start = time.perf_counter()
            alloc = policy(inst)
            seconds = time.perf_counter() - start
            rows[name] = {
                "mean_ee": float(problem.objective(inst, alloc).mean()),
                "ms_per_instance": 1e3 * seconds / test.batch,
                "feasible": bool(float(problem.violation(inst, alloc).max()) <= 1e-6),
            }
            if "support_width" in alloc.info:
                rows[name]["support_width"] = float(alloc.info["support_width"].mean())
    rows["gnn_over_sca"] = rows["gnn_a"]["mean_ee"] / rows["sca"]["mean_ee"]
    return rows


def train_and_compare(L: int, K: int, args) -> dict:

    cfg = dict(
        model=dict(name="ee_gnn", d_mod=args.d_mod, rounds=args.rounds, sinr_depth=args.sinr_depth),
        problem="energy_efficiency",
        preset="ee-gnn",
        scenario={"L": L, "K": K},
        train_samples=args.train_samples,
        val_samples=args.test_samples,
        batch_size=64,
        lr=args.lr,
        lr_final=args.lr_final,
        max_steps=args.steps,
        val_every=max(args.steps // 5, 1),
        support=dict(h=50, delta_kappa=1e-3, samples=args.samples),
        out_dir=args.out,
        seed=0,
    )
    result = train_unsupervised(cfg)
    rows = compare(UnsupervisedConfig.from_dict(cfg), result["model"])
    return {
        "L": L,
        "K": K,
        "steps": args.steps,
        "train_samples": args.train_samples,
        "test_samples": args.test_samples,
        "train_seconds": result["seconds"],
        "train_steps_per_s": result["steps_per_second"],
        "initial_val_ee": result["initial_val_objective"],
        "best_val_ee": result["best_val_objective"],
        "history": [
            {k: v for k, v in r.items() if k in ("step", "val_objective", "val/support_width")}
            for r in result["history"]
        ],
        "policies": rows,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="5x10,10x10,15x15")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--samples", type=int, default=8, help="Monte Carlo samples S of loss (7)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps (speed) / training steps (--train)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--train", default=None, help="L,K: train and compare with equal power and SCA")
    ap.add_argument("--train-samples", type=int, default=2048)
    ap.add_argument("--test-samples", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--d-mod", type=int, default=16, help="--train: model width per category")
    ap.add_argument("--rounds", type=int, default=2, help="--train: GNN rounds")
    ap.add_argument("--sinr-depth", type=int, default=2, help="--train: SINRnet layers")
    ap.add_argument("--lr-final", type=float, default=1e-7)
    ap.add_argument("--out", default="runs/ee_gnn_bench")
    ap.add_argument("--evaluate", default=None, help="a checkpoint: compare it on its config's test set")
    args = ap.parse_args()
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    out: dict = {"benchmark": "ee_gnn", "cfmimo": __version__, "torch": torch.__version__, "device": "cpu"}
    out["threads"] = torch.get_num_threads()
    if args.evaluate:
        model, cfg = load_unsupervised(args.evaluate)
        out["evaluate"] = {"checkpoint": args.evaluate, "scenario": cfg.scenario, **compare(cfg, model)}
    elif args.train:
        L, K = (int(x) for x in args.train.split(","))
        args.steps = args.steps or 500
        out["train"] = train_and_compare(L, K, args)
    else:
        args.steps = args.steps or 20
        out["speed"] = [speed(*(int(x) for x in s.split("x")), args) for s in args.sizes.split(",")]
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
