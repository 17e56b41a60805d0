"""The worst-UE SE term of supervised power training (``TrainConfig.se_term``): the SEs it sees are
the evaluation's, its loss is MSE - λ (min SE UL + min SE DL), it trains, reloads and refuses what
it cannot use, naming the field or the dataset."""

from __future__ import annotations

import pytest
import torch

from cfmimo.data.storage import load_dataset
from cfmimo.learn.config import TrainConfig
from cfmimo.learn.supervised import SupervisedPowerModule, masked_softmin, predicted_se
from cfmimo.learn.trainer import load_trained, load_training_data, train


def _batch(data, K: int = 4, n: int = 16) -> dict[str, torch.Tensor]:
    g = data.train[(K, 16)]
    batch = {k: v[:n] for k, v in g.items()}
    batch["K"] = torch.full((n,), K)
    batch["L"] = torch.full((n,), 16)
    batch["ue_mask"] = torch.ones(n, K, dtype=torch.bool)
    batch["ap_mask"] = torch.ones(n, 16, dtype=torch.bool)
    return batch


@pytest.fixture(scope="module")
def se_data(tiny_train):
    config = TrainConfig.from_dict({"data": {"train": str(tiny_train), "val_fraction": 0.25}, "se_term": {}})
    return load_training_data(config)


def test_the_optimal_powers_through_the_rescaler_give_the_stored_optimal_se(se_data, tiny_train):
    """Independent path: the dataset's stored max-min SEs (computed at generation from the closed
    form's powers) against the SE term's rescaler + statistics fed the normalized labels."""
    batch = _batch(se_data)
    out = torch.stack([batch["p_ul_norm"], batch["p_dl_norm"]], dim=-1).double()
    se_ul, se_dl = predicted_se(out, batch, se_data.scaler)
    stored = load_dataset(tiny_train).groups[(4, 16)]
    row = {int(i): j for j, i in enumerate(stored["sample_index"])}
    rows = torch.tensor([row[int(i)] for i in batch["sample_index"]])
    # float32 storage of statistics and labels: relative 1e-4 with margin
    torch.testing.assert_close(se_ul, stored["se_ul"][rows].double(), rtol=2e-4, atol=1e-5)
    torch.testing.assert_close(se_dl, stored["se_dl"][rows].double(), rtol=2e-4, atol=1e-5)
    # max-min: the optimum equalizes every UE's SE within a sample
    assert float((se_ul.amax(-1) - se_ul.amin(-1)).max()) < 1e-3 * float(se_ul.amax())


def test_loss_is_mse_minus_lambda_times_both_worst_ue_ses(se_data):
    hp = dict(scaler=se_data.scaler.to_dict(), val_sizes=[[2, 16], [4, 16]], seed=0, cfmimo_version="test")
    base = {"model": {"name": "deepsets", "d_enc": 8, "d_mod": 16}, "data": {"train": "unused"}}
    lam = 0.37
    module = SupervisedPowerModule({**base, "se_term": {"lam": lam}}, **hp)
    plain = SupervisedPowerModule(base, **hp)
    plain.model.load_state_dict(module.model.state_dict())
    batch = _batch(se_data)
    out = module(batch)
    se_ul, se_dl = predicted_se(out, batch, se_data.scaler)
    mse = torch.nn.functional.mse_loss(out, torch.stack([batch["p_ul_norm"], batch["p_dl_norm"]], -1))
    expected = mse - lam * (se_ul.amin(-1) + se_dl.amin(-1)).mean()
    loss = module._loss(module._loss_sums(batch))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert plain._loss(plain._loss_sums(batch)).item() == pytest.approx(
        mse.item(), rel=1e-5
    )  # float32 sum vs mean
    # the term reaches the model: its gradient differs from the MSE's
    loss.backward()
    plain._loss(plain._loss_sums(batch)).backward()
    grads = [
        (a.grad - b.grad).abs().max() for a, b in zip(module.parameters(), plain.parameters(), strict=True)
    ]
    assert max(grads) > 0


def test_masked_softmin():
    se = torch.tensor([[1.0, 2.0, 0.5], [3.0, 0.1, 9.0]])
    mask = torch.tensor([[True, True, True], [True, False, True]])
    assert torch.equal(masked_softmin(se, mask, 0.0), torch.tensor([0.5, 3.0]))
    soft = masked_softmin(se, mask, 0.1)
    assert bool((soft <= torch.tensor([0.5, 3.0])).all()) and bool((soft > torch.tensor([0.4, 2.9])).all())


def test_training_with_the_se_term_logs_the_worst_ue_se_and_reloads(make_config):
    config = make_config(se_term={"lam": 0.05}, trainer={"epochs": 1})
    result = train(config)
    entry = result.history[-1]
    assert entry["val_min_se_ul"] > 0 and entry["val_min_se_dl"] > 0
    trained = load_trained(result.best_checkpoint)
    assert trained.config.se_term is not None and trained.config.se_term.lam == 0.05


def test_bad_se_term_configs_name_the_field(make_config):
    with pytest.raises(ValueError, match=r"se_term.*dynamic"):
        make_config(se_term={"lam": 0.1}, dynamic={"lam": 0.1})
    with pytest.raises(ValueError, match=r"se_term\.lam"):
        make_config(se_term={"lam": 0.0})


def test_a_dataset_without_statistics_is_refused_naming_it(tmp_path):
    from cfmimo.config import preset
    from cfmimo.data.generation import run_generation
    from cfmimo.data.spec import DatasetSpec

    spec = DatasetSpec(
        scenario=preset("tree-transformer", realizations=4), sizes=[(2, 4)], samples=8, seed=0, labels=False
    )
    run_generation(spec, tmp_path / "positions", scheduler="sync")
    config = TrainConfig.from_dict({"data": {"train": str(tmp_path / "positions")}, "se_term": {}})
    with pytest.raises(ValueError, match=r"se_term: dataset .*positions.*ul_signal"):
        load_training_data(config)
