"""The ELU-CosFormer reproduction pipeline (``run``): data, training, evaluation, tables, figures, claims."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from cfmimo import __version__
from cfmimo.data.spec import dataset_preset, deployment_scenario
from cfmimo.experiments.common import (
    ensure_dataset,
    quantiles,
    write_csv,
    write_json,
)
from cfmimo.experiments.elu_cosformer.claims import _claims
from cfmimo.experiments.elu_cosformer.complexity import _layout, _runtime, _table4
from cfmimo.experiments.elu_cosformer.config import (
    GAIN_MODEL,
    MAIN,
    PAPER,
    PAPER_RUNTIME,
    VARIANTS,
    EluCosFormerConfig,
    _activation_run,
    _run_model,
    _scenario,
)
from cfmimo.experiments.elu_cosformer.evaluation import (
    _curves,
    _evaluate,
    _evaluation_plan,
    _power_gap,
    eval_device,
    mask_diagnostics,
)
from cfmimo.experiments.elu_cosformer.study import site_study
from cfmimo.sim.shadowing_field import check_same_site


def run(
    config: EluCosFormerConfig,
    out: Path,
    *,
    scheduler: str = "local",
    workers: int | None = None,
    train_only: bool = False,
    log: Callable[[str], None] = print,
    jobs: int | None = None,
) -> dict[str, Any]:
    """Run the whole reproduction into ``out``; returns the results written to results.json.

    ``train_only``: stop after the data and the training runs and return {"runs": run folders}
    (train on a GPU machine, then evaluate with the same ``out`` elsewhere: finished runs are
    reused; keep ``out`` at the same absolute path, which the checkpoints record).

    Resumable: the dataset and finished training runs in ``out`` are reused. ``jobs``: train the
    (independent) runs in that many processes, one torch thread each
    (``training.train_power_models``)."""
    from cfmimo.experiments.elu_cosformer.report import figures, write_report
    from cfmimo.experiments.training import PowerRun, check_jobs, train_power_models

    check_jobs(jobs)

    unknown = sorted(set(config.models) - {*VARIANTS, GAIN_MODEL})
    if unknown:  # before anything is written
        raise ValueError(f"models: unknown variants {unknown}; choose among {[*VARIANTS, GAIN_MODEL]}")
    start = time.perf_counter()
    out = Path(out)
    (out / "figures").mkdir(parents=True, exist_ok=True)

    # ---- 1. data (positions only: the labels depend on the model's clusters)
    train_spec = dataset_preset(
        "elu-cosformer-train",
        sizes=[(k, config.L) for k in config.train_K],
        samples=config.train_samples,
        seed=config.seed,
    )
    # the labels are computed under the run's pilot model, on the run's deployment (site)
    scenario = deployment_scenario(
        train_spec.scenario.with_(pilot_model=config.pilot_model), config.deployment, config.deployment_seed
    )
    if scenario != train_spec.scenario:
        train_spec = train_spec.model_validate({**train_spec.model_dump(), "scenario": scenario})
    check_same_site(train_spec.scenario, _scenario(config, config.test_K[0]), what="test set")
    log(f"dataset: {len(train_spec.sizes) * train_spec.samples} training setups (positions)")
    ensure_dataset(train_spec, out / "data" / "train", scheduler=scheduler, workers=workers)
    t_data = time.perf_counter() - start

    # ---- 2. training (dynamic supervision), one run per variant and per extra activation
    keys = list(dict.fromkeys([MAIN, *config.models, *map(_activation_run, config.activations)]))
    dynamic = {"lam": config.lam, "threshold": config.threshold, "realizations": config.realizations}
    n = config.train_samples  # the trainer holds out round(10 %) of every size for validation
    train_samples = len(config.train_K) * (n - min(max(round(0.1 * n), 1), n - 1))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    runs = {
        key: PowerRun(
            _run_model(key),
            out / "data" / "train",
            out / "runs" / key,
            # the gain-aware model is the study's counterpart of the proposed model: the same epochs
            epochs=config.epochs if key in (MAIN, GAIN_MODEL) else (config.study_epochs or config.epochs),
            batch_size=config.batch_size,
            lr=config.lr,
            sigma_ue_m=config.sigma_ue_m,
            sigma_ap_m=config.sigma_ap_m,
            seed=config.seed,
            dynamic=dynamic,
        )
        for key in keys
    }
    log(f"training {len(runs)} runs (dynamic supervision, {device})")
    trained: dict[str, Any] = train_power_models(runs, jobs=jobs, log=log)
    timing = {
        key: _training_timing(run.run_dir, trained[key], train_samples, device) for key, run in runs.items()
    }
    t_train = time.perf_counter() - start - t_data
    if train_only:
        return {"runs": {name: str(Path(tm.checkpoint).parent.parent) for name, tm in trained.items()}}

    # ---- 3. evaluation on the test setups
    log(f"evaluating on {config.test_samples} test setups for each K in {config.test_K}")
    evals = _evaluation_plan(config)
    rows, powers = _evaluate(config, trained, evals, log)
    write_csv(out / "se_by_scheme.csv", list(rows[0]), [list(r.values()) for r in rows])
    log("site study: gaps to Optimal CF and the positions-only references")
    study = site_study(config, rows, set(trained))
    refs = study["reference_rows"]
    write_csv(out / "position_references.csv", list(refs[0]), [list(r.values()) for r in refs])
    t_eval = time.perf_counter() - start - t_data - t_train

    # ---- 4. Table IV, runtime at K = 40, layout
    log("Table IV: parameters, memory, FLOPs, latency; runtime at K = " + str(config.runtime_K))
    models_out = _table4(config, trained, timing)
    runtime = _runtime(config, trained[MAIN])
    write_csv(
        out / "runtime.csv",
        ["K", "model_ms", "dcc_closed_form_ms", "ratio", "paper_model_ms", "paper_dcc_closed_form_ms"],
        [
            [
                config.runtime_K,
                runtime["model_ms"],
                runtime["dcc_closed_form_ms"],
                runtime["ratio"],
                PAPER_RUNTIME["model_ms"],
                PAPER_RUNTIME["dcc_closed_form_ms"],
            ]
        ],
    )
    layout = _layout(config, trained[MAIN])
    write_csv(
        out / "fig8_layout.csv",
        ["kind", "index", "x_m", "y_m", "serving_aps"],
        [["ap", i, x, y, ""] for i, (x, y) in enumerate(layout["ap"])]
        + [["ue", k, x, y, " ".join(map(str, layout["links"][k]))] for k, (x, y) in enumerate(layout["ue"])],
    )
    curves = _curves(rows)
    for name, m in models_out.items():
        c = curves.get(f"variant={name}")
        if c is not None:
            m["avg_se_ul"] = sum(c["mean_se_ul"]) / len(c["mean_se_ul"])
            m["avg_se_dl"] = sum(c["mean_se_dl"]) / len(c["mean_se_dl"])
    table4 = [
        [
            n,
            m["params"],
            m["memory_mb"],
            m["peak_forward_kib"],
            m["flops"],
            m["latency_ms"],
            m.get("train_s_per_epoch"),
            *(m[f"paper_{k}"] for k in ("params", "memory_mb", "flops", "latency_ms", "train_s_per_epoch")),
        ]
        for n, m in models_out.items()
    ]
    write_csv(
        out / "table4.csv",
        [
            "model",
            "params",
            "memory_mb",
            "peak_forward_kib",
            "flops",
            "latency_ms",
            "train_s_per_epoch",
            "paper_params",
            "paper_memory_mb",
            "paper_flops",
            "paper_latency_ms",
            "paper_s_per_epoch",
        ],
        table4,
    )
    pred_ul, pred_dl, opt_ul, opt_dl = (
        torch.cat(powers[k]) for k in ("pred_ul", "pred_dl", "opt_ul", "opt_dl")
    )
    write_csv(
        out / "fig9_power_quantiles.csv",
        ["q", "p_ul_opt", "p_ul_pred", "p_dl_opt", "p_dl_pred"],
        zip(
            torch.linspace(0, 1, 101).tolist(),
            quantiles(opt_ul),
            quantiles(pred_ul),
            quantiles(opt_dl),
            quantiles(pred_dl),
            strict=True,
        ),
    )

    # ---- figures and claims
    figures(out, config, curves, layout, (pred_ul, pred_dl, opt_ul, opt_dl))
    claims = _claims(config, curves, models_out, runtime)
    nonfinite = {r["scheme"] + f"@K={r['K']}": r["nonfinite"] for r in rows if r["nonfinite"]}
    if nonfinite:
        log(f"warning: non-finite SEs in {nonfinite}")
    results = {
        "paper": PAPER,
        "mode": config.mode,
        "wall_time_s": time.perf_counter() - start,
        "stage_seconds": {"data": t_data, "training": t_train, "evaluation": t_eval},
        "cfmimo": __version__,
        "training_device": device,
        "evaluation_device": str(eval_device(config)),
        "config": config.model_dump(),
        "models": models_out,
        "metrics": {
            "se_by_scheme_csv": "se_by_scheme.csv",
            "mask_vs_gains": mask_diagnostics(config, trained[MAIN]),
            "curves": curves,
            "activations": {
                act: {k: curves[f"activation={act}"][k] for k in ("K", "mean_se_ul", "mean_se_dl")}
                for act in config.activations
            },
            "runtime": runtime,
            "power_mse_normalized": _power_gap(pred_ul, pred_dl, opt_ul, opt_dl),
            "nonfinite_se": nonfinite,
            "study": study,
            "runs": {
                k: {"best_val_loss": tm.best_val_loss, "epochs": tm.epochs, **timing[k]}
                for k, tm in trained.items()
            },
        },
        "claims": claims,
    }
    write_json(out / "results.json", results)
    write_report(out, results)
    return results


# ----------------------------------------------------------------------------- training
def _training_timing(run_dir: Path, tm: Any, train_samples: int, device: str) -> dict[str, Any]:
    """Training time per epoch (validation excluded) from the run's ``timing.json``, which the
    trainer writes for every trained run with totals over every call that trained it (resumes
    included; ``learn.trainer.write_timing``), so a re-run that only reloads a finished checkpoint
    still reports the time of the calls that trained it.

    A timing.json of this module's older format (train_samples_per_s, train_s_per_epoch, device)
    is read the same way; without any, this call's throughput (``train_samples`` per epoch); NaN
    only for a run trained before timing.json existed and not retrained since."""
    from cfmimo.learn.trainer import read_timing

    timing = tm.timing if getattr(tm, "timing", None) is not None else read_timing(run_dir)
    if timing is not None and math.isfinite(float(timing.get("train_s_per_epoch", math.nan))):
        return {
            "train_samples_per_s": float(timing["train_samples_per_s"]),
            "train_s_per_epoch": float(timing["train_s_per_epoch"]),
            "device": str(timing.get("device", device)),
            "wall_seconds": timing.get("wall_seconds"),
            "steps": timing.get("steps"),
            "steps_per_s": timing.get("steps_per_s"),
            "threads": timing.get("threads"),
        }
    if tm.samples_per_s > 0 and math.isfinite(tm.samples_per_s):
        return {
            "train_samples_per_s": tm.samples_per_s,
            "train_s_per_epoch": train_samples / tm.samples_per_s,
            "device": device,
        }
    return {"train_samples_per_s": float("nan"), "train_s_per_epoch": float("nan"), "device": device}
