"""Pieces of the supervised recipe: the masked loss, the learning-rate factor and the per-epoch
noise of the data module."""

from __future__ import annotations

import itertools
import math
from types import SimpleNamespace

import pytest
import torch

from cfmimo.data.loaders import fit_power_scaler
from cfmimo.data.storage import load_dataset
from cfmimo.data.transforms import PrepareBatch
from cfmimo.learn.data import RAW_KEYS, prepare_features, select_keys
from cfmimo.learn.supervised import PowerDataModule, masked_squared_error, warmup_cosine


def test_masked_squared_error_ignores_padded_ues():
    pred = torch.tensor([[[0.5, 0.5], [0.0, 1.0]], [[1.0, 1.0], [9.0, 9.0]]])  # [B=2, K=2, 2]
    target = torch.tensor([[[0.0, 0.0], [0.0, 0.0]], [[1.0, 0.0], [0.0, 0.0]]])
    mask = torch.tensor([[True, True], [True, False]])  # the second sample has one real UE
    sse, count = masked_squared_error(pred, target, mask)
    assert count == 6 and sse == pytest.approx(0.25 + 0.25 + 0 + 1 + 0 + 1)
    full_sse, full_count = masked_squared_error(pred[:1], target[:1], mask[:1])
    assert full_sse / full_count == pytest.approx(torch.nn.functional.mse_loss(pred[:1], target[:1]).item())


def test_warmup_cosine():
    f = [warmup_cosine(s, total=10, warmup=2, floor=0.1) for s in range(12)]
    assert f[:2] == [0.5, 1.0]  # linear warmup
    assert f[2] == pytest.approx(1.0) and f[10] == pytest.approx(0.1) and f[11] == pytest.approx(0.1)
    assert f[6] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert all(a >= b for a, b in itertools.pairwise(f[2:]))  # non-increasing after warmup


def test_fresh_noise_changes_with_the_epoch_and_validation_stays_fixed(tiny_train):
    groups = select_keys(load_dataset(tiny_train).groups, RAW_KEYS)
    prepare = PrepareBatch(scaler=fit_power_scaler(groups), sigma_ue_m=5.0, seed=0)
    dm = PowerDataModule(groups, prepare_features(groups, prepare), batch_size=8, seed=0, prepare=prepare)
    dm.trainer = SimpleNamespace(current_epoch=0, world_size=1, global_rank=0)
    # K = 4 (with K = 2, per-set min-max maps the two UEs to opposite corners whatever the noise)
    batch = next(b for b in dm.train_dataloader() if b["ue_positions"].shape[1] == 4)
    assert "ue_features" not in batch
    first = dm.on_before_batch_transfer(dict(batch), 0)["ue_features"]
    assert torch.equal(first, dm.on_before_batch_transfer(dict(batch), 0)["ue_features"])
    dm.trainer.current_epoch = 1
    assert not torch.equal(first, dm.on_before_batch_transfer(dict(batch), 0)["ue_features"])
    val = next(iter(dm.val_dataloader()))
    assert torch.equal(dm.on_before_batch_transfer(dict(val), 0)["ue_features"], val["ue_features"])
