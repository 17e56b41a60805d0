"""Smoke tests of ``cfmimo reproduce egat``: a tiny configuration end to end (output layout, numbers
consistent with each other, claims computed from the metrics, repaired decisions feasible, resume),
config validation, the non-position FLOP / latency helpers, and the real ``--quick`` run (slow)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from cfmimo.experiments.egat import EgatConfig, run
from cfmimo.experiments.egat.report import PAPER, PAPER_TABLE2, TOL_FEASIBLE

CLAIM_IDS = {
    "table2_feasibility",
    "table3_egat_feasibility",
    "table4_egat_feasibility",
    "tables34_bgnn_lowest",
    "egat_wsr_best",
    "fig9_egat_two_aps",
    "repair_loss_below_3pct",
    "fig4a_ao_sca_iterations",
    "table5_flops_ratio",
    "fig10_latency",
    "fig4bc_training_stable",
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, dict, list[str]]:
    out = tmp_path_factory.mktemp("egat")
    logs: list[str] = []
    return out, run(EgatConfig.tiny(), out, log=logs.append), logs


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_outputs_layout(tiny, reproduction_outputs):
    out, results, _ = tiny
    reproduction_outputs(
        out,
        results,
        paper=PAPER,
        mode="tiny",
        claim_ids=CLAIM_IDS,
        claim_extra={"note", "tolerance"},
        models={"egat_fh", "engnn_fh", "bgnn_fh", "dnn_fh"},
        csvs=("table2", "table3", "table4", "table5_flops", "fig4_ao_sca", "fig4_training", "fig5_cdf"),
        figures=("fig4", "fig5", "fig6", "fig7", "fig8", "fig9", "fig10"),
        report_contains=("table2_feasibility", "Assumptions", "mu = "),
    )


def test_numbers_are_consistent(tiny):
    _, results, _ = tiny
    ev = results["metrics"]["evaluation"]
    for key, row in ev.items():
        for policy, v in row.items():
            for f in ("feasible_unrepaired", "sampled_feasible_unrepaired"):
                if f in v:
                    assert 0.0 <= v[f] <= 1.0, (key, policy, f)
            assert v["wsr"] >= 0.0
            if "repaired_feasible" in v:  # learned models: the repaired decisions are all feasible
                assert v["repaired_feasible"] == 1.0, (key, policy)
                # (the repair can raise the WSR: a scaled-down beam interferes less, so no sign check)
                raw = v["wsr_unrepaired"]
                assert v["repair_loss"] == pytest.approx(1 - v["wsr"] / raw if raw > 0 else 0.0)
        # FC-ZF's sum rate (unit weights) fits the smallest fronthaul: <= C / BW in bit/s/Hz
        C = float(key.split("-C")[1])
        assert row["fc_zf"]["wsr"] <= C / 10 + 1e-6
        # the DNN is fixed-size: only at the training size
        assert ("dnn_fh" in row) == key.startswith("L8-K4-")


def test_claims_follow_from_metrics(tiny):
    _, results, _ = tiny
    ev = results["metrics"]["evaluation"]
    claims = {c["id"]: c for c in results["claims"]}
    t2 = claims["table2_feasibility"]
    held = True
    for m, per_c in t2["ours"].items():
        for c, ours in per_c.items():
            value = ev[f"L8-K4-C{c}"][m]["feasible_unrepaired"]
            assert ours == pytest.approx(value, abs=1e-3)
            ok = abs(value - PAPER_TABLE2[m][int(c)]) <= TOL_FEASIBLE
            held = held and ok and (value >= 0.9 or m == "bgnn_fh")
    assert t2["holds"] == held
    margin = min(
        row["egat_fh"]["wsr"] - v["wsr"] for row in ev.values() for p, v in row.items() if p != "egat_fh"
    )
    best = claims["egat_wsr_best"]
    assert best["ours"]["min margin (bit/s/Hz)"] == pytest.approx(margin, abs=1e-3)
    assert best["holds"] == (margin >= 0)
    loss = max(row["egat_fh"]["repair_loss"] for row in ev.values())
    assert claims["repair_loss_below_3pct"]["holds"] == (loss < 0.03)
    its = claims["fig4a_ao_sca_iterations"]["ours"]
    assert all(1 <= v <= EgatConfig.tiny().ao_sca_max_iter for v in its.values())


def test_resume_reuses_runs_and_baselines(tiny):
    out, results, _ = tiny
    stamps = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/result.json")}
    cached = {p: p.stat().st_mtime_ns for p in (out / "baselines").glob("*.json")}
    assert len(stamps) == 4 and len(cached) == 4 * 4  # 4 settings x 4 baselines (tiny grid)
    logs: list[str] = []
    again = run(EgatConfig.tiny(), out, log=logs.append)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert {p: p.stat().st_mtime_ns for p in cached} == cached
    assert sum("reusing finished run" in m for m in logs) == 4
    assert not any(" samples): WSR " in m for m in logs)  # no baseline re-evaluated
    a, b = results["metrics"]["evaluation"], again["metrics"]["evaluation"]
    for key in a:
        for p in a[key]:
            assert a[key][p]["wsr"] == pytest.approx(b[key][p]["wsr"], rel=1e-6), (key, p)


def test_train_only_stops_after_training(tiny):
    out, _, _ = tiny
    stamp = (out / "results.json").stat().st_mtime_ns
    res = run(EgatConfig.tiny(), out, train_only=True, log=lambda m: None)
    assert res == {"runs": ["egat_fh", "engnn_fh", "bgnn_fh", "dnn_fh"]}
    assert (out / "results.json").stat().st_mtime_ns == stamp
    # the evaluated model is the one after the last step
    record = json.loads((out / "runs" / "egat_fh" / "result.json").read_text())
    final = torch.load(record["final_checkpoint"], weights_only=True)
    assert final["global_step"] == EgatConfig.tiny().steps


def _stated_model(cfg: EgatConfig, name: str) -> torch.nn.Module:
    """The model the config states, built independently of the training path."""
    from cfmimo.models import ModelConfig, build_model

    extra = {"num_aps": cfg.train_L, "num_ues": cfg.train_K} if name == "dnn_fh" else {}
    return build_model(ModelConfig(name=name, **cfg.model_overrides.get(name, {}), **extra))


def test_trained_models_have_the_reported_sizes(tiny):
    # the model in each final checkpoint is the one results.json reports and the config states
    # (a dumped ModelConfig once made train_unsupervised complete overrides with generic defaults)
    from cfmimo.learn.unsupervised import load_unsupervised
    from cfmimo.models import count_parameters

    out, results, _ = tiny
    on_disk = json.loads((out / "results.json").read_text())
    for name in ("egat_fh", "engnn_fh", "bgnn_fh", "dnn_fh"):
        record = json.loads((out / "runs" / name / "result.json").read_text())
        trained, _ = load_unsupervised(record["final_checkpoint"])
        stated = _stated_model(EgatConfig.tiny(), name)
        assert count_parameters(trained) == on_disk["models"][name]["params"], name
        assert results["models"][name]["params"] == on_disk["models"][name]["params"], name
        assert count_parameters(trained) == count_parameters(stated), name
        shapes = {k: tuple(v.shape) for k, v in trained.state_dict().items()}
        assert shapes == {k: tuple(v.shape) for k, v in stated.state_dict().items()}, name


def test_full_mode_trains_registry_default_sizes(tmp_path):
    # no overrides: the training module builds each registry model at its own default size
    from cfmimo.experiments.egat.run import unsupervised_config
    from cfmimo.learn.unsupervised import UnsupervisedModule, resolve_model
    from cfmimo.models import count_parameters

    cfg = EgatConfig()
    assert cfg.model_overrides == {}
    for name in cfg.models:
        ucfg = resolve_model(unsupervised_config(cfg, name, tmp_path / name))
        built = UnsupervisedModule(ucfg.to_dict()).model
        assert count_parameters(built) == count_parameters(_stated_model(cfg, name)), name


def test_config_rejects_bad_fields():
    with pytest.raises(ValueError, match="models"):
        EgatConfig(models=("egat_fh", "nope"))
    with pytest.raises(ValueError, match="models"):
        EgatConfig(models=("engnn_fh",))
    with pytest.raises(ValueError, match="table2_capacities_mbps"):
        EgatConfig(table2_capacities_mbps=())
    with pytest.raises(ValueError, match="table2_capacities_mbps"):
        EgatConfig(table2_capacities_mbps=(-40.0, 60.0))
    with pytest.raises(ValueError, match="train_capacity_mbps"):
        EgatConfig(train_capacity_mbps=(90.0, 40.0))
    with pytest.raises(ValueError, match="train_K"):
        EgatConfig(table4_K=(5, 6))
    full = EgatConfig()
    assert (full.train_samples, full.batch_size, full.lr, full.test_samples) == (25_600, 256, 1e-3, 200)
    assert full.max_steps_gpu == 30_000 and full.table2_capacities_mbps == (40, 50, 60, 70, 80, 90)
    assert EgatConfig.quick().threads == 1


def test_cost_helpers_take_graph_inputs():
    from cfmimo.config import preset
    from cfmimo.experiments.common import latency_ms
    from cfmimo.experiments.model_cost import count_flops, peak_bytes
    from cfmimo.models import ModelConfig, build_model
    from cfmimo.problems.fronthaul_wsr import FronthaulWSR

    model = build_model(ModelConfig(name="engnn_fh", d_mod=8, layers=1))
    inst = FronthaulWSR().sample(preset("egat"), 2, seed=0)
    model.fit_inputs(inst)
    one, two = model.graph_inputs(inst.take(slice(0, 1))), model.graph_inputs(inst)
    flops = count_flops(model, *one)
    assert flops > 0 and count_flops(model, *two) == 2 * flops  # per-sample work, linear in the batch
    # a Linear layer: 2 * in * out per row, exactly
    lin = torch.nn.Linear(3, 5)
    assert count_flops(lin, torch.zeros(4, 3)) == 2 * 3 * 5 * 4
    assert latency_ms(model, inputs=one, repeats=2, warmup=1) > 0
    assert peak_bytes(model, *one) > 0
    with pytest.raises(ValueError, match="inputs"):
        latency_ms(model, repeats=1)


@pytest.mark.slow
def test_quick_mode_end_to_end(tmp_path):
    from typer.testing import CliRunner

    from cfmimo.cli import app

    result = CliRunner().invoke(app, ["reproduce", "egat", "--quick", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["mode"] == "quick" and {c["id"] for c in results["claims"]} == CLAIM_IDS
    assert results["wall_time_s"] < 600
    for row in results["metrics"]["evaluation"].values():
        for v in row.values():
            assert 0.0 <= v["feasible_unrepaired"] <= 1.0


def test_cli_dispatches_egat():
    import importlib

    from cfmimo.cli import REPRODUCTIONS

    module_name, config_name = REPRODUCTIONS["egat"]
    module = importlib.import_module(module_name)
    assert getattr(module, config_name) is EgatConfig and module.run is run
    assert EgatConfig.quick().mode == "quick" and EgatConfig().mode == "full"
