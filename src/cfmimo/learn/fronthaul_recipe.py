"""The egat-fronthaul recipe for the unsupervised module (``config.recipe = "fronthaul_pd"``):
Algorithm 2 of the paper with its sign errors fixed (``cfmimo.learn.policy_gradient``), i.e.
primal-dual training with REINFORCE over the association, and ``fronthaul_config`` with the paper's
defaults."""

from __future__ import annotations

from typing import Annotated, Any

import torch
from pydantic import Field, ValidationError

from cfmimo.config import preset
from cfmimo.learn.unsupervised import UnsupervisedConfig, UnsupervisedModule, _Strict
from cfmimo.models import ModelConfig, build_model
from cfmimo.rng import stream_seed

__all__ = ["FronthaulPrimalDual", "FronthaulRecipeOptions", "fronthaul_config"]


class FronthaulRecipeOptions(_Strict):
    """Options of the egat-fronthaul primal-dual + REINFORCE recipe (:class:`FronthaulPrimalDual`)."""

    samples: Annotated[int, Field(ge=1)] = 4
    """S Bernoulli association draws per instance (S >= 2 for the leave-one-out baseline)."""
    baseline: str = "loo"
    dual_lr: Annotated[float, Field(ge=0)] = 0.1
    """eta_mu of the dual step mu <- [mu + eta_mu (load / C - 1)]_+, applied after every step."""
    mu: str = "ap"
    """"ap": one multiplier per AP index, [L] (the paper's mu in R_+^B, shared by all instances);
    "scalar": one for every AP (APs are exchangeable under i.i.d. placement); "instance": one per
    training sample and AP, [train_samples, L] (each updated when its sample is in the batch)."""
    capacity_range_bps: tuple[float, float] | None = (40e6, 90e6)
    """C ~ U[lo, hi] per training / validation instance (same C at every AP of an instance): one
    capacity-conditioned model over the paper's Table II range; None keeps the preset's C."""

    def model_post_init(self, _: Any) -> None:
        if self.baseline not in ("loo", "none"):
            raise ValueError(f"recipe_options.baseline must be 'loo' or 'none', got {self.baseline!r}")
        if self.baseline == "loo" and self.samples < 2:
            raise ValueError("recipe_options.samples must be >= 2 for the leave-one-out baseline")
        if self.mu not in ("ap", "scalar", "instance"):
            raise ValueError(f"recipe_options.mu must be 'ap', 'scalar' or 'instance', got {self.mu!r}")
        c = self.capacity_range_bps
        if c is not None and not 0 < c[0] <= c[1]:
            raise ValueError(f"recipe_options.capacity_range_bps must be 0 < lo <= hi, got {c}")


class FronthaulPrimalDual:
    """egat-fronthaul Algorithm 2 with the sign errors fixed (``cfmimo.learn.policy_gradient``):

    per step, the model's raw beams and logits on the batch -> S Bernoulli draws X_s ~ pi -> loss (33)
    as descent with the Lagrangian (29) in the beams and REINFORCE with a leave-one-out baseline in
    the logits (Q detached) -> after the loss, the dual step ``mu <- [mu + eta_mu (load/C - 1)]_+``
    with this step's loads (mu is shared by all instances, [L] or a scalar, by default; with
    ``mu="instance"`` one row per training sample, [train_samples, L], and the training batches carry
    their sample indices). ``mu`` is the buffer
    ``dual_mu`` of the Lightning module (saved in checkpoints). The training and validation sets
    get a per-instance capacity C ~ U(capacity_range_bps) (the model takes C as an AP feature: one
    capacity-conditioned model), drawn once from the run's seed.
    """

    def __init__(self, module: UnsupervisedModule) -> None:
        cfg = module.config
        try:
            self.options = FronthaulRecipeOptions.model_validate(cfg.recipe_options)
        except ValidationError as err:
            raise ValueError(f"invalid recipe_options: {err.errors()[0]['msg']}") from None
        L = preset(cfg.preset, **cfg.scenario).L
        shape = {"ap": (L,), "scalar": (), "instance": (cfg.train_samples, L)}[self.options.mu]
        module.register_buffer("dual_mu", torch.zeros(shape))
        self.wants_index = self.options.mu == "instance"  # training batches carry sample indices
        self.seed = cfg.seed
        self.generator = torch.Generator().manual_seed(stream_seed(cfg.seed, "fronthaul_pd/associations"))

    def prepare_sets(self, train: Any, val: Any) -> tuple[Any, Any]:
        c = self.options.capacity_range_bps
        if c is None:
            return train, val
        out = []
        for name, inst in (("train", train), ("val", val)):
            g = torch.Generator().manual_seed(stream_seed(self.seed, f"fronthaul_pd/capacity/{name}"))
            u = torch.rand(inst.batch, 1, generator=g, dtype=torch.float64)
            cap = (c[0] + (c[1] - c[0]) * u).to(inst.power.dtype).expand_as(inst.power)
            out.append(inst.with_capacity(cap.to(inst.power.device)))
        return out[0], out[1]

    def training_loss(
        self, module: UnsupervisedModule, batch: Any, index: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Loss (33) and the dual step on one batch; ``index`` [B]: the batch's training-sample indices
        (required with ``mu="instance"``)."""
        from cfmimo.learn.policy_gradient import dual_step, fronthaul_pg_loss

        out = module.model.forward_instance(batch)
        if self.wants_index:
            if index is None:
                raise ValueError("recipe_options.mu='instance' needs the batch's training-sample indices")
            if int(index.max()) >= module.dual_mu.shape[0]:
                raise ValueError(
                    f"training sample index {int(index.max())} >= train_samples = {module.dual_mu.shape[0]}"
                )
            mu = module.dual_mu[index]  # [B, L], a copy
        else:
            mu = module.dual_mu.clone()  # the loss keeps this value; the buffer is updated in place below
        loss, stats = fronthaul_pg_loss(
            batch,
            out.beams.to(batch.h.dtype),
            out.logits.to(batch.power.dtype),
            mu,
            samples=self.options.samples,
            generator=self.generator,
            baseline=self.options.baseline,  # type: ignore[arg-type]
        )
        with torch.no_grad():
            new = dual_step(mu, stats["load"], batch.capacity, self.options.dual_lr)
            if self.wants_index:
                module.dual_mu[index] = new
            else:
                module.dual_mu.copy_(new)
        return loss, {
            "train_objective": stats["wsr"].mean(),
            "train_lagrangian": stats["lagrangian"].mean(),
            "train_feasible": stats["feasible"].float().mean(),
            "train_aps_per_ue": stats["aps_per_ue"].mean(),
            "train_mu_mean": module.dual_mu.mean(),
            "train_mu_max": module.dual_mu.max(),
        }

    @torch.no_grad()
    def validation_logs(self, module: UnsupervisedModule, batch: Any) -> dict[str, torch.Tensor]:
        """Unrepaired test-time (pi > 0.5) and sampled decisions: WSR, feasibility, Lagrangian."""
        from cfmimo.learn.policy_gradient import lagrangian
        from cfmimo.policies.neural import FronthaulPolicy

        logs: dict[str, torch.Tensor] = {}
        for tag, policy in (
            ("", FronthaulPolicy(module.model)),
            ("sampled_", FronthaulPolicy(module.model, sample=True, seed=self.seed)),
        ):
            alloc = policy(batch)
            m = module.problem.metrics(batch, alloc)
            feasible = module.problem.violation(batch, alloc) <= 1e-6
            logs[f"{tag}wsr_unrepaired"] = m["wsr"].mean()
            logs[f"{tag}feasible_unrepaired"] = feasible.float().mean()
            if not tag:
                mu = module.dual_mu.mean(0) if self.wants_index else module.dual_mu  # val: the mean
                lag = lagrangian(m["wsr"], m["load_bps"], batch.capacity, mu.to(m["wsr"].dtype))
                logs["lagrangian"] = lag.mean()
                logs["pi_mean"] = alloc.info["pi"].mean()
        return logs

    def state(self, module: UnsupervisedModule) -> dict[str, Any]:
        mu = module.dual_mu.detach().cpu()
        if self.wants_index:
            return {
                "mu_mean": float(mu.mean()),
                "mu_max": float(mu.max()),
                "mu_positive": float((mu > 0).float().mean()),
            }
        return {"mu": mu.tolist()}


def fronthaul_config(**overrides: Any) -> UnsupervisedConfig:
    """An ``UnsupervisedConfig`` with the egat-fronthaul recipe's defaults: problem ``fronthaul_wsr``,
    preset ``egat``, model ``egat_fh``, recipe ``fronthaul_pd`` (S = 4, shared mu [L], eta_mu = 0.1,
    C ~ U[40, 90] Mbit/s), the paper's fixed training set of 25,600 samples (100 batches of 256),
    Adam 1e-3 (Sect. V-A) with the step schedule x0.3 at 60 % and 85 % of ``max_steps`` (ours: the
    paper gives none), 30,000 steps (= the paper's 300 epochs x 100 batches). ``model`` (a dict or
    ``ModelConfig``) is resolved with the model's own defaults before it is recorded."""
    model = overrides.pop("model", {"name": "egat_fh"})
    model = model if isinstance(model, ModelConfig) else ModelConfig.model_validate(model)
    # the model's resolved config (its own defaults, e.g. N = 2, filled in): a dumped ModelConfig
    # loses which fields were set, so the checkpoint must record every resolved value
    resolved = build_model(model).config.model_dump(mode="json")
    base: dict[str, Any] = dict(
        model=resolved,
        problem="fronthaul_wsr",
        preset="egat",
        train_samples=25_600,
        val_samples=200,
        batch_size=256,
        lr=1e-3,
        lr_decay_at=(0.6, 0.85),
        lr_decay=0.3,
        max_steps=30_000,
        val_every=1_000,
        recipe="fronthaul_pd",
        out_dir="runs/fronthaul",
    )
    return UnsupervisedConfig.from_dict({**base, **overrides})
