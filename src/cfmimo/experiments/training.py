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
) -> TrainedPowerModel:
    """Supervised MSE training on normalized max-min powers (the papers' recipe), or with
    ``dynamic`` (a ``DynamicConfig`` mapping) dynamic supervision on an unlabelled dataset;
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
