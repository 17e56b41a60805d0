"""The tree-transformer reproduction pipeline end to end at tiny sizes, and the CLI around models."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cfmimo.cli import app
from cfmimo.experiments.tree_transformer import TreeTransformerConfig, run

runner = CliRunner()

TINY = dict(
    train_K=[2, 4],
    train_samples=48,
    test_K=[2, 5],
    test_L=[4, 16],
    test_samples=4,
    realizations=8,
    epochs=2,
    batch_size=16,
    latency_K=[10, 20],
)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tt")
    config = TreeTransformerConfig(mode="quick", **TINY)
    return out, run(config, out, scheduler="sync", log=lambda m: None)


def test_outputs_and_results_layout(tiny_run, reproduction_outputs):
    out, results = tiny_run
    trained = ("tree_transformer", "transformer", "cosformer", "performer")
    latency = {"latency_lowest", "latency_lowest_onnxruntime", "latency_growth"}
    saved = reproduction_outputs(
        out,
        results,
        paper="tree-transformer",
        mode="quick",
        claim_ids={"se_gap_ul", "se_gap_dl", *latency, *(f"params_{n}" for n in trained)},
        models={*trained, "tree_transformer_lean"},
        csvs=("se_by_size", "table2", "latency_vs_K", "fig5_power_quantiles", "position_references"),
        figures=("fig5_power_cdf", "fig6_se_vs_K_L", "latency_vs_K"),
        csv_larger_than=100,
        report_contains=("## Table II (K = 40, L = 16)", "## Site study"),
    )
    for name in trained:
        m = saved["models"][name]
        assert m["params"] == m["paper_params"]
        assert m["latency_ms_onnxruntime"] is None or m["latency_ms_onnxruntime"] > 0
        assert m["timing"]["epochs"] == TINY["epochs"] and m["timing"]["steps"] > 0
    # the baselines (fixed L = 16) are evaluated at L = 16 only; the tree at every L
    rows = (out / "se_by_size.csv").read_text().splitlines()[1:]
    assert {r.split(",")[2] for r in rows if r.startswith("transformer,")} == {"16"}
    assert {r.split(",")[2] for r in rows if r.startswith("tree_transformer,")} == {"4", "16"}


def test_rerun_reuses_data_and_checkpoints(tiny_run):
    out, first = tiny_run
    again = run(TreeTransformerConfig(mode="quick", **TINY), out, scheduler="sync", log=lambda m: None)
    assert again["models"]["tree_transformer"]["epochs"] == first["models"]["tree_transformer"]["epochs"]


def test_train_only_returns_the_run_folders(tiny_run):
    out, _ = tiny_run
    got = run(
        TreeTransformerConfig(mode="quick", **TINY),
        out,
        scheduler="sync",
        train_only=True,
        log=lambda m: None,
    )
    assert set(got) == {"runs"} and set(got["runs"]) == set(TreeTransformerConfig(**TINY).models)
    assert all((Path(folder) / "checkpoints" / "last.ckpt").is_file() for folder in got["runs"].values())


def test_predict_and_export_commands(tiny_run, tmp_path):
    out, _ = tiny_run
    ckpt = next((out / "runs" / "tree_transformer" / "checkpoints").glob("best*.ckpt"))
    pos = tmp_path / "pos.yaml"
    pos.write_text(
        "ue: [[10, 20], [250, 300], [400, 80]]\nap: [[100, 100], [300, 300], [450, 50], [50, 450]]\n"
    )
    result = runner.invoke(app, ["predict", str(ckpt), "--positions", str(pos), "--json"])
    assert result.exit_code == 0, result.output
    pred = json.loads(result.output)
    assert max(pred["p_ul_mw"]) <= 100.0 + 1e-9 and pred["dl_total_mw"] == pytest.approx(800.0, rel=1e-5)
    result = runner.invoke(app, ["export", str(ckpt), "--onnx", str(tmp_path / "m.onnx")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "m.onnx").is_file() and "parity" in result.output
    assert (
        runner.invoke(app, ["predict", str(tmp_path / "none.ckpt"), "--positions", str(pos)]).exit_code != 0
    )


@pytest.mark.slow
def test_reproduce_quick_cli(tmp_path):
    result = runner.invoke(app, ["reproduce", "tree-transformer", "--quick", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "results.json").is_file()
