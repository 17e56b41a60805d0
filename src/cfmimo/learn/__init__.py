"""Training recipes (Lightning) and the training driver.

``cfmimo.learn.config``: ``TrainConfig`` (YAML, dotted overrides); ``cfmimo.learn.trainer``:
``train(config) -> TrainResult`` and ``load_trained(checkpoint) -> (model, scaler, config)``;
``cfmimo.learn.supervised``: the supervised LightningModule and DataModule;
``cfmimo.learn.data``: validation split, feature preparation, the DDP bucket batch sampler.

The names below are importable from ``cfmimo.learn``; Lightning is imported only when training
starts, so importing this package stays fast.
"""

from __future__ import annotations

from typing import Any

from cfmimo.learn.config import TrainConfig, load_train_config

__all__ = ["TrainConfig", "TrainResult", "TrainedModel", "load_train_config", "load_trained", "train"]


def __getattr__(name: str) -> Any:
    if name in ("TrainResult", "TrainedModel", "load_trained", "train"):
        from cfmimo.learn import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module 'cfmimo.learn' has no attribute {name!r}")
