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
    preset_name: Annotated[
        str, typer.Option("--preset", help=f"One of: {', '.join(preset_names())}.")
    ] = "tree-transformer",
    config: Annotated[Path | None, typer.Option(help="Scenario YAML (overrides --preset).")] = None,
    K: Annotated[int | None, typer.Option("--K", help="Number of UEs.")] = None,
    L: Annotated[int | None, typer.Option("--L", help="Number of APs.")] = None,
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
