"""Unsupervised training of a neural policy on a problem's own objective (DESIGN.md section 11).

One Lightning module for the three GNN papers (AAGNN precoding, EE-GNN power, EGAT fronthaul):

    loss = -mean_b problem.objective(instance_b, policy(instance_b)) + penalty(...)

``penalty`` is an optional callable of a recipe (primal-dual multipliers, constraint penalties):
``penalty(problem, instance, allocation, module) -> scalar``. A **recipe** (``config.recipe``, a name
in ``RECIPES``, options in ``config.recipe_options``) replaces the loss when the decision is not
differentiable through the policy (binary associations): it owns the training loss, extra
validation logs, the train/val set preparation and its state (e.g. dual multipliers, registered as
buffers of the module, so checkpoints carry them). ``fronthaul_pd`` is the egat-fronthaul Algorithm 2
recipe (:class:`FronthaulPrimalDual`). Validation logs the mean objective
(``val_objective``, the checkpoint monitor) and the mean of every ``problem.metrics`` entry
(``val/<name>``): training and evaluation score exactly the same function, they cannot drift apart.

* Data: instances are sampled once from seeds with the problem's ``sample`` and held in memory;
  batches are sub-batches (``instance.take``) of a seeded shuffle; the training and the validation
  sets come from different seeds (``stream_seed(seed, "unsupervised/train" | "/val")``).
* Budget: ``max_steps`` optimizer steps (not epochs), validation every ``val_every`` steps, so a
  training set of 12-16 samples (one batch per epoch) trains as long as a 12,800-sample one.
* Defaults: the AAGNN paper's Adam, batch 64, lr 5e-3 (Sect. IV). ``lr_decay_at`` (fractions of
  ``max_steps``) and ``lr_decay`` give a step schedule (MultiStepLR per optimizer step; none by default);
  ``lr_warmup_steps`` a linear warm-up on top (none by default).
* Recipes: ``support`` set -> the ee-gnn support-regularized loss (7) with rule (8) replaces
  -objective (``_support_step``); ``lr_final`` set -> geometric per-step decay lr -> lr_final (not
  together with ``lr_decay_at``).
* Checkpoints (``<out_dir>/checkpoints/best-*.ckpt`` and ``last.ckpt``) record the config and the
  cfmimo version as plain types and load with ``torch.load(..., weights_only=True)``
  (``load_unsupervised``). The model's input statistic (``input_scale``, fitted on the training
  set) is a buffer of its state dict. ``train_unsupervised(..., resume=True)`` continues a cut-off
  run from ``last.ckpt`` (written at every validation), which also carries the support recipe's
  rule (8) state, the u generator and the validation history.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from torch import nn
from torch.utils.data import DataLoader

from cfmimo import __version__
from cfmimo.config import preset
from cfmimo.learn.support import KappaRule, SupportConfig, support_loss
from cfmimo.models import ModelConfig, build_model
from cfmimo.problems.base import Allocation
from cfmimo.rng import stream_seed

__all__ = [
    "PROBLEMS",
    "RECIPES",
    "UnsupervisedConfig",
    "UnsupervisedModule",
    "load_unsupervised",
    "make_policy",
    "resolve_model",
    "sample_sets",
    "train_unsupervised",
]

Penalty = Callable[[Any, Any, Any, pl.LightningModule], torch.Tensor]


def _sumrate_precoding() -> tuple[Any, Callable[[nn.Module], Any]]:
    from cfmimo.policies.neural import PrecoderPolicy
    from cfmimo.problems.sumrate_precoding import SumRatePrecoding

    return SumRatePrecoding(), PrecoderPolicy


def _fronthaul_wsr() -> tuple[Any, Callable[[nn.Module], Any]]:
    from cfmimo.policies.neural import FronthaulPolicy
    from cfmimo.problems.fronthaul_wsr import FronthaulWSR

    # validation scores the repaired test-time decision (the paper's WSR with repair); the recipe logs
    # the unrepaired feasibility and WSR and the sampled variant besides
    return FronthaulWSR(), lambda model: FronthaulPolicy(model, repair=True)


def _energy_efficiency() -> tuple[Any, Callable[[nn.Module], Any]]:
    from cfmimo.policies.neural import EEPowerPolicy
    from cfmimo.problems.energy_efficiency import EnergyEfficiency

    return EnergyEfficiency(), EEPowerPolicy


#: problem name -> () -> (problem, policy factory model -> Policy). Later recipes add their entry.
PROBLEMS: dict[str, Callable[[], tuple[Any, Callable[[nn.Module], Any]]]] = {
    "sumrate_precoding": _sumrate_precoding,
    "fronthaul_wsr": _fronthaul_wsr,
    "energy_efficiency": _energy_efficiency,
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class UnsupervisedConfig(_Strict):
    """One unsupervised run (module docstring). ``scenario`` overrides the ``preset`` fields
    (e.g. ``{"K": 4}``); ``train_samples``/``val_samples`` instances are drawn from ``seed``."""

    model: ModelConfig = Field(default_factory=lambda: ModelConfig(name="aagnn"))
    problem: str = "sumrate_precoding"
    preset: str = "aagnn"
    scenario: dict[str, Any] = Field(default_factory=dict)
    train_samples: Annotated[int, Field(gt=0)] = 12_800
    val_samples: Annotated[int, Field(gt=0)] = 1_000
    batch_size: Annotated[int, Field(gt=0)] = 64
    lr: Annotated[float, Field(gt=0)] = 5e-3
    max_steps: Annotated[int, Field(gt=0)] = 2_000
    val_every: Annotated[int, Field(gt=0)] = 100
    seed: int = 0
    accelerator: str = "cpu"
    precision: str = "32-true"
    out_dir: Path = Path("runs/unsupervised")
    progress_bar: bool = False
    lr_decay_at: tuple[Annotated[float, Field(gt=0, lt=1)], ...] = ()
    """Fractions of ``max_steps`` at which the learning rate is multiplied by ``lr_decay``."""
    lr_decay: Annotated[float, Field(gt=0, le=1)] = 0.1
    recipe: str | None = None
    """A name in ``RECIPES`` that owns the loss (module docstring); None = -objective (+ penalty)."""
    recipe_options: dict[str, Any] = Field(default_factory=dict)
    lr_final: Annotated[float, Field(gt=0)] | None = None
    """If set: the learning rate decays geometrically per step from ``lr`` to ``lr_final`` at
    ``max_steps`` (the ee-gnn recipe: 1e-3 -> 1e-7)."""
    lr_warmup_steps: Annotated[int, Field(ge=0)] = 0
    """Linear warm-up: the learning rate is scaled by (step + 1) / lr_warmup_steps for the first
    steps (on top of any decay schedule); 0 = none (the papers' recipes)."""
    support: SupportConfig | None = None
    """If set: the support-regularized recipe (ee-gnn eqs. (5)-(8)); the policy must expose
    ``support(instance) -> (a, ell)`` in the decision's unit (``EEPowerPolicy``)."""

    @model_validator(mode="after")
    def _one_loss_and_one_schedule(self) -> UnsupervisedConfig:
        if self.recipe is not None and self.support is not None:
            raise ValueError("recipe and support both replace the loss: set one of them")
        if self.lr_final is not None and self.lr_decay_at:
            raise ValueError("lr_final (geometric decay) and lr_decay_at (steps): set one of them")
        return self

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UnsupervisedConfig:
        """Validate; ValueError naming every offending field by its dotted name."""
        try:
            cfg = cls.model_validate(data)
        except ValidationError as err:
            where = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}" for e in err.errors()
            )
            raise ValueError(f"invalid unsupervised config: {where}") from None
        if cfg.problem not in PROBLEMS:
            raise ValueError(f"problem: unknown {cfg.problem!r}; choose one of {sorted(PROBLEMS)}")
        if cfg.recipe is not None and cfg.recipe not in RECIPES:
            raise ValueError(f"recipe: unknown {cfg.recipe!r}; choose one of {sorted(RECIPES)}")
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def resolve_model(config: UnsupervisedConfig) -> UnsupervisedConfig:
    """The config with the model's resolved settings (its own defaults for the fields the user left
    unset, e.g. AAGNN-woA's 4 x 128 widths, AAGNN's activation "none", the MRT init). A dumped
    ``ModelConfig`` marks every field as set, so without this the Lightning module and checkpoints
    would rebuild the model with the generic ``ModelConfig`` defaults instead (the same fix as
    ``learn.trainer.resolve_model_config``)."""
    resolved = getattr(build_model(config.model), "config", config.model)
    return config.model_copy(update={"model": resolved})


def move_instance(instance: Any, device: torch.device | str) -> Any:
    """A dataclass instance with every tensor field on ``device`` (validated again on construction)."""
    values = {
        f.name: (v.to(device) if isinstance(v := getattr(instance, f.name), torch.Tensor) else v)
        for f in dataclasses.fields(instance)
    }
    return type(instance)(**values)


def sample_sets(config: UnsupervisedConfig, problem: Any) -> tuple[Any, Any]:
    """(train, val) instances, float32 on CPU, from separate seed streams of ``config.seed``."""
    scenario = preset(config.preset, **config.scenario)
    train = problem.sample(
        scenario, config.train_samples, seed=stream_seed(config.seed, "unsupervised/train")
    )
    val = problem.sample(scenario, config.val_samples, seed=stream_seed(config.seed, "unsupervised/val"))
    return train, val


def make_policy(config: UnsupervisedConfig, model: nn.Module) -> Any:
    """The problem's policy wrapper around ``model``."""
    return PROBLEMS[config.problem]()[1](model)


class UnsupervisedModule(pl.LightningModule):
    """Loss = -mean objective (+ penalty); validation: objective and every metric (module docstring).

    Hyperparameters (plain types): ``config`` (``UnsupervisedConfig.to_dict()``), ``cfmimo_version``.
    Batches are instances (``InstanceLoader``).
    """

    def __init__(
        self, config: dict[str, Any], cfmimo_version: str = __version__, penalty: Penalty | None = None
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["penalty"])
        self.config = UnsupervisedConfig.from_dict(config)
        self.model = build_model(self.config.model)
        self.problem, make = PROBLEMS[self.config.problem]()
        self.policy = make(self.model)
        self.penalty = penalty
        self.recipe = RECIPES[self.config.recipe](self) if self.config.recipe is not None else None
        self.kappa_rule: KappaRule | None = None  # the support recipe's eq. (8) state (first step)
        self._u_generator = torch.Generator().manual_seed(stream_seed(self.config.seed, "unsupervised/u"))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Rule (8)'s state (kappa, psi history, counts) and the u generator travel in the checkpoint,
        so a resumed support run continues them (plain tensors: loads with ``weights_only=True``)."""
        if self.kappa_rule is not None:
            rule = self.kappa_rule
            checkpoint["kappa_rule"] = {"kappa": rule.kappa, "history": rule.history, "count": rule.count}
        checkpoint["u_generator"] = self._u_generator.get_state()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("kappa_rule")
        if state is not None and self.config.support is not None:
            rule = KappaRule(self.config.support, num_samples=self.config.train_samples)
            rule.kappa, rule.history, rule.count = (state[k].clone() for k in ("kappa", "history", "count"))
            self.kappa_rule = rule
        if "u_generator" in checkpoint:
            self._u_generator.set_state(checkpoint["u_generator"])

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        if isinstance(batch, tuple):  # (instance, training-sample indices) for per-instance recipes
            return move_instance(batch[0], device), batch[1].to(device)
        return move_instance(batch, device)

    def _support_step(self, batch: Any) -> torch.Tensor:
        """Negative loss (7) with S Monte Carlo powers p = clip(a + ell u, 0, cap) and kappa by
        rule (8) (``cfmimo.learn.support``); psi on cap-normalized widths."""
        support = self.config.support
        assert support is not None
        if self.kappa_rule is None:
            self.kappa_rule = KappaRule(support, num_samples=self.config.train_samples)
        a, ell = self.policy.support(batch)  # [B, L, K] in the decision's unit (mW), 0 on unserved
        cap = batch.cap.to(a.dtype)[..., None].expand_as(a)
        S, B = support.samples, batch.batch
        repeated = batch.take(torch.arange(B, device=a.device).repeat(S))  # sample-major, as p
        index = torch.tensor(batch.indices, dtype=torch.long)
        if support.per_sample and int(index.max()) >= self.config.train_samples:
            raise ValueError("per-sample kappa needs batch indices < train_samples")
        kappa = self.kappa_rule.kappa[index if support.per_sample else 0].to(a)
        to_power = getattr(self.policy, "to_power", None)  # support domain -> mW (log-power option)
        if to_power is not None:
            cap_s, serving_s = cap.repeat(S, 1, 1), repeated.serving.to(a.device)

            def power(p: torch.Tensor) -> torch.Tensor:
                return to_power(p, cap_s, serving_s)
        else:

            def power(p: torch.Tensor) -> torch.Tensor:
                return p

        loss, parts = support_loss(
            lambda p: self.problem.objective(repeated, Allocation(link_power=power(p))),
            a,
            ell,
            cap,
            kappa,
            S,
            generator=self._u_generator,
        )
        self.kappa_rule.update(parts["psi"], index)
        self.log("train_objective", parts["expected_objective"].mean(), prog_bar=True, batch_size=B)
        self.log("train_psi", parts["psi"].mean(), batch_size=B)
        self.log("train_kappa", kappa.mean(), batch_size=B)
        self.log("train_loss", loss, batch_size=B)
        return loss

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        index = None
        if isinstance(batch, tuple):
            batch, index = batch
        if self.recipe is not None:
            loss, logs = self.recipe.training_loss(self, batch, index)
            for name, value in logs.items():
                self.log(name, value, prog_bar=name == "train_objective", batch_size=batch.batch)
            self.log("train_loss", loss, batch_size=batch.batch)
            return loss
        if self.config.support is not None:
            return self._support_step(batch)
        allocation = self.policy(batch)
        objective = self.problem.objective(batch, allocation).mean()
        loss = -objective
        if self.penalty is not None:
            extra = self.penalty(self.problem, batch, allocation, self)
            self.log("train_penalty", extra, batch_size=batch.batch)
            loss = loss + extra
        self.log("train_objective", objective, prog_bar=True, batch_size=batch.batch)
        self.log("train_loss", loss, batch_size=batch.batch)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        allocation = self.policy(batch)
        n = batch.batch
        self.log(
            "val_objective", self.problem.objective(batch, allocation).mean(), prog_bar=True, batch_size=n
        )
        for name, value in self.problem.metrics(batch, allocation).items():
            if value.is_floating_point():
                self.log(f"val/{name}", value.mean(), batch_size=n)
        if self.recipe is not None:
            for name, value in self.recipe.validation_logs(self, batch).items():
                self.log(f"val/{name}", value, batch_size=n)

        width = allocation.info.get("support_width") if allocation.info else None
        if isinstance(width, torch.Tensor):
            self.log("val/support_width", width.mean(), batch_size=n)

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.Adam(self.model.parameters(), lr=self.config.lr)
        if self.config.lr_warmup_steps > 0:
            return {
                "optimizer": optimizer,
                "lr_scheduler": {"scheduler": self._warmup(optimizer), "interval": "step"},
            }
        if self.config.lr_final is not None:  # the ee-gnn recipe: geometric decay lr -> lr_final
            gamma = (self.config.lr_final / self.config.lr) ** (1.0 / self.config.max_steps)
            schedule = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
        if not self.config.lr_decay_at:
            return optimizer
        milestones = sorted({max(1, int(f * self.config.max_steps)) for f in self.config.lr_decay_at})
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma=self.config.lr_decay)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def _warmup(self, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LambdaLR:
        """One LambdaLR: linear warm-up times the decay schedule the config asks for (the same
        factors as ExponentialLR / MultiStepLR, which are used directly when there is no warm-up)."""
        cfg = self.config
        warm = cfg.lr_warmup_steps
        if cfg.lr_final is not None:
            gamma = (cfg.lr_final / cfg.lr) ** (1.0 / cfg.max_steps)
            decay = lambda step: gamma**step  # noqa: E731
        else:
            milestones = sorted({max(1, int(f * cfg.max_steps)) for f in cfg.lr_decay_at})
            decay = lambda step: cfg.lr_decay ** sum(step >= m for m in milestones)  # noqa: E731
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: min(1.0, (step + 1) / warm) * decay(step)
        )


def _loader(
    instance: Any, batch_size: int, *, shuffle: bool, seed: int, with_index: bool = False
) -> DataLoader:
    """Sub-batches of an in-memory instance (a seeded shuffle for training); ``with_index``: batches
    are (instance, indices into the set) for recipes with per-instance state."""
    generator = torch.Generator().manual_seed(stream_seed(seed, "unsupervised/batches"))

    def collate(idx: list[int]) -> Any:
        t = torch.tensor(idx)
        return (instance.take(t), t) if with_index else instance.take(t)

    return DataLoader(
        range(instance.batch),
        batch_size=min(batch_size, instance.batch),
        shuffle=shuffle,
        generator=generator if shuffle else None,
        collate_fn=collate,
    )


class _History(Callback):
    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []

    def on_validation_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        row = {"step": float(trainer.global_step)}
        row.update({k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val")})
        self.rows.append(row)

    def state_dict(self) -> dict[str, Any]:  # the rows before a cut-off survive a resume
        return {"rows": self.rows}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = [dict(r) for r in state_dict["rows"]]


def train_unsupervised(
    config: UnsupervisedConfig | dict[str, Any],
    *,
    penalty: Penalty | None = None,
    train: Any = None,
    val: Any = None,
    resume: bool = False,
) -> dict[str, Any]:
    """Train one model (module docstring); ``train``/``val`` instances override the sampled ones.
    ``resume``: continue from ``<out_dir>/checkpoints/last.ckpt`` if it exists (written at every
    validation) with its optimizer, schedule, rule (8) state and validation history; the data order
    after the cut is not the uninterrupted run's (the epoch's batches restart). The caller must make
    sure the checkpoint belongs to the same config.

    Returns {"model" (best checkpoint's weights, eval mode), "policy", "best_checkpoint",
    "last_checkpoint" (last.ckpt, rewritten at every validation), "final_checkpoint" (the
    weights and recipe state after the last step), "best_val_objective", "initial_val_objective" (the untrained model), "initial_val_logs" (a recipe's validation logs, untrained),
    "history" (one row per validation), "recipe_state" (e.g. the final multipliers), "seconds",
    "steps_per_second" (of this call), "resumed_from_step" (0 unless resumed)}.
    """
    cfg = config if isinstance(config, UnsupervisedConfig) else UnsupervisedConfig.from_dict(config)
    cfg = resolve_model(cfg)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    module = UnsupervisedModule(cfg.to_dict(), penalty=penalty)
    if train is None or val is None:
        sampled = sample_sets(cfg, module.problem)
        train = sampled[0] if train is None else train
        val = sampled[1] if val is None else val
    if module.recipe is not None:
        train, val = module.recipe.prepare_sets(train, val)
    if hasattr(module.model, "fit_inputs"):  # channel-graph models fit every input statistic
        module.model.fit_inputs(train)
    elif hasattr(module.model, "fit_input_scale"):
        module.model.fit_input_scale(train.h, train.association, train.p_max, train.noise)
    elif hasattr(module.model, "fit_input_stats"):  # gain-graph models (eq. (13) of ee-gnn)
        module.model.fit_input_stats(train.gains, train.serving)
    with torch.no_grad():
        initial = float(module.problem.objective(val, module.policy(val)).mean())
        initial_logs = (
            {k: float(v) for k, v in module.recipe.validation_logs(module, val).items()}
            if module.recipe is not None
            else {}
        )
    out = Path(cfg.out_dir)
    from cfmimo.learn.trainer import _checkpoint_callback  # last.ckpt at every validation (Lightning 2.6)

    checkpoint = _checkpoint_callback(ModelCheckpoint)(
        dirpath=out / "checkpoints",
        filename="best-{step:06d}",
        monitor="val_objective",
        mode="max",
        save_last=True,
    )
    history = _History()
    trainer = pl.Trainer(
        max_steps=cfg.max_steps,
        max_epochs=-1,
        val_check_interval=min(cfg.val_every, cfg.max_steps),
        check_val_every_n_epoch=None,
        accelerator=cfg.accelerator,
        devices=1,
        precision=cfg.precision,
        logger=CSVLogger(out, name="csv"),
        callbacks=[checkpoint, history],
        enable_progress_bar=cfg.progress_bar,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=min(50, cfg.max_steps),
        default_root_dir=out,
    )
    last = out / "checkpoints" / "last.ckpt"
    ckpt_path = str(last) if resume and last.is_file() else None
    first_step = int(torch.load(last, weights_only=True)["global_step"]) if ckpt_path else 0
    start = time.perf_counter()
    trainer.fit(
        module,
        ckpt_path=ckpt_path,
        train_dataloaders=_loader(
            train,
            cfg.batch_size,
            shuffle=True,
            seed=cfg.seed,
            with_index=bool(getattr(module.recipe, "wants_index", False)),
        ),
        val_dataloaders=_loader(val, cfg.batch_size, shuffle=False, seed=cfg.seed),
    )
    seconds = time.perf_counter() - start
    # the weights after the last step, also when the last validation came before it
    final = out / "checkpoints" / "final.ckpt"
    trainer.save_checkpoint(final, weights_only=False)  # full state: a resumable checkpoint (and no info log)
    from cfmimo.learn.trainer import _device_name, write_timing

    write_timing(  # steps interleave with validation here: one fit time for both
        out,
        {
            "train_seconds": seconds,
            "wall_seconds": seconds,
            "steps": trainer.global_step,
            "epochs": trainer.current_epoch,
        },
        device=_device_name(trainer),
        world_size=1,
        validation_in_train=True,
    )
    best = checkpoint.best_model_path or checkpoint.last_model_path
    model, _ = load_unsupervised(best)
    return {
        "model": model,
        "policy": make_policy(cfg, model),
        "best_checkpoint": best,
        "last_checkpoint": checkpoint.last_model_path,
        "final_checkpoint": str(final),
        "best_val_objective": float(checkpoint.best_model_score)
        if checkpoint.best_model_score is not None
        else None,
        "initial_val_objective": initial,
        "initial_val_logs": initial_logs,
        "history": history.rows,
        "recipe_state": module.recipe.state(module) if module.recipe is not None else {},
        "seconds": seconds,
        "steps_per_second": (trainer.global_step - first_step) / seconds if seconds > 0 else float("nan"),
        "resumed_from_step": first_step,
    }


def load_unsupervised(
    path: str | os.PathLike, *, map_location: str | torch.device = "cpu"
) -> tuple[nn.Module, UnsupervisedConfig]:
    """Rebuild a checkpoint's model from its recorded config and weights (``weights_only=True``).
    Returns (model in eval mode, config); ``make_policy(config, model)`` wraps it as a policy."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {path} does not exist")
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    try:
        config = UnsupervisedConfig.from_dict(ckpt["hyper_parameters"]["config"])
        state = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    except (KeyError, TypeError) as err:
        raise ValueError(f"{path} is not a cfmimo unsupervised checkpoint (missing {err})") from None
    model = build_model(config.model)
    model.load_state_dict(state)
    return model.eval(), config


# ------------------------------------------------------------------------------------------------
# Recipes: training losses that are not -objective(policy(instance)), with their own state. Each
# lives in its own module, imported when a config names it.


def _fronthaul_pd(module: UnsupervisedModule) -> Any:
    from cfmimo.learn.fronthaul_recipe import FronthaulPrimalDual

    return FronthaulPrimalDual(module)


#: recipe name -> factory(module) -> recipe with prepare_sets, training_loss, validation_logs, state
RECIPES: dict[str, Callable[[UnsupervisedModule], Any]] = {"fronthaul_pd": _fronthaul_pd}
