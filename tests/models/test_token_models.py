"""Token-per-UE baselines of Table II: parameter counts, per-model defaults, input checks."""

from __future__ import annotations

import pytest
import torch

from cfmimo.models import ModelConfig, build_model, count_parameters
from cfmimo.models.token_models import ue_tokens


@pytest.mark.parametrize(
    ("name", "params"), [("transformer", 845_826), ("cosformer", 102_338), ("performer", 102_338)]
)
def test_parameter_counts_table_ii(name, params):
    assert count_parameters(build_model(ModelConfig(name=name))) == params  # L = 16


def test_per_model_defaults_and_explicit_fields():
    assert build_model(ModelConfig(name="transformer")).config.layers == 3
    cos = build_model(ModelConfig(name="cosformer"))
    assert (cos.config.layers, cos.config.ff) == (2, 256)
    explicit = build_model(ModelConfig(name="cosformer", ff=2048, layers=1))
    assert (explicit.config.ff, len(explicit.layers)) == (2048, 1)
    # The resolved config rebuilds the same architecture (what a checkpoint should record).
    again = build_model(cos.config.model_dump())
    assert count_parameters(again) == count_parameters(cos)
    again.load_state_dict(cos.state_dict())


def test_tokens_are_ue_then_all_aps():
    ue, ap = torch.rand(2, 3, 2), torch.rand(2, 4, 2)
    x = ue_tokens(ue, ap)
    assert x.shape == (2, 3, 10)
    torch.testing.assert_close(x[:, :, :2], ue)
    torch.testing.assert_close(x[:, 1, 2:], ap.reshape(2, 8))


@pytest.mark.parametrize("name", ["transformer", "cosformer", "performer"])
def test_fixed_number_of_aps(name):
    model = build_model(ModelConfig(name=name, num_aps=4))
    assert model(torch.rand(1, 3, 2), torch.rand(1, 4, 2)).shape == (1, 3, 2)
    with pytest.raises(ValueError, match="L = num_aps = 4"):
        model(torch.rand(1, 3, 2), torch.rand(1, 5, 2))
    with pytest.raises(ValueError, match="padded APs"):
        model(torch.rand(1, 3, 2), torch.rand(1, 4, 2), ap_mask=torch.tensor([[True, True, True, False]]))


def test_cosformer_activation_from_config():
    relu = build_model(ModelConfig(name="cosformer", activation="relu"))
    elu = build_model(ModelConfig(name="cosformer", activation="elu"))
    assert relu.layers[0].attn.activation == "relu" and elu.layers[0].attn.activation == "elu"
    with pytest.raises(ValueError, match="activation"):
        build_model(ModelConfig(name="cosformer", activation="swish"))


def test_performer_layers_have_distinct_fixed_projections():
    a, b = build_model(ModelConfig(name="performer")), build_model(ModelConfig(name="performer"))
    pa = [layer.attn.projection for layer in a.layers]
    assert pa[0].shape == (256, 16) and not torch.equal(pa[0], pa[1])
    assert all(torch.equal(x, layer.attn.projection) for x, layer in zip(pa, b.layers, strict=True))
