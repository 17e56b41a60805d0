"""Tiny labelled datasets (generated once per session, in-process) and a config factory for the
training tests: the "deepsets" model, CPU, no progress bar, a few small batches per epoch."""

from __future__ import annotations

from pathlib import Path

import pytest

from cfmimo.config import preset
from cfmimo.data.generation import run_generation
from cfmimo.data.spec import DatasetSpec
from cfmimo.learn.config import TrainConfig


def _generate(folder: Path, samples: int, seed: int) -> Path:
    spec = DatasetSpec(
        scenario=preset("tree-transformer", realizations=10),
        sizes=[(2, 16), (4, 16)],
        samples=samples,
        shard_size=60,
        seed=seed,
    )
    run_generation(spec, folder, scheduler="sync")
    return folder


@pytest.fixture(scope="session")
def tiny_train(tmp_path_factory) -> Path:
    """(K, L) in {(2, 16), (4, 16)}, 120 labelled samples each."""
    return _generate(tmp_path_factory.mktemp("train"), 120, seed=0)


@pytest.fixture(scope="session")
def tiny_val(tmp_path_factory) -> Path:
    """A separate validation set: the same sizes, 20 samples each, another seed."""
    return _generate(tmp_path_factory.mktemp("val"), 20, seed=1)


@pytest.fixture
def make_config(tiny_train, tmp_path):
    """TrainConfig for a tiny CPU run; keyword sections update the defaults below."""

    def make(**sections) -> TrainConfig:
        base = {
            "model": {"name": "deepsets", "d_enc": 16, "d_mod": 32},
            "data": {"train": str(tiny_train), "val_fraction": 0.25},
            "optim": {"lr": 2e-3},
            "trainer": {
                "epochs": 2,
                "batch_size": 32,
                "accelerator": "cpu",
                "log_every_n_steps": 1,
                "progress_bar": False,
                "out_dir": str(tmp_path / "run"),
            },
        }
        for name, values in sections.items():
            base[name] = {**base.get(name, {}), **values}
        return TrainConfig.from_dict(base)

    return make
