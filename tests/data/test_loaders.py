"""Loaders: the grouped dataset, size-bucketed batches and same-size / padded collation."""

from __future__ import annotations

import pytest
import torch

from cfmimo.data.loaders import (
    BucketBatchSampler,
    GroupedDataset,
    collate_same_size,
    fit_power_scaler,
    make_loader,
    pad_collate,
)
from cfmimo.data.transforms import PrepareBatch

SIZES = {(2, 4): 7, (3, 4): 5, (5, 1): 9, (4, 2): 1}


def make_groups(sizes: dict[tuple[int, int], int] = SIZES, seed: int = 0) -> dict:
    """Synthetic groups with every value nonzero (so padding zeros are recognizable)."""
    g = torch.Generator().manual_seed(seed)
    groups = {}
    for (K, L), n in sizes.items():
        groups[(K, L)] = {
            "ap_positions": 1 + 500 * torch.rand(n, L, 2, generator=g),
            "ue_positions": 1 + 500 * torch.rand(n, K, 2, generator=g),
            "gain_db": -10 - 40 * torch.rand(n, L, K, generator=g, dtype=torch.float64),
            "serving": torch.ones(n, L, K, dtype=torch.bool),
            "pilot": torch.randint(1, 3, (n, K), generator=g, dtype=torch.int16),
            "ul_interference": 1 + torch.rand(n, K, K, generator=g),
            "p_ul": 1 + 99 * torch.rand(n, K, generator=g),
            "p_dl": 1 + 99 * torch.rand(n, K, generator=g),
            "sample_index": torch.arange(n, dtype=torch.int64),
        }
    return groups


def epoch_batches(sampler: BucketBatchSampler) -> list[list[int]]:
    return [list(b) for b in sampler]


# ---------------------------------------------------------------- dataset


def test_grouped_dataset_items_match_groups():
    groups = make_groups()
    ds = GroupedDataset(groups)
    assert len(ds) == sum(SIZES.values())
    assert ds.keys == sorted(SIZES)
    assert len(ds.item_sizes) == len(ds)
    for key, idx in ds.buckets.items():
        assert len(idx) == SIZES[key]
        for local, i in enumerate(idx):
            it = ds[i]
            assert (it["K"], it["L"]) == key == ds.item_sizes[i]
            for name, t in groups[key].items():
                assert torch.equal(it[name], t[local]), name
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_grouped_dataset_validation_names_the_key():
    groups = make_groups({(3, 2): 4})
    bad = {(3, 2): {**groups[(3, 2)], "gain_db": torch.zeros(4, 3, 2)}}  # [n, K, L] instead of [n, L, K]
    with pytest.raises(ValueError, match=r'\["gain_db"\].*\[n, L, K\]'):
        GroupedDataset(bad)
    bad = {(3, 2): {**groups[(3, 2)], "p_ul": torch.zeros(5, 3)}}
    with pytest.raises(ValueError, match=r'\["p_ul"\] has 5 samples'):
        GroupedDataset(bad)
    missing = {(3, 2): {k: v for k, v in groups[(3, 2)].items() if k != "sample_index"}}
    with pytest.raises(ValueError, match="sample_index"):
        GroupedDataset(missing)
    with pytest.raises(ValueError, match="keys must be \\(K, L\\)"):
        GroupedDataset({(3, 0): groups[(3, 2)]})
    with pytest.raises(ValueError, match="non-empty"):
        GroupedDataset({})
    # unlabelled groups (e.g. the elu-cosformer training set) are fine
    unlabelled = {(3, 2): {k: v for k, v in groups[(3, 2)].items() if k not in ("p_ul", "p_dl")}}
    assert len(GroupedDataset(unlabelled)) == 4


# ---------------------------------------------------------------- sampler


@pytest.mark.parametrize("drop_last", [False, True])
def test_bucket_sampler_one_size_per_batch_each_index_once(drop_last):
    ds = GroupedDataset(make_groups())
    sampler = BucketBatchSampler(ds, 3, drop_last=drop_last, generator=torch.Generator().manual_seed(0))
    for _ in range(3):
        batches = epoch_batches(sampler)
        assert len(batches) == len(sampler)
        for b in batches:
            assert len({ds.item_sizes[i] for i in b}) == 1
            assert 1 <= len(b) <= 3 and (len(b) == 3 or not drop_last)
        flat = sorted(i for b in batches for i in b)
        if drop_last:  # each bucket loses its remainder only
            assert len(flat) == sum(n // 3 * 3 for n in SIZES.values()) and len(set(flat)) == len(flat)
        else:
            assert flat == list(range(len(ds)))


def test_bucket_sampler_order_depends_on_seed_and_epoch_only():
    ds = GroupedDataset(make_groups())

    def sampler(seed: int) -> BucketBatchSampler:
        return BucketBatchSampler(ds, 2, generator=torch.Generator().manual_seed(seed))

    a, b, c = sampler(0), sampler(0), sampler(1)
    a0, a1 = epoch_batches(a), epoch_batches(a)
    assert a0 == epoch_batches(b) and a1 == epoch_batches(b)  # same seed: same epochs
    assert a0 != a1  # shuffled differently each epoch
    assert a0 != epoch_batches(c)  # and per seed
    # batch order mixes buckets (not bucket after bucket)
    keys = [ds.item_sizes[x[0]] for x in a0]
    assert keys != sorted(keys)
    # resuming: set_epoch reproduces an epoch
    a.set_epoch(1)
    assert epoch_batches(a) == a1
    # no shuffling: buckets in sorted (K, L) order, indices in order
    plain = BucketBatchSampler(ds, 4, shuffle=False)
    assert [i for x in plain for i in x] == list(range(len(ds)))
    with pytest.raises(ValueError, match="generator"):
        BucketBatchSampler(ds, 4)
    with pytest.raises(ValueError, match="batch_size"):
        BucketBatchSampler(ds, 0, shuffle=False)
    with pytest.raises(ValueError, match="epoch"):
        a.set_epoch(-1)


# ---------------------------------------------------------------- collation


def test_collate_same_size_stacks_and_rejects_mixed_sizes():
    groups = make_groups()
    ds = GroupedDataset(groups)
    idx = list(ds.buckets[(2, 4)])[:3]
    batch = collate_same_size([ds[i] for i in idx])
    for name, t in groups[(2, 4)].items():
        assert torch.equal(batch[name], t[:3]), name
    assert batch["K"].tolist() == [2, 2, 2] and batch["L"].tolist() == [4, 4, 4]
    assert batch["ue_mask"].shape == (3, 2) and batch["ue_mask"].all()
    assert batch["ap_mask"].shape == (3, 4) and batch["ap_mask"].all()
    with pytest.raises(ValueError, match="pad_collate"):
        collate_same_size([ds[0], ds[len(ds) - 1]])


def test_pad_collate_holds_the_samples_and_zeros_elsewhere():
    groups = make_groups()
    ds = GroupedDataset(groups)
    samples = [ds[i] for i in (0, 8, 12, len(ds) - 1)]  # (K, L) = (2,4), (3,4), (4,2), (5,1)
    batch = pad_collate(samples)
    B, K_max, L_max = 4, 5, 4
    assert batch["K"].tolist() == [2, 3, 4, 5] and batch["L"].tolist() == [4, 4, 2, 1]
    assert batch["ue_mask"].dtype == torch.bool and batch["ue_mask"].shape == (B, K_max)
    assert batch["ue_mask"].sum(1).tolist() == [2, 3, 4, 5]
    assert batch["ap_mask"].sum(1).tolist() == [4, 4, 2, 1]
    assert batch["gain_db"].shape == (B, L_max, K_max) and batch["gain_db"].dtype == torch.float64
    assert batch["ul_interference"].shape == (B, K_max, K_max)
    assert batch["pilot"].dtype == torch.int16 and batch["serving"].dtype == torch.bool
    for b, s in enumerate(samples):
        K, L = s["K"], s["L"]
        for name, t in s.items():
            if name in ("K", "L"):
                continue
            region = (b, *(slice(0, n) for n in t.shape))
            assert torch.equal(batch[name][region], t), name
            rest = batch[name][b].clone()
            rest[tuple(slice(0, n) for n in t.shape)] = 0
            assert (rest == 0).all(), name  # zeros (False) outside the sample
        assert batch["ue_mask"][b].tolist() == [True] * K + [False] * (K_max - K)
        assert batch["ap_mask"][b].tolist() == [True] * L + [False] * (L_max - L)


def test_pad_collate_unknown_keys_need_axes():
    groups = make_groups({(2, 3): 2, (4, 3): 2})
    for g in groups.values():
        n, K = g["p_ul"].shape
        g["extra"] = torch.ones(n, K, 3)
        g["weight"] = torch.ones(n)  # per-sample scalar: stacked
    ds = GroupedDataset(groups)
    samples = [ds[0], ds[3]]
    assert collate_same_size([ds[0], ds[1]])["extra"].shape == (2, 2, 3)  # same size: just stacked
    with pytest.raises(ValueError, match=r'"extra".*axes='):
        pad_collate(samples)
    batch = pad_collate(samples, axes={"extra": ("K", None)})
    assert batch["extra"].shape == (2, 4, 3) and batch["weight"].shape == (2,)
    assert batch["extra"][0, 2:].abs().sum() == 0 and (batch["extra"][0, :2] == 1).all()
    with pytest.raises(ValueError, match='"extra"'):
        pad_collate(samples, axes={"extra": ("K",)})


# ---------------------------------------------------------------- loaders


@pytest.mark.parametrize("mixed", [False, True])
def test_make_loader_covers_every_sample_once(mixed):
    groups = make_groups()
    loader = make_loader(groups, 4, shuffle=True, seed=5, mixed_sizes=mixed)
    seen = []
    for batch in loader:
        B = batch["sample_index"].shape[0]
        assert batch["ue_positions"].shape[:2] == (B, int(batch["K"].max()))
        if not mixed:
            assert len(set(zip(batch["K"].tolist(), batch["L"].tolist(), strict=True))) == 1
        seen += list(
            zip(batch["K"].tolist(), batch["L"].tolist(), batch["sample_index"].tolist(), strict=True)
        )
    assert sorted(seen) == sorted((K, L, i) for (K, L), n in SIZES.items() for i in range(n))
    again = [
        b["sample_index"].tolist() for b in make_loader(groups, 4, shuffle=True, seed=5, mixed_sizes=mixed)
    ]
    first = [
        b["sample_index"].tolist() for b in make_loader(groups, 4, shuffle=True, seed=5, mixed_sizes=mixed)
    ]
    assert again == first
    with pytest.raises(ValueError, match="seed"):
        make_loader(groups, 4, shuffle=True)


def test_make_loader_with_prepare_batch_and_fitted_scaler():
    groups = make_groups()
    scaler = fit_power_scaler(groups)
    all_ul = torch.cat([g["p_ul"].reshape(-1) for g in groups.values()])
    assert (scaler.ul_min, scaler.ul_max) == (float(all_ul.min()), float(all_ul.max()))
    prep = PrepareBatch(scaler=scaler, sigma_ue_m=5.0, seed=1)
    for batch in make_loader(groups, 3, shuffle=True, seed=0, mixed_sizes=True, transform=prep):
        m = batch["ue_mask"]
        assert batch["ue_features"].shape == batch["ue_positions"].shape
        assert (batch["p_ul_norm"][m] >= 0).all() and (batch["p_ul_norm"][m] <= 1).all()
        assert (batch["p_ul_norm"][~m] == 0).all() and (batch["ue_features"][~m] == 0).all()
    with pytest.raises(ValueError, match="unlabelled"):
        fit_power_scaler({(2, 2): {"sample_index": torch.arange(2)}})
