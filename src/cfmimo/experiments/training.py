"""Train one position -> power model for an experiment (a thin layer over ``cfmimo.learn``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from cfmimo.data.transforms import PositionFrame, PowerScaler
from cfmimo.models import ModelConfig


@dataclass
class TrainedPowerModel:
    """A trained model (eval mode) with what inference needs and the training figures."""

    model: nn.Module
    scaler: PowerScaler
    frame: PositionFrame | None
    checkpoint: str
    best_val_loss: float
    epochs: int
    seconds: float
    samples_per_s: float
    timing: dict | None = None  # run_dir/timing.json (learn.trainer.write_timing): totals over every call


def train_power_model(
    model: ModelConfig,
    train_folder: Path,
    run_dir: Path,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    sigma_ue_m: float,
    seed: int = 0,
    sigma_ap_m: float = 0.0,
    dynamic: dict | None = None,
    se_term: dict | None = None,
) -> TrainedPowerModel:
    """Supervised MSE training on normalized max-min powers (the papers' recipe), or with
    ``dynamic`` (a ``DynamicConfig`` mapping) dynamic supervision on an unlabelled dataset, or with
    ``se_term`` (a ``SeTermConfig`` mapping) the MSE plus the worst-UE SE term;
    resumable: a run folder with a ``last.ckpt`` of the same config continues instead of restarting."""
    from cfmimo.learn.config import TrainConfig
    from cfmimo.learn.trainer import load_trained, read_timing, train

    config = TrainConfig.from_dict(
        {
            "model": model.model_dump(exclude_unset=True),  # keep the model's own defaults
            "data": {"train": str(train_folder), "sigma_ue_m": sigma_ue_m, "sigma_ap_m": sigma_ap_m},
            "optim": {"lr": lr},
            "trainer": {"epochs": epochs, "batch_size": batch_size, "seed": seed, "out_dir": str(run_dir)},
            "dynamic": dynamic,
            "se_term": se_term,
        }
    )
    last = Path(run_dir) / "checkpoints" / "last.ckpt"
    result = train(config, ckpt_path="last" if last.is_file() else None)
    trained = load_trained(result.best_checkpoint)
    return TrainedPowerModel(
        trained.model,
        trained.scaler,
        trained.frame,
        result.best_checkpoint,
        result.best_val_loss,
        result.epochs,
        result.seconds,
        result.train_samples_per_s,
        read_timing(run_dir),
    )


@dataclass(frozen=True)
class PowerRun:
    """One independent training run of a reproduction: the arguments of ``train_power_model``."""

    model: ModelConfig
    train_folder: Path
    run_dir: Path
    epochs: int
    batch_size: int
    lr: float
    sigma_ue_m: float
    seed: int = 0
    sigma_ap_m: float = 0.0
    dynamic: dict | None = None
    se_term: dict | None = None

    def train(self) -> TrainedPowerModel:
        return train_power_model(
            self.model,
            self.train_folder,
            self.run_dir,
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            sigma_ue_m=self.sigma_ue_m,
            seed=self.seed,
            sigma_ap_m=self.sigma_ap_m,
            dynamic=self.dynamic,
            se_term=self.se_term,
        )


def check_jobs(jobs: int | None) -> int | None:
    """``jobs`` if it is None or an int >= 1; else ValueError naming it."""
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise ValueError(f"jobs must be an int >= 1 or None, got {jobs!r}")
    return jobs


def _worker_init() -> None:
    """Each worker process trains with one torch thread (N workers share N cores)."""
    import torch

    torch.set_num_threads(1)


def _train_in_worker(run: PowerRun) -> dict:
    """Train one run in a worker process, its output (Lightning's logs and progress, warnings) in
    run_dir/train.log: file descriptors 1 and 2 are redirected for the run, so handlers created
    earlier (e.g. by a previous run in this worker) write there too. Returns the picklable figures
    (the parent reloads the model from the checkpoint)."""
    import os
    import sys

    Path(run.run_dir).mkdir(parents=True, exist_ok=True)
    saved = os.dup(1), os.dup(2)
    with open(Path(run.run_dir) / "train.log", "a") as log:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            tm = run.train()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, copy in zip((1, 2), saved, strict=True):
                os.dup2(copy, fd)
                os.close(copy)
    return {
        "checkpoint": tm.checkpoint,
        "best_val_loss": tm.best_val_loss,
        "epochs": tm.epochs,
        "seconds": tm.seconds,
        "samples_per_s": tm.samples_per_s,
        "timing": tm.timing,
    }


def train_power_models(
    runs: dict[str, PowerRun], *, jobs: int | None = None, log=print
) -> dict[str, TrainedPowerModel]:
    """Train independent runs (each resumable, see ``train_power_model``); returns them by key, in
    the order of ``runs``.

    ``jobs`` None: one after the other in this process, with its torch threads. ``jobs`` = N: one
    torch thread per run, so that a run's result depends only on its config and seed and the
    checkpoints are bitwise the same for any N (tests/learn/test_parallel_runs.py); N = 1: one
    after the other in this process (threads restored afterwards); N >= 2: in N spawned worker
    processes, the models then reloaded here from their best checkpoints, each worker's Lightning
    output in ``run_dir/train.log``."""
    import torch

    check_jobs(jobs)
    if jobs is None or jobs == 1:
        threads = torch.get_num_threads()
        if jobs == 1:
            torch.set_num_threads(1)
        try:
            out = {}
            for key, run in runs.items():
                log(f"training {key} ({run.epochs} epochs)")
                out[key] = run.train()
            return out
        finally:
            torch.set_num_threads(threads)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from cfmimo.learn.trainer import load_trained

    log(f"training {len(runs)} runs in {jobs} processes (1 thread each): {', '.join(runs)}")
    context = multiprocessing.get_context("spawn")  # fork after torch/OpenMP initialization can hang
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_worker_init) as pool:
        futures = {key: pool.submit(_train_in_worker, run) for key, run in runs.items()}
        results = {}
        for key, future in futures.items():
            results[key] = future.result()
            log(f"trained {key}: best val loss {results[key]['best_val_loss']:.4g}")
    out = {}
    for key, r in results.items():
        trained = load_trained(r["checkpoint"])
        out[key] = TrainedPowerModel(
            trained.model,
            trained.scaler,
            trained.frame,
            r["checkpoint"],
            r["best_val_loss"],
            r["epochs"],
            r["seconds"],
            r["samples_per_s"],
            r["timing"],
        )
    return out
