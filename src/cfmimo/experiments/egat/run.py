"""``cfmimo reproduce egat``: training of the four learned policies (one capacity-conditioned model
each, primal-dual + REINFORCE, ``cfmimo.learn.fronthaul_recipe``), the classical baselines on fixed
test sets (cached), evaluation of Figs. 4-10 and Tables II-V; the outputs are written by ``report.py``.

Layout of ``out``: ``runs/<model>/`` (checkpoints, ``result.json`` once finished), ``baselines/<setting>-
<policy>.json`` (per-sample baseline results, reused when their configuration matches),
``results.json``, ``report.md``, ``*.csv``, ``figures/*.png``.

A *setting* is (L APs, K UEs, C Mbit/s); test sets are sampled once per (L, K) (float64) and the
capacity is set on the same channels, so Table II compares the same channels across C.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cfmimo.config import atomic_write_text, preset
from cfmimo.experiments.common import reproduction_environment
from cfmimo.experiments.egat.config import FIXED_SIZE, EgatConfig
from cfmimo.rng import stream_seed

Log = Callable[[str], None]

FEASIBLE_TOL = 1e-6  # relative excess over (3b)-(3c) counted as feasible (float rounding)


@dataclass(frozen=True)
class Setting:
    """One test setting: L APs, K UEs, fronthaul capacity C (Mbit/s) at every AP."""

    L: int
    K: int
    C_mbps: float

    @property
    def key(self) -> str:
        return f"L{self.L}-K{self.K}-C{self.C_mbps:g}"


def _problem():
    from cfmimo.problems.fronthaul_wsr import FronthaulWSR

    return FronthaulWSR()


def settings(cfg: EgatConfig) -> dict[str, list[Setting]]:
    """The settings of each table / figure (shared settings are evaluated once)."""
    C0, L0, K0 = cfg.capacity_mbps, cfg.train_L, cfg.train_K
    return {
        "table2": [Setting(L0, K0, c) for c in cfg.table2_capacities_mbps],
        "table3": [Setting(L, K0, C0) for L in cfg.table3_L],
        "table4": [Setting(L0, K, C0) for K in cfg.table4_K],
        "fig5": [Setting(L, K0, C0) for L in cfg.fig5_L],
    }


class TestSets:
    """Test instances per (L, K), sampled once (stream ``egat/test/L<L>-K<K>``), float64."""

    def __init__(self, cfg: EgatConfig) -> None:
        self.cfg = cfg
        self._cache: dict[tuple[int, int], Any] = {}

    def __call__(self, s: Setting):
        key = (s.L, s.K)
        if key not in self._cache:
            seed = stream_seed(self.cfg.seed, f"egat/test/L{s.L}-K{s.K}")
            scenario = preset("egat", L=s.L, K=s.K)
            self._cache[key] = _problem().sample(
                scenario, self.cfg.test_samples, seed=seed, dtype=torch.float64
            )
        return self._cache[key].with_capacity(s.C_mbps * 1e6)


# ------------------------------------------------------------------------------------- training
@dataclass
class Run:
    """A finished training run: the model at the end of training (eval mode) and its record."""

    name: str
    model: torch.nn.Module
    record: dict[str, Any]


def _accelerator() -> str:
    return "gpu" if torch.cuda.is_available() else "cpu"


def unsupervised_config(cfg: EgatConfig, name: str, run_dir: Path):
    from cfmimo.learn.fronthaul_recipe import fronthaul_config

    model: dict[str, Any] = {"name": name, **cfg.model_overrides.get(name, {})}
    if name in FIXED_SIZE:
        model.update(num_aps=cfg.train_L, num_ues=cfg.train_K)
    lo, hi = cfg.train_capacity_mbps
    return fronthaul_config(
        model=model,
        scenario={"L": cfg.train_L, "K": cfg.train_K},
        train_samples=cfg.train_samples,
        val_samples=cfg.val_samples,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        max_steps=cfg.steps,
        val_every=cfg.val_every,
        # one seed for all models: the same training / validation sets and capacities
        seed=cfg.seed,
        accelerator=_accelerator(),
        recipe_options={
            "samples": cfg.pg_samples,
            "mu": cfg.mu,
            "dual_lr": cfg.dual_lr,
            "capacity_range_bps": (lo * 1e6, hi * 1e6),
        },
        out_dir=run_dir,
    )


def _train_curve(run_dir: Path) -> list[dict[str, float]]:
    """The logged training rows (step, train_loss, train_objective, ...) of the Lightning CSV log."""
    rows: list[dict[str, float]] = []
    for path in sorted(run_dir.glob("csv/version_*/metrics.csv")):
        with path.open() as f:
            for r in csv.DictReader(f):
                if r.get("train_loss"):
                    rows.append({k: float(v) for k, v in r.items() if v not in ("", None) and k != "epoch"})
    return rows


def train_model(cfg: EgatConfig, name: str, out: Path, log: Log) -> Run:
    """Train (or reuse) one model; the model evaluated is the one at the end of training (as the
    paper's fixed epoch budget), not the best validation checkpoint (chosen on repaired WSR only)."""
    from cfmimo.learn.unsupervised import load_unsupervised, train_unsupervised
    from cfmimo.models import count_parameters

    run_dir = out / "runs" / name
    ucfg = unsupervised_config(cfg, name, run_dir)
    done = run_dir / "result.json"
    if done.is_file():
        record = json.loads(done.read_text())
        if record.get("config") == ucfg.to_dict():
            model, _ = load_unsupervised(record["final_checkpoint"])
            log(f"reusing finished run {name} ({record['steps']} steps)")
            return Run(name, model, record)
    if run_dir.exists():  # unfinished or another configuration: start again
        shutil.rmtree(run_dir)
    result = train_unsupervised(ucfg)
    model, _ = load_unsupervised(result["final_checkpoint"])
    record = {
        "config": ucfg.to_dict(),
        "steps": cfg.steps,
        "final_checkpoint": str(result["final_checkpoint"]),
        "best_checkpoint": str(result["best_checkpoint"]),
        "best_val_objective": result["best_val_objective"],
        "initial_val_objective": result["initial_val_objective"],
        "initial_val_logs": result["initial_val_logs"],
        "history": result["history"],
        "train_curve": _train_curve(run_dir),
        "recipe_state": _summary_state(result["recipe_state"]),
        "seconds": result["seconds"],
        "steps_per_second": result["steps_per_second"],
        "parameters": count_parameters(model),
        "device": _accelerator(),
    }
    atomic_write_text(done, json.dumps(record, indent=1))
    log(
        f"trained {name}: {cfg.steps} steps in {record['seconds']:.1f} s "
        f"({record['steps_per_second']:.2f} steps/s), val repaired WSR "
        f"{record['initial_val_objective']:.2f} -> {record['history'][-1]['val_objective']:.2f}"
    )
    return Run(name, model.eval(), record)


def _summary_state(state: dict[str, Any]) -> dict[str, Any]:
    if "mu" in state:
        mu = torch.tensor(state["mu"], dtype=torch.float64)
        return {"mu": state["mu"], "mu_mean": float(mu.mean()), "mu_max": float(mu.max())}
    return state


# ----------------------------------------------------------------------------------- evaluation
def applies(cfg: EgatConfig, name: str, s: Setting) -> bool:
    """A fixed-size model applies only at its training size."""
    return name not in FIXED_SIZE or (s.L, s.K) == (cfg.train_L, cfg.train_K)


@torch.no_grad()
def evaluate_model(model: torch.nn.Module, inst, seed: int) -> dict[str, Any]:
    """Test-time (pi > 0.5) and sampled decisions of a model: feasibility without repair, WSR with and
    without the repair, the repair loss, APs per UE. Per-sample repaired WSR in ``wsr_samples``."""
    from cfmimo.policies.neural import FronthaulPolicy

    problem = _problem()
    out: dict[str, Any] = {"n": inst.batch}
    for tag, policy in (
        ("", FronthaulPolicy(model)),
        ("sampled_", FronthaulPolicy(model, sample=True, seed=seed)),
    ):
        raw = policy(inst)
        fixed = problem.repair(inst, raw)
        wsr_raw = problem.objective(inst, raw)
        wsr = problem.objective(inst, fixed)
        feasible = problem.violation(inst, raw) <= FEASIBLE_TOL
        out[f"{tag}feasible_unrepaired"] = float(feasible.double().mean())
        out[f"{tag}wsr_unrepaired"] = float(wsr_raw.mean())
        out[f"{tag}wsr"] = float(wsr.mean())
        if not tag:
            out["repair_loss"] = repair_loss(wsr_raw, wsr)
            out["aps_per_ue"] = float(problem.metrics(inst, fixed)["mean_aps_per_ue"].mean())
            out["aps_per_ue_unrepaired"] = float(problem.metrics(inst, raw)["mean_aps_per_ue"].mean())
            out["repaired_feasible"] = float((problem.violation(inst, fixed) <= FEASIBLE_TOL).double().mean())
            out["wsr_samples"] = wsr.tolist()
    return out


def repair_loss(wsr_raw: torch.Tensor, wsr_repaired: torch.Tensor) -> float:
    """Relative WSR lost to the repair, 1 - mean(repaired) / mean(unrepaired) (0 if nothing to lose)."""
    total = float(wsr_raw.sum())
    return 1.0 - float(wsr_repaired.sum()) / total if total > 0 else 0.0


def _baseline_policy(cfg: EgatConfig, name: str):
    from cfmimo.policies.classical.fronthaul import AOSCA, FCZF, PCWMMSE

    if name == "ao_sca_reweighted":
        return AOSCA(variant="reweighted", max_iter=cfg.ao_sca_max_iter)
    if name == "ao_sca_literal":
        return AOSCA(variant="literal", max_iter=cfg.ao_sca_max_iter)
    if name == "pc_wmmse":
        return PCWMMSE(max_iterations=cfg.pc_wmmse_max_iterations)
    if name == "fc_zf":
        return FCZF()
    raise ValueError(f"unknown baseline {name!r}")


def evaluate_baseline(
    cfg: EgatConfig, name: str, s: Setting, tests: TestSets, out: Path, log: Log
) -> dict[str, Any]:
    """One classical baseline on one setting, cached in ``out/baselines`` (reused if the meta matches).

    Returns {"n", "wsr", "wsr_unrepaired", "feasible_unrepaired", "aps_per_ue", "seconds_per_instance",
    "wsr_samples"[, "iterations", "f_mean", "wsr_iter_mean"] (AO-SCA)}; WSR in bit/s/Hz after the
    policy's own feasibility step (AO-SCA: the repair; PC-WMMSE: link dropping; FC-ZF: the back-off).
    """
    ao = name.startswith("ao_sca")
    n = cfg.ao_sca_samples if ao else cfg.test_samples
    meta = {
        "setting": s.key,
        "n": n,
        "test_samples": cfg.test_samples,
        "seed": cfg.seed,
        "policy": repr(_baseline_policy(cfg, name)),
    }
    path = out / "baselines" / f"{s.key}-{name}.json"
    if path.is_file():
        cached = json.loads(path.read_text())
        if cached.get("meta") == meta:
            return cached["result"]
    problem = _problem()
    inst = tests(s).take(slice(0, n))
    policy = _baseline_policy(cfg, name)
    start = time.perf_counter()
    alloc = policy(inst)
    seconds = time.perf_counter() - start
    wsr = problem.objective(inst, alloc)
    if problem.violation(inst, alloc).max() > FEASIBLE_TOL:
        raise RuntimeError(f"{name} on {s.key}: infeasible decision after its feasibility step")
    info = alloc.info
    if ao:
        feasible0, wsr0 = info["feasible_before_repair"], info["wsr_before_repair"]
    elif name == "pc_wmmse":
        feasible0, wsr0 = info["feasible_before_drop"], info["wsr_before_drop"]
    else:  # FC-ZF meets (3b) by construction (the back-off)
        feasible0, wsr0 = torch.ones(n, dtype=torch.bool), wsr
    result: dict[str, Any] = {
        "n": n,
        "wsr": float(wsr.mean()),
        "wsr_unrepaired": float(wsr0.double().mean()),
        "feasible_unrepaired": float(feasible0.double().mean()),
        "aps_per_ue": float(problem.metrics(inst, alloc)["mean_aps_per_ue"].mean()),
        "seconds_per_instance": float(info["seconds"].median()) if ao else seconds / n,
        "wsr_samples": wsr.tolist(),
    }
    if ao:
        result["iterations"] = info["iterations"].double().mean().item()
        result["converged"] = info["converged"].double().mean().item()
        result["f_mean"] = _pad_mean([[q / math.log(2.0) for q in f] for f in info["f"]])
        result["wsr_iter_mean"] = _pad_mean(info["wsr_iter"])
    log(f"{name} on {s.key} ({n} samples): WSR {result['wsr']:.2f} bit/s/Hz in {seconds:.1f} s")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps({"meta": meta, "result": result}))
    return result


def _pad_mean(curves: list[list[float]]) -> list[float]:
    """Mean over instances of per-iteration curves, each held at its last value after it stopped."""
    T = max(len(c) for c in curves)
    return [sum(c[min(t, len(c) - 1)] for c in curves) / len(curves) for t in range(T)]


# ---------------------------------------------------------------------------------- costs
@torch.no_grad()
def latency_ms(models: dict[str, torch.nn.Module], inst, repeats: int, device: str) -> dict[str, float]:
    """Median wall time (ms per sample) of each model's test-time policy (features, model, (36)-(37))
    on the whole batch ``inst``, synchronized on CUDA. The models are timed in turn within each
    repeat (after one warm-up each), so a change of the machine's load hits all of them alike."""
    from cfmimo.learn.unsupervised import move_instance
    from cfmimo.policies.neural import FronthaulPolicy
    from cfmimo.timing import synchronize

    part = move_instance(inst, device)
    policies = {name: FronthaulPolicy(m.to(device).eval()) for name, m in models.items()}
    times: dict[str, list[float]] = {name: [] for name in models}
    for policy in policies.values():  # warm-up
        policy(part)
    synchronize(device)
    for _ in range(repeats):
        for name, policy in policies.items():
            start = time.perf_counter()
            policy(part)
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    for m in models.values():
        m.to("cpu")
    return {name: 1e3 * statistics.median(t) / inst.batch for name, t in times.items()}


def flops_table(cfg: EgatConfig, runs: dict[str, Run]) -> list[dict[str, Any]]:
    """Table V: FLOPs per sample (one forward, matmuls, ``model_cost.count_flops``) of EGAT and ENGNN on
    the (K, L) grid, plus the EGAT variants that explain the ratio (one head; node updates in the last
    layer too) at the default sizes of the trained models."""
    from cfmimo.experiments.model_cost import count_flops
    from cfmimo.models import ModelConfig, build_model
    from cfmimo.models.gnn.fronthaul import EGAT, ENGNN

    rows = []
    names = [m for m in ("egat_fh", "engnn_fh") if m in runs]
    for K in cfg.table5_K:
        for L in cfg.table5_L:
            one = _problem().sample(preset("egat", L=L, K=K), 1, seed=stream_seed(cfg.seed, "egat/flops"))
            row: dict[str, Any] = {"K": K, "L": L}
            for name in names:
                model = runs[name].model
                row[name] = count_flops(model, *model.graph_inputs(one))
            if "egat_fh" in runs:
                base = runs["egat_fh"].model.config
                one_head = build_model(ModelConfig.model_validate({**base.model_dump(), "heads": 1}))
                one_head.fit_inputs(one)
                row["egat_fh_1head"] = count_flops(one_head, *one_head.graph_inputs(one))
                all_nodes = type("EGATAllNodes", (EGAT,), {"reads_nodes": True})(base)
                all_nodes.fit_inputs(one)
                row["egat_fh_last_nodes"] = count_flops(all_nodes, *all_nodes.graph_inputs(one))
                if "engnn_fh" in runs:
                    nb = runs["engnn_fh"].model.config
                    n_all = type("ENGNNAllNodes", (ENGNN,), {"reads_nodes": True})(nb)
                    n_all.fit_inputs(one)
                    row["engnn_fh_last_nodes"] = count_flops(n_all, *n_all.graph_inputs(one))
            rows.append(row)
    return rows


# ------------------------------------------------------------------------------------ experiment
def run(
    config: EgatConfig,
    out: Path,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    train_only: bool = False,
    log: Log = print,
) -> dict[str, Any]:
    """Run the whole reproduction into ``out`` (resumable); returns results.json's content (or
    ``{"runs": [...]}`` with ``train_only``). ``scheduler``/``workers`` are unused (no dataset files)."""
    del scheduler, workers
    with reproduction_environment(config.threads):
        return _run(config, Path(out), train_only, log)


def _run(cfg: EgatConfig, out: Path, train_only: bool, log: Log) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    runs = {name: train_model(cfg, name, out, log) for name in cfg.models}
    if train_only:
        return {"runs": list(runs)}

    tests = TestSets(cfg)
    groups = settings(cfg)
    unique = list(dict.fromkeys(s for ss in groups.values() for s in ss))
    evaluation: dict[str, dict[str, Any]] = {}  # setting key -> policy -> result
    for s in unique:
        inst = tests(s)
        row: dict[str, Any] = {}
        for name, r in runs.items():
            if applies(cfg, name, s):
                row[name] = evaluate_model(r.model, inst, seed=stream_seed(cfg.seed, f"egat/sampled/{s.key}"))
        for name in ("ao_sca_reweighted", "ao_sca_literal", "pc_wmmse", "fc_zf"):
            row[name] = evaluate_baseline(cfg, name, s, tests, out, log)
        evaluation[s.key] = row

    # Fig. 10: inference time per sample vs K (L = train_L, C = capacity_mbps)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    latency: dict[str, dict[str, dict[str, float]]] = {d: {} for d in devices}
    for s in groups["table4"]:
        inst = tests(s).take(slice(0, cfg.latency_batch))
        for dev in devices:
            models = {name: r.model for name, r in runs.items() if applies(cfg, name, s)}
            latency[dev][str(s.K)] = latency_ms(models, inst, cfg.latency_repeats, dev)
    flops = flops_table(cfg, runs)

    from cfmimo.experiments.egat.report import write_outputs

    return write_outputs(
        cfg, out, runs, groups, evaluation, latency, flops, wall_time_s=time.perf_counter() - start
    )
