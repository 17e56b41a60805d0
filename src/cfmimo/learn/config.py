"""Typed configuration of a supervised training run: model, data, optimizer, trainer.

Defaults are the tree-transformer paper's training setup (Table I: AdamW, learning rate 1e-3,
batch size 128, 100 epochs; Sect. III-A: σ = 5 m Gaussian noise on the UE positions, fixed per
sample). Everything is validated by pydantic; errors name the field (``trainer.epochs: ...``).

A config is written and read as YAML (``to_yaml`` / ``load_train_config``), and any field can be
overridden with dotted ``key=value`` strings whose values are parsed as YAML scalars::

    load_train_config("run.yaml", ["trainer.epochs=3", "model.name=deepsets", "data.val=null"])

Relative paths (``data.train``, ``data.val``, ``trainer.out_dir``) are relative to the working
directory, not to the YAML file.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cfmimo.config import atomic_write_text, reject_bool_numbers
from cfmimo.models import ModelConfig
from cfmimo.yamlio import load_yaml_file, load_yaml_text

__all__ = [
    "DataConfig",
    "DynamicConfig",
    "OptimConfig",
    "SeTermConfig",
    "TrainConfig",
    "TrainerConfig",
    "apply_overrides",
    "check_train_setup",
    "load_train_config",
    "parse_override",
]

PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
# Lightning's limit_*_batches: a number of batches (int) or a fraction of them (float in (0, 1]).
BatchLimit = PositiveInt | Annotated[float, Field(gt=0, le=1)] | None


class _Strict(BaseModel):
    """Unknown fields, NaN and infinities are rejected; a bool is not a number (``epochs: true``
    fails naming the field, also inside the nested ModelConfig); instances are immutable."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _no_bool_numbers(cls, data: Any) -> Any:
        reject_bool_numbers(cls, data)
        return data


class DataConfig(_Strict):
    """Where the labelled samples come from and how they become model inputs.

    Validation: the samples of ``val`` (a dataset folder) if given, else, in every (K, L) group of
    ``train``, the ``val_fraction`` of samples with the highest sample indices (deterministic,
    independent of the seed; samples are i.i.d. draws, so this is as random as any split).
    Noise (tree-transformer eq. (10)): fixed per sample (the papers' setting, drawn once as if it
    were part of the dataset) unless ``fresh_noise``, which draws new training noise every epoch
    (validation noise stays fixed). Positions: ``position_frame="global"`` (default) maps every
    node through one frame fitted on the training positions (``PositionFrame``, stored in the
    checkpoint and used at inference); ``"per_sample"`` min-max scales UEs and APs of each sample
    separately (loses where UEs are relative to APs; kept for comparison).
    """

    train: Path = Field(description="labelled dataset folder (cfmimo data generate)")
    val: Path | None = Field(None, description="separate validation dataset folder")
    val_fraction: Annotated[float, Field(gt=0, lt=1)] = Field(
        0.1, description="share of every (K, L) group held out when val is not given"
    )
    sigma_ue_m: NonNegativeFloat = Field(5.0, description="std of the UE position noise, m (eq. (10))")
    sigma_ap_m: NonNegativeFloat = Field(0.0, description="std of the AP position noise, m")
    fresh_noise: bool = Field(False, description="new training noise every epoch")
    position_frame: Literal["global", "per_sample"] = Field("global", description="input coordinate frame")
    num_workers: Annotated[int, Field(ge=0)] = Field(0, description="DataLoader worker processes")
    verify: bool = Field(True, description="check shard checksums when loading")


class OptimConfig(_Strict):
    """AdamW with a per-step cosine decay from ``lr`` to ``min_lr`` over all epochs, after an
    optional linear warmup (``warmup_epochs``, may be fractional); ``schedule="constant"`` keeps
    ``lr`` (the paper names no schedule)."""

    lr: Annotated[float, Field(gt=0)] = 1e-3
    weight_decay: NonNegativeFloat = 1e-2
    schedule: Literal["cosine", "constant"] = "cosine"
    warmup_epochs: NonNegativeFloat = 0.0
    min_lr: NonNegativeFloat = 0.0


class TrainerConfig(_Strict):
    """Lightning Trainer settings, the seed and the output folder.

    ``strategy="auto"`` means DDP when ``devices > 1``. ``limit_*_batches`` (an int number of
    batches or a fraction) are for smoke runs. ``compile`` compiles the inner model (not the
    LightningModule) with ``torch.compile``.
    """

    epochs: PositiveInt = 100
    batch_size: PositiveInt = 128
    seed: int = 0
    accelerator: str = "auto"
    devices: PositiveInt | Literal["auto"] = 1
    strategy: str = "auto"
    precision: Literal["64-true", "32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true"] = "32-true"
    log_every_n_steps: PositiveInt = 50
    limit_train_batches: BatchLimit = None
    limit_val_batches: BatchLimit = None
    gradient_clip_val: Annotated[float, Field(gt=0)] | None = None
    compile: bool = False
    progress_bar: bool = True
    out_dir: Path = Path("runs/train")


class DynamicConfig(_Strict):
    """Dynamic supervision of a joint clustering + power model (elu-cosformer Algorithm 1, loss
    (32)); see ``cfmimo.learn.dynamic``. Its presence switches ``train`` to that procedure, on an
    unlabelled dataset whose channels are regenerated from the stored seeds.

    ``realizations``: small-scale realizations per sample for the per-step UatF statistics (None:
    the dataset scenario's). ``pilots``: re-assign pilots for every proposed mask ("clusters") or
    keep the network's Algorithm 4.1 pilots ("network"). ``mask_gradient``: how the mask head
    learns (``cfmimo.learn.dynamic``): "gain_rank" (default: ``mask_weight`` times a loss that
    teaches each AP's ranking of its UEs by large-scale gain, the order eq. (16)'s top-tau_p
    selects from), "mr_ste" (the straight-through gradient of the relaxed-mask MR SE,
    ``cfmimo.sim.relaxed``; ``softmin_temperature`` and ``center_mask_gradient`` shape it, and the
    loss value always uses the exact min) or "none" (the mask head is never trained). ``scaler_samples``: samples per size whose optimal powers
    (all APs serving) fix the global power normalization.
    """

    lam: NonNegativeFloat = Field(1e-2, description="trade-off λ of the SE term in loss (32)")
    tau_p: PositiveInt | None = Field(None, description="max UEs per AP (None: the scenario's tau_p)")
    threshold: Annotated[float, Field(ge=0, lt=1)] = Field(0.3, description="mask threshold ξ (eq. (16))")
    realizations: PositiveInt | None = None
    pilots: Literal["network", "clusters"] = "network"
    mask_gradient: Literal["gain_rank", "mr_ste", "none"] = "gain_rank"
    mask_weight: NonNegativeFloat = Field(
        1.0, description='weight of the mask-ranking loss added to loss (32) (mask_gradient "gain_rank")'
    )
    softmin_temperature: NonNegativeFloat = Field(
        0.1, description="0: the proxy's gradient uses min_k SE (eq. (32)); > 0: a log-sum-exp soft-min"
    )
    center_mask_gradient: bool = Field(True, description="center the mask gradient over each AP's UEs")
    scaler_samples: PositiveInt = 256
    combiner: Literal["mmse", "pmmse", "przf", "mr"] = "mmse"


class SeTermConfig(_Strict):
    """The worst-UE SE term of a supervised power run (``cfmimo.learn.supervised``):
    loss = MSE(p~, p*~) - λ (min_k SE_k^UL + min_k SE_k^DL), the form of elu-cosformer loss (32)
    with the all-AP statistics the dataset stores, the SEs of the *predicted* powers after the
    rescaler (tree-transformer eqs. (12)-(13)). The papers' power MSE alone weighs an error on a
    UE's power by its size in the normalized power range, whatever it does to that UE's SE; this
    term makes the training loss see the max-min objective. ``softmin_temperature`` > 0 replaces
    each min by a log-sum-exp soft-min (b/s/Hz), so more than one UE per sample gets a gradient.
    Needs a dataset that stores the UatF statistics (``cfmimo data generate``: ul_signal, ...)."""

    lam: Annotated[float, Field(gt=0)] = Field(1e-2, description="weight λ of the worst-UE SE term")
    softmin_temperature: NonNegativeFloat = Field(0.0, description="0: exact min over UEs")


class TrainConfig(_Strict):
    """A whole training run (see the module docstring); ``dynamic`` set: dynamic supervision;
    ``se_term`` set: the supervised MSE plus the worst-UE SE term (``SeTermConfig``)."""

    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig
    optim: OptimConfig = Field(default_factory=OptimConfig)
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)
    dynamic: DynamicConfig | None = None
    se_term: SeTermConfig | None = None

    @model_validator(mode="after")
    def _one_loss(self) -> TrainConfig:
        if self.dynamic is not None and self.se_term is not None:
            raise ValueError(
                "se_term: dynamic supervision has its own SE term (dynamic.lam); set one of dynamic, se_term"
            )
        return self

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Validate a mapping; ValueError listing every offending field by its dotted name."""
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            raise ValueError(_describe(err)) from None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only (paths as strings): what checkpoints and YAML files store."""
        return self.model_dump(mode="json")

    def with_overrides(self, overrides: Iterable[str]) -> TrainConfig:
        """A validated copy with dotted ``key=value`` overrides applied."""
        return TrainConfig.from_dict(apply_overrides(self.to_dict(), overrides))

    def to_yaml(self, path: str | os.PathLike) -> None:
        """Write as YAML, atomically."""
        atomic_write_text(Path(path), yaml.safe_dump(self.to_dict(), sort_keys=False))


def _describe(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "config"
        # a model-level error (no location) would echo the whole input: its message names the field
        got = f" (got {e.get('input')!r})" if e["loc"] else ""
        lines.append(f"{where}: {e['msg']}{got}")
    return "invalid training config: " + "; ".join(lines)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"trainer.epochs=3"`` -> (["trainer", "epochs"], 3); the value is parsed as YAML
    (``null`` -> None, ``1.0e-3`` -> float, ``[1, 2]`` -> list, anything else a string)."""
    if not isinstance(text, str) or "=" not in text:
        raise ValueError(f"override {text!r} must look like key=value, e.g. trainer.epochs=3")
    key, _, raw = text.partition("=")
    path = key.strip().split(".")
    if not all(path):
        raise ValueError(f"override {text!r}: the key must be dotted field names, e.g. trainer.epochs")
    value = load_yaml_text(raw, f"override {text!r}") if raw.strip() else None
    return path, value


def apply_overrides(data: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """A deep copy of ``data`` with each ``key=value`` override set (validation is left to the
    config, so unknown keys are reported by their dotted name)."""
    out = copy.deepcopy(dict(data))
    if isinstance(overrides, str):
        raise TypeError("overrides must be a list of 'key=value' strings, not one string")
    for text in overrides:
        path, value = parse_override(text)
        node = out
        for i, name in enumerate(path[:-1]):
            child = node.get(name)
            if child is None:
                child = node[name] = {}
            if not isinstance(child, dict):
                where = ".".join(path[: i + 1])
                raise ValueError(f"override {text!r}: {where} is a value ({child!r}), not a section")
            node = child
        node[path[-1]] = value
    return out


def load_train_config(path: str | os.PathLike, overrides: Iterable[str] = ()) -> TrainConfig:
    """Read a YAML training config and apply dotted overrides; ValueError naming the file or field."""
    path = Path(path)
    data = load_yaml_file(path, "training config")  # safe loader: no aliases, no duplicate keys
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"training config {path} must hold a mapping, got {type(data).__name__}")
    return TrainConfig.from_dict(apply_overrides(data, overrides))


#: accelerator names Lightning accepts
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu", "hpu")


def check_train_setup(config: TrainConfig) -> None:
    """What a config asks of this machine, checked before any data is read; ValueError naming the
    field: ``trainer.out_dir`` must be (or be creatable as) a folder, ``trainer.accelerator`` one of
    Lightning's names and available (``gpu``/``cuda`` needs a CUDA GPU, ``trainer.devices`` at most
    the GPU count). Not part of validation, so a config stays loadable on any machine."""
    import torch

    out = Path(config.trainer.out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"trainer.out_dir {out} is a file, not a directory")
    ancestor = out
    while not ancestor.exists() and ancestor.parent != ancestor:
        ancestor = ancestor.parent
    if ancestor.exists() and not ancestor.is_dir():
        raise ValueError(f"trainer.out_dir {out}: {ancestor} is a file, so the folder cannot be created")
    if ancestor.exists() and not os.access(ancestor, os.W_OK):
        raise ValueError(f"trainer.out_dir {out}: {ancestor} is not writable")
    accelerator = config.trainer.accelerator.lower()
    if accelerator not in ACCELERATORS:
        raise ValueError(
            f"trainer.accelerator must be one of {', '.join(ACCELERATORS)}, got {config.trainer.accelerator!r}"
        )
    if accelerator in ("gpu", "cuda"):
        available = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if available == 0:
            raise ValueError(
                f"trainer.accelerator={config.trainer.accelerator!r} but no CUDA GPU is available on this "
                "machine; use trainer.accelerator=cpu (or auto)"
            )
        devices = config.trainer.devices
        if isinstance(devices, int) and devices > available:
            raise ValueError(f"trainer.devices={devices} but only {available} CUDA GPU(s) are available")
    if accelerator == "mps" and not torch.backends.mps.is_available():
        raise ValueError("trainer.accelerator='mps' but MPS is not available on this machine")
