"""``cfmimo reproduce ee-gnn``: data from seed streams, training of the GNN with the paper's recipe
(loss (7), rule (8), Adam 1e-3 -> 1e-7, batch 64, eq. (13)) through ``learn.unsupervised``, and
evaluation of every policy on the same test samples; the outputs are ``report.py``.

Layout of ``out``: ``runs/<size>-<support>-e<eps>_<eps'>-s<seed>-t<steps>/`` (checkpoints, Lightning
CSV log, ``result.json`` once finished), ``results.json``, ``report.md``, ``*.csv``,
``figures/*.png``. A finished run (its ``result.json`` with the same training config) is reused on a
re-run with the same ``--out``; a run cut off before it finished resumes from its last checkpoint
(written at every validation, with the optimizer, schedule and rule (8)'s state; the batch order
after the cut differs from an uninterrupted run's), or restarts if it had none.
"""

from __future__ import annotations

import csv
import json
import platform
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
from cfmimo.experiments.ee_gnn.config import EEGnnConfig, parse_size
from cfmimo.models import count_parameters
from cfmimo.rng import stream_seed

Log = Callable[[str], None]


@dataclass(frozen=True)
class Size:
    """One Table II configuration: L APs, K UEs."""

    L: int
    K: int

    @property
    def key(self) -> str:
        return f"{self.L}x{self.K}"

    @classmethod
    def parse(cls, key: str) -> Size:
        return cls(*parse_size(key))


def _problem(kind: str = "sum"):
    from cfmimo.problems.energy_efficiency import EnergyEfficiency

    return EnergyEfficiency(kind)


def sample_set(cfg: EEGnnConfig, size: Size, split: str, n: int):
    """n instances of the ee-gnn preset at ``size`` from the stream (cfg.seed, ee-gnn/<split>/<size>)."""
    seed = stream_seed(cfg.seed, f"ee-gnn/{split}/{size.key}")
    return _problem().sample(preset("ee-gnn", L=size.L, K=size.K), n, seed=seed)


def cpu_name() -> str:
    """The CPU model (``/proc/cpuinfo``), for the timing claims."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# ------------------------------------------------------------------------------------- training
@dataclass
class Run:
    """A finished training run (best checkpoint's model) and its record."""

    tag: str
    model: torch.nn.Module
    record: dict[str, Any]


def unsupervised_config(
    cfg: EEGnnConfig,
    size: Size,
    norm: tuple[float, float],
    scale: str,
    seed_index: int,
    steps: int,
    run_dir: Path,
):
    from cfmimo.learn.unsupervised import UnsupervisedConfig

    return UnsupervisedConfig.from_dict(
        {
            "model": {
                "name": "ee_gnn",
                "d_mod": cfg.d_mod,
                "sinr_depth": cfg.sinr_depth,
                "rounds": cfg.rounds,
                "norm_eps_mean": norm[0],
                "norm_eps_std": norm[1],
                "support_scale": scale,
            },
            "problem": "energy_efficiency",
            "preset": "ee-gnn",
            "scenario": {"L": size.L, "K": size.K},
            "train_samples": cfg.train_samples,
            "val_samples": cfg.val_samples,
            "batch_size": cfg.batch_size,
            "lr": cfg.schedule(steps)[0],
            "lr_final": cfg.schedule(steps)[1],
            "max_steps": steps,
            "val_every": min(cfg.val_every, steps),
            "support": {
                "h": cfg.h,
                "delta_kappa": cfg.kappa_step(steps),
                "samples": cfg.mc_samples,
            },
            "seed": stream_seed(cfg.seed, "ee-gnn/init", seed_index) % (2**31),
            "accelerator": "gpu" if torch.cuda.is_available() else "cpu",
            "out_dir": str(run_dir),
        }
    )


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    """A training config without the fields that do not change the trained model's recipe."""
    return {k: v for k, v in config.items() if k not in ("accelerator", "out_dir", "progress_bar")}


def _train_log(run_dir: Path) -> list[dict[str, float]]:
    """The Lightning CSV log's training rows (step, train_objective, train_psi, train_kappa)."""
    rows = []
    for path in sorted(run_dir.glob("csv/version_*/metrics.csv")):
        with path.open() as f:
            for r in csv.DictReader(f):
                if r.get("train_kappa"):
                    rows.append(
                        {
                            k: float(r[k])
                            for k in ("step", "train_objective", "train_psi", "train_kappa")
                            if r.get(k)
                        }
                    )
    return rows


def train_run(
    cfg: EEGnnConfig,
    size: Size,
    norm: tuple[float, float],
    scale: str,
    seed_index: int,
    data: Callable[[], tuple[Any, Any]],
    out: Path,
    log: Log,
) -> Run:
    """Train (or reuse) one run; ``data()`` returns the (train, val) instances of ``size``."""
    from cfmimo.learn.unsupervised import load_unsupervised, train_unsupervised

    base = f"{size.key}-{scale}-e{norm[0]:g}_{norm[1]:g}-s{seed_index}"
    cuda = torch.cuda.is_available()
    # a finished GPU run (the paper's steps) is preferred, then a finished CPU-budget run; on a CUDA
    # machine only the GPU run counts (a CPU-budget run there is not what --train-only asks for)
    wanted = (cfg.gpu_steps, cfg.max_steps) if not cuda else (cfg.steps(cuda),)
    for steps in dict.fromkeys(s for s in wanted if s > 0):
        run_dir = out / "runs" / f"{base}-t{steps}"
        done = run_dir / "result.json"
        if done.is_file():
            record = json.loads(done.read_text())
            want = unsupervised_config(cfg, size, norm, scale, seed_index, steps, run_dir)
            if _comparable(record.get("config", {})) == _comparable(want.to_dict()):
                model, _ = load_unsupervised(run_dir / record["best_checkpoint"])
                return Run(f"{base}-t{steps}", model, record)
    steps = cfg.steps(cuda)
    tag = f"{base}-t{steps}"
    run_dir = out / "runs" / tag
    ucfg = unsupervised_config(cfg, size, norm, scale, seed_index, steps, run_dir)
    started = run_dir / "config.json"
    resume = (
        started.is_file()
        and _comparable(json.loads(started.read_text())) == _comparable(ucfg.to_dict())
        and (run_dir / "checkpoints" / "last.ckpt").is_file()
    )
    if run_dir.exists() and not resume:  # another configuration, or cut before its first checkpoint
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(started, json.dumps(ucfg.to_dict(), indent=1))
    if resume:
        log(f"resuming {tag} from its last checkpoint")
    train, val = data()
    result = train_unsupervised(ucfg, train=train, val=val, resume=resume)
    trace = _train_log(run_dir)
    record = {
        "config": ucfg.to_dict(),
        "steps": steps,
        "best_checkpoint": str(Path(result["best_checkpoint"]).relative_to(run_dir)),
        "best_val_objective": result["best_val_objective"],
        "initial_val_objective": result["initial_val_objective"],
        "history": result["history"],
        "train_log": trace,
        "final_kappa": trace[-1]["train_kappa"] if trace else None,
        "seconds": result["seconds"],
        "steps_per_second": result["steps_per_second"],
        "resumed_from_step": result["resumed_from_step"],
        "device": "cuda" if cuda else "cpu",
        "parameters": count_parameters(result["model"]),
    }
    atomic_write_text(run_dir / "result.json", json.dumps(record, indent=1))
    log(
        f"trained {tag}: val EE {record['initial_val_objective']:.2f} -> {record['best_val_objective']:.2f} "
        f"Mbit/J in {record['seconds']:.0f} s ({record['steps_per_second']:.2f} steps/s)"
    )
    return Run(tag, result["model"].cpu().eval(), record)


# ----------------------------------------------------------------------------------- evaluation
def evaluate(
    policy, instance, chunk: int, dtype: torch.dtype | None = None, *, grad: bool = False
) -> dict[str, Any]:
    """Score a policy on every sample, in chunks: per-sample ``ee`` (eq. (1)), ``ee_global``,
    ``active_ues``, ``power_w`` [n], per-UE ``rate`` [n, K] (Mbit/s), the policy's wall time on
    the whole set (``seconds``, scoring excluded), the largest violation and, for the GNN policies,
    the mean test support width."""
    problem = _problem()
    inst = instance if dtype is None else instance.to(dtype)
    parts: dict[str, list[torch.Tensor]] = {
        k: [] for k in ("ee", "ee_global", "active_ues", "power_w", "rate")
    }
    seconds, violation, widths = 0.0, 0.0, []
    for i in range(0, inst.batch, chunk):
        part = inst.take(slice(i, i + chunk))
        start = time.perf_counter()
        with torch.set_grad_enabled(grad):  # the multi-start runs Adam inside (needs autograd)
            alloc = policy(part)
        seconds += time.perf_counter() - start
        m = problem.metrics(part, alloc)
        parts["ee"].append(m["ee_sum"].double())
        parts["ee_global"].append(m["ee_global"].double())
        parts["active_ues"].append(m["active_ues"].double())
        parts["power_w"].append(m["total_power_w"].double())
        parts["rate"].append(m["rate"].double())
        violation = max(violation, float(problem.violation(part, alloc).max()))
        if alloc.info and "support_width" in alloc.info:
            widths.append(alloc.info["support_width"].double())
    out: dict[str, Any] = {k: torch.cat(v) for k, v in parts.items()}
    out["seconds"] = seconds
    out["violation"] = violation
    out["support_width"] = float(torch.cat(widths).mean()) if widths else None
    return out


@torch.no_grad()
def time_policy(policy, instance, chunk: int, repeats: int) -> float:
    """Median wall time (s) of the policy over the whole set (chunked), after one warm-up pass."""
    times = []
    for r in range(repeats + 1):
        start = time.perf_counter()
        for i in range(0, instance.batch, chunk):
            policy(instance.take(slice(i, i + chunk)))
        if r:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


# ------------------------------------------------------------------------------------ experiment
def run(
    config: EEGnnConfig,
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


def _run(cfg: EEGnnConfig, out: Path, train_only: bool, log: Log) -> dict[str, Any]:
    from cfmimo.policies.classical.energy import SCA, EqualPower, MultiStart, RandomPower, SCADinkelbach
    from cfmimo.policies.neural import EEPowerPolicy

    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    trained: list[str] = []
    per_size: dict[str, dict[str, Any]] = {}
    fig4: dict[str, dict[str, Any]] = {}
    for key in cfg.sizes:
        size = Size.parse(key)
        cache: dict[str, Any] = {}

        def data(size: Size = size, cache: dict[str, Any] = cache) -> tuple[Any, Any]:
            if "train" not in cache:
                cache["train"] = sample_set(cfg, size, "train", cfg.train_samples)
                cache["val"] = sample_set(cfg, size, "val", cfg.val_samples)
            return cache["train"], cache["val"]

        main = [train_run(cfg, size, cfg.norm, "linear", s, data, out, log) for s in range(cfg.seeds)]
        logs = [
            train_run(cfg, size, cfg.norm, "log", s, data, out, log) for s in range(cfg.log_support_seeds)
        ]
        trained += [r.tag for r in (*main, *logs)]
        if key == cfg.fig4_size:
            for norm in cfg.fig4_norms:
                r = main[0] if norm == cfg.norm else train_run(cfg, size, norm, "linear", 0, data, out, log)
                trained.append(r.tag)
                fig4[f"{norm[0]:g},{norm[1]:g}"] = {"norm": list(norm), "run": r}
        cache.clear()
        per_size[key] = {"size": size, "main": main, "log": logs}
    if train_only:
        return {"runs": sorted(set(trained))}

    # ---- evaluation on the same test samples per size
    device = cpu_name()
    results: dict[str, Any] = {}
    for key, entry in per_size.items():
        size = entry["size"]
        test = sample_set(cfg, size, "test", cfg.test_samples)
        ev: dict[str, Any] = {"gnn": [], "gnn_midpoint": [], "gnn_log": [], "gnn_log_midpoint": []}
        for r in entry["main"]:
            ev["gnn"].append(evaluate(EEPowerPolicy(r.model), test, cfg.eval_chunk))
            ev["gnn_midpoint"].append(
                evaluate(EEPowerPolicy(r.model, power="midpoint"), test, cfg.eval_chunk)
            )
        for r in entry["log"]:
            ev["gnn_log"].append(evaluate(EEPowerPolicy(r.model), test, cfg.eval_chunk))
            ev["gnn_log_midpoint"].append(
                evaluate(EEPowerPolicy(r.model, power="midpoint"), test, cfg.eval_chunk)
            )
        ev["equal"] = evaluate(EqualPower(), test, cfg.eval_chunk)
        ev["random"] = evaluate(RandomPower(seed=cfg.seed), test, cfg.eval_chunk)
        ev["sca"] = evaluate(SCA(tol=cfg.sca_tol), test, cfg.eval_chunk, dtype=torch.float64)
        log(
            f"{key}: SCA on {test.batch} samples {ev['sca']['seconds']:.1f} s, mean EE {float(ev['sca']['ee'].mean()):.3f}"
        )
        m = min(cfg.multistart_samples, test.batch)
        if m:
            sub = test.take(slice(0, m))
            ev["multistart"] = evaluate(
                MultiStart(steps=cfg.multistart_steps, sca_tol=cfg.sca_tol, seed=cfg.seed),
                sub,
                cfg.eval_chunk,
                torch.float64,
                grad=True,
            )
            log(f"{key}: multi-start on {m} samples {ev['multistart']['seconds']:.1f} s")
        d = min(cfg.dinkelbach_samples, test.batch)
        if d:
            ev["dinkelbach"] = evaluate(
                SCADinkelbach(), test.take(slice(0, d)), cfg.eval_chunk, torch.float64
            )
        gnn_seconds = [
            time_policy(EEPowerPolicy(r.model), test, cfg.eval_chunk, cfg.timing_repeats)
            for r in entry["main"]
        ]
        one = test.take(slice(0, 1))
        latency_ms = 1e3 * statistics.median(
            time_policy(EEPowerPolicy(entry["main"][0].model), one, 1, cfg.timing_repeats) for _ in range(3)
        )
        results[key] = {
            "size": size,
            "eval": ev,
            "main": entry["main"],
            "log": entry["log"],
            "gnn_seconds": gnn_seconds,
            "latency_ms": latency_ms,
            "test_samples": test.batch,
            "multistart_samples": m,
            "dinkelbach_samples": d,
        }

    from cfmimo.experiments.ee_gnn.report import write_outputs

    return write_outputs(cfg, out, results, fig4, device=device, wall_time_s=time.perf_counter() - start)
