"""TrainConfig: paper defaults, field-named validation errors, YAML round trip, dotted overrides."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cfmimo.cli import app
from cfmimo.learn.config import TrainConfig, apply_overrides, load_train_config, parse_override


def test_defaults_are_the_papers_training_setup():
    cfg = TrainConfig.from_dict({"data": {"train": "data/train"}})
    assert (cfg.optim.lr, cfg.trainer.batch_size, cfg.trainer.epochs) == (1e-3, 128, 100)  # Table I
    assert (cfg.data.sigma_ue_m, cfg.data.sigma_ap_m, cfg.data.fresh_noise) == (5.0, 0.0, False)  # eq. (10)
    assert (cfg.trainer.devices, cfg.trainer.precision, cfg.data.num_workers) == (1, "32-true", 0)
    assert cfg.model.name == "tree_transformer" and cfg.optim.schedule == "cosine"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"data": {"train": "x"}, "trainer": {"epochs": 0}}, "trainer.epochs"),
        ({"data": {"train": "x"}, "trainer": {"epoch": 3}}, "trainer.epoch"),
        ({"data": {"train": "x", "val_fraction": 1.5}}, "data.val_fraction"),
        ({"data": {"train": "x"}, "model": {"d_enc": -1}}, "model.d_enc"),
        ({"data": {"train": "x"}, "trainer": {"precision": "8-bit"}}, "trainer.precision"),
        ({"data": {"train": "x"}, "optim": {"lr": float("nan")}}, "optim.lr"),
        ({}, "data"),
    ],
)
def test_validation_errors_name_the_field(data, field):
    with pytest.raises(ValueError, match=f"invalid training config: .*{field}"):
        TrainConfig.from_dict(data)


def test_overrides_parse_yaml_scalars():
    assert parse_override("trainer.epochs=3") == (["trainer", "epochs"], 3)
    assert parse_override("optim.lr=1.0e-2") == (["optim", "lr"], 0.01)
    assert parse_override("data.val=null") == (["data", "val"], None)
    assert parse_override("model.name=deepsets") == (["model", "name"], "deepsets")
    cfg = TrainConfig.from_dict({"data": {"train": "a"}}).with_overrides(
        ["trainer.epochs=3", "model.name=deepsets", "optim.lr=1e-2", "trainer.devices=auto", "data.val=b"]
    )
    assert (cfg.trainer.epochs, cfg.model.name, cfg.optim.lr) == (3, "deepsets", 0.01)
    assert cfg.trainer.devices == "auto" and str(cfg.data.val) == "b"
    for bad in ("trainer.epochs", "=3", "trainer..epochs=3"):
        with pytest.raises(ValueError, match="override"):
            parse_override(bad)
    with pytest.raises(ValueError, match=r"trainer\.epochs is a value"):
        apply_overrides({"trainer": {"epochs": 3}}, ["trainer.epochs.x=1"])
    with pytest.raises(ValueError, match=r"trainer\.epoch: Extra inputs"):
        TrainConfig.from_dict({"data": {"train": "a"}}).with_overrides(["trainer.epoch=3"])


def test_yaml_round_trip_with_overrides(tmp_path):
    cfg = TrainConfig.from_dict({"data": {"train": "data/train"}, "model": {"name": "deepsets"}})
    cfg.to_yaml(tmp_path / "train.yaml")
    assert load_train_config(tmp_path / "train.yaml") == cfg
    loaded = load_train_config(tmp_path / "train.yaml", ["trainer.seed=7", "data.sigma_ue_m=0"])
    assert loaded == cfg.with_overrides(["trainer.seed=7", "data.sigma_ue_m=0"])
    assert loaded.trainer.seed == 7 and loaded.data.sigma_ue_m == 0.0
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ValueError, match="must hold a mapping"):
        load_train_config(tmp_path / "list.yaml")


def test_cli_reports_the_invalid_field(tmp_path):
    (tmp_path / "train.yaml").write_text("data: {train: nowhere}\nmodel: {name: deepsets}\n")
    result = CliRunner().invoke(
        app, ["train", "--config", str(tmp_path / "train.yaml"), "--set", "trainer.batch_size=0"]
    )
    assert result.exit_code == 2
    assert "trainer.batch_size" in result.output
