"""Gain-aware Tree-Transformer and ELU-CosFormer: padding, AP-order invariance, reversal
equivariance, the gains actually used, the normalization buffers, errors naming the field, ONNX."""

from __future__ import annotations

import pytest
import torch

from cfmimo.models import ModelConfig, build_model, count_parameters, model_uses_gains
from cfmimo.models.gain_aware import fit_gain_norm

LENGTHS = (1, 3, 5, 8)


def _model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(ModelConfig(name=name)).eval()
    model.gain_norm.set(-20.0, 12.0)
    return model


def _inputs(L: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    B, K = len(LENGTHS), max(LENGTHS)
    ue, ap = torch.rand(B, K, 2, generator=g), torch.rand(B, L, 2, generator=g)
    gain = -20.0 + 12.0 * torch.randn(B, L, K, generator=g)
    mask = torch.arange(K)[None, :] < torch.tensor(LENGTHS)[:, None]
    return ue.masked_fill(~mask[..., None], 5.0), ap, gain.masked_fill(~mask[:, None, :], 99.0), mask


def _power(out):
    return getattr(out, "power", out)


def test_parameter_counts_and_registry():
    # base + pair encoder: Linear(5, d) + Linear(d, d) + Linear(2d, d)
    assert count_parameters(_model("tree_transformer_gain")) == 584_354 + (6 * 32 + 33 * 32 + 65 * 32)
    assert count_parameters(_model("elu_cosformer_gain")) == 103_378 + (6 * 64 + 65 * 64 + 129 * 64)
    assert model_uses_gains("tree_transformer_gain") and model_uses_gains("elu_cosformer_gain")
    assert not model_uses_gains("tree_transformer") and not model_uses_gains("elu_cosformer")


@pytest.mark.parametrize(("name", "L"), [("tree_transformer_gain", 9), ("elu_cosformer_gain", 16)])
def test_padded_ues_equal_each_sample_alone(name, L):
    model = _model(name)
    ue, ap, gain, mask = _inputs(L)
    with torch.no_grad():
        out = _power(model(ue, ap, mask, None, gain_db=gain))
        for b, k in enumerate(LENGTHS):
            alone = _power(model(ue[b : b + 1, :k], ap[b : b + 1], gain_db=gain[b : b + 1, :, :k]))
            torch.testing.assert_close(out[b, :k], alone[0], atol=1e-5, rtol=0)


def test_tree_padded_aps_and_ap_order_do_not_matter():
    model = _model("tree_transformer_gain")
    ue, ap, gain, _ = _inputs(6, seed=1)
    ue, gain = ue[:, :5], gain[:, :, :5]
    with torch.no_grad():
        ref = model(ue, ap, gain_db=gain)
        # padded APs (garbage positions and gains) with an ap_mask
        ap_pad = torch.cat([ap, torch.full((len(ap), 3, 2), 7.0)], dim=1)
        gain_pad = torch.cat([gain, torch.full((len(ap), 3, 5), 80.0)], dim=1)
        ap_mask = torch.arange(9)[None, :].expand(len(ap), -1) < 6
        torch.testing.assert_close(model(ue, ap_pad, None, ap_mask, gain_db=gain_pad), ref, atol=1e-5, rtol=0)
        perm = torch.randperm(6, generator=torch.Generator().manual_seed(3))
        torch.testing.assert_close(model(ue, ap[:, perm], gain_db=gain[:, perm]), ref, atol=1e-5, rtol=0)
        # the gains are an input: other gains, other powers
        assert (model(ue, ap, gain_db=gain + 10.0 * torch.randn_like(gain)) - ref).abs().max() > 1e-3


def test_elu_cosformer_gain_is_equivariant_under_reversing_the_ues():
    model = _model("elu_cosformer_gain")
    ue, ap, gain, _ = _inputs(16, seed=2)
    ue, gain = ue[:, :6], gain[:, :, :6]
    with torch.no_grad():
        out = model(ue, ap, gain_db=gain)
        rev = model(ue.flip(1), ap, gain_db=gain.flip(2))
    torch.testing.assert_close(rev.power, out.power.flip(1), atol=1e-5, rtol=0)
    torch.testing.assert_close(rev.mask, out.mask.flip(2), atol=1e-5, rtol=0)


def test_gain_errors_name_the_field():
    model = build_model(ModelConfig(name="tree_transformer_gain")).eval()
    ue, ap, gain, _ = _inputs(4)
    with pytest.raises(ValueError, match="gain_norm"):  # never fitted
        model(ue, ap, gain_db=gain)
    model.gain_norm.set(0.0, 1.0)
    with pytest.raises(ValueError, match="gain_db"):
        model(ue, ap)
    with pytest.raises(ValueError, match=r"gain_db must have shape \[B, L, K\]"):
        model(ue, ap, gain_db=gain.transpose(1, 2))
    with pytest.raises(ValueError, match="gain_norm"):
        model.gain_norm.set(0.0, 0.0)
    with pytest.raises(ValueError, match="gain_db"):
        fit_gain_norm({(2, 4): {"ue_positions": ue}})


def test_normalization_is_inside_the_model_and_the_state_dict():
    groups = {(2, 3): {"gain_db": torch.tensor([[[1.0, 3.0], [5.0, 7.0], [9.0, 11.0]]])}}
    mean, std = fit_gain_norm(groups)
    assert mean == 6.0 and abs(std - (35.0 / 3.0) ** 0.5) < 1e-12
    model = _model("tree_transformer_gain")
    state = model.state_dict()
    assert state["gain_norm.mean_db"].item() == -20.0 and state["gain_norm.std_db"].item() == 12.0
    other = build_model(ModelConfig(name="tree_transformer_gain")).eval()
    other.load_state_dict(state)
    ue, ap, gain, _ = _inputs(4)
    with torch.no_grad():
        assert torch.equal(other(ue, ap, gain_db=gain), model(ue, ap, gain_db=gain))


def test_onnx_export_takes_raw_gains(tmp_path):
    pytest.importorskip("onnxruntime")
    from cfmimo.export import export_onnx

    result = export_onnx(_model("tree_transformer_gain"), tmp_path / "tt_gain.onnx")
    assert result["dynamic"]["gain_db"] == ["B", "L", "K"]
    assert max(result["parity"].values()) < 1e-5


def test_gain_aware_clustering_model_exports_and_runs_in_onnxruntime(tmp_path):
    """elu_cosformer_gain: fixed L (its token width), clusters + powers out, gain_db in; the runtime
    model needs the gains and reproduces the PyTorch outputs and clusters."""
    pytest.importorskip("onnxruntime")
    from cfmimo.export import OnnxRuntimeModel, export_onnx
    from cfmimo.models.cluster_models import output_clusters

    model = _model("elu_cosformer_gain")
    L = model.config.num_aps
    result = export_onnx(model, tmp_path / "elu_gain.onnx")
    assert result["dynamic"]["gain_db"] == ["B", "K"]  # L fixed
    assert max(result["parity"].values()) < 1e-4
    assert all(result["clusters_equal"].values())
    runtime = OnnxRuntimeModel(tmp_path / "elu_gain.onnx")
    assert runtime.uses_gains
    g = torch.Generator().manual_seed(3)
    ue, ap = torch.rand(2, 12, 2, generator=g), torch.rand(2, L, 2, generator=g)
    gain = -20.0 + 12.0 * torch.randn(2, L, 12, generator=g)
    with pytest.raises(ValueError, match="gain_db"):
        runtime(ue, ap)
    with torch.no_grad():
        want, got = model(ue, ap, gain_db=gain), runtime(ue, ap, gain_db=gain)
    assert float((want.power - got.power).abs().max()) < 1e-4
    assert torch.equal(output_clusters(want, 10), output_clusters(got, 10))


def test_gain_aware_policy_meets_the_policy_contract_and_reads_the_instance_gains():
    from cfmimo.config import preset
    from cfmimo.data.transforms import PowerScaler
    from cfmimo.policies.neural import PositionPowerPolicy
    from cfmimo.problems.maxmin_power import MaxMinPower
    from cfmimo.testing import assert_policy

    g = torch.Generator().manual_seed(0)
    scaler = PowerScaler().fit(torch.rand(100, 6, generator=g) * 100, torch.rand(100, 6, generator=g) * 600)
    policy = PositionPowerPolicy(_model("tree_transformer_gain"), scaler)
    for constraint in ("sum", "per_ap"):
        inst = MaxMinPower(dl_constraint=constraint).sample(
            preset("tree-transformer", K=6, realizations=10), 4, seed=0, dtype=torch.float64
        )
        # feasibility, dtype/device, sub-batch and single-sample consistency (the tree is UE-order-
        # dependent, so no UE-permutation check; power decisions have no AP axis)
        alloc = assert_policy(MaxMinPower(), policy, inst, permutation=False, rtol=1e-5, atol=1e-4)
        with torch.no_grad():
            want = policy.model(*_features(inst), gain_db=inst.network.gain_db.float())
        assert torch.allclose(alloc.info["normalized"], want, atol=1e-6)


def _features(inst):
    from cfmimo.policies.neural import model_features

    net = inst.network
    return model_features(net.ue_positions.float(), net.ap_positions.float())
