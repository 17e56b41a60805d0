"""``cfmimo reproduce aagnn``: data (WMMSE and closed-form references on fixed sets, cached in the
out dir), training of every model with ``cfmimo.learn.unsupervised`` (a step budget; finished runs
are reused on a re-run), evaluation of Figs. 4-6 and Table I; the report is ``report.py``.

Layout of ``out``: ``data/<setting>-<split>.pt`` (references per sample), ``runs/<tag>/``
(checkpoints, ``result.json`` once finished), ``results.json``, ``report.md``, ``*.csv``,
``figures/*.png``.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cfmimo.config import atomic_write_text, preset
from cfmimo.experiments.aagnn.config import BASELINES, FIXED_N, AagnnConfig
from cfmimo.experiments.common import reproduction_environment
from cfmimo.models import ModelConfig, count_parameters
from cfmimo.rng import stream_seed

Log = Callable[[str], None]


# ----------------------------------------------------------------------------------------- data
@dataclass(frozen=True)
class Setting:
    """One scenario of the experiments: K UEs, N antennas per AP, M APs, cell-edge SNR (dB)."""

    K: int
    N: int
    M: int
    snr_db: float

    @property
    def key(self) -> str:
        return f"K{self.K}-N{self.N}-M{self.M}-snr{self.snr_db:g}"

    def scenario(self):
        return preset("aagnn", K=self.K, N=self.N, L=self.M, cell_edge_snr_db=self.snr_db)


def _problem():
    from cfmimo.problems.sumrate_precoding import SumRatePrecoding

    return SumRatePrecoding()


def sample_set(cfg: AagnnConfig, setting: Setting, split: str, n: int, index: int = 0, chunk: int = 1_000):
    """n instances of a setting from the stream (cfg.seed, aagnn/<split>/<setting>, index), drawn
    ``chunk`` at a time (a sample depends only on its seed and index, so the chunks change nothing):
    ``sim.memory`` refuses 12,800 setups at K = 16 in one call (it budgets the scenario's 100
    realizations, ~32 GiB, though perfect CSI draws one)."""
    from cfmimo.problems.sumrate_precoding import PrecodingInstance

    seed = stream_seed(cfg.seed, f"aagnn/{split}/{setting.key}", index)
    parts = [
        _problem().sample(setting.scenario(), min(chunk, n - i), seed=seed, first_index=i)
        for i in range(0, n, chunk)
    ]
    if len(parts) == 1:
        return parts[0]
    fields = ("h", "association", "p_max", "noise", "weights")
    return PrecodingInstance(*(torch.cat([getattr(p, f) for p in parts]) for f in fields))


@torch.no_grad()
def _objective(policy, instance, chunk: int = 250) -> torch.Tensor:
    """Sum rate per sample [n] (bit/s/Hz), evaluated in chunks."""
    problem = _problem()
    out = [
        problem.objective(part, policy(part))
        for part in (instance.take(slice(i, i + chunk)) for i in range(0, instance.batch, chunk))
    ]
    return torch.cat(out).double()


def references(cfg: AagnnConfig, setting: Setting, split: str, n: int, out: Path, log: Log) -> dict[str, Any]:
    """{"instance", "wmmse", "rzf", "zf", "mrt" [n] sum rates, "wmmse_seconds"}; the sum rates are
    cached in ``out/data`` (WMMSE is the slowest part) and reused when the configuration matches."""
    from cfmimo.policies.classical.precoders import MRTPrecoder, RZFPrecoder, ZFPrecoder
    from cfmimo.policies.classical.wmmse import WMMSE

    instance = sample_set(cfg, setting, split, n)
    meta = {
        "setting": setting.key,
        "split": split,
        "n": n,
        "seed": cfg.seed,
        "random_starts": cfg.wmmse_random_starts,
        "max_iterations": cfg.wmmse_max_iterations,
    }
    path = out / "data" / f"{setting.key}-{split}.pt"
    if path.is_file():
        cached = torch.load(path, weights_only=True)
        if cached.get("meta") == meta:
            return {"instance": instance, **{k: v for k, v in cached.items() if k != "meta"}}
    wmmse = WMMSE(
        random_starts=cfg.wmmse_random_starts, max_iterations=cfg.wmmse_max_iterations, seed=cfg.seed
    )
    start = time.perf_counter()
    values = {"wmmse": _objective(wmmse, instance, chunk=100)}
    seconds = time.perf_counter() - start
    values["rzf"] = _objective(RZFPrecoder("per_ap"), instance)
    values["zf"] = _objective(ZFPrecoder("per_ap"), instance)
    values["mrt"] = _objective(MRTPrecoder("per_ap"), instance)
    values["wmmse_seconds"] = seconds
    log(
        f"WMMSE on {setting.key} {split} ({n} samples): {seconds:.1f} s, mean {float(values['wmmse'].mean()):.2f}"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save({"meta": meta, **values}, tmp)
    os.replace(tmp, path)
    return {"instance": instance, **values}


def normalized(values: torch.Tensor, wmmse: torch.Tensor) -> dict[str, float]:
    """Ratio of means (the headline) and mean of per-sample ratios, both vs WMMSE."""
    return {
        "ratio_of_means": float(values.mean() / wmmse.mean()),
        "mean_ratio": float((values / wmmse).mean()),
        "sum_rate": float(values.mean()),
    }


# ------------------------------------------------------------------------------------- training
@dataclass
class Run:
    """A finished training run (best checkpoint's model) and its training record."""

    tag: str
    model: torch.nn.Module
    record: dict[str, Any]


def model_config(cfg: AagnnConfig, name: str, override: dict[str, Any] | None = None) -> ModelConfig:
    fields = {"name": name, **cfg.model_overrides.get(name, {}), **(override or {})}
    if name in FIXED_N:
        fields.setdefault("antennas", cfg.N)
    return ModelConfig.model_validate(fields)


def _accelerator() -> str:
    return "gpu" if torch.cuda.is_available() else "cpu"


def train_run(
    cfg: AagnnConfig,
    setting: Setting,
    model: ModelConfig,
    n: int,
    seed_index: int,
    pools: dict,
    val,
    out: Path,
    log: Log,
    width_tag: str = "",
) -> Run:
    """Train (or reuse) one model on the first n samples of a seed's training pool."""
    from cfmimo.learn.unsupervised import (
        UnsupervisedConfig,
        load_unsupervised,
        resolve_model,
        train_unsupervised,
    )

    tag = f"{setting.key}-{model.name}{width_tag}-n{n}-s{seed_index}"
    run_dir = out / "runs" / tag
    # resolved: the model's own defaults (widths, AAGNN's activation, the MRT init) are recorded
    ucfg = resolve_model(
        UnsupervisedConfig(
            model=model,
            scenario={"K": setting.K, "N": setting.N, "L": setting.M, "cell_edge_snr_db": setting.snr_db},
            train_samples=n,
            val_samples=val.batch,
            batch_size=cfg.batch_size,
            lr=cfg.lr,
            lr_warmup_steps=cfg.lr_warmup_steps,
            max_steps=cfg.max_steps,
            val_every=cfg.val_every,
            seed=stream_seed(cfg.seed, "aagnn/init", seed_index) % (2**31),
            accelerator=_accelerator(),
            out_dir=run_dir,
        )
    )
    done = run_dir / "result.json"
    if done.is_file():
        record = json.loads(done.read_text())
        if record.get("config") == ucfg.to_dict():
            trained, _ = load_unsupervised(record["best_checkpoint"])
            return Run(tag, trained, record)
    # a run cut off after its first checkpoint (same configuration) resumes from last.ckpt; another
    # configuration, or a run cut before any checkpoint, starts again
    started = run_dir / "config.json"
    resume = (
        started.is_file()
        and json.loads(started.read_text()) == ucfg.to_dict()
        and (run_dir / "checkpoints" / "last.ckpt").is_file()
    )
    if run_dir.exists() and not resume:
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(started, json.dumps(ucfg.to_dict(), indent=1))
    if resume:
        log(f"resuming {tag} from its last checkpoint")
    key = (setting.key, seed_index)
    if key not in pools or pools[key].batch < n:
        pools[key] = sample_set(cfg, setting, "train", n, seed_index)
    result = train_unsupervised(ucfg, train=pools[key].take(slice(0, n)), val=val, resume=resume)
    record = {
        "config": ucfg.to_dict(),
        "best_checkpoint": str(result["best_checkpoint"]),
        "best_val_objective": result["best_val_objective"],
        "initial_val_objective": result["initial_val_objective"],
        "history": result["history"],
        "seconds": result["seconds"],
        "steps_per_second": result["steps_per_second"],
        "parameters": count_parameters(result["model"]),
        "resumed_from_step": result["resumed_from_step"],
    }
    atomic_write_text(done, json.dumps(record, indent=1))
    log(
        f"trained {tag}: val sum rate {record['initial_val_objective']:.2f} -> "
        f"{record['best_val_objective']:.2f} in {record['seconds']:.1f} s"
    )
    return Run(tag, result["model"].cpu().eval(), record)


def evaluate(run: Run, instance) -> torch.Tensor:
    from cfmimo.policies.neural import PrecoderPolicy

    return _objective(PrecoderPolicy(run.model), instance)


def time_to_target(run: Run, val_wmmse_mean: float, target: float, max_steps: int) -> float | None:
    """Seconds until the first validation at >= target x WMMSE (val set), as the share of the run's
    steps (time per step is near constant); None if never reached."""
    for row in run.record["history"]:
        if row.get("val_objective", 0.0) >= target * val_wmmse_mean:
            return run.record["seconds"] * row["step"] / max_steps
    return None


# -------------------------------------------------------------------------------------- latency
@torch.no_grad()
def latency(model: torch.nn.Module, instance, batch: int, repeats: int, device: str) -> float:
    """Median wall time (ms) of one forward pass on ``batch`` samples (CUDA synchronized)."""
    from cfmimo.learn.unsupervised import move_instance

    model = model.to(device).eval()
    part = move_instance(instance.take(slice(0, batch)), device)
    args = (part.h, part.association, part.p_max, part.noise)
    from cfmimo.timing import median_seconds

    ms = 1e3 * median_seconds(lambda: model(*args), device, repeats)
    model.to("cpu")
    return ms


# ------------------------------------------------------------------------------------ experiment
def _mean_std(xs: list[float]) -> tuple[float, float]:
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def run(
    config: AagnnConfig,
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


def _run(cfg: AagnnConfig, out: Path, train_only: bool, log: Log) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    seeds = range(cfg.seeds)
    rows: dict[str, list[dict[str, Any]]] = {"fig4": [], "fig5a": [], "fig5b": [], "fig6": [], "table1": []}
    trained: list[str] = []
    refs_cache: dict[tuple[str, str], dict[str, Any]] = {}

    def refs(setting: Setting, split: str) -> dict[str, Any]:
        n = cfg.test_samples if split == "test" else cfg.val_samples
        if (setting.key, split) not in refs_cache:
            refs_cache[(setting.key, split)] = references(cfg, setting, split, n, out, log)
        return refs_cache[(setting.key, split)]

    def baseline_rows(fig: str, setting: Setting, x: dict[str, Any]) -> None:
        r = refs(setting, "test")
        for name in ("wmmse", *BASELINES):
            rows[fig].append({**x, "model": name, "seed": -1, **normalized(r[name], r["wmmse"])})

    # ---- Fig. 4 (and the K = 8, 12,800-sample models that Figs. 5-6 reuse)
    final: dict[tuple[str, int], Run] = {}
    pools: dict = {}
    for K in cfg.fig4_K:
        setting = Setting(K, cfg.N, cfg.M, cfg.snr_db)
        val = refs(setting, "val")["instance"]
        test = None if train_only else refs(setting, "test")
        pools.clear()
        for n in cfg.fig4_samples:
            if test is not None:
                baseline_rows("fig4", setting, {"K": K, "samples": n})
            for name in cfg.models:
                for s in seeds:
                    r = train_run(cfg, setting, model_config(cfg, name), n, s, pools, val, out, log)
                    trained.append(r.tag)
                    if K == cfg.train_K and n == cfg.train_samples:
                        final[(name, s)] = r
                    if test is not None:
                        rows["fig4"].append(
                            {
                                "K": K,
                                "samples": n,
                                "model": name,
                                "seed": s,
                                **normalized(evaluate(r, test["instance"]), test["wmmse"]),
                            }
                        )
    pools.clear()

    # ---- Table I training: ascending sample counts until the target is met (mean over seeds)
    tsetting = Setting(cfg.table_K, cfg.N, cfg.M, cfg.table_snr_db)
    tval = refs(tsetting, "val")
    ttest = refs(tsetting, "test")
    table: dict[str, dict[str, Any]] = {}
    for name in cfg.models:
        reached_n, runs_at = None, []
        for n in cfg.table_samples:
            runs = [
                train_run(cfg, tsetting, model_config(cfg, name), n, s, pools, tval["instance"], out, log)
                for s in seeds
            ]
            trained += [r.tag for r in runs]
            ratios = [
                normalized(evaluate(r, ttest["instance"]), ttest["wmmse"])["ratio_of_means"] for r in runs
            ]
            rows["table1"].append(
                {
                    "model": name,
                    "samples": n,
                    "width": "default",
                    "parameters": runs[0].record["parameters"],
                    "ratio_of_means": statistics.fmean(ratios),
                }
            )
            runs_at = runs
            if statistics.fmean(ratios) >= cfg.target:
                reached_n = n
                break
        times = [time_to_target(r, float(tval["wmmse"].mean()), cfg.target, cfg.max_steps) for r in runs_at]
        reached_times = [t for t in times if t is not None]
        sweep = [(runs_at[0].record["parameters"], "default", reached_n is not None)]
        for i, override in enumerate(cfg.width_sweep.get(name, [])):
            n = reached_n or cfg.table_samples[-1]
            wruns = [
                train_run(
                    cfg,
                    tsetting,
                    model_config(cfg, name, override),
                    n,
                    s,
                    pools,
                    tval["instance"],
                    out,
                    log,
                    width_tag=f"-w{i}",
                )
                for s in seeds
            ]
            trained += [r.tag for r in wruns]
            ratio = statistics.fmean(
                normalized(evaluate(r, ttest["instance"]), ttest["wmmse"])["ratio_of_means"] for r in wruns
            )
            label = json.dumps(override, separators=(",", ":"))
            rows["table1"].append(
                {
                    "model": name,
                    "samples": n,
                    "width": label,
                    "parameters": wruns[0].record["parameters"],
                    "ratio_of_means": ratio,
                }
            )
            sweep.append((wruns[0].record["parameters"], label, ratio >= cfg.target))
        reaching = sorted(p for p, _, ok in sweep if ok)
        lat_set = sample_set(cfg, tsetting, "latency", cfg.latency_batch)
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        lat = {
            dev: {
                "per_sample_ms": latency(runs_at[0].model, lat_set, 1, cfg.latency_repeats, dev),
                "per_batch_ms": latency(
                    runs_at[0].model, lat_set, cfg.latency_batch, cfg.latency_repeats, dev
                ),
            }
            for dev in devices
        }
        entry = {
            "samples_to_target": reached_n,
            "samples_tried_max": cfg.table_samples[-1],
            "seconds_to_target": statistics.fmean(reached_times) if reached_times else None,
            "seconds_run": statistics.fmean(r.record["seconds"] for r in runs_at),
            "parameters": runs_at[0].record["parameters"],
            "smallest_parameters_reaching": reaching[0] if reaching else None,
            "width_sweep": [{"parameters": p, "width": w, "reached": ok} for p, w, ok in sweep],
            "latency_ms": lat,
        }
        table[name] = entry
    pools.clear()
    if train_only:
        return {"runs": sorted(set(trained))}

    # ---- Figs. 5(a), 5(b), 6: the K = 8, N = 16, M = 4 models on other K, N, M
    sweeps = (
        ("fig5a", "K", cfg.fig5a_K, lambda v: Setting(v, cfg.N, cfg.M, cfg.snr_db)),
        ("fig5b", "N", cfg.fig5b_N, lambda v: Setting(cfg.train_K, v, cfg.M, cfg.snr_db)),
        ("fig6", "M", cfg.fig6_M, lambda v: Setting(cfg.train_K, cfg.N, v, cfg.snr_db)),
    )
    for fig, axis, values, make in sweeps:
        for v in values:
            setting = make(v)
            baseline_rows(fig, setting, {axis: v})
            test = refs(setting, "test")
            for (name, s), r in final.items():
                if fig == "fig5b" and name in FIXED_N:
                    continue
                rows[fig].append(
                    {
                        axis: v,
                        "model": name,
                        "seed": s,
                        **normalized(evaluate(r, test["instance"]), test["wmmse"]),
                    }
                )

    from cfmimo.experiments.aagnn.report import write_outputs

    wmmse_seconds = {f"{k}-{split}": float(v["wmmse_seconds"]) for (k, split), v in refs_cache.items()}
    return write_outputs(
        cfg, out, rows, table, final, ttest, wmmse_seconds, wall_time_s=time.perf_counter() - start
    )
