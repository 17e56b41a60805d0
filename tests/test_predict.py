import numpy as np
import pytest
import torch

from cfmimo.config import preset
from cfmimo.data.transforms import PowerScaler
from cfmimo.models import build_model
from cfmimo.predict import predict_setup, read_positions

UE = [[10.0, 20.0], [250.0, 300.0], [400.0, 80.0]]
AP = [[100.0, 100.0], [300.0, 300.0], [450.0, 50.0], [50.0, 450.0]]


@pytest.mark.parametrize("fmt", ["yaml", "csv", "npz"])
def test_read_positions_formats(tmp_path, fmt):
    path = tmp_path / f"pos.{fmt}"
    if fmt == "yaml":
        path.write_text(f"ue: {UE}\nap: {AP}\n")
    elif fmt == "csv":
        path.write_text(
            "kind,x,y\n" + "".join(f"ue,{x},{y}\n" for x, y in UE) + "".join(f"ap,{x},{y}\n" for x, y in AP)
        )
    else:
        np.savez(path, ue=np.array(UE), ap=np.array(AP))
    ue, ap = read_positions(path)
    assert ue.tolist() == UE and ap.tolist() == AP


def test_bad_positions_files_name_the_problem(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("ue: [[1, 2, 3]]\nap: [[0, 0]]\n")
    with pytest.raises(ValueError, match=r"bad\.yaml.*'ue'"):
        read_positions(bad)
    csvf = tmp_path / "bad.csv"
    csvf.write_text("kind,x,y\nrouter,1,2\n")
    with pytest.raises(ValueError, match="line 2"):
        read_positions(csvf)
    with pytest.raises(ValueError, match="unsupported"):
        read_positions(tmp_path / "p.txt")


def test_predict_setup_respects_budgets():
    torch.manual_seed(0)
    scaler = PowerScaler().fit(torch.rand(50, 3) * 100, torch.rand(50, 3) * 500)
    out = predict_setup(
        build_model({"name": "deepsets"}),
        scaler,
        np.array(UE),
        np.array(AP),
        preset("tree-transformer", realizations=20),
    )
    assert out["K"] == 3 and out["L"] == 4
    assert max(out["p_ul_mw"]) <= 100.0 + 1e-9
    assert out["dl_total_mw"] == pytest.approx(out["dl_budget_mw"], rel=1e-6) and out["dl_budget_mw"] == 800.0
    assert min(out["optimal"]["se_ul"]) >= min(out["se_ul"]) - 1e-9  # the optimum's worst UE is the best
