"""Smoke tests of ``cfmimo reproduce aagnn``: a tiny configuration end to end (output layout, sane
numbers, resume), config validation, and the real ``--quick`` run (slow)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from cfmimo.experiments.aagnn import AagnnConfig, run
from cfmimo.experiments.aagnn.report import PAPER
from cfmimo.experiments.aagnn.run import normalized

CLAIM_IDS = {
    "fig4_aagnn_80pct_16_samples",
    "fig4_aagnn_best_every_size",
    "fig5a_aagnn_90pct",
    "fig5a_woa_egat_degrade",
    "fig5b_within_5pts",
    "fig6_aagnn_90pct",
    "fig6_others_lower_at_M1",
    "table1_samples",
    "table1_parameters",
    "table1_training_time",
    "table1_inference",
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("aagnn")
    return out, run(AagnnConfig.tiny(), out, log=lambda m: None)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_outputs_layout(tiny, reproduction_outputs):
    out, results = tiny
    figures = ("fig4", "fig5a", "fig5b", "fig6", "table1")
    reproduction_outputs(
        out,
        results,
        paper=PAPER,
        mode="tiny",
        claim_ids=CLAIM_IDS,
        claim_extra={"note", "rzf_per_ap"},
        models=AagnnConfig.tiny().models,
        csvs=figures,
        figures=figures,
        report_contains=("fig5a_aagnn_90pct", "Assumptions"),
    )


def test_numbers_are_sane(tiny):
    out, _ = tiny
    fig4 = _rows(out / "fig4.csv")
    by_model = {r["model"]: float(r["ratio_of_means"]) for r in fig4}
    assert by_model["wmmse"] == pytest.approx(1.0, abs=1e-12)
    assert 0.0 < by_model["rzf"] <= 1.05  # WMMSE starts from RZF, so it cannot be much lower
    assert 0.0 < by_model["mrt"] < by_model["rzf"]
    for fig in ("fig5a", "fig5b", "fig6"):
        for r in _rows(out / f"{fig}.csv"):
            if r["model"] == "wmmse":
                assert float(r["ratio_of_means"]) == pytest.approx(1.0, abs=1e-12)
            assert 0.0 < float(r["ratio_of_means"]) <= 1.05, r
    # fixed-N models are not in Fig. 5(b)
    assert "sunet" not in {r["model"] for r in _rows(out / "fig5b.csv")}
    # training on the Table I setting (K = 4) raised AAGNN's validation sum rate above the untrained one
    record = json.loads(next((out / "runs").glob("K4-*-aagnn-n16-s0/result.json")).read_text())
    assert record["best_val_objective"] > record["initial_val_objective"]


def test_resume_reuses_runs_and_references(tiny):
    out, results = tiny
    stamps = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/result.json")}
    cached = {p: p.stat().st_mtime_ns for p in (out / "data").glob("*.pt")}
    again = run(AagnnConfig.tiny(), out, log=lambda m: None)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert {p: p.stat().st_mtime_ns for p in cached} == cached
    for a, b in zip(results["metrics"]["fig4"], again["metrics"]["fig4"], strict=True):
        assert a["ratio_of_means"] == pytest.approx(b["ratio_of_means"], rel=1e-6)


def test_train_only_stops_after_training(tiny):
    out, _ = tiny
    stamp = (out / "results.json").stat().st_mtime_ns
    res = run(AagnnConfig.tiny(), out, train_only=True, log=lambda m: None)
    # every run of the tiny config (3 models x (Fig. 4 + Table I)), reused; no results written
    assert len(res["runs"]) == 6 and all(
        (out / "runs" / tag / "result.json").is_file() for tag in res["runs"]
    )
    assert (out / "results.json").stat().st_mtime_ns == stamp


def test_normalization_both_ways():
    wmmse = torch.tensor([10.0, 30.0], dtype=torch.float64)
    ours = torch.tensor([5.0, 30.0], dtype=torch.float64)
    n = normalized(ours, wmmse)
    assert n["ratio_of_means"] == pytest.approx(35 / 40)
    assert n["mean_ratio"] == pytest.approx(0.75)


def test_config_rejects_bad_fields():
    with pytest.raises(ValueError, match="models"):
        AagnnConfig(models=("aagnn", "nope"))
    with pytest.raises(ValueError, match="train_K"):
        AagnnConfig(train_K=4)
    with pytest.raises(ValueError, match="max_steps"):
        AagnnConfig(max_steps=0)
    full = AagnnConfig()
    assert (full.batch_size, full.lr, full.test_samples, full.train_samples) == (64, 5e-3, 1000, 12_800)
    assert full.seeds >= 3 and AagnnConfig.quick().seeds == 1


@pytest.mark.slow
def test_quick_mode_end_to_end(tmp_path):
    results = run(AagnnConfig.quick(), tmp_path, log=lambda m: None)
    assert results["mode"] == "quick" and {c["id"] for c in results["claims"]} == CLAIM_IDS
    fig4 = {(r["K"], r["samples"], r["model"]): r["ratio_of_means"] for r in results["metrics"]["fig4"]}
    assert all(0.0 < v <= 1.05 for v in fig4.values())


def test_cli_dispatches_aagnn():
    import importlib

    from cfmimo.cli import REPRODUCTIONS

    module_name, config_name = REPRODUCTIONS["aagnn"]
    module = importlib.import_module(module_name)
    assert getattr(module, config_name) is AagnnConfig and module.run is run
    assert AagnnConfig.quick().mode == "quick" and AagnnConfig().mode == "full"


def test_cpu_recipe_keeps_the_paper_axes_and_counts_its_runs():
    """The CPU full recipe (docs/learning.md: its measured cost) keeps every figure's axis, Table I's
    setting and the paper's training hyperparameters; only widths, steps, Fig. 4 / Table I sample
    counts and the WMMSE effort shrink. ``full()`` is the paper-size recipe on a GPU."""
    from cfmimo.experiments.aagnn.run import model_config

    paper, cpu = AagnnConfig(), AagnnConfig.cpu()
    assert cpu.mode == "cpu" and cpu.seeds >= 3
    kept = ("N", "M", "snr_db", "fig4_K", "fig5a_K", "fig5b_N", "fig6_M", "table_K", "table_snr_db")
    kept += ("target", "batch_size", "lr", "train_samples", "test_samples", "models", "train_K")
    assert all(getattr(cpu, f) == getattr(paper, f) for f in kept)
    assert cpu.fig4_samples[0] == 16 and cpu.fig4_samples[-1] == 12_800 and cpu.table_samples[0] == 12
    assert paper.planned_runs() == {"fig4": 180, "table1_min": 39, "table1_max": 147}
    assert cpu.planned_runs() == {"fig4": 108, "table1_min": 27, "table1_max": 81}
    assert AagnnConfig.full() == (paper if torch.cuda.is_available() else cpu)
    # warm-up (a stated deviation) only where measured necessary: the paper-width models
    assert (paper.lr_warmup_steps, cpu.lr_warmup_steps, AagnnConfig.quick().lr_warmup_steps) == (50, 0, 0)
    # every recipe uses the cosine attention (a stated deviation) and the models' MRT init
    for c in (paper, cpu, AagnnConfig.quick()):
        assert model_config(c, "aagnn").attention_norm == "cosine"
    assert model_config(cpu, "aagnn_woa").widths == (2, 16, 16, 2)


def test_sample_set_in_chunks_equals_one_draw():
    """Pools are drawn in chunks (sim.memory refuses 12,800 setups at K = 16 in one call); a sample
    depends only on (seed, index), so the chunked set is the same set: associations and budgets
    identical, channels equal up to float32 rounding of batched ops (measured 7e-8 relative)."""
    from cfmimo.experiments.aagnn.run import Setting, sample_set

    cfg, setting = AagnnConfig.tiny(), Setting(3, 4, 2, 10.0)
    one = sample_set(cfg, setting, "train", 7, index=1)
    chunked = sample_set(cfg, setting, "train", 7, index=1, chunk=3)
    assert chunked.batch == 7
    for f in ("association", "p_max", "noise", "weights"):
        assert torch.equal(getattr(one, f), getattr(chunked, f)), f
    torch.testing.assert_close(chunked.h, one.h, rtol=1e-5, atol=1e-5 * float(one.h.abs().max()))


def test_a_cut_off_run_resumes_from_its_last_checkpoint(tiny):
    """A run whose result.json is missing (cut off after a checkpoint) resumes from last.ckpt with the
    same configuration instead of restarting; the finished runs stay untouched."""
    out, _ = tiny
    tag = sorted(p.parent.name for p in (out / "runs").glob("*/result.json"))[0]
    (out / "runs" / tag / "result.json").unlink()
    messages: list[str] = []
    run(AagnnConfig.tiny(), out, train_only=True, log=messages.append)
    assert any(m.startswith(f"resuming {tag}") for m in messages)
    record = json.loads((out / "runs" / tag / "result.json").read_text())
    assert record["resumed_from_step"] > 0
