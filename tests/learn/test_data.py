"""Training data plumbing: validation split, features prepared once, whole-batch fetching and the
DDP bucket batch sampler (disjoint, equal-count shares; deterministic per epoch)."""

from __future__ import annotations

import pytest
import torch

from cfmimo.data.loaders import BucketBatchSampler, collate_same_size, fit_power_scaler
from cfmimo.data.storage import load_dataset
from cfmimo.data.transforms import PrepareBatch
from cfmimo.learn.data import (
    BatchedDataset,
    DistributedBucketBatchSampler,
    balance_batches,
    prepare_features,
    split_validation,
)


def synthetic(sizes: dict[tuple[int, int], int]) -> dict:
    g = torch.Generator().manual_seed(0)
    return {
        (K, L): {
            "ue_positions": 500 * torch.rand(n, K, 2, generator=g),
            "ap_positions": 500 * torch.rand(n, L, 2, generator=g),
            "p_ul": 100 * torch.rand(n, K, generator=g),
            "p_dl": 100 * torch.rand(n, K, generator=g),
            "sample_index": torch.arange(n).flip(0),  # stored order need not be index order
        }
        for (K, L), n in sizes.items()
    }


def test_split_holds_out_the_highest_indices_per_group():
    groups = synthetic({(2, 4): 10, (3, 4): 7})
    train, val = split_validation(groups, 0.25)
    for key, n, m in (((2, 4), 10, 2), ((3, 4), 7, 2)):
        assert sorted(val[key]["sample_index"].tolist()) == list(range(n - m, n))
        assert sorted(train[key]["sample_index"].tolist()) == list(range(n - m))
        for name, t in groups[key].items():  # rows stay together
            i = int((groups[key]["sample_index"] == val[key]["sample_index"][0]).nonzero())
            assert torch.equal(val[key][name][0], t[i])
    with pytest.raises(ValueError, match="fraction"):
        split_validation(groups, 1.0)
    with pytest.raises(ValueError, match="at least 2"):
        split_validation(synthetic({(2, 4): 1}), 0.5)


def test_features_prepared_once_equal_per_batch_preparation(tiny_train):
    groups = load_dataset(tiny_train).groups
    prepare = PrepareBatch(scaler=fit_power_scaler(groups), sigma_ue_m=5.0, seed=3)
    once = prepare_features(groups, prepare)
    dataset = BatchedDataset(groups)
    for batch in BucketBatchSampler(dataset, 16, shuffle=True, generator=torch.Generator().manual_seed(1)):
        per_batch = prepare(collate_same_size([dataset[i] for i in batch]))
        (K, L), _ = dataset.locate(batch[0])
        local = torch.tensor(batch) - dataset.buckets[(K, L)].start
        for name in ("ue_features", "ap_features", "p_ul_norm", "p_dl_norm"):
            assert torch.equal(once[(K, L)][name][local], per_batch[name]), name


def test_batched_dataset_matches_collate_same_size():
    groups = synthetic({(2, 4): 5, (3, 1): 4})
    dataset = BatchedDataset(groups)
    for indices in ([0, 3, 1], [5, 8]):
        fast = dataset.__getitems__(indices)
        slow = collate_same_size([dataset[i] for i in indices])
        assert fast.keys() == slow.keys()
        assert all(torch.equal(fast[k], slow[k]) for k in fast)
    with pytest.raises(ValueError, match="one \\(K, L\\)"):
        dataset.__getitems__([0, 6])


def test_balance_batches_splits_the_largest_and_keeps_every_sample():
    batches = [[0, 1, 2, 3], [4], [5, 6]]
    out = balance_batches(batches, 2)
    assert len(out) == 4 and sorted(i for b in out for i in b) == list(range(7))
    assert out[0] == [0, 1] and out[1] == [2, 3]
    assert balance_batches(batches, 3) == batches
    with pytest.raises(ValueError, match="equal batch counts"):
        balance_batches([[0], [1], [2]], 2)


@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_distributed_sampler_shares_are_disjoint_equal_and_cover_the_epoch(world):
    dataset = BatchedDataset(synthetic({(2, 4): 23, (3, 4): 9, (5, 2): 4}))

    def shares(epoch: int) -> list[list[list[int]]]:
        out = []
        for rank in range(world):
            base = BucketBatchSampler(dataset, 8, shuffle=True, generator=torch.Generator().manual_seed(5))
            sampler = DistributedBucketBatchSampler(base, num_replicas=world, rank=rank)
            sampler.set_epoch(epoch)
            out.append(list(sampler))
            assert len(out[-1]) == len(sampler)
        return out

    for epoch in (0, 1):
        per_rank = shares(epoch)
        assert len({len(s) for s in per_rank}) == 1  # equal step counts on every process
        seen = [i for s in per_rank for b in s for i in b]
        assert sorted(seen) == list(range(len(dataset)))  # disjoint, every sample once
        for s in per_rank:
            for b in s:  # one (K, L) per batch
                assert len({dataset.item_sizes[i] for i in b}) == 1
        assert shares(epoch) == per_rank  # deterministic per epoch
    assert shares(0) != shares(1)  # and reshuffled between epochs


def test_distributed_sampler_rejects_too_little_data():
    dataset = BatchedDataset(synthetic({(2, 4): 1, (3, 4): 1}))
    base = BucketBatchSampler(dataset, 8, shuffle=False)
    with pytest.raises(ValueError, match="3 processes"):
        DistributedBucketBatchSampler(base, num_replicas=3, rank=0)
    with pytest.raises(ValueError, match="rank"):
        DistributedBucketBatchSampler(base, num_replicas=2, rank=2)
