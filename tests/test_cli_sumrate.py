import json

from typer.testing import CliRunner

from cfmimo.cli import app

runner = CliRunner()


def test_solve_sum_rate_json_and_table():
    args = [
        "solve",
        "sum-rate",
        "--K",
        "3",
        "--N",
        "4",
        "--setups",
        "3",
        "--starts",
        "1",
        "--iterations",
        "30",
    ]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    pol = out["policies"]
    assert set(pol) == {"wmmse", *(f"{p}_{s}" for p in ("rzf", "zf", "mrt") for s in ("per_ap", "common"))}
    assert pol["wmmse"]["percent_of_wmmse"] == 100.0
    assert all(r["feasibility_probability"] == 1.0 for r in pol.values())
    # WMMSE starts from per-AP RZF and never decreases the objective
    assert pol["wmmse"]["sum_rate"] >= pol["rzf_per_ap"]["sum_rate"] - 1e-9
    assert sum(out["wmmse"]["best_start_counts"]) == 3 and out["noise_dbm"] < -80
    table = runner.invoke(app, [*args, "--edge-snr-db", "5"])
    assert table.exit_code == 0, table.output
    assert "% of WMMSE" in table.output and "rzf_per_ap" in table.output


def test_solve_sum_rate_bad_input():
    result = runner.invoke(app, ["solve", "sum-rate", "--edge-snr-db", "nan", "--setups", "1"])
    assert result.exit_code != 0 and "cell_edge_snr_db" in result.output
    assert runner.invoke(app, ["solve", "sum-rate", "--help"]).exit_code == 0
