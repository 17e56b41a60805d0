"""The ``cfmimo`` command line: thin wrappers around library calls."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cfmimo import __version__
from cfmimo.config import Scenario, preset, preset_names

app = typer.Typer(
    help="cfmimo: learning-based resource allocation for cell-free massive MIMO.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()

# Options shared by the commands that build a scenario.
PresetOption = Annotated[str, typer.Option("--preset", help=f"One of: {', '.join(preset_names())}.")]
ConfigOption = Annotated[Path | None, typer.Option(help="Scenario YAML (overrides --preset).")]
KOption = Annotated[int | None, typer.Option("--K", help="Number of UEs.")]
LOption = Annotated[int | None, typer.Option("--L", help="Number of APs.")]


def _version(value: bool) -> None:
    if value:
        console.print(f"cfmimo {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """cfmimo command line."""


def load_scenario(preset_name: str | None, config: Path | None, overrides: dict) -> Scenario:
    """Scenario from a preset or a YAML file, with command-line overrides (None = keep)."""
    changes = {k: v for k, v in overrides.items() if v is not None}
    try:
        if config is not None:
            return Scenario.from_yaml(config).with_(**changes)
        return preset(preset_name or "tree-transformer", **changes)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None


solve_app = typer.Typer(help="Run classical optimizers and compare them.", no_args_is_help=True)
app.add_typer(solve_app, name="solve")


@solve_app.command("max-min")
def solve_max_min(
    preset_name: PresetOption = "tree-transformer",
    config: ConfigOption = None,
    K: KOption = None,
    L: LOption = None,
    setups: Annotated[int, typer.Option(min=1, help="Number of random setups.")] = 100,
    realizations: Annotated[int | None, typer.Option(help="Small-scale realizations per setup.")] = None,
    dl_constraint: Annotated[
        str | None, typer.Option(help="'sum' (papers) or 'per_ap' (book); default from the scenario.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    batch: Annotated[int, typer.Option(min=1, help="Setups per batch (memory).")] = 32,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Max-min UL/DL power control: closed form, the book's fixed point, full and fractional power."""
    from rich.progress import Progress

    from cfmimo.solve import compare_maxmin_policies

    if dl_constraint not in (None, "sum", "per_ap"):
        raise typer.BadParameter(f"--dl-constraint must be 'sum' or 'per_ap', got {dl_constraint!r}")
    sc = load_scenario(preset_name, config, {"K": K, "L": L, "realizations": realizations})
    with Progress(transient=True, disable=as_json, console=Console(stderr=True)) as bar:
        task = bar.add_task("setups", total=setups)
        result = compare_maxmin_policies(
            sc,
            setups,
            seed=seed,
            batch=batch,
            dl_constraint=dl_constraint,
            progress=lambda n: bar.advance(task, n),
        )
    if as_json:
        typer.echo(json.dumps(result))
        return
    table = Table(
        title=f"{sc.name}: L={sc.L}, K={sc.K}, {setups} setups, DL constraint '{result['dl_constraint']}'"
        " — per-UE SE [bit/s/Hz]"
    )
    for col in ("policy", "UL min", "UL mean", "DL min", "DL mean", "ms/setup", "feasible"):
        table.add_column(col, justify="right" if col != "policy" else "left")
    for name, r in result["policies"].items():
        table.add_row(
            name,
            f"{r['min_se_ul']:.3f}",
            f"{r['mean_se_ul']:.3f}",
            f"{r['min_se_dl']:.3f}",
            f"{r['mean_se_dl']:.3f}",
            f"{1e3 * r['seconds_per_setup']:.3f}",
            f"{100 * r['feasibility_probability']:.0f}%",
        )
    console.print(table)
    console.print(
        f"min/mean: per-setup minimum/mean over UEs, averaged over setups; statistics (channels, "
        f"estimation, MMSE combiners, UatF) {1e3 * result['statistics_seconds_per_setup']:.1f} ms/setup"
    )


@app.command()
def presets(
    name: Annotated[str | None, typer.Argument(help="Show this preset as YAML.")] = None,
) -> None:
    """List the paper presets, or print one as YAML."""
    import yaml

    if name is None:
        for n in preset_names():
            console.print(n)
        return
    try:
        sc = preset(name)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    typer.echo(yaml.safe_dump(sc.model_dump(mode="json"), sort_keys=False))


@app.command()
def simulate(
    preset_name: PresetOption = "tree-transformer",
    config: ConfigOption = None,
    K: KOption = None,
    L: LOption = None,
    N: Annotated[int | None, typer.Option("--N", help="Antennas per AP.")] = None,
    realizations: Annotated[
        int | None, typer.Option(help="Small-scale realizations for the UatF statistics.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed (the setup is sample 0 of this seed).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    plot: Annotated[
        Path | None, typer.Option(help="Save the layout (APs, UEs, serving links) to this PNG.")
    ] = None,
) -> None:
    """Per-UE UL and DL SE of one setup for MMSE, P-MMSE and MR (full UL power, equal DL power)."""
    from cfmimo.simulate import simulate_setup

    sc = load_scenario(preset_name, config, {"K": K, "L": L, "N": N, "realizations": realizations})
    report = simulate_setup(sc, seed)
    if plot is not None:
        from cfmimo.plotting import plot_layout

        plot_layout(report.network, plot)
    if as_json:
        typer.echo(json.dumps(report.to_dict()))
        return
    table = Table(title=f"{sc.name}: L={sc.L}, N={sc.N}, K={sc.K}, seed={seed} — SE [bit/s/Hz]")
    table.add_column("UE", justify="right")
    names = list(report.ul)
    for n in names:
        table.add_column(f"UL {n}", justify="right")
    for n in names:
        table.add_column(f"DL {n}", justify="right")
    for k in range(sc.K):
        table.add_row(
            str(k), *[f"{report.ul[n][k]:.3f}" for n in names], *[f"{report.dl[n][k]:.3f}" for n in names]
        )
    mean = [sum(v) / len(v) for v in (*report.ul.values(), *report.dl.values())]
    low = [min(v) for v in (*report.ul.values(), *report.dl.values())]
    table.add_row("mean", *[f"{m:.3f}" for m in mean], style="bold")
    table.add_row("min", *[f"{m:.3f}" for m in low], style="bold")
    console.print(table)
    console.print(
        f"UL: full power {sc.ul_power_mw:g} mW; DL: equal powers ({sc.dl_normalization} normalization); "
        f"{sc.realizations} realizations; {report.seconds:.2f} s"
    )
    if plot is not None:
        console.print(f"layout saved to {plot}")
