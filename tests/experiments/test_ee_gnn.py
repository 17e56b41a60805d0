"""Smoke tests of ``cfmimo reproduce ee-gnn``: a tiny configuration end to end (output layout, claims
recomputed from the metrics, one policy's EE recomputed independently, resume, --train-only),
config validation, and the real ``--quick`` run (slow)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch

from cfmimo.config import preset
from cfmimo.experiments.ee_gnn import EEGnnConfig, run
from cfmimo.experiments.ee_gnn.config import PAPER_TABLE2
from cfmimo.experiments.ee_gnn.report import PAPER
from cfmimo.policies.classical.energy import EqualPower
from cfmimo.problems.energy_efficiency import EnergyEfficiency
from cfmimo.rng import stream_seed

CLAIM_IDS = {
    "table2_ee_5x10",
    "table2_speed_5x10",
    "fig5_gnn_above_equal_random",
    "fig4_standardization_worst",
    "absolute_ee",
    "gnn_over_best_known",
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("ee-gnn")
    return out, run(EEGnnConfig.tiny(), out, log=lambda m: None)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_outputs_layout(tiny, reproduction_outputs):
    out, results = tiny
    on_disk = reproduction_outputs(
        out,
        results,
        paper=PAPER,
        mode="tiny",
        claim_ids=CLAIM_IDS,
        claim_extra={"note"},
        models={"ee_gnn", "ee_gnn_log_support"},
        csvs=("table2", "policies", "runs", "fig4", "gap", "rate_cdf"),
        figures=("fig4", "fig5", "learning_curves", "rate_cdf"),
        report_contains=("table2_ee_5x10", "Assumptions"),
    )
    assert all(e["latency_ms"]["5x10"] > 0 for e in on_disk["models"].values())


def test_claims_follow_from_the_metrics(tiny):
    _, res = tiny
    claims = {c["id"]: c for c in res["claims"]}
    t = res["metrics"]["table2"]["5x10"]
    pol = res["metrics"]["policies"]["5x10"]
    c = claims["table2_ee_5x10"]
    assert c["paper_value"] == {"gnn": 5.67, "sca": 4.79}
    assert c["ours"]["gnn"] == pytest.approx(t["gnn_ee"], abs=1e-3)
    assert c["holds"] == (t["gnn_ee"] >= t["sca_ee"])
    assert t["gnn_ee"] == pytest.approx(pol["gnn"]["ee"]) and t["sca_ee"] == pytest.approx(pol["sca"]["ee"])
    # the GNN's mean is the mean of its seeds
    assert pol["gnn"]["ee"] == pytest.approx(sum(pol["gnn"]["ee_per_seed"]) / 2) and pol["gnn"]["seeds"] == 2
    s = claims["table2_speed_5x10"]
    assert s["paper_value"]["sca_s"] == PAPER_TABLE2["5x10"]["sca_s"]
    assert t["speedup"] == pytest.approx(t["sca_seconds"] / t["gnn_seconds"])
    assert s["holds"] == (t["speedup"] >= 50.0)
    f5 = claims["fig5_gnn_above_equal_random"]
    assert f5["holds"] == (pol["gnn"]["ee"] > max(pol["equal"]["ee"], pol["random"]["ee"]))
    f4 = res["metrics"]["fig4_final"]
    assert set(f4) == {"0,0", "0.5,0.5"}
    curve = res["metrics"]["fig4"]["0,0"]
    assert f4["0,0"] == curve[-1][1] and res["metrics"]["fig4_best"]["0,0"] == max(v for _, v in curve)
    assert claims["fig4_standardization_worst"]["holds"] == (f4["0,0"] < f4["0.5,0.5"])
    assert claims["absolute_ee"]["holds"] is None and claims["gnn_over_best_known"]["holds"] is None
    # every value finite and every policy feasible; SCA above equal power; best-known >= every policy
    for name, v in pol.items():
        assert math.isfinite(v["ee"]) and v["ee"] >= 0 and v["violation"] <= 1e-6, name
    assert pol["sca"]["ee"] > pol["equal"]["ee"]
    gap = res["metrics"]["gap"]["5x10"]
    assert all(0 < r <= 1 + 1e-9 for r in gap["ratio"].values())
    assert gap["ratio"]["multistart"] >= gap["ratio"]["sca"] - 1e-6


def test_equal_power_recomputed_independently(tiny):
    _, res = tiny
    cfg = EEGnnConfig.tiny()
    inst = EnergyEfficiency().sample(
        preset("ee-gnn", L=5, K=10), cfg.test_samples, seed=stream_seed(cfg.seed, "ee-gnn/test/5x10")
    )
    # equal power by hand: each AP splits its cap over the UEs it serves
    p = inst.cap[..., None] * inst.serving / inst.serving.sum(-1, keepdim=True).clamp_min(1)
    g = inst.gains.double()
    rx = torch.einsum("blkj,blj->bkj", g, p.double())  # [B, K (receiver), K (sender)]
    signal = torch.diagonal(rx, dim1=1, dim2=2)
    rate = torch.log2(1 + signal / (1 + rx.sum(-1) - signal))  # Mbit/s at 1 MHz
    ee = (rate / ((p.double().sum(1) + 4000.0) / 1000.0)).sum(-1)  # mu = 1, P_c = 4 W
    assert res["metrics"]["policies"]["5x10"]["equal"]["ee"] == pytest.approx(float(ee.mean()), rel=1e-5)
    ours = EnergyEfficiency().objective(inst, EqualPower()(inst))
    torch.testing.assert_close(ours.double(), ee, rtol=1e-5, atol=0)


def test_resume_reuses_runs_and_train_only(tiny):
    out, _ = tiny
    stamps = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/result.json")}
    assert len(stamps) == 4  # 2 seeds + 1 log-support + 1 extra Fig. 4 (eps, eps')
    lines: list[str] = []
    res = run(EEGnnConfig.tiny(), out, train_only=True, log=lines.append)
    assert not any(m.startswith("trained") for m in lines)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert sorted(res["runs"]) == sorted(p.parent.name for p in stamps)
    # a cut-off run (no result.json) resumes from its last checkpoint, the others are reused
    victim = next(iter(stamps)).parent
    (victim / "result.json").unlink()
    lines.clear()
    run(EEGnnConfig.tiny(), out, train_only=True, log=lines.append)
    assert lines[0] == f"resuming {victim.name} from its last checkpoint"
    assert [m.split(":")[0] for m in lines if m.startswith("trained")] == [f"trained {victim.name}"]
    record = json.loads((victim / "result.json").read_text())
    assert record["resumed_from_step"] > 0 and [r["step"] for r in record["history"]] == [3.0, 6.0]


def test_config_rejects_bad_fields():
    with pytest.raises(ValueError, match="sizes"):
        EEGnnConfig(sizes=("7x3",))
    with pytest.raises(ValueError, match="sizes"):
        EEGnnConfig(sizes=("5by10",))
    with pytest.raises(ValueError, match="sizes"):
        EEGnnConfig(sizes=("5x10", "5x10"), fig4_size="5x10")
    with pytest.raises(ValueError, match="fig4_size"):
        EEGnnConfig(sizes=("5x10",))
    with pytest.raises(ValueError, match="norm"):
        EEGnnConfig(norm=(0.3, 0.3))
    with pytest.raises(ValueError, match="max_steps"):
        EEGnnConfig(max_steps=0)
    full = EEGnnConfig()
    assert (full.batch_size, full.lr, full.lr_final, full.train_samples, full.test_samples) == (
        64,
        1e-3,
        1e-7,
        10_240,
        1_024,
    )
    assert full.seeds >= 3 and full.gpu_steps == 120_000 and full.sizes == ("5x10", "10x10", "15x15")
    # the kappa step is scaled so kappa can reach the paper's 120 K x 1e-3
    assert full.kappa_step(600) == pytest.approx(0.2) and full.kappa_step(120_000) == pytest.approx(1e-3)
    assert EEGnnConfig(kappa_scaling=False).kappa_step(600) == pytest.approx(1e-3)
    assert full.steps(cuda=True) == 120_000 and full.steps(cuda=False) == full.max_steps


def test_cli_dispatches_ee_gnn():
    import importlib

    from cfmimo.cli import REPRODUCTIONS

    module_name, config_name = REPRODUCTIONS["ee-gnn"]
    module = importlib.import_module(module_name)
    assert getattr(module, config_name) is EEGnnConfig and module.run is run
    assert EEGnnConfig.quick().mode == "quick" and EEGnnConfig().mode == "full"
    assert EEGnnConfig.quick().sizes == ("5x10",) and EEGnnConfig.quick().threads == 1


@pytest.mark.slow
def test_quick_mode_end_to_end(tmp_path):
    results = run(EEGnnConfig.quick(), tmp_path, log=lambda m: None)
    assert results["mode"] == "quick" and {c["id"] for c in results["claims"]} == CLAIM_IDS
    pol = results["metrics"]["policies"]["5x10"]
    assert all(math.isfinite(v["ee"]) for v in pol.values())
    assert pol["sca"]["samples"] == 256 and pol["multistart"]["samples"] == 16


def test_curve_flatness_measures_the_last_quarter():
    from cfmimo.experiments.ee_gnn.report import curve_flatness

    rising = [{"step": s, "val_objective": v} for s, v in ((100, 1.0), (200, 2.0), (300, 3.0), (400, 4.0))]
    flat = [{"step": s, "val_objective": v} for s, v in ((100, 1.0), (200, 4.0), (300, 4.0), (400, 3.9))]
    f = curve_flatness(rising)
    assert (f["best_before_tail"], f["best"], f["last"], f["tail_gain"]) == (3.0, 4.0, 4.0, 0.25)
    assert curve_flatness(flat)["tail_gain"] == 0.0 and curve_flatness(flat)["last"] == 3.9
    assert curve_flatness([])["tail_gain"] is None
