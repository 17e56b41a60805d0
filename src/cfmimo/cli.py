"""The ``cfmimo`` command line: thin wrappers around library calls."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Annotated, Any

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


# ----------------------------------------------------------------------------- output paths
# Checked before any work, so a typo costs nothing: a run never ends in "cannot write".
PLOT_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg")


def check_output_file(path: Path, option: str, suffixes: tuple[str, ...]) -> Path:
    """An output file: one of ``suffixes``, not an existing folder, in an existing writable folder."""
    if path.suffix.lower() not in suffixes:
        raise typer.BadParameter(
            f"{option} {path}: the file name must end in {' or '.join(suffixes)}, got {path.suffix or 'no suffix'!r}"
        )
    if path.is_dir():
        raise typer.BadParameter(f"{option} {path} is a directory; give a file name")
    parent = path.parent
    if not parent.is_dir():
        what = "is a file, not a directory" if parent.exists() else "does not exist"
        raise typer.BadParameter(f"{option} {path}: its folder {parent} {what}")
    if not os.access(parent, os.W_OK):
        raise typer.BadParameter(f"{option} {path}: its folder {parent} is not writable")
    return path


def check_output_folder(path: Path, option: str) -> Path:
    """An output folder (created with its parents): not a file, and its nearest existing ancestor
    is a writable folder (so creating it cannot fail half-way)."""
    if path.exists() and not path.is_dir():
        raise typer.BadParameter(f"{option} {path} is a file, not a directory")
    ancestor = path
    while not ancestor.exists():
        if ancestor.parent == ancestor:
            break
        ancestor = ancestor.parent
    if ancestor.exists() and not ancestor.is_dir():
        raise typer.BadParameter(f"{option} {path}: {ancestor} is a file, so the folder cannot be created")
    if ancestor.exists() and not os.access(ancestor, os.W_OK):
        raise typer.BadParameter(f"{option} {path}: {ancestor} is not writable")
    return path


def json_text(value: object) -> str:
    """``--json`` output: always valid JSON (RFC 8259). A non-finite float (NaN, +-inf: e.g. the
    validation loss of a run without validation) is written as null, never as the NaN/Infinity
    tokens that strict parsers reject; tensors and NumPy values become lists and numbers."""

    def clean(x: object) -> object:
        if isinstance(x, float):
            return x if math.isfinite(x) else None
        if isinstance(x, dict):
            return {str(k): clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        if hasattr(x, "tolist"):  # torch/NumPy scalars and arrays
            return clean(x.tolist())
        return x

    return json.dumps(clean(value), allow_nan=False)


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
        try:
            result = compare_maxmin_policies(
                sc,
                setups,
                seed=seed,
                batch=batch,
                dl_constraint=dl_constraint,
                progress=lambda n: bar.advance(task, n),
            )
        except ValueError as err:  # e.g. a layout that cannot be sampled (names the field)
            raise typer.BadParameter(str(err)) from None
    if as_json:
        typer.echo(json_text(result))
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


@solve_app.command("sum-rate")
def solve_sum_rate(
    preset_name: PresetOption = "aagnn",
    config: ConfigOption = None,
    K: KOption = None,
    L: LOption = None,
    N: Annotated[int | None, typer.Option("--N", help="Antennas per AP.")] = None,
    edge_snr_db: Annotated[
        float | None, typer.Option("--edge-snr-db", help="Cell-edge SNR in dB (sets the noise).")
    ] = None,
    setups: Annotated[int, typer.Option(min=1, help="Number of random setups.")] = 100,
    starts: Annotated[int, typer.Option(min=0, help="WMMSE random starts (besides the RZF start).")] = 4,
    iterations: Annotated[int, typer.Option(min=1, help="WMMSE iteration cap.")] = 500,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    batch: Annotated[int, typer.Option(min=1, help="Setups per batch (memory).")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Sum-rate precoding (AAGNN eqs. (1)-(2)): WMMSE (best of RZF + random starts) vs MRT/ZF/RZF."""
    from rich.progress import Progress

    from cfmimo.solve import compare_sumrate_policies

    overrides = {"K": K, "L": L, "N": N, "cell_edge_snr_db": edge_snr_db}
    sc = load_scenario(preset_name, config, overrides)
    with Progress(transient=True, disable=as_json, console=Console(stderr=True)) as bar:
        task = bar.add_task("setups", total=setups)
        result = compare_sumrate_policies(
            sc,
            setups,
            seed=seed,
            batch=batch,
            wmmse_starts=starts,
            wmmse_iterations=iterations,
            progress=lambda n: bar.advance(task, n),
        )
    if as_json:
        typer.echo(json_text(result))
        return
    table = Table(
        title=f"{sc.name}: L={sc.L}, K={sc.K}, N={sc.N}, {setups} setups, noise {result['noise_dbm']:.2f} dBm"
        " — sum rate [bit/s/Hz]"
    )
    for col in ("policy", "sum rate", "% of WMMSE", "mean % per setup", "ms/setup", "feasible"):
        table.add_column(col, justify="right" if col != "policy" else "left")
    for name, r in result["policies"].items():
        table.add_row(
            name,
            f"{r['sum_rate']:.3f}",
            f"{r['percent_of_wmmse']:.1f}",
            f"{r['mean_percent_of_wmmse']:.1f}",
            f"{1e3 * r['seconds_per_setup']:.2f}",
            f"{100 * r['feasibility_probability']:.0f}%",
        )
    console.print(table)
    w = result["wmmse"]
    console.print(
        f"WMMSE: {w['iterations_mean']:.0f} iterations on average (cap {w['max_iterations']}), "
        f"{100 * w['converged_fraction']:.0f}% of runs converged; best start counts "
        + ", ".join(f"{n} {c}" for n, c in zip(w["start_names"], w["best_start_counts"], strict=True))
        + ". per_ap: every serving AP at P; common: one factor per setup."
    )


@solve_app.command("wsr")
def solve_wsr(
    preset_name: PresetOption = "egat",
    config: ConfigOption = None,
    K: KOption = None,
    L: LOption = None,
    setups: Annotated[int, typer.Option(min=1, help="Number of random setups.")] = 50,
    capacity_mbps: Annotated[
        float | None, typer.Option(help="Fronthaul capacity per AP in Mbit/s (default: the scenario's).")
    ] = None,
    shadowing_decorrelation_m: Annotated[
        float | None, typer.Option(help="Shadowing decorrelation distance in m (egat: 500).")
    ] = None,
    policies: Annotated[
        str | None, typer.Option(help="Comma-separated subset of: ao_sca, ao_sca_literal, pc_wmmse, fc_zf.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    batch: Annotated[int, typer.Option(min=1, help="Setups per batch.")] = 16,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Fronthaul-constrained weighted sum rate (egat): AO-SCA (reweighted, literal), PC-WMMSE, FC-ZF."""
    from rich.progress import Progress

    from cfmimo.solve import compare_wsr_policies

    if capacity_mbps is not None and capacity_mbps <= 0:
        raise typer.BadParameter(f"--capacity-mbps must be > 0, got {capacity_mbps}")
    names = [p.strip() for p in policies.split(",") if p.strip()] if policies is not None else None
    if names is not None and not names:
        raise typer.BadParameter("--policies is empty")
    sc = load_scenario(
        preset_name, config, {"K": K, "L": L, "shadowing_decorrelation_m": shadowing_decorrelation_m}
    )
    with Progress(transient=True, disable=as_json, console=Console(stderr=True)) as bar:
        task = bar.add_task("setups", total=setups)
        try:
            result = compare_wsr_policies(
                sc,
                setups,
                seed=seed,
                batch=batch,
                capacity_bps=None if capacity_mbps is None else 1e6 * capacity_mbps,
                policies=names,
                progress=lambda n: bar.advance(task, n),
            )
        except ValueError as err:
            raise typer.BadParameter(str(err)) from None
    if as_json:
        typer.echo(json_text(result))
        return
    table = Table(
        title=f"{sc.name}: L={sc.L}, K={sc.K}, N={sc.N}, C={result['capacity_bps'] / 1e6:g} Mbit/s, "
        f"BW={sc.bandwidth_hz / 1e6:g} MHz, {setups} setups"
    )
    cols = ("policy", "WSR b/s/Hz", "Mbit/s", "raw WSR", "raw feasible", "APs/UE", "ms/setup")
    for col in cols:
        table.add_column(col, justify="right" if col != "policy" else "left")
    for name, r in result["policies"].items():
        table.add_row(
            name,
            f"{r['wsr']:.3f}",
            f"{r['wsr_mbps']:.1f}",
            f"{r['wsr_before_repair']:.3f}",
            f"{100 * r['feasible_without_repair']:.0f}%",
            f"{r['aps_per_ue']:.2f}",
            f"{1e3 * r['seconds_per_setup']:.1f}",
        )
    console.print(table)
    console.print(
        "WSR after the Sect. V-A repair where needed; raw: the policy's own decision (AO-SCA: its "
        "thresholded beams), feasible without repair"
    )


@solve_app.command("ee")
def solve_ee(
    preset_name: PresetOption = "ee-gnn",
    config: ConfigOption = None,
    K: KOption = None,
    L: LOption = None,
    setups: Annotated[int, typer.Option(min=1, help="Number of random setups.")] = 100,
    policies: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated: equal, random, sca, sca_cvxpy (slow), sca_best_of_8, multistart, dinkelbach."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    batch: Annotated[int, typer.Option(min=1, help="Setups per batch (memory).")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Energy efficiency (ee-gnn eq. (1)): equal/random power, SCA, Dinkelbach (global EE), multi-start."""
    from rich.progress import Progress

    from cfmimo.solve import DEFAULT_EE_POLICIES, compare_ee_policies

    names = tuple(p.strip() for p in policies.split(",")) if policies else DEFAULT_EE_POLICIES
    sc = load_scenario(preset_name, config, {"K": K, "L": L})
    with Progress(transient=True, disable=as_json, console=Console(stderr=True)) as bar:
        task = bar.add_task("setups", total=setups)
        try:
            result = compare_ee_policies(
                sc, setups, seed=seed, batch=batch, policies=names, progress=lambda n: bar.advance(task, n)
            )
        except ValueError as err:
            raise typer.BadParameter(str(err)) from None
    if as_json:
        typer.echo(json_text(result))
        return
    table = Table(title=f"{sc.name}: L={sc.L}, K={sc.K}, {setups} setups — EE [Mbit/J] (log2, 1 MHz)")
    for col in ("policy", "EE eq. (1)", "global EE", "active UEs", "power [W]", "ms/setup", "feasible"):
        table.add_column(col, justify="right" if col != "policy" else "left")
    for name, r in result["policies"].items():
        table.add_row(
            name,
            f"{r['ee_sum']:.4f}",
            f"{r['ee_global']:.4f}",
            f"{r['active_ues']:.2f}",
            f"{r['total_power_w']:.3f}",
            f"{1e3 * r['seconds_per_setup']:.2f}",
            f"{100 * r['feasibility_probability']:.0f}%",
        )
    console.print(table)
    console.print("dinkelbach maximizes the global EE; the other optimizers maximize eq. (1) (sum of ratios)")


data_app = typer.Typer(help="Generate and inspect labelled datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")


def _int_list(text: str | None, name: str) -> list[int] | None:
    if text is None:
        return None
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise typer.BadParameter(f"{name} must be comma-separated integers, got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise typer.BadParameter(f"{name} must hold positive integers, got {text!r}")
    return values


@data_app.command("generate")
def data_generate(
    out: Annotated[Path, typer.Option(help="Dataset folder (created; re-running resumes).")],
    preset_name: PresetOption = "tree-transformer",
    dataset: Annotated[
        str | None,
        typer.Option(
            help="Dataset preset: tree-transformer-train, tree-transformer-test, elu-cosformer-train, "
            "tree-transformer-{site,fixed}-{train,test}, ee-gnn-train, ee-gnn-test."
        ),
    ] = None,
    spec_file: Annotated[
        Path | None, typer.Option("--spec", help="Dataset spec YAML (scenario, sizes, samples, seed, ...).")
    ] = None,
    K: Annotated[str | None, typer.Option("--K", help="UE counts, e.g. 2,4,6,8,10.")] = None,
    L: Annotated[str | None, typer.Option("--L", help="AP counts, e.g. 16 or 1,4,9.")] = None,
    samples: Annotated[int | None, typer.Option(min=1, help="Samples per (K, L).")] = None,
    seed: Annotated[int | None, typer.Option(help="Base seed.")] = None,
    shard_size: Annotated[int | None, typer.Option(min=1, help="Samples per shard file.")] = None,
    realizations: Annotated[
        int | None, typer.Option(min=1, help="Realizations for the UatF statistics.")
    ] = None,
    labels: Annotated[
        bool | None, typer.Option("--labels/--no-labels", help="Store statistics and max-min labels.")
    ] = None,
    scheduler: Annotated[
        str, typer.Option(help="'local' (Dask LocalCluster), 'sync' (one process) or a scheduler address.")
    ] = "local",
    workers: Annotated[
        int | None, typer.Option(min=1, help="LocalCluster workers (default: CPU count).")
    ] = None,
    connect_timeout: Annotated[
        float,
        typer.Option(min=0.1, max=3600, help="Seconds to wait for a remote Dask scheduler before giving up."),
    ] = 10.0,
) -> None:
    """Generate a sharded HDF5 dataset in parallel (deterministic, resumable)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from cfmimo.data.generation import run_generation
    from cfmimo.data.spec import DatasetSpec, dataset_preset, load_spec_file

    check_output_folder(out, "--out")
    overrides = {
        k: v
        for k, v in {"samples": samples, "seed": seed, "shard_size": shard_size, "labels": labels}.items()
        if v is not None
    }
    try:
        if spec_file is not None:
            base = load_spec_file(spec_file).model_dump()  # safe YAML, bools are not numbers
        elif dataset is not None:
            base = dataset_preset(dataset).model_dump()
        else:
            base = {"scenario": preset(preset_name).model_dump(), "sizes": [(10, 16)], "samples": 100}
        ks, ls = _int_list(K, "--K"), _int_list(L, "--L")
        if ks or ls:
            old_k = sorted({k for k, _ in base["sizes"]})
            old_l = sorted({l for _, l in base["sizes"]})
            base["sizes"] = [(k, l) for l in (ls or old_l) for k in (ks or old_k)]
        if realizations is not None:
            base["scenario"] = {**base["scenario"], "realizations": realizations}
        spec = DatasetSpec.model_validate({**base, **overrides})
    except (OSError, ValueError) as err:
        raise typer.BadParameter(str(err)) from None
    if not out.parent.is_dir():  # checked before any work (the library would create it)
        raise typer.BadParameter(f"--out {out}: its parent folder {out.parent} does not exist")
    total = len(spec.sizes) * spec.samples
    columns = (
        TextColumn("samples"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task("generate", total=total, rate="")
        started = [0.0, 0]

        def advance(n: int) -> None:
            import time as _time

            started[0] = started[0] or _time.perf_counter()
            started[1] += n
            elapsed = max(_time.perf_counter() - started[0], 1e-9)
            bar.update(task, advance=n, rate=f"{started[1] / elapsed:.1f} samples/s")

        try:
            summary = run_generation(
                spec,
                out,
                scheduler=scheduler,
                workers=workers,
                progress=advance,
                connect_timeout_s=connect_timeout,
            )
        except (ValueError, OSError) as err:
            raise typer.BadParameter(str(err)) from None
    console.print(
        f"{summary['new_samples']} new samples ({summary['total_samples']} in the dataset) in "
        f"{summary['seconds']:.1f} s, {summary['samples_per_s']:.1f} samples/s -> {out}"
    )


@data_app.command("inspect")
def data_inspect(
    folder: Annotated[Path, typer.Argument(help="Dataset folder.")],
    verify: Annotated[
        bool,
        typer.Option(
            "--verify/--no-verify",
            help="Check every shard's SHA-256 against the manifest (--no-verify: trust the files).",
        ),
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Counts per (K, L), label statistics and the dataset's configuration."""
    import math

    from cfmimo.data.storage import load_dataset

    try:
        content = load_dataset(folder, verify=verify)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    spec = content.manifest["spec"]
    groups = {}
    for (k, l), g in sorted(content.groups.items()):
        row = {"K": k, "L": l, "samples": int(g["sample_index"].shape[0])}
        for name in ("p_ul", "p_dl", "se_ul", "se_dl"):
            if name in g:
                x = g[name].double()
                stats = {"mean": x.mean().item(), "min": x.min().item(), "max": x.max().item()}
                row[name] = {k: v if math.isfinite(v) else None for k, v in stats.items()}  # valid JSON
        groups[f"K={k},L={l}"] = row
    summary = {
        "folder": str(folder),
        "cfmimo": content.manifest.get("cfmimo"),
        "scenario": spec["scenario"]["name"],
        "seed": spec["seed"],
        "labels": spec["labels"],
        "samples": sum(r["samples"] for r in groups.values()),
        "groups": groups,
        "spec": spec,
    }
    if as_json:
        typer.echo(json_text(summary))
        return
    table = Table(
        title=f"{folder}: {summary['samples']} samples, scenario {summary['scenario']}, seed {spec['seed']}"
    )
    for col in ("K", "L", "samples", "p_ul mean [mW]", "p_dl mean [mW]", "min-UE SE UL", "min-UE SE DL"):
        table.add_column(col, justify="right")
    for (k, l), g in sorted(content.groups.items()):
        r = groups[f"K={k},L={l}"]
        cells = [
            f"{r[n]['mean']:.2f}" if n in r and r[n]["mean"] is not None else "-" for n in ("p_ul", "p_dl")
        ]
        mins = [f"{g[n].amin(-1).double().mean().item():.3f}" if n in g else "-" for n in ("se_ul", "se_dl")]
        table.add_row(str(k), str(l), str(r["samples"]), *cells, *mins)
    console.print(table)
    console.print(
        f"labels: {spec['labels']}; shard size {spec['shard_size']}; combiner {spec['combiner']}; "
        f"realizations {spec['scenario']['realizations']}; checksums {'verified' if verify else 'not checked'}"
    )


@app.command("train")
def train_command(
    config: Annotated[Path, typer.Option("--config", help="Training config YAML (see cfmimo.learn.config).")],
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a config field, e.g. trainer.epochs=3 (repeatable)."),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from out_dir/checkpoints/last.ckpt if it exists.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Train a power model (Lightning: checkpoints, CSV/TensorBoard logs, DDP with trainer.devices > 1)."""
    from cfmimo.learn.config import check_train_setup, load_train_config
    from cfmimo.learn.trainer import train

    try:
        cfg = load_train_config(config, overrides or [])
        check_train_setup(cfg)  # out_dir and accelerator, before any data is read
        result = train(cfg, ckpt_path="last" if resume else None)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    if result.global_rank != 0:  # DDP: the other processes stay quiet
        return
    if as_json:
        typer.echo(json_text(result.to_dict()))
        return
    table = Table(title=f"{cfg.model.name}: best epoch {result.best_epoch} of {result.epochs}")
    table.add_column("validation size")
    table.add_column("MSE", justify="right")
    for size, loss in result.val_losses.items():
        table.add_row(size, f"{loss:.5f}")
    table.add_row("average (val_loss)", f"{result.best_val_loss:.5f}", style="bold")
    console.print(table)
    console.print(
        f"best checkpoint {result.best_checkpoint}; {result.seconds:.1f} s, "
        f"{result.train_samples_per_s:.0f} training samples/s; logs in {result.log_dir}"
    )


@app.command()
def predict(
    checkpoint: Annotated[
        Path, typer.Argument(help="A trained model checkpoint (.ckpt), or a .onnx from cfmimo export.")
    ],
    positions: Annotated[
        Path, typer.Option(help="UE and AP coordinates in metres: YAML/JSON, CSV (kind,x,y) or NPZ.")
    ],
    preset_name: PresetOption = "tree-transformer",
    seed: Annotated[int, typer.Option(help="Seed of the shadowing and fading used to score the powers.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    backend: Annotated[
        str,
        typer.Option(
            help="Inference backend: 'torch' or 'onnxruntime' (a .ckpt is exported first; a .onnx "
            "file from cfmimo export is run directly)."
        ),
    ] = "torch",
) -> None:
    """Predict UL/DL powers (and, for clustering models, the serving APs) for given positions;
    print them with their SEs and the optimum's (for clustering models: the optimum for the same clusters)."""
    from cfmimo.predict import (
        BACKENDS,
        is_cluster_predictor,
        load_predictor,
        predict_cluster_setup,
        predict_setup,
        predictor_site,
        read_positions,
    )
    from cfmimo.sim.shadowing_field import on_site

    if backend not in BACKENDS:
        raise typer.BadParameter(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    try:
        ue, ap = read_positions(positions)  # the cheap checks first: positions file, preset
        scenario = preset(preset_name)
        model, scaler, frame = load_predictor(checkpoint, backend)
        # a model trained on a site is scored on that site, and only for its AP layout
        scenario = on_site(scenario, predictor_site(checkpoint), ap_positions=ap, what=str(positions))
        run = predict_cluster_setup if is_cluster_predictor(model) else predict_setup
        result = run(model, scaler, ue, ap, scenario, seed=seed, frame=frame)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    result["backend"] = backend
    if as_json:
        typer.echo(json_text(result))
        return
    table = Table(title=f"{checkpoint.name} ({backend}): K={result['K']}, L={result['L']}")
    clusters = "serving_aps" in result
    for col in ("UE", *(["serving APs"] if clusters else []), "p_UL [mW]", "p_DL [mW]", "SE UL", "SE DL"):
        table.add_column(col, justify="right")
    for col in ("opt SE UL", "opt SE DL"):
        table.add_column(col, justify="right")
    opt = result["optimal"]
    for k in range(result["K"]):
        table.add_row(
            str(k),
            *([" ".join(map(str, result["serving_aps"][k]))] if clusters else []),
            f"{result['p_ul_mw'][k]:.2f}",
            f"{result['p_dl_mw'][k]:.2f}",
            f"{result['se_ul'][k]:.3f}",
            f"{result['se_dl'][k]:.3f}",
            f"{opt['se_ul'][k]:.3f}",
            f"{opt['se_dl'][k]:.3f}",
        )
    console.print(table)
    console.print(
        f"DL total {result['dl_total_mw']:.1f} mW of {result['dl_budget_mw']:.1f} mW; "
        f"min SE UL {min(result['se_ul']):.3f} (optimum {min(opt['se_ul']):.3f}), "
        f"DL {min(result['se_dl']):.3f} (optimum {min(opt['se_dl']):.3f})"
    )


@app.command()
def export(
    checkpoint: Annotated[Path, typer.Argument(help="A trained model checkpoint (.ckpt).")],
    onnx: Annotated[Path, typer.Option("--onnx", help="Output ONNX file.")],
    check: Annotated[
        bool, typer.Option("--check/--no-check", help="Compare onnxruntime with PyTorch.")
    ] = True,
) -> None:
    """Export a trained model to ONNX with a dynamic number of UEs (and APs), checked for parity."""
    from cfmimo.export import export_trained
    from cfmimo.learn.trainer import load_trained

    check_output_file(onnx, "--onnx", (".onnx",))
    try:
        trained = load_trained(checkpoint)
        result = export_trained(trained, onnx, check=check)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    console.print(
        f"exported {onnx} (outputs {result['outputs']}, dynamic axes {result['dynamic']}); the rescaler and "
        f"input frame stay outside the graph, stored in its metadata: scaler {trained.scaler.to_dict()}, "
        f"frame {None if trained.frame is None else trained.frame.to_dict()}"
    )
    if check:
        console.print(
            "parity (max |onnxruntime - torch|): "
            + ", ".join(f"{k}: {v:.1e}" for k, v in result["parity"].items())
        )
    if "clusters_equal" in result:
        console.print(
            "binary clusters (eq. (16), tau_p = 10) equal in both backends: "
            + ", ".join(f"{k}: {'yes' if v else 'no'}" for k, v in result["clusters_equal"].items())
        )


# paper -> (experiment module, config class) of ``cfmimo reproduce``
REPRODUCTIONS = {
    "tree-transformer": ("cfmimo.experiments.tree_transformer", "TreeTransformerConfig"),
    "elu-cosformer": ("cfmimo.experiments.elu_cosformer", "EluCosFormerConfig"),
    "aagnn": ("cfmimo.experiments.aagnn", "AagnnConfig"),
    "egat": ("cfmimo.experiments.egat", "EgatConfig"),
    "ee-gnn": ("cfmimo.experiments.ee_gnn", "EEGnnConfig"),
}


def reproduce_overrides(config: Any, deployment: str | None, overrides: list[str]) -> Any:
    """The reproduction config with ``--deployment`` and ``--set KEY=VALUE`` applied (validated by
    the config's own model; an unknown key or a bad value is a BadParameter naming it)."""
    import yaml

    update: dict[str, Any] = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"--set expects KEY=VALUE, got {item!r}")
        try:
            update[key.strip()] = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise typer.BadParameter(f"--set {key}: not a YAML value: {err}") from None
    if deployment is not None:
        if "deployment" not in type(config).model_fields:
            raise typer.BadParameter(f"--deployment: {type(config).__name__} has no deployment option")
        update["deployment"] = deployment
    if not update:
        return config
    try:
        return type(config).model_validate({**config.model_dump(), **update})
    except ValueError as err:
        raise typer.BadParameter(f"--set/--deployment: {' '.join(str(err).split())}") from None


@app.command()
def reproduce(
    paper: Annotated[str, typer.Argument(help=f"Paper to reproduce: {', '.join(REPRODUCTIONS)}.")],
    quick: Annotated[
        bool, typer.Option("--quick", help="A small real run (minutes on 2 CPU cores).")
    ] = False,
    out: Annotated[Path | None, typer.Option(help="Output folder (default: runs/<paper>-<mode>).")] = None,
    scheduler: Annotated[
        str, typer.Option(help="Data generation: 'local', 'sync' or a Dask scheduler address.")
    ] = "local",
    workers: Annotated[
        int | None, typer.Option(min=1, help="Data-generation workers (default: CPU count).")
    ] = None,
    train_only: Annotated[
        bool,
        typer.Option(
            "--train-only",
            help="Stop after data and training (e.g. on a GPU machine); rerun without it, same --out, to evaluate.",
        ),
    ] = False,
    deployment: Annotated[
        str | None,
        typer.Option(
            help="tree-transformer, elu-cosformer: 'book' (drops), 'fixed' (one AP layout) or 'site' (layout + shadowing field).",
        ),
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Override a reproduction config field, KEY=VALUE (YAML value), e.g. --set deployment_seed=3 "
            "--set 'models=[tree_transformer_gain]'.",
        ),
    ] = None,
    jobs: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Train the independent runs in N processes, one torch thread each "
            "(tree-transformer, elu-cosformer); default: one after the other in this process.",
        ),
    ] = None,
) -> None:
    """Reproduce a paper end to end: data, training, evaluation, figures, tables and claims."""
    if paper not in REPRODUCTIONS:
        raise typer.BadParameter(f"unknown paper {paper!r}; available: {', '.join(REPRODUCTIONS)}")
    import importlib
    import inspect

    if out is not None:
        check_output_folder(out, "--out")
    module_name, config_name = REPRODUCTIONS[paper]
    module = importlib.import_module(module_name)
    config_type = getattr(module, config_name)
    # full mode: a paper's own choice when it has one (AAGNN: paper sizes on a GPU, its CPU recipe otherwise)
    config = config_type.quick() if quick else getattr(config_type, "full", config_type)()
    config = reproduce_overrides(config, deployment, overrides or [])
    folder = out or Path("runs") / f"{paper}-{config.mode}"
    extra = {}
    if jobs is not None:
        if "jobs" not in inspect.signature(module.run).parameters:
            raise typer.BadParameter(
                f"--jobs is not supported by the {paper} reproduction (its runs are not independent)"
            )
        extra["jobs"] = jobs
    results = module.run(
        config,
        folder,
        scheduler=scheduler,
        workers=workers,
        train_only=train_only,
        log=lambda m: console.print(f"[dim]{m}[/dim]"),
        **extra,
    )
    if train_only:
        console.print(f"trained runs in {folder / 'runs'}: {', '.join(results['runs'])}")
        return
    table = Table(title=f"{paper} ({config.mode}): claims")
    for col in ("claim", "paper", "ours", "holds"):
        table.add_column(col)
    for c in results["claims"]:
        table.add_row(
            c["id"],
            str(c["paper_value"]),
            str(c["ours"]),
            "yes" if c["holds"] else ("n/a" if c["holds"] is None else "no"),
        )
    console.print(table)
    console.print(
        f"results in {folder} (results.json, report.md, CSV tables, figures/); "
        f"wall time {results['wall_time_s'] / 60:.1f} min"
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

    if plot is not None:
        check_output_file(plot, "--plot", PLOT_SUFFIXES)
    sc = load_scenario(preset_name, config, {"K": K, "L": L, "N": N, "realizations": realizations})
    try:
        report = simulate_setup(sc, seed)
    except ValueError as err:  # e.g. a layout that cannot be sampled (names the field)
        raise typer.BadParameter(str(err)) from None
    if plot is not None:
        from cfmimo.plotting import plot_layout

        plot_layout(report.network, plot)
    if as_json:
        typer.echo(json_text(report.to_dict()))
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
