"""The power-model contract for every registered model: [B, K, 2] in (0, 1), padding never changes
the real UEs' outputs, gradients reach every parameter."""

from __future__ import annotations

import pytest
import torch

from cfmimo.models import ModelConfig, build_model, model_names
from cfmimo.models.cluster_models import CLUSTER_MODEL_NAMES
from cfmimo.models.gain_aware import GAIN_INPUT_MODEL_NAMES
from cfmimo.models.gnn import GAIN_MODEL_NAMES, PRECODER_MODEL_NAMES
from cfmimo.models.gnn.fronthaul import FRONTHAUL_MODEL_NAMES

LENGTHS = (1, 3, 5, 8)
L = 16  # the token models' fixed num_aps
POWER_MODELS = [
    n
    for n in model_names()
    if n not in CLUSTER_MODEL_NAMES
    and n not in PRECODER_MODEL_NAMES
    and n not in FRONTHAUL_MODEL_NAMES
    and n not in GAIN_MODEL_NAMES
    and n not in GAIN_INPUT_MODEL_NAMES
]  # clustering: test_cluster_models.py; gain-aware: test_gain_aware.py; precoders, fronthaul and gain-graph models: tests/models/test_gnn_*.py


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    ue = torch.rand(len(LENGTHS), max(LENGTHS), 2, generator=g)
    ap = torch.rand(len(LENGTHS), L, 2, generator=g)
    mask = torch.arange(max(LENGTHS))[None, :] < torch.tensor(LENGTHS)[:, None]
    return ue.masked_fill(~mask[..., None], 5.0), ap, mask  # far-away garbage at padded UEs


@pytest.mark.parametrize("name", POWER_MODELS)
def test_padded_batch_equals_each_sample_alone(name):
    torch.manual_seed(0)
    model = build_model(ModelConfig(name=name)).eval()
    ue, ap, mask = _inputs()
    with torch.no_grad():
        out = model(ue, ap, mask, torch.ones(len(LENGTHS), L, dtype=torch.bool))
        assert out.shape == (len(LENGTHS), max(LENGTHS), 2)
        assert torch.all((out[mask] > 0) & (out[mask] < 1))
        for b, k in enumerate(LENGTHS):
            alone = model(ue[b : b + 1, :k], ap[b : b + 1])
            torch.testing.assert_close(out[b, :k], alone[0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", POWER_MODELS)
def test_gradients_reach_every_parameter(name):
    torch.manual_seed(0)
    model = build_model(ModelConfig(name=name)).train()
    ue, ap, mask = _inputs(1)
    out = model(ue, ap, mask)
    (out[mask] ** 2).sum().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname
