import pytest
import torch

from cfmimo.data.transforms import PositionFrame, PrepareBatch


def test_fit_apply_roundtrip_and_geometry():
    g = torch.Generator().manual_seed(0)
    groups = {
        (3, 4): {
            "ue_positions": torch.rand(6, 3, 2, generator=g) * 500,
            "ap_positions": torch.rand(6, 4, 2, generator=g) * 500,
        }
    }
    frame = PositionFrame.fit(groups)
    pts = torch.cat(
        [groups[(3, 4)]["ue_positions"].reshape(-1, 2), groups[(3, 4)]["ap_positions"].reshape(-1, 2)]
    )
    scaled = frame.apply(pts[None])[0]
    assert scaled.min().item() == pytest.approx(0.0) and scaled.max().item() == pytest.approx(1.0)
    # one frame for every sample and node: relative positions keep their meaning (an affine map)
    a, b = torch.tensor([[[100.0, 100.0], [200.0, 100.0]]]), torch.tensor([[[300.0, 300.0], [400.0, 300.0]]])
    assert torch.allclose(
        frame.apply(a)[0, 1] - frame.apply(a)[0, 0], frame.apply(b)[0, 1] - frame.apply(b)[0, 0]
    )
    assert PositionFrame.from_dict(frame.to_dict()) == frame
    mask = torch.tensor([[True, False]])
    assert frame.apply(a, mask)[0, 1].tolist() == [0.0, 0.0]


def test_invalid_frames_raise():
    with pytest.raises(ValueError, match="x_max > x_min"):
        PositionFrame(1.0, 1.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="finite"):
        PositionFrame(0.0, float("nan"), 0.0, 1.0)
    with pytest.raises(ValueError, match="from_dict"):
        PositionFrame.from_dict({"x_min": 0.0})


def test_prepare_batch_uses_the_frame():
    frame = PositionFrame(0.0, 500.0, 0.0, 500.0)
    batch = {
        "ue_positions": torch.tensor([[[250.0, 0.0]]]),
        "ap_positions": torch.tensor([[[500.0, 500.0]]]),
        "sample_index": torch.tensor([0]),
        "K": torch.tensor([1]),
        "L": torch.tensor([1]),
    }
    out = PrepareBatch(frame=frame)(batch)
    assert out["ue_features"].tolist() == [[[0.5, 0.0]]] and out["ap_features"].tolist() == [[[1.0, 1.0]]]
