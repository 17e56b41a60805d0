"""Training a gain-aware model: the gain statistics are fitted on the training split, travel in the
checkpoint, and a checkpoint without them is refused naming the field."""

from __future__ import annotations

import pytest
import torch

from cfmimo.data.storage import load_dataset
from cfmimo.learn.data import split_validation
from cfmimo.learn.trainer import load_trained, train
from cfmimo.models.gain_aware import fit_gain_norm
from cfmimo.policies.neural import predict_powers


@pytest.fixture(scope="module")
def gain_run(tiny_train, tmp_path_factory):
    from cfmimo.learn.config import TrainConfig

    config = TrainConfig.from_dict(
        {
            "model": {"name": "tree_transformer_gain", "d_enc": 8, "d_mod": 16, "ff": 32},
            "data": {"train": str(tiny_train), "val_fraction": 0.25, "sigma_ue_m": 5.0},
            "trainer": {
                "epochs": 1,
                "batch_size": 64,
                "accelerator": "cpu",
                "progress_bar": False,
                "out_dir": str(tmp_path_factory.mktemp("gain") / "run"),
            },
        }
    )
    return tiny_train, train(config)


def test_statistics_travel_in_the_checkpoint_and_predictions_round_trip(gain_run):
    folder, result = gain_run
    trained = load_trained(result.best_checkpoint)
    train_groups, _ = split_validation(load_dataset(folder).groups, 0.25)
    mean, std = fit_gain_norm(train_groups)  # the training split's gains, not the validation's
    assert trained.model.gain_norm.to_dict() == {"mean_db": mean, "std_db": std}
    g = load_dataset(folder).groups[(4, 16)]
    args = (g["ue_positions"][:8], g["ap_positions"][:8], 3200.0, tuple(range(8)))
    kw = dict(frame=trained.frame, sigma_ue_m=5.0, gain_db=g["gain_db"][:8])
    a = predict_powers(trained.model, trained.scaler, *args, **kw)
    b = predict_powers(load_trained(result.best_checkpoint).model, trained.scaler, *args, **kw)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    # the gains matter: other gains, other powers
    c = predict_powers(trained.model, trained.scaler, *args, **{**kw, "gain_db": g["gain_db"][:8] - 15.0})
    assert not torch.equal(a[1], c[1])
    with pytest.raises(ValueError, match="gain_db"):
        predict_powers(trained.model, trained.scaler, *args, frame=trained.frame)


def test_checkpoint_without_gain_normalization_is_refused(gain_run, tmp_path):
    _, result = gain_run
    ckpt = torch.load(result.best_checkpoint, weights_only=True)
    del ckpt["state_dict"]["model.gain_norm.std_db"]
    bad = tmp_path / "no-gain-norm.ckpt"
    torch.save(ckpt, bad)
    with pytest.raises(ValueError, match=r"no-gain-norm\.ckpt.*gain_norm.*gain_norm\.std_db"):
        load_trained(bad)


def test_gain_aware_elu_cosformer_trains_with_dynamic_supervision(tmp_path):
    from cfmimo.config import preset
    from cfmimo.data.generation import run_generation
    from cfmimo.data.spec import DatasetSpec
    from cfmimo.learn.config import TrainConfig

    spec = DatasetSpec(
        scenario=preset("elu-cosformer", realizations=4),
        sizes=[(3, 16)],
        samples=16,
        shard_size=16,
        seed=2,
        labels=False,
    )
    run_generation(spec, tmp_path / "data", scheduler="sync")
    config = TrainConfig.from_dict(
        {
            "model": {"name": "elu_cosformer_gain", "d_mod": 16, "ff": 32},
            "data": {"train": str(tmp_path / "data"), "val_fraction": 0.25, "sigma_ue_m": 1.0},
            "trainer": {
                "epochs": 1,
                "batch_size": 12,
                "accelerator": "cpu",
                "progress_bar": False,
                "out_dir": str(tmp_path / "run"),
            },
            "dynamic": {"scaler_samples": 4},
        }
    )
    trained = load_trained(train(config).best_checkpoint)
    train_groups, _ = split_validation(load_dataset(tmp_path / "data").groups, 0.25)
    mean, std = fit_gain_norm(train_groups)
    assert trained.model.gain_norm.to_dict() == {"mean_db": mean, "std_db": std}
