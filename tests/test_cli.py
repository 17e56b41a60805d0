import json

from typer.testing import CliRunner

from cfmimo.cli import app

runner = CliRunner()


def test_help_everywhere():
    for args in ([], ["--help"], ["simulate", "--help"], ["presets", "--help"]):
        result = runner.invoke(app, args)
        assert "Usage" in result.output, args


def test_simulate_json_and_plot(tmp_path):
    png = tmp_path / "layout.png"
    result = runner.invoke(
        app,
        [
            "simulate",
            "--preset",
            "tree-transformer",
            "--K",
            "6",
            "--realizations",
            "20",
            "--seed",
            "3",
            "--json",
            "--plot",
            str(png),
        ],
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert set(out["se_ul"]) == {"mmse", "pmmse", "mr"} and len(out["se_dl"]["mmse"]) == 6
    assert all(x > 0 for x in out["se_ul"]["mmse"])
    # MMSE is the best UL combiner for every UE (book Section 5.1)
    assert all(m >= r - 1e-9 for m, r in zip(out["se_ul"]["mmse"], out["se_ul"]["mr"], strict=True))
    assert png.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"


def test_simulate_table_and_config_file(tmp_path):
    cfg = tmp_path / "s.yaml"
    cfg.write_text("preset: elu-cosformer\nK: 5\nrealizations: 10\n")
    result = runner.invoke(app, ["simulate", "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    assert "elu-cosformer" in result.output and "mean" in result.output


def test_simulate_bad_input_is_a_clear_error():
    result = runner.invoke(app, ["simulate", "--K", "0"])
    assert result.exit_code != 0 and "K" in result.output
    result = runner.invoke(app, ["simulate", "--preset", "nope"])
    assert result.exit_code != 0 and "unknown preset" in result.output


def test_presets_list_and_show():
    result = runner.invoke(app, ["presets"])
    assert result.exit_code == 0 and "egat" in result.output
    result = runner.invoke(app, ["presets", "aagnn"])
    assert result.exit_code == 0 and "radius_m: 300.0" in result.output


def test_solve_max_min_json_and_table():
    result = runner.invoke(
        app, ["solve", "max-min", "--K", "6", "--setups", "3", "--realizations", "20", "--json"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    pol = out["policies"]
    assert set(pol) == {"closed_form", "fixed_point", "full_power", "fractional"}
    assert all(p["feasibility_probability"] == 1.0 for p in pol.values())
    for other in ("full_power", "fractional"):  # the optimum's worst UE is the best worst UE
        assert pol["closed_form"]["min_se_ul"] >= pol[other]["min_se_ul"] - 1e-9
        assert pol["closed_form"]["min_se_dl"] >= pol[other]["min_se_dl"] - 1e-9
    result = runner.invoke(
        app,
        [
            "solve",
            "max-min",
            "--preset",
            "elu-cosformer",
            "--K",
            "5",
            "--setups",
            "2",
            "--realizations",
            "10",
            "--dl-constraint",
            "per_ap",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "closed_form" in result.output and "per_ap" in result.output


def test_solve_bad_input():
    result = runner.invoke(app, ["solve", "max-min", "--dl-constraint", "bogus", "--setups", "1"])
    assert result.exit_code != 0 and "dl-constraint" in result.output
    assert runner.invoke(app, ["solve", "max-min", "--help"]).exit_code == 0


def test_data_generate_and_inspect(tmp_path):
    out = tmp_path / "ds"
    args = [
        "data",
        "generate",
        "--out",
        str(out),
        "--K",
        "3",
        "--L",
        "4",
        "--samples",
        "5",
        "--shard-size",
        "3",
        "--realizations",
        "8",
        "--scheduler",
        "sync",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["data", "inspect", str(out), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["samples"] == 5 and info["groups"]["K=3,L=4"]["p_ul"]["max"] <= 100.0 + 1e-4
    result = runner.invoke(app, [*args[:-2], "--seed", "9", "--scheduler", "sync"])
    assert result.exit_code != 0 and "different dataset" in result.output
    assert runner.invoke(app, ["data", "inspect", str(tmp_path / "nothing")]).exit_code != 0
