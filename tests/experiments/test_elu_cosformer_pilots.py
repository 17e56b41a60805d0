"""The elu-cosformer reproduction under pilot_model per_ap_orthogonal, and the side-by-side of both
pilot models (``elu_cosformer.pilots``)."""

import json

import pytest

from cfmimo.cli import reproduce_overrides
from cfmimo.experiments.elu_cosformer import EluCosFormerConfig, run
from cfmimo.experiments.elu_cosformer.config import _scenario
from cfmimo.experiments.elu_cosformer.pilots import comparison_markdown, main, pilot_claims

# K = 12 > tau_p = 10: Optimal CF breaks the cap on every setup, DCC (Q = 8 of 16 APs) on some
TINY = dict(
    mode="custom",
    train_samples=16,
    test_K=[5, 12],
    test_samples=3,
    eval_batch=3,
    realizations=4,
    epochs=1,
    batch_size=16,
    models=["elu_cosformer"],
    activations=["elu1"],
    noise_sigmas_m=[],
    layout_K=5,
    runtime_K=12,
    runtime_repeats=1,
)


@pytest.fixture(scope="module")
def orth_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("elu-orth")
    config = EluCosFormerConfig(**TINY, pilot_model="per_ap_orthogonal")
    return out, run(config, out, scheduler="sync", log=lambda m: None)


def test_pilot_model_reaches_every_scenario_and_the_cli_option():
    config = EluCosFormerConfig(pilot_model="per_ap_orthogonal")
    assert _scenario(config, 20).pilot_model == "per_ap_orthogonal"
    assert _scenario(EluCosFormerConfig(), 20).pilot_model == "book"
    got = reproduce_overrides(EluCosFormerConfig(), None, ["pilot_model=per_ap_orthogonal"])
    assert got.pilot_model == "per_ap_orthogonal"
    with pytest.raises(ValueError, match="pilot_model"):
        EluCosFormerConfig(pilot_model="orthogonal")


def test_orthogonal_run_scores_over_cap_references_with_the_book_estimator(orth_run):
    out, res = orth_run
    assert res["config"]["pilot_model"] == "per_ap_orthogonal"
    # the training data (hence the dynamic labels) were generated under the run's pilot model
    stored = json.loads((out / "data" / "train" / "dataset.json").read_text())
    assert stored["spec"]["scenario"]["pilot_model"] == "per_ap_orthogonal"
    cur = res["metrics"]["curves"]
    i5, i12 = cur["optimal_cf"]["K"].index(5), cur["optimal_cf"]["K"].index(12)
    assert cur["optimal_cf"]["book_pilots"][i5] == 0.0  # K <= tau_p: eq. (2) for every setup
    assert cur["optimal_cf"]["book_pilots"][i12] == 1.0  # all APs serve 12 > tau_p UEs
    assert 0.0 <= cur["dcc"]["book_pilots"][i12] <= 1.0
    for s in ("optimal_uc_cf", "predicted_uc_cf", "strongest_uc_cf"):  # within the cap: never
        assert cur[s]["book_pilots"] == [0.0, 0.0] and max(cur[s]["max_ues_per_ap"]) <= 10
    report = (out / "report.md").read_text()
    assert "Pilot model: per_ap_orthogonal" in report and "Optimal CF: K=12: 100%" in report


def test_side_by_side_agrees_with_each_runs_own_claims(orth_run, tmp_path):
    _, res = orth_run
    own = {c["id"]: c["holds"] for c in res["claims"]}
    ours = {c["id"]: c for c in pilot_claims(res)}
    for link in ("ul", "dl"):  # two implementations of the same rules, on the same curves
        assert ours[f"pred_within_10pct_{link}"]["holds"] == own[f"pred_within_10pct_of_opt_uc_{link}"]
        assert ours[f"pred_above_dcc_{link}"]["holds"] == own[f"pred_above_dcc_{link}"]
        assert ours[f"opt_uc_above_cf_{link}"]["holds"] == own[f"opt_uc_above_cf_{link}"]
        cf, opt = (res["metrics"]["curves"][s]["mean_se_" + link][1] for s in ("optimal_cf", "optimal_uc_cf"))
        assert ours[f"opt_uc_above_cf_{link}"]["margins"] == {12: pytest.approx(opt - cf)}
    text, data = comparison_markdown({"a": res, "b": res})
    assert text.count("| Optimal UC-CF above Optimal CF for K > tau_p (UL") == 1
    assert data["a"] == data["b"] and len(data["a"]) == 13
    path = tmp_path / "r.json"
    path.write_text(json.dumps(res))
    main([f"orth={path}", "--out", str(tmp_path / "c.md"), "--json", str(tmp_path / "c.json")])
    assert "| claim | orth |" in (tmp_path / "c.md").read_text()
    with pytest.raises(SystemExit, match="LABEL=path"):
        main([str(path), "--out", str(tmp_path / "d.md")])
