import pytest
import torch

from cfmimo.export import export_onnx
from cfmimo.models import build_model


@pytest.mark.parametrize("name", ["tree_transformer_lean", "cosformer", "deepsets"])
def test_export_parity_with_dynamic_ue_count(tmp_path, name):
    pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    result = export_onnx(build_model({"name": name}), tmp_path / f"{name}.onnx")
    assert (tmp_path / f"{name}.onnx").stat().st_size > 1000
    assert len(result["parity"]) == 4 and max(result["parity"].values()) <= 1e-5
    assert not list(tmp_path.glob(".*tmp"))
