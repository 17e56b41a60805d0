"""The training driver: ``train(config) -> TrainResult`` and ``load_trained(checkpoint)``.

``train`` loads the dataset, holds out the validation samples, fits the ``PowerScaler`` on the
training labels only, prepares the model features, and runs a Lightning ``Trainer`` with

* ``ModelCheckpoint(monitor="val_loss", mode="min", save_last=True)`` under
  ``out_dir/checkpoints`` (``best-epoch=NNN.ckpt`` and ``last.ckpt``),
* ``CSVLogger`` and ``TensorBoardLogger`` under ``out_dir/csv`` and ``out_dir/tensorboard`` (a
  resumed run writes a new ``version_N``), a learning-rate monitor and a progress bar on stderr,
* any device count: ``trainer.devices > 1`` runs DDP (``strategy="auto"`` -> "ddp"; Lightning
  re-executes the command for every further process), with the batches shared by
  ``DistributedBucketBatchSampler``.

The config is written to ``out_dir/config.yaml``. ``ckpt_path="last"`` resumes from
``out_dir/checkpoints/last.ckpt`` (a fresh start if there is none), reusing its scaler.

Lightning is imported inside ``train`` only: ``load_trained`` and this module load fast.
Also runnable as ``python -m cfmimo.learn.trainer --config FILE [--set key=value ...] [--resume]``.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import sys
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from cfmimo import __version__
from cfmimo.data.loaders import fit_power_scaler
from cfmimo.data.spec import DatasetSpec
from cfmimo.data.storage import load_dataset
from cfmimo.data.transforms import PositionFrame, PowerScaler, PrepareBatch
from cfmimo.learn.config import TrainConfig, check_train_setup, load_train_config
from cfmimo.learn.data import (
    GAIN_KEY,
    RAW_KEYS,
    SE_TERM_KEYS,
    Groups,
    prepare_features,
    select_keys,
    split_validation,
)
from cfmimo.models import ModelConfig, build_model, model_uses_gains
from cfmimo.rng import stream_seed
from cfmimo.sim.uatf import STORED_STATISTIC_KEYS

__all__ = ["TrainResult", "TrainedModel", "TrainingData", "load_trained", "load_training_data", "train"]

CHECKPOINT_DIR = "checkpoints"


@dataclass(frozen=True)
class TrainingData:
    """What the loaders serve: ``train`` (features, or raw positions and labels when ``prepare``
    is given for per-epoch noise), ``val`` (features) and the scaler fitted on ``train``'s labels.

    Shapes:
        groups[(K, L)]: see ``cfmimo.learn.data.prepare_features``.
    """

    train: Groups
    val: Groups
    scaler: PowerScaler
    prepare: PrepareBatch | None
    frame: PositionFrame | None = None


def _load_groups(folder: Path, verify: bool, se_term: bool) -> Groups:
    """A dataset's groups; with ``se_term`` also the SE term's per-sample constants (``SE_TERM_KEYS``:
    the scenario's prelogs and DL budget), after checking that the dataset stores its statistics."""
    content = load_dataset(folder, verify=verify)
    if not se_term:
        return content.groups
    scenario = DatasetSpec.model_validate(content.manifest["spec"]).scenario
    groups: Groups = {}
    for (K, L), g in content.groups.items():
        missing = [k for k in STORED_STATISTIC_KEYS if k not in g]
        if missing:
            raise ValueError(
                f"se_term: dataset {folder} does not store the UatF statistics {missing} "
                "(generate it with cfmimo data generate)"
            )
        n = int(g["sample_index"].shape[0])
        prelog = torch.tensor([scenario.prelog_ul, scenario.prelog_dl], dtype=torch.float64)
        groups[(K, L)] = {
            **g,
            "prelog": prelog.expand(n, 2).clone(),
            "dl_total_power": torch.full((n,), scenario.dl_power_per_ap_mw * L, dtype=torch.float64),
        }
    return groups


def load_training_data(
    config: TrainConfig, scaler: PowerScaler | None = None, frame: PositionFrame | None = None
) -> TrainingData:
    """Load, split, fit the scaler on the training labels (unless ``scaler`` is given) and prepare.

    Training noise comes from the named stream (trainer.seed, "training_noise"), validation noise
    from (trainer.seed, "validation_noise"): fixed across epochs, and independent of the training
    noise even when a separate validation folder reuses the training sample indices.
    """
    d, seed = config.data, config.trainer.seed
    se_term = config.se_term is not None
    train_groups = _load_groups(d.train, d.verify, se_term)
    if d.val is not None:
        val_groups = _load_groups(d.val, d.verify, se_term)
    else:
        train_groups, val_groups = split_validation(train_groups, d.val_fraction)
    keys = RAW_KEYS + ((GAIN_KEY,) if model_uses_gains(config.model.name) else ())  # gain-aware models
    keys += SE_TERM_KEYS if se_term else ()
    train_groups, val_groups = select_keys(train_groups, keys), select_keys(val_groups, keys)
    if scaler is None:
        scaler = fit_power_scaler(train_groups)
    if frame is None and d.position_frame == "global":
        frame = PositionFrame.fit(train_groups)  # clean training positions only

    def prepare(name: str) -> PrepareBatch:
        noise_seed = stream_seed(seed, name)
        return PrepareBatch(
            scaler=scaler, sigma_ue_m=d.sigma_ue_m, sigma_ap_m=d.sigma_ap_m, seed=noise_seed, frame=frame
        )

    val = prepare_features(val_groups, prepare("validation_noise"))
    if d.fresh_noise:
        return TrainingData(train_groups, val, scaler, prepare("training_noise"), frame)
    return TrainingData(prepare_features(train_groups, prepare("training_noise")), val, scaler, None, frame)


@dataclass(frozen=True)
class TrainResult:
    """Outcome of ``train``. ``val_losses``: per-size validation MSE at the best epoch (keys
    "K=..,L=.."); ``epochs``: epochs completed, including those before a resume; ``seconds``:
    wall time of this call's fit; ``train_samples_per_s``: training samples per second over all
    processes (time in training epochs, validation excluded); ``history``: one entry per epoch
    (epoch, train_loss, val_loss, per-size losses); ``global_rank``: this process (DDP)."""

    best_checkpoint: str
    last_checkpoint: str
    best_val_loss: float
    best_epoch: int
    val_losses: dict[str, float]
    epochs: int
    seconds: float
    train_samples_per_s: float
    out_dir: str
    log_dir: str
    history: list[dict[str, float]] = field(default_factory=list)
    global_rank: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_model_config(config: TrainConfig) -> TrainConfig:
    """The config with the model's resolved settings (its own defaults for fields the user left
    unset, e.g. the token baselines' layers/ff). Checkpoints record this, so reloading rebuilds the
    same architecture even though a dumped config marks every field as set."""
    resolved = getattr(build_model(config.model), "config", config.model)
    return TrainConfig.from_dict({**config.to_dict(), "model": resolved.model_dump()})


class _TrainedFields(NamedTuple):
    model: nn.Module
    scaler: PowerScaler
    config: TrainConfig
    frame: PositionFrame | None = None


class TrainedModel(_TrainedFields):
    """A trained model (eval mode), the scaler of its outputs, its training config and the input
    coordinate frame (None: per-sample min-max): a 4-tuple, as before sites existed. ``site``
    (an attribute, not a tuple field, so ``model, scaler, config, frame = load_trained(...)`` keeps
    working): the training data's site (``sim.shadowing_field.site_identity``), None for the book's
    drops."""

    site: dict[str, Any] | None

    def __new__(
        cls,
        model: nn.Module,
        scaler: PowerScaler,
        config: TrainConfig,
        frame: PositionFrame | None = None,
        site: dict[str, Any] | None = None,
    ) -> TrainedModel:
        self = super().__new__(cls, model, scaler, config, frame)
        self.site = site
        return self


def read_checkpoint(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The contents of a cfmimo training checkpoint, loaded with ``weights_only=True`` and checked.

    Every way a file can fail (missing, empty, truncated, random bytes, a pickle that would run
    code, another program's checkpoint, non-tensor weights) is one ValueError naming the file.
    A pickle that asks for a Python callable is refused without running it; the message never
    suggests ``weights_only=False``.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {path} does not exist (or is not a file)")
    size = path.stat().st_size
    if size == 0:
        raise ValueError(f"checkpoint {path} is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Detected pickle protocol 4": the error says it all
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        # torch's message suggests weights_only=False, which would run the file's code: never echo it
        wanted = re.search(r"GLOBAL (\S+)", str(err))
        what = f" (it asks to call {wanted.group(1)})" if wanted else ""
        raise ValueError(
            f"checkpoint {path}: refused to run code while loading{what}: the file holds pickled Python "
            "objects (or is corrupt), not plain weights; cfmimo loads only tensors and plain types, "
            "so re-create the checkpoint with `cfmimo train`"
        ) from None
    except Exception as err:  # zip/stream/EOF/shape errors of a damaged file: all "unreadable"
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        if "weights_only" in first:  # torch's advice to load with weights_only=False: never pass it on
            first = type(err).__name__
        raise ValueError(
            f"checkpoint {path} ({size} bytes) is not a readable PyTorch checkpoint (truncated or "
            f"corrupt?): {first}"
        ) from None
    return _check_checkpoint(ckpt, path)


def _check_checkpoint(ckpt: Any, path: Path) -> dict[str, Any]:
    """The structure ``load_trained`` and ``train --resume`` rely on, or a ValueError naming ``path``."""
    if not isinstance(ckpt, dict):
        raise ValueError(f"{path} is not a cfmimo training checkpoint (it holds a {type(ckpt).__name__})")
    hp, state = ckpt.get("hyper_parameters"), ckpt.get("state_dict")
    if not isinstance(hp, dict) or not isinstance(state, dict):
        missing = "hyper_parameters" if not isinstance(hp, dict) else "state_dict"
        raise ValueError(f"{path} is not a cfmimo training checkpoint (missing '{missing}')")
    for key in ("config", "scaler"):
        if not isinstance(hp.get(key), dict):
            raise ValueError(f"{path} is not a cfmimo training checkpoint (missing 'hyper_parameters.{key}')")
    for name, value in state.items():
        if not isinstance(name, str) or not isinstance(value, torch.Tensor):
            raise ValueError(
                f"checkpoint {path}: state_dict entry {name!r} is a {type(value).__name__}, not a tensor"
            )
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise ValueError(f"checkpoint {path}: weights {name!r} are not finite (NaN or inf)")
    if "epoch" in ckpt and (isinstance(ckpt["epoch"], bool) or not isinstance(ckpt["epoch"], int)):
        raise ValueError(f"checkpoint {path}: 'epoch' must be an integer, got {ckpt['epoch']!r}")
    return ckpt


def _model_from_checkpoint(ckpt: dict[str, Any], path: Path) -> tuple[nn.Module, TrainConfig, PowerScaler]:
    """Build the checkpoint's model and load its weights; every mismatch is a ValueError naming ``path``."""
    hp = ckpt["hyper_parameters"]
    try:
        config, scaler = TrainConfig.from_dict(hp["config"]), PowerScaler.from_dict(hp["scaler"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"checkpoint {path}: bad saved config or scaler: {err}") from None
    state = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    if model_uses_gains(config.model.name):
        missing = [k for k in ("gain_norm.mean_db", "gain_norm.std_db") if k not in state]
        if missing:
            raise ValueError(
                f"checkpoint {path}: the gain-aware model {config.model.name} has no gain normalization "
                f"(missing gain_norm: {', '.join(missing)}): it cannot normalize its gain_db inputs"
            )
    try:
        model = build_model(config.model)
        model.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError, ValueError) as err:
        text = " ".join(str(err).split())
        raise ValueError(
            f"checkpoint {path}: its weights do not fit the model of its saved config "
            f"({config.model.name}): {text[:400]}"
        ) from None
    return model, config, scaler


def load_trained(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> TrainedModel:
    """Rebuild the model of a checkpoint from its saved config and weights (``read_checkpoint``:
    ``weights_only=True``, no pickle); returns (model in eval mode, PowerScaler, TrainConfig, frame).
    Any unusable file is a ValueError naming it."""
    path = Path(path)
    ckpt = read_checkpoint(path, map_location=map_location)
    model, config, scaler = _model_from_checkpoint(ckpt, path)
    hp = ckpt["hyper_parameters"]
    try:
        frame = PositionFrame.from_dict(hp["position_frame"]) if hp.get("position_frame") else None
    except ValueError as err:
        raise ValueError(f"checkpoint {path}: bad position_frame: {err}") from None
    site = hp.get("site")
    if site is not None and not isinstance(site, dict):
        raise ValueError(
            f"checkpoint {path}: bad site: expected a mapping of scenario fields, got {type(site).__name__}"
        )
    return TrainedModel(model.eval(), scaler, config, frame, site)


def training_site(dataset: str | os.PathLike) -> dict[str, Any] | None:
    """The site of a training dataset folder (``site_identity`` of its manifest's scenario)."""
    from cfmimo.data.storage import read_manifest
    from cfmimo.sim.shadowing_field import site_identity

    return site_identity(DatasetSpec.model_validate(read_manifest(dataset)["spec"]).scenario)


def _resolve_checkpoint(ckpt_path: str | os.PathLike | None, out_dir: Path) -> Path | None:
    if ckpt_path is None:
        return None
    if str(ckpt_path) == "last":
        last = out_dir / CHECKPOINT_DIR / "last.ckpt"
        if not last.is_file():
            warnings.warn(f"no checkpoint {last} to resume from: training from scratch", stacklevel=3)
            return None
        return last
    path = Path(ckpt_path)
    if not path.is_file():
        raise ValueError(f"ckpt_path {path} does not exist")
    return path


def _history_callback() -> Any:
    """A Lightning callback recording per-epoch metrics and the training throughput. Entries
    are added at the end of each training epoch, before ``ModelCheckpoint`` saves, and the
    history is part of the checkpoint (plain types), so a resumed run keeps it."""
    from lightning.pytorch.callbacks import Callback

    class TrainingHistory(Callback):
        def __init__(self) -> None:
            self.history: list[dict[str, float]] = []
            self.train_seconds, self.train_samples = 0.0, 0  # this call (throughput of TrainResult)
            # totals over every call that trained this run (saved in the checkpoint, so a resumed
            # run keeps counting): training-epoch time (validation excluded), epoch wall time
            # (validation included), optimizer steps/batches, samples and epochs timed
            self.totals = {"train_seconds": 0.0, "wall_seconds": 0.0, "steps": 0, "samples": 0, "epochs": 0}
            self.device = "unknown"
            self._start: float | None = None
            self._epoch_start: float | None = None

        def on_train_start(self, trainer: Any, pl_module: Any) -> None:
            self.device = _device_name(trainer)

        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            self._start = self._epoch_start = time.perf_counter()

        def on_train_batch_end(self, trainer: Any, module: Any, outputs: Any, batch: Any, i: int) -> None:
            self.train_samples += len(batch["K"])
            self.totals["samples"] += len(batch["K"])
            self.totals["steps"] += 1

        def _stop_clock(self) -> None:
            if self._start is not None:
                elapsed = time.perf_counter() - self._start
                self.train_seconds += elapsed
                self.totals["train_seconds"] += elapsed
                self._start = None

        def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
            if not trainer.sanity_checking:
                self._stop_clock()

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            self._stop_clock()
            if self._epoch_start is not None:
                self.totals["wall_seconds"] += time.perf_counter() - self._epoch_start
                self.totals["epochs"] += 1
                self._epoch_start = None
            logged = sorted(trainer.callback_metrics.items())
            entry = {
                k: float(v)
                for k, v in logged
                if k == "train_loss" or k.startswith(("val_loss", "val_min_se"))
            }
            self.history.append({"epoch": trainer.current_epoch, **entry})

        def state_dict(self) -> dict[str, Any]:
            return {"history": self.history, "totals": dict(self.totals), "device": self.device}

        def load_state_dict(self, state_dict: dict[str, Any]) -> None:
            self.history = list(state_dict["history"])
            totals = state_dict.get("totals")  # absent in checkpoints written before timing.json
            if isinstance(totals, dict):
                self.totals.update(
                    {k: totals[k] for k in self.totals if isinstance(totals.get(k), (int, float))}
                )

    return TrainingHistory()


def _checkpoint_callback(base: type) -> type:
    """``ModelCheckpoint`` that saves last.ckpt after every validation (or training epoch without
    validation), as Lightning did before 2.6. Lightning 2.6 saves "last" only in a step where a
    top-k checkpoint was saved, so after a final epoch that does not improve the validation loss,
    last.ckpt stays an epoch (or more) behind: a re-run of a finished run (``reproduce`` after
    ``--train-only``) then "resumes" and retrains the tail epochs, changing the model it evaluates.
    Same state key as Lightning's class, so checkpoints stay interchangeable."""
    from lightning.pytorch.trainer.states import TrainerFn

    class ModelCheckpoint(base):  # type: ignore[misc, valid-type]
        __qualname__ = "ModelCheckpoint"  # the callback's state key in checkpoints

        def _save_last_if_behind(self, trainer: Any) -> None:
            if (
                self.save_last
                and not trainer.sanity_checking
                and trainer.state.fn == TrainerFn.FITTING
                and self._last_global_step_saved != trainer.global_step
            ):
                self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

        def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
            super().on_validation_end(trainer, pl_module)
            if not self._should_save_on_train_epoch_end(trainer):
                self._save_last_if_behind(trainer)

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            super().on_train_epoch_end(trainer, pl_module)
            if self._should_save_on_train_epoch_end(trainer):
                self._save_last_if_behind(trainer)

    return ModelCheckpoint


TIMING_FILE = "timing.json"


def _device_name(trainer: Any) -> str:
    """ "cpu", or "cuda:0 (NVIDIA H100 ...)" for the device a Trainer ran on."""
    device = trainer.strategy.root_device
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def write_timing(
    out: Path, totals: Mapping[str, Any], *, device: str, world_size: int, validation_in_train: bool = False
) -> dict[str, Any]:
    """Write ``out/timing.json`` (atomically) for a trained run and return it: totals over every call
    that trained the run (resumes included), from the checkpointed ``TrainingHistory``.

    Keys: ``wall_seconds`` (training epochs with their validation), ``train_seconds`` (training
    only), ``epochs`` (epochs timed), ``steps`` (optimizer steps = batches, per process),
    ``train_samples``, ``steps_per_s``, ``train_samples_per_s`` (all processes),
    ``train_s_per_epoch``, ``device``, ``threads`` (torch intra-op threads), ``world_size``,
    ``validation_in_train`` (True where a trainer cannot separate validation from training time,
    e.g. the step-based unsupervised trainer). A missing ``samples`` total gives null samples."""
    train_s = float(totals.get("train_seconds", 0.0))
    epochs, steps = int(totals.get("epochs", 0)), int(totals.get("steps", 0))
    samples = None if totals.get("samples") is None else int(totals["samples"]) * world_size
    nan = float("nan")
    timing = {
        "wall_seconds": float(totals.get("wall_seconds", 0.0)),
        "train_seconds": train_s,
        "epochs": epochs,
        "steps": steps,
        "train_samples": samples,
        "steps_per_s": steps / train_s if train_s > 0 else nan,
        "train_samples_per_s": samples / train_s if train_s > 0 and samples is not None else nan,
        "train_s_per_epoch": train_s / epochs if epochs else nan,
        "device": device,
        "threads": torch.get_num_threads(),
        "world_size": world_size,
        "validation_in_train": validation_in_train,
    }
    from cfmimo.config import atomic_write_text

    atomic_write_text(out / TIMING_FILE, json.dumps(timing, indent=2))
    return timing


def read_timing(out: str | os.PathLike) -> dict[str, Any] | None:
    """``out/timing.json`` of a trained run, or None when there is none (or it is unreadable)."""
    path = Path(out) / TIMING_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _best_entry(history: list[dict[str, float]]) -> dict[str, float]:
    """The history entry of the epoch with the lowest validation loss ({} without validation)."""
    return min((e for e in history if "val_loss" in e), key=lambda e: e["val_loss"], default={})


def _finished_run(
    resume: Path, config: TrainConfig, ckpt: dict[str, Any] | None = None
) -> TrainResult | None:
    """The result of a run whose checkpoint ``resume`` already completed ``config``'s epochs with
    the same config, read from the checkpoint without rebuilding data or a Trainer (resuming it
    through Lightning would load the whole dataset only to find nothing left to do); else None.
    ``seconds`` and ``train_samples_per_s`` are 0: this call trained nothing. ``ckpt``: the
    checkpoint's contents if already read (``read_checkpoint``)."""
    ckpt = read_checkpoint(resume) if ckpt is None else ckpt
    saved = ckpt.get("hyper_parameters", {}).get("config")
    if saved is None or int(ckpt.get("epoch", -1)) + 1 < config.trainer.epochs:
        return None
    try:
        if resolve_model_config(TrainConfig.from_dict(saved)) != config:
            return None
    except ValueError:
        return None
    states = ckpt.get("callbacks")
    states = {k: v for k, v in states.items() if isinstance(v, dict)} if isinstance(states, dict) else {}
    best_path = next(
        (v.get("best_model_path") for k, v in states.items() if str(k).startswith("ModelCheckpoint")), None
    )
    history_state = next((v for k, v in states.items() if "TrainingHistory" in str(k)), {})
    history = history_state.get("history")
    if not isinstance(best_path, str) or not best_path or not Path(best_path).is_file():
        return None
    if not isinstance(history, list) or not all(isinstance(e, dict) for e in history):
        return None  # no usable history: let Lightning resume (it finds nothing left to do)
    out = Path(config.trainer.out_dir)
    totals = history_state.get("totals")
    if not (out / TIMING_FILE).is_file() and isinstance(totals, dict):  # e.g. deleted: rebuild it
        write_timing(out, totals, device=str(history_state.get("device", "unknown")), world_size=1)
    best = _best_entry(history)
    prefix = "val_loss/"
    return TrainResult(
        best_checkpoint=str(best_path),
        last_checkpoint=str(resume),
        best_val_loss=float(best.get("val_loss", float("nan"))),
        best_epoch=int(best.get("epoch", -1)),
        val_losses={k[len(prefix) :]: v for k, v in best.items() if k.startswith(prefix)},
        epochs=int(ckpt["epoch"]) + 1,  # the checkpoint stores the 0-based index of its last epoch
        seconds=0.0,
        train_samples_per_s=0.0,
        out_dir=str(config.trainer.out_dir),
        log_dir="",
        history=[dict(e) for e in history],
    )


def train(
    config: TrainConfig | Mapping[str, Any],
    *,
    ckpt_path: str | os.PathLike | None = None,
    callbacks: Iterable[Any] = (),
) -> TrainResult:
    """Train the configured model (module docstring); ``ckpt_path``: None, "last" or a
    checkpoint file to resume from; ``callbacks``: extra Lightning callbacks."""
    if not isinstance(config, TrainConfig):
        config = TrainConfig.from_dict(config)
    config = resolve_model_config(config)
    check_train_setup(config)  # out_dir and accelerator on this machine, before any data is read
    t, out = config.trainer, Path(config.trainer.out_dir)
    callbacks = list(callbacks)
    resume = _resolve_checkpoint(ckpt_path, out)
    resumed: dict[str, Any] | None = None
    if resume is not None:  # one read, checked before any data is loaded: a bad file fails fast
        resumed = read_checkpoint(resume)
        _model_from_checkpoint(resumed, resume)  # weights that fit their own saved model
    if resume is not None and not callbacks:
        finished = _finished_run(resume, config, resumed)
        if finished is not None:
            return finished
    scaler, frame = None, None
    if resume is not None:  # keep the label scaling, frame (and model) the checkpoint was trained with
        saved = resumed["hyper_parameters"]
        # compare validated configs: a field added since (with its default) is not a difference
        try:
            same_model = ModelConfig.model_validate(saved["config"].get("model")) == config.model
        except ValueError:
            same_model = False
        if not same_model:
            raise ValueError(f"cannot resume from {resume}: it was trained with another model config")
        try:
            scaler = PowerScaler.from_dict(saved["scaler"])
            frame = PositionFrame.from_dict(saved["position_frame"]) if saved.get("position_frame") else None
        except ValueError as err:
            raise ValueError(f"cannot resume from {resume}: bad scaler or position_frame: {err}") from None

    # Lightning is imported only now: the checks above (a bad checkpoint) fail in well under a second
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import (
        LearningRateMonitor,
        ModelCheckpoint,
        ModelSummary,
        RichProgressBar,
    )
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
    from lightning.pytorch.utilities import rank_zero_only

    from cfmimo.learn.supervised import PowerDataModule, SupervisedPowerModule

    pl.seed_everything(t.seed, workers=True, verbose=False)
    if config.dynamic is None:
        data = load_training_data(config, scaler, frame)
        module_type, cache = SupervisedPowerModule, None
    else:  # dynamic supervision: labels computed per step for the model's own clusters
        from cfmimo.learn.dynamic import DynamicSupervisionModule, load_dynamic_data

        loaded = load_dynamic_data(config, scaler, frame)
        data = TrainingData(loaded["train"], loaded["val"], loaded["scaler"], None, loaded["frame"])
        module_type, cache = DynamicSupervisionModule, loaded["cache"]
    module = module_type(
        config=config.to_dict(),
        scaler=data.scaler.to_dict(),
        position_frame=None if data.frame is None else data.frame.to_dict(),
        val_sizes=[list(size) for size in sorted(data.val)],
        seed=t.seed,
        cfmimo_version=__version__,
    )
    if cache is not None:
        module.attach(cache)
    # a model of a site is a model of that site only: the checkpoint records it (predict checks it)
    module.hparams["site"] = training_site(config.data.train)
    if model_uses_gains(config.model.name) and resume is None:
        # gain-aware models hold their input normalization (training gains' mean and std) as buffers,
        # so it travels in the checkpoint; a resumed run restores it from there
        from cfmimo.models.gain_aware import fit_gain_norm, set_gain_norm

        set_gain_norm(module.model, *fit_gain_norm(data.train))
    datamodule = PowerDataModule(
        data.train,
        data.val,
        batch_size=t.batch_size,
        seed=t.seed,
        num_workers=config.data.num_workers,
        prepare=data.prepare,
    )
    checkpoint = _checkpoint_callback(ModelCheckpoint)(
        dirpath=out / CHECKPOINT_DIR,
        filename="best-{epoch:03d}",
        monitor="val_loss",
        mode="min",
        save_last=True,
    )
    history = _history_callback()
    # a plain ModelSummary logs to stderr (Lightning's default rich one prints on stdout)
    all_callbacks = [checkpoint, history, LearningRateMonitor("step"), ModelSummary(), *callbacks]
    if t.progress_bar:
        all_callbacks.append(RichProgressBar(console_kwargs={"stderr": True}))
    ddp = t.strategy == "auto" and isinstance(t.devices, int) and t.devices > 1
    csv_logger = CSVLogger(out, name="csv")
    trainer = pl.Trainer(
        max_epochs=t.epochs,
        accelerator=t.accelerator,
        devices=t.devices,
        strategy="ddp" if ddp else t.strategy,
        precision=t.precision,
        logger=[csv_logger, TensorBoardLogger(out, name="tensorboard")],
        callbacks=all_callbacks,
        log_every_n_steps=t.log_every_n_steps,
        limit_train_batches=t.limit_train_batches,
        limit_val_batches=t.limit_val_batches,
        gradient_clip_val=t.gradient_clip_val,
        enable_progress_bar=t.progress_bar,
        use_distributed_sampler=False,  # DistributedBucketBatchSampler shares the batches itself
        default_root_dir=out,
    )
    if rank_zero_only.rank == 0:
        config.to_yaml(out / "config.yaml")
    start = time.perf_counter()
    with warnings.catch_warnings():
        # in-memory tensors: worker processes are optional, not a bottleneck
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        if resume is not None:  # expected when resuming
            warnings.filterwarnings("ignore", message="Checkpoint directory .* exists and is not empty")
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume)
    seconds = time.perf_counter() - start

    if rank_zero_only.rank == 0:
        write_timing(out, history.totals, device=_device_name(trainer), world_size=int(trainer.world_size))
    best_score = checkpoint.best_model_score
    best_val = float(best_score) if best_score is not None else float("nan")
    entries = history.history
    best = _best_entry(entries)
    sizes = [f"K={K},L={L}" for K, L in sorted(data.val)]
    throughput = history.train_samples * trainer.world_size / max(history.train_seconds, 1e-9)
    return TrainResult(
        best_checkpoint=str(checkpoint.best_model_path),
        last_checkpoint=str(checkpoint.last_model_path),
        best_val_loss=best_val,
        best_epoch=int(best.get("epoch", -1)),
        val_losses={s: best[f"val_loss/{s}"] for s in sizes if f"val_loss/{s}" in best},  # (K, L) order
        epochs=int(trainer.current_epoch),
        seconds=seconds,
        train_samples_per_s=throughput if history.train_samples else 0.0,
        out_dir=str(out),
        log_dir=str(csv_logger.log_dir),
        history=[dict(e) for e in entries],
        global_rank=int(trainer.global_rank),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cfmimo.learn.trainer --config FILE [--set key=value ...] [--resume]``."""
    parser = argparse.ArgumentParser(prog="python -m cfmimo.learn.trainer", description=main.__doc__)
    parser.add_argument("--config", required=True, type=Path, help="training config YAML")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="key=value override")
    parser.add_argument("--resume", action="store_true", help="continue from out_dir/checkpoints/last.ckpt")
    parser.add_argument("--json", action="store_true", help="print the whole result as JSON")
    args = parser.parse_args(argv)
    try:
        config = load_train_config(args.config, args.overrides)
    except ValueError as err:
        parser.error(str(err))
    result = train(config, ckpt_path="last" if args.resume else None)
    if result.global_rank == 0:
        summary = {"best_checkpoint": result.best_checkpoint, "best_val_loss": result.best_val_loss}
        from cfmimo.cli import json_text  # valid JSON: a NaN loss (no validation) becomes null

        print(json_text(result.to_dict() if args.json else summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
