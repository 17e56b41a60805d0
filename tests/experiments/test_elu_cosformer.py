"""The elu-cosformer reproduction pipeline end to end at tiny sizes, and its CLI."""

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from cfmimo.cli import app
from cfmimo.config import preset
from cfmimo.experiments import elu_cosformer
from cfmimo.experiments.elu_cosformer import EluCosFormerConfig, evaluation, optimal_for_clusters, run
from cfmimo.policies.neural import ClusterPowerPolicy
from cfmimo.problems.clustering_power import ClusteringPower

runner = CliRunner()

TINY = dict(
    mode="quick",
    train_samples=32,
    test_K=[5, 12],
    test_samples=4,
    eval_batch=4,
    realizations=8,
    epochs=1,
    batch_size=16,
    models=["elu_cosformer", "cosformer_cluster"],
    activations=["elu1", "relu"],
    noise_sigmas_m=[0.0, 5.0],
    layout_K=12,
    runtime_K=12,
    runtime_repeats=2,
)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("elu")
    return out, run(EluCosFormerConfig(**TINY), out, scheduler="sync", log=lambda m: None)


def _finite(x) -> bool:
    if isinstance(x, dict):
        return all(_finite(v) for v in x.values())
    if isinstance(x, list):
        return all(_finite(v) for v in x)
    return not isinstance(x, float) or math.isfinite(x)


def test_outputs_and_results_layout(tiny_run, reproduction_outputs):
    out, results = tiny_run
    per_link = ("pred_within_10pct_of_opt_uc", "pred_above_dcc", "opt_uc_above_cf", "noise_drop")
    saved = reproduction_outputs(
        out,
        results,
        paper="elu-cosformer",
        mode="quick",
        claim_ids={
            *(f"{c}_{link}" for c in per_link for link in ("ul", "dl")),
            "fewer_connections_than_cf",
            "runtime_speedup",
            "elu_best_activation",
            "elu_best_variant",
            "lighter_than_transformer",
            *(f"params_{n}" for n in elu_cosformer.VARIANTS),
        },
        models=elu_cosformer.VARIANTS,  # Table IV: all five, trained or not
        csvs=("se_by_scheme", "table4", "runtime", "fig8_layout", "fig9_power_quantiles"),
        figures=(
            "fig5_activations",
            "fig6_se_vs_K",
            "fig7_connections",
            "fig8_layout",
            "fig9_power_cdf",
            "fig10_noise",
            "fig11_variants",
        ),
        csv_larger_than=100,
    )
    for name, m in saved["models"].items():
        assert m["flops"] > 0 and m["memory_mb"] > 0
        assert m["trained"] == (name in TINY["models"])
    assert saved["models"]["elu_cosformer"]["params"] == 103_378
    assert saved["models"]["elu_cosformer"]["train_s_per_epoch"] > 0


def test_numbers_are_sane(tiny_run):
    _, res = tiny_run
    curves = res["metrics"]["curves"]
    assert _finite(curves) and _finite(res["metrics"]["runtime"]) and not res["metrics"]["nonfinite_se"]
    for scheme in ("optimal_cf", "optimal_uc_cf", "predicted_uc_cf", "dcc"):
        assert curves[scheme]["K"] == TINY["test_K"]
    assert min(curves["optimal_cf"]["mean_se_ul"] + curves["optimal_cf"]["mean_se_dl"]) >= 0
    # all APs serve all UEs; DCC: Q = 8 per UE; the model's clusters respect tau_p = 10 per AP
    assert curves["optimal_cf"]["connections"] == [16 * K for K in TINY["test_K"]]
    assert curves["dcc"]["connections"] == [8 * K for K in TINY["test_K"]]
    assert max(curves["predicted_uc_cf"]["max_ues_per_ap"]) <= 10
    # max-min powers equalize the SEs: mean = worst UE for the closed-form schemes
    opt = curves["optimal_uc_cf"]
    assert opt["mean_se_ul"] == pytest.approx(opt["min_se_ul"], rel=1e-3)
    # the elu1 curve of Fig. 5 is the ELU-CosFormer run, evaluated once
    assert curves["activation=elu1"]["mean_se_ul"] == curves["predicted_uc_cf"]["mean_se_ul"]


def test_optimal_uc_cf_reuses_statistics_exactly(tiny_run):
    out, _ = tiny_run
    from cfmimo.learn.trainer import load_trained

    ckpt = next((out / "runs" / "elu_cosformer" / "checkpoints").glob("best*.ckpt"))
    model, scaler, _, frame = load_trained(ckpt)
    prob = ClusteringPower()
    inst = prob.sample(preset("elu-cosformer", K=6, realizations=8), 2, seed=5)
    pred = ClusterPowerPolicy(model, scaler, frame)(inst)
    ours = optimal_for_clusters(pred)
    ref = ClusterPowerPolicy(model, scaler, frame, optimal_powers=True)(inst)
    assert torch.equal(ours.serving, ref.serving)
    torch.testing.assert_close(ours.p_ul, ref.p_ul)
    torch.testing.assert_close(ours.p_dl, ref.p_dl)


def test_cli_reuses_the_run(tiny_run, monkeypatch):
    out, first = tiny_run
    assert runner.invoke(app, ["reproduce", "elu-cosformer", "--help"]).exit_code == 0
    assert runner.invoke(app, ["reproduce", "no-such-paper", "--quick"]).exit_code != 0
    monkeypatch.setattr(EluCosFormerConfig, "quick", classmethod(lambda cls: cls(**TINY)))
    result = runner.invoke(
        app, ["reproduce", "elu-cosformer", "--quick", "--out", str(out), "--scheduler", "sync"]
    )
    assert result.exit_code == 0, result.output
    assert "claims" in result.output
    again = json.loads((out / "results.json").read_text())
    assert again["models"]["elu_cosformer"]["epochs"] == first["models"]["elu_cosformer"]["epochs"]
    # the re-run trained nothing, so the training time comes from the first run's record
    assert (
        again["models"]["elu_cosformer"]["train_s_per_epoch"]
        == first["models"]["elu_cosformer"]["train_s_per_epoch"]
    )


def test_cli_train_only_stops_before_evaluation(tiny_run, monkeypatch, tmp_path):
    out, _ = tiny_run
    monkeypatch.setattr(EluCosFormerConfig, "quick", classmethod(lambda cls: cls(**TINY)))
    results = out / "results.json"
    before = results.stat().st_mtime_ns
    args = ["reproduce", "elu-cosformer", "--quick", "--out", str(out), "--scheduler", "sync", "--train-only"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "trained runs in" in result.output and "claims" not in result.output
    assert results.stat().st_mtime_ns == before  # nothing evaluated or rewritten


@pytest.mark.slow
def test_reproduce_quick_cli(tmp_path):
    result = runner.invoke(app, ["reproduce", "elu-cosformer", "--quick", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "results.json").is_file()


def _trained_runs(out):
    from types import SimpleNamespace

    from cfmimo.learn.trainer import load_trained

    runs = {}
    for key in ("elu_cosformer", "cosformer_cluster"):
        model, scaler, _, frame = load_trained(next((out / "runs" / key / "checkpoints").glob("best*.ckpt")))
        runs[key] = SimpleNamespace(model=model, scaler=scaler, frame=frame)
    return runs


def test_evaluation_is_batch_and_device_independent(tiny_run):
    """The evaluation (issue #15: batched, on a GPU when present) gives the same numbers per setup
    for any eval_batch, and on CUDA (when present) the same as on the CPU, to float32 round-off."""
    out, _ = tiny_run
    trained = _trained_runs(out)
    base = {**TINY, "test_K": [12], "noise_sigmas_m": [0.0], "eval_device": "cpu"}

    def rows(**fields):
        config = EluCosFormerConfig(**{**base, **fields})
        got, powers = evaluation._evaluate(
            config, trained, evaluation._evaluation_plan(config), lambda m: None
        )
        return {r["scheme"]: r for r in got}, torch.cat(powers["pred_ul"])

    ref, ref_p = rows(eval_batch=4)
    assert set(ref) >= {"optimal_cf", "dcc", "optimal_uc_cf", "predicted_uc_cf", "sigma=0"}
    assert all(next(m.parameters()).device.type == "cpu" for m in (t.model for t in trained.values()))

    def same(a, a_p, b, b_p):
        for scheme, r in a.items():
            for k, v in r.items():
                if isinstance(v, float):
                    assert v == pytest.approx(b[scheme][k], rel=1e-4, abs=1e-5), (scheme, k)
        torch.testing.assert_close(a_p, b_p, rtol=1e-4, atol=1e-4)

    same(*rows(eval_batch=1), ref, ref_p)
    if torch.cuda.is_available():
        same(*rows(eval_batch=4, eval_device="cuda"), ref, ref_p)
        assert all(next(m.parameters()).device.type == "cpu" for m in (t.model for t in trained.values()))
    else:
        with pytest.raises(ValueError, match="eval_device"):
            elu_cosformer.eval_device(EluCosFormerConfig(**{**base, "eval_device": "cuda"}))
