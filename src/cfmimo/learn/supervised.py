"""Supervised training of a position -> power model (tree-transformer paper, Sect. III-D).

The model maps noisy, min-max scaled UE and AP positions to normalized UL and DL powers and is
trained to minimize the MSE to the normalized optimal (max-min closed-form) powers; validation runs
over every (K, L) size and the checkpoint monitor ``val_loss`` is the average of the per-size
validation losses ("the best-performing model is saved based on the lowest average validation
loss across different network configurations"). Optimizer: AdamW (Table I) with a cosine decay.

With ``TrainConfig.se_term`` (not in the paper) the loss adds the worst-UE SE term of elu-cosformer
loss (32): MSE - λ (min_k SE_k^UL + min_k SE_k^DL), the SEs of the predicted powers after the
rescaler under the dataset's stored UatF statistics (``predicted_se``); validation and the
checkpoint monitor use the same loss, so loss and metric cannot drift apart. Why: the power MSE
charges an error on a UE's power by its size in the normalized range, whatever it does to the
UE's SE; a UE whose optimal power is small can get ~0 from a good-MSE model and become the worst
UE (measured on the gain-aware Tree-Transformer, docs/learning.md "Site study").

Two Lightning pieces:

* ``SupervisedPowerModule``: forward, loss, logging, optimizer. Its hyperparameters (plain types
  only, so checkpoints load with ``torch.load(..., weights_only=True)``) are the full
  ``TrainConfig``, the ``PowerScaler`` statistics, the validation sizes, the seed and the cfmimo
  version: a checkpoint is enough to rebuild the model and its output scaling.
* ``PowerDataModule``: size-bucketed loaders shared among DDP processes
  (``DistributedBucketBatchSampler``) over batches prepared by ``PrepareBatch`` (noise, min-max,
  power normalization): once for the whole dataset when the noise is fixed per sample, or per
  batch with the epoch's noise (``data.fresh_noise``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader

from cfmimo.data.loaders import BucketBatchSampler
from cfmimo.data.transforms import PowerScaler, PrepareBatch, rescale_predictions
from cfmimo.learn.config import TrainConfig
from cfmimo.learn.data import BatchedDataset, DistributedBucketBatchSampler, unwrap_batch
from cfmimo.models import build_model
from cfmimo.rng import stream_seed
from cfmimo.sim.uatf import downlink_sinr, spectral_efficiency, stored_statistics, uplink_sinr

__all__ = [
    "PowerDataModule",
    "SupervisedPowerModule",
    "configure_adamw",
    "masked_softmin",
    "masked_squared_error",
    "predicted_se",
    "warmup_cosine",
]


def masked_squared_error(
    pred: torch.Tensor, target: torch.Tensor, ue_mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of squared errors over the real UEs and both links, and the number of terms
    (MSE = sum / count), in at least float32 (also under bf16/fp16 mixed precision).

    Shapes:
        pred, target [B, K, 2] (normalized UL, DL powers); ue_mask [B, K] bool (True = real UE);
        returns two scalars.
    """
    dtype = torch.promote_types(pred.dtype, torch.float32)
    w = ue_mask.unsqueeze(-1).to(dtype)  # [B, K, 1]
    sse = ((pred.to(dtype) - target.to(dtype)).square() * w).sum()
    return sse, w.sum() * pred.shape[-1]


def warmup_cosine(step: int, *, total: int, warmup: int, floor: float) -> float:
    """Learning-rate factor: linear warmup over ``warmup`` steps, then cosine decay from 1 to
    ``floor`` at step ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min((step - warmup) / max(total - warmup, 1), 1.0)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


class SupervisedPowerModule(pl.LightningModule):
    """MSE between predicted and normalized optimal powers (see the module docstring).

    Batches (``PowerDataModule``) hold "ue_features" [B, K, 2], "ap_features" [B, L, 2],
    "p_ul_norm", "p_dl_norm" [B, K] and the masks "ue_mask" [B, K], "ap_mask" [B, L]; every
    batch has one (K, L). Logged: ``train_loss_step``, ``train_loss`` (epoch mean),
    ``val_loss/K=..,L=..`` per size and ``val_loss``, their average over sizes.
    """

    def __init__(
        self,
        config: dict[str, Any],
        scaler: dict[str, float],
        val_sizes: list[list[int]],
        seed: int,
        cfmimo_version: str,
        position_frame: dict[str, float] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.config = TrainConfig.from_dict(config)
        self.model = build_model(self.config.model)
        if self.config.trainer.compile:
            self.model.compile()  # in place: state_dict keys unchanged
        # the SE term's rescaler (eqs. (12)-(13)) needs the run's power normalization
        self.scaler = PowerScaler.from_dict(scaler) if self.config.se_term is not None else None
        self.val_sizes = [(int(K), int(L)) for K, L in val_sizes]
        self._size_index = {size: i for i, size in enumerate(self.val_sizes)}

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Normalized (UL, DL) powers. Shapes: batch as in the class docstring -> [B, K, 2]."""
        return self.model(
            batch["ue_features"],
            batch["ap_features"],
            batch["ue_mask"],
            batch["ap_mask"],
            **gain_input(batch),
        )

    def _loss_sums(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """[sum of squared errors, their count, samples, Σ_b min_k SE_k^UL, Σ_b min_k SE_k^DL]
        of one batch (the SE sums 0 without ``se_term``); loss = sse / count - λ (ul + dl) / n."""
        out = self(batch)
        target = torch.stack([batch["p_ul_norm"], batch["p_dl_norm"]], dim=-1)  # [B, K, 2]
        sse, count = masked_squared_error(out, target, batch["ue_mask"])
        zero = sse.new_zeros(())
        min_ul = min_dl = zero
        if self.config.se_term is not None:
            se_ul, se_dl = predicted_se(out, batch, self.scaler)  # [B, K] each, float64
            tau, mask = self.config.se_term.softmin_temperature, batch["ue_mask"]
            min_ul, min_dl = (masked_softmin(se, mask, tau).sum().to(sse.dtype) for se in (se_ul, se_dl))
        n = sse.new_tensor(float(len(batch["K"])))
        return torch.stack([sse, count.to(sse.dtype), n, min_ul, min_dl])

    def _loss(self, sums: torch.Tensor) -> torch.Tensor:
        """The loss from ``_loss_sums`` (summed over batches of one size, or not). Shapes: [..., 5] -> [...]."""
        mse = sums[..., 0] / sums[..., 1].clamp_min(1.0)
        if self.config.se_term is None:
            return mse
        return mse - self.config.se_term.lam * (sums[..., 3] + sums[..., 4]) / sums[..., 2].clamp_min(1.0)

    def training_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        sums = self._loss_sums(batch)
        loss = self._loss(sums)
        n = len(batch["K"])
        self.log("train_loss_step", loss, prog_bar=True)  # this process's batch loss
        # the epoch mean over all batches and processes (one all-reduce per epoch, not per step)
        self.log("train_loss", loss, on_step=False, on_epoch=True, sync_dist=True, batch_size=n)
        if self.config.se_term is not None:
            for i, name in ((3, "train_min_se_ul"), (4, "train_min_se_dl")):
                self.log(
                    name, (sums[i] / n).detach(), on_step=False, on_epoch=True, sync_dist=True, batch_size=n
                )
        return loss

    # Validation: exact per-size means (sums of squared errors and counts, summed over batches and
    # processes), then their plain average over sizes, as the paper's checkpoint criterion.
    def on_validation_epoch_start(self) -> None:
        self._val_sums = torch.zeros(len(self.val_sizes), 5, dtype=torch.float64, device=self.device)

    def validation_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        size = (batch["ue_features"].shape[1], batch["ap_features"].shape[1])  # (K, L) of this batch
        self._val_sums[self._size_index[size]] += self._loss_sums(batch).double()

    def on_validation_epoch_end(self) -> None:
        sums = self.trainer.strategy.reduce(self._val_sums, reduce_op="sum")  # [S, 5], same on all ranks
        seen = sums[:, 1] > 0
        per_size = self._loss(sums)  # [S]
        for (K, L), loss, ok in zip(self.val_sizes, per_size.float(), seen.tolist(), strict=True):
            if ok:
                self.log(f"val_loss/K={K},L={L}", loss, sync_dist=True)
        if seen.any():
            self.log("val_loss", per_size[seen].mean().float(), prog_bar=True, sync_dist=True)
            if self.config.se_term is not None:
                n = sums[seen, 2]
                self.log("val_min_se_ul", (sums[seen, 3] / n).mean().float(), sync_dist=True)
                self.log("val_min_se_dl", (sums[seen, 4] / n).mean().float(), sync_dist=True)

    def configure_optimizers(self) -> Any:
        return configure_adamw(self, self.config)


def masked_softmin(se: torch.Tensor, mask: torch.Tensor | None, temperature: float) -> torch.Tensor:
    """Per sample, min over the real UEs of ``se`` (temperature 0) or the soft-min
    -τ log Σ_k exp(-se_k / τ), whose gradient spreads over the UEs by softmax weights.
    Shapes: se [B, K], mask [B, K] bool or None (every UE real) -> [B]."""
    if mask is not None:
        se = se.masked_fill(~mask, float("inf"))
    if temperature == 0:
        return se.amin(-1)
    return -temperature * torch.logsumexp(-se / temperature, dim=-1)


def predicted_se(
    out: torch.Tensor, batch: Mapping[str, torch.Tensor], scaler: PowerScaler
) -> tuple[torch.Tensor, torch.Tensor]:
    """UatF SEs of a model's normalized powers after the rescaler (eqs. (12)-(13): UL clamped to
    the scaler's range, DL scaled to the budget "dl_total_power"), under the batch's stored
    statistics; differentiable in ``out``. Shapes: out [B, K, 2], batch as ``SE_TERM_KEYS`` ->
    (se_ul, se_dl) [B, K] float64 (0 at padded UEs, which get no power)."""
    mask = batch["ue_mask"]
    p_ul, p_dl = rescale_predictions(out[..., 0], out[..., 1], scaler, batch["dl_total_power"], mask)
    ul, dl = stored_statistics(batch)
    prelog = batch["prelog"].double()  # [B, 2]
    se_ul = spectral_efficiency(uplink_sinr(ul, p_ul.double()), prelog[:, :1])
    se_dl = spectral_efficiency(downlink_sinr(dl, p_dl.double()), prelog[:, 1:])
    return se_ul, se_dl


def gain_input(batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``{"gain_db": ...}`` for a batch that carries the gains (gain-aware models), else ``{}``."""
    return {"gain_db": batch["gain_db"]} if "gain_db" in batch else {}


def configure_adamw(module: pl.LightningModule, config: TrainConfig) -> Any:
    """AdamW on the module's model with the configured per-step schedule (``OptimConfig``)."""
    o = config.optim
    optimizer = torch.optim.AdamW(module.model.parameters(), lr=o.lr, weight_decay=o.weight_decay)
    if o.schedule == "constant":
        return optimizer
    total = int(module.trainer.estimated_stepping_batches)
    warmup = round(o.warmup_epochs * total / max(module.trainer.max_epochs or 1, 1))
    factor = functools.partial(warmup_cosine, total=total, warmup=warmup, floor=o.min_lr / o.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


class PowerDataModule(pl.LightningDataModule):
    """Loaders over in-memory groups ``{(K, L): {name: [n, ...]}}``, one (K, L) per batch.

    ``train`` holds prepared features (``cfmimo.learn.data.prepare_features``) or, when
    ``prepare`` is given, the raw positions and labels, prepared per batch with the current
    epoch's noise; ``val`` always holds prepared features. Training batches are shuffled per
    epoch from ``seed``; every process of a DDP run gets its share
    (``DistributedBucketBatchSampler``), so Lightning's own sampler injection is not used.
    """

    def __init__(
        self,
        train: Mapping[tuple[int, int], Mapping[str, torch.Tensor]],
        val: Mapping[tuple[int, int], Mapping[str, torch.Tensor]],
        *,
        batch_size: int,
        seed: int,
        num_workers: int = 0,
        prepare: PrepareBatch | None = None,
    ) -> None:
        super().__init__()
        self.train_groups, self.val_groups, self.prepare = train, val, prepare
        self.batch_size, self.seed, self.num_workers = batch_size, seed, num_workers

    def _loader(self, groups: Mapping, shuffle: bool) -> DataLoader:
        dataset = BatchedDataset(groups)
        generator = torch.Generator().manual_seed(stream_seed(self.seed, "train_batches"))
        batches = BucketBatchSampler(dataset, self.batch_size, shuffle=shuffle, generator=generator)
        world, rank = (self.trainer.world_size, self.trainer.global_rank) if self.trainer else (1, 0)
        return DataLoader(
            dataset,
            batch_sampler=DistributedBucketBatchSampler(batches, num_replicas=world, rank=rank),
            collate_fn=unwrap_batch,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_groups, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_groups, shuffle=False)

    def on_before_batch_transfer(self, batch: dict[str, torch.Tensor], dataloader_idx: int) -> dict:
        if self.prepare is not None and "ue_features" not in batch:  # fresh noise: this epoch's draw
            batch = self.prepare(batch, epoch=self.trainer.current_epoch)
        return batch
