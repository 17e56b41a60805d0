"""Figures and the Markdown report of the ELU-CosFormer reproduction (``elu_cosformer.run``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from cfmimo.experiments.common import pyplot, save_figure
from cfmimo.experiments.elu_cosformer.config import (
    REFERENCE,
    SCHEME_LABELS,
    SCHEMES,
    VARIANT_LABELS,
    EluCosFormerConfig,
)
from cfmimo.experiments.position_references import DEPLOYMENT_TEXT, study_table_lines


def figures(out: Path, config: EluCosFormerConfig, curves, layout, powers) -> None:
    plt = pyplot()
    fig_dir = out / "figures"

    def se_panels(series: dict[str, str], title: str, path: str) -> None:
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for ax, link in zip(axes, ("ul", "dl"), strict=True):
            for scheme, label in series.items():
                c = curves.get(scheme)
                if c is not None:
                    ax.plot(c["K"], c[f"mean_se_{link}"], "-o", ms=3, label=label)
            ax.set(xlabel="K", ylabel="average per-UE SE [b/s/Hz]", title=f"{title} ({link.upper()})")
            ax.legend(fontsize=8)
        save_figure(fig, fig_dir / path)

    se_panels({s: SCHEME_LABELS[s] for s in (*SCHEMES, REFERENCE)}, "Fig. 6", "fig6_se_vs_K.png")
    se_panels(
        {f"activation={a}": a for a in config.activations}, "Fig. 5, CosFormer φ", "fig5_activations.png"
    )
    se_panels({f"variant={n}": VARIANT_LABELS[n] for n in config.models}, "Fig. 11", "fig11_variants.png")
    se_panels(
        {f"sigma={s:g}": f"σ = {s:g} m" for s in config.noise_sigmas_m},
        "Fig. 10, Predicted UC-CF",
        "fig10_noise.png",
    )

    fig, ax = plt.subplots(figsize=(6, 4))  # Fig. 7
    for scheme in ("optimal_cf", "predicted_uc_cf", "dcc"):
        c = curves[scheme]
        ax.plot(c["K"], c["connections"], "-o", ms=3, label=SCHEME_LABELS[scheme])
    ax.set(xlabel="K", ylabel="total AP-UE connections", title="Fig. 7")
    ax2 = ax.twinx()
    c = curves["predicted_uc_cf"]
    ax2.plot(c["K"], c["aps_per_ue"], "--s", color="tab:red", ms=3, label="Predicted UC-CF: APs per UE")
    ax2.set_ylabel("connections per UE", color="tab:red")
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(
        lines[0] + lines2[0],
        lines[1] + lines2[1],
        fontsize=8,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.15),
        ncol=2,
    )
    save_figure(fig, fig_dir / "fig7_connections.png")

    fig, ax = plt.subplots(figsize=(5.5, 5.5))  # Fig. 8
    ap, ue = layout["ap"], layout["ue"]
    for k, links in enumerate(layout["links"]):
        for l in links:
            ax.plot([ue[k][0], ap[l][0]], [ue[k][1], ap[l][1]], "--", color="0.6", lw=0.7)
        ax.annotate(str(len(links)), ue[k], textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.scatter([p[0] for p in ap], [p[1] for p in ap], marker="^", s=60, label="AP", zorder=3)
    ax.scatter(
        [p[0] for p in ue], [p[1] for p in ue], marker="o", s=20, color="tab:red", label="UE", zorder=3
    )
    side = layout["side_m"]
    ax.set(xlim=(0, side), ylim=(0, side), xlabel="x [m]", ylabel="y [m]", aspect="equal")
    ax.set_title(f"Fig. 8: predicted clusters, K = {layout['K']}, L = {len(ap)}")
    ax.legend(fontsize=8, loc="upper right")
    save_figure(fig, fig_dir / "fig8_layout.png")

    pred_ul, pred_dl, opt_ul, opt_dl = powers  # Fig. 9
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, link, opt, pred in ((axes[0], "UL", opt_ul, pred_ul), (axes[1], "DL", opt_dl, pred_dl)):
        for x, label, style in ((opt, "optimal (model clusters)", "-"), (pred, "predicted", "--")):
            xs = torch.sort(x).values
            ax.plot(xs, torch.linspace(0, 1, len(xs)), style, label=label)
        ax.set(xlabel=f"{link} power [mW]", ylabel="CDF", title=f"Fig. 9 ({link})")
        ax.legend(fontsize=8)
    save_figure(fig, fig_dir / "fig9_power_cdf.png")


# ----------------------------------------------------------------------------- claims


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:,.{digits}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _pilot_lines(cfg: dict[str, Any], curves: dict[str, Any]) -> list[str]:
    """The pilot model of the run and, under per_ap_orthogonal, which references fell back to the
    book's estimator (share of test setups per K; ``BookPilotsOverCap``)."""
    model = cfg.get("pilot_model", "book")
    if model == "book":
        return [
            "Pilot model: book (Algorithm 4.1 pilots, contaminated MMSE estimates) for every scheme.",
            "",
        ]
    share = {
        s: ", ".join(
            f"K={K}: {b:.0%}"
            for K, b in zip(curves[s]["K"], curves[s].get("book_pilots", []), strict=False)
            if b
        )
        or "none"
        for s in ("optimal_cf", "dcc")
        if s in curves
    }
    return [
        "Pilot model: per_ap_orthogonal (the paper's eq. (2): every link estimated without co-pilot "
        "interference, valid for at most tau_p UEs per AP). The model's clusters (Optimal and "
        "Predicted UC-CF) and the strongest-per-AP reference respect the cap. References that break "
        "it are scored with the book's estimator (Algorithm 4.1 pilots, contaminated MMSE, same "
        "realizations) on the setups where they break it; share of test setups: "
        + "; ".join(f"{SCHEME_LABELS[s]}: {v}" for s, v in share.items())
        + ".",
        "",
    ]


def _study_lines(study: dict[str, Any] | None) -> list[str]:
    """The site study (issue 15): gaps of the positions-only and gain-aware models and of the
    positions-only references to Optimal CF (``study.py``)."""
    if not study:
        return []
    return [
        "",
        "## Site study (issue 15): SE gaps to the max-min optimum (Optimal CF)",
        "",
        f"Deployment: {DEPLOYMENT_TEXT[study['deployment']]}; {study['test_sizes']} test sizes. Gaps in "
        "b/s/Hz averaged over the test K: worst UE (the max-min objective) and mean per-UE SE "
        "(negative when an allocation trades fairness for the mean), of each model's Predicted UC-CF "
        "(its clusters and powers) to Optimal CF (all APs, closed form). Settings: (a) book drops, "
        "(b) fixed AP layout, (c) site with a fixed shadowing field, (d) gain-aware inputs under (a); "
        "'c+gains' is the gain-aware model on the site. The references (all APs serving) are "
        f"computed on the first {study['reference_samples']} test setups of each K against their own "
        "optimum.",
        "",
        *study_table_lines(study),
        "",
        "Power-only gaps (to the closed-form max-min powers of each model's own clusters: what the "
        "power head misses, apart from what its clusters cost):",
        "",
        "| model | worst-UE gap UL | worst-UE gap DL | mean gap UL | mean gap DL |",
        "| --- | ---: | ---: | ---: | ---: |",
        *(
            f"| {name} | {g['min_se_power_gap_ul']:.3f} | {g['min_se_power_gap_dl']:.3f} | "
            f"{g['mean_se_power_gap_ul']:.3f} | {g['mean_se_power_gap_dl']:.3f} |"
            for name, g in study["models"].items()
        ),
    ]


def write_report(out: Path, results: dict[str, Any]) -> None:
    from cfmimo.config import atomic_write_text

    cfg, curves, rt = results["config"], results["metrics"]["curves"], results["metrics"]["runtime"]
    st = results["stage_seconds"]
    lines = [
        f"# ELU-CosFormer reproduction ({results['mode']} mode)",
        "",
        f"cfmimo {results['cfmimo']}; wall time {results['wall_time_s'] / 60:.1f} min (data {st['data']:.0f} s, "
        f"training {st['training']:.0f} s on {results['training_device']}, evaluation {st['evaluation']:.0f} s). "
        f"Training: {cfg['train_samples']} setups per K in {cfg['train_K']}, {cfg['epochs']} epochs, batch "
        f"{cfg['batch_size']}, λ = {cfg['lam']}, ξ = {cfg['threshold']}, σ = {cfg['sigma_ue_m']} m, "
        f"{cfg['realizations']} channel realizations per setup. Test: {cfg['test_samples']} setups per K, "
        f"input noise σ = {cfg['eval_sigma_m']} m on UEs and APs unless stated.",
        "",
        *_pilot_lines(cfg, curves),
        "## Claims",
        "",
        "| id | claim | paper | ours | holds |",
        "| --- | --- | --- | --- | --- |",
    ]
    for c in results["claims"]:
        holds = "yes" if c["holds"] else ("n/a" if c["holds"] is None else "**no**")
        lines.append(f"| {c['id']} | {c['description']} | {c['paper_value']} | {c['ours']} | {holds} |")
    lines += [
        "",
        "## Fig. 6: average per-UE SE [b/s/Hz] (UL / DL), and mean worst-UE SE",
        "",
        "| K | " + " | ".join(SCHEME_LABELS[s] for s in SCHEMES) + " | worst-UE UL / DL (Pred. UC-CF) |",
        "| ---: | " + " | ".join("---:" for _ in SCHEMES) + " | ---: |",
    ]
    shown = (*SCHEMES, REFERENCE)
    lines[-2:] = [
        "| K | " + " | ".join(SCHEME_LABELS[s] for s in shown) + " | worst-UE UL / DL (Pred. UC-CF) |",
        "| ---: | " + " | ".join("---:" for _ in shown) + " | ---: |",
    ]
    for i, K in enumerate(curves["predicted_uc_cf"]["K"]):
        cells = [f"{curves[s]['mean_se_ul'][i]:.3f} / {curves[s]['mean_se_dl'][i]:.3f}" for s in shown]
        p = curves["predicted_uc_cf"]
        lines.append(
            f"| {K} | " + " | ".join(cells) + f" | {p['min_se_ul'][i]:.3f} / {p['min_se_dl'][i]:.3f} |"
        )
    lines += _study_lines(results["metrics"].get("study"))
    diag = results["metrics"].get("mask_vs_gains")
    if diag:
        lines += [
            "",
            "## Does the mask head rank UEs by their gains? (noise-free inputs)",
            "",
            "Spearman correlation at each AP between the model's mask scores and the UEs' gains "
            "(1 = the ranking of the strongest-per-AP reference, 0 = unrelated), and the share of "
            "the model's top-tau_p UEs per AP that are among the AP's tau_p strongest.",
            "",
            "| K | Spearman | top-tau_p agreement |",
            "| ---: | ---: | ---: |",
            *(f"| {d['K']} | {d['spearman']:.3f} | {d['top_tau_p_agreement']:.3f} |" for d in diag),
        ]
    lines += [
        "",
        "## Fig. 7: AP-UE connections (total; Predicted UC-CF also per UE)",
        "",
        "| K | Optimal CF | Predicted UC-CF | DCC | UC-CF APs per UE | UC-CF unserved UEs |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for i, K in enumerate(curves["predicted_uc_cf"]["K"]):
        p = curves["predicted_uc_cf"]
        lines.append(
            f"| {K} | {curves['optimal_cf']['connections'][i]:.0f} | {p['connections'][i]:.1f} | "
            f"{curves['dcc']['connections'][i]:.0f} | {p['aps_per_ue'][i]:.2f} | {p['unserved_ues'][i]:.2f} |"
        )
    lines += [
        "",
        "## Fig. 10 (input noise), Fig. 5 (kernel activations), Fig. 11 (variants): avg per-UE SE UL / DL",
        "",
    ]
    groups = [
        ("σ", [f"sigma={s:g}" for s in cfg["noise_sigmas_m"]]),
        ("φ", [f"activation={a}" for a in cfg["activations"]]),
        ("variant", [f"variant={n}" for n in cfg["models"]]),
    ]
    for title, schemes in groups:
        lines += [
            f"| {title} | " + " | ".join(f"K = {K}" for K in curves["predicted_uc_cf"]["K"]) + " |",
            "| --- | " + " | ".join("---:" for _ in curves["predicted_uc_cf"]["K"]) + " |",
        ]
        for s in schemes:
            c = curves[s]
            cells = [f"{a:.3f} / {b:.3f}" for a, b in zip(c["mean_se_ul"], c["mean_se_dl"], strict=True)]
            lines.append(f"| {s.split('=', 1)[1]} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += [
        f"## Table IV (K = {cfg['table_K']}, L = {cfg['L']}; paper values in parentheses)",
        "",
        "| model | params | memory [MB] | peak forward [KiB] | FLOPs | latency [ms] | training [s/epoch] |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for n, m in results["models"].items():
        lines.append(
            f"| {VARIANT_LABELS[n]} | {m['params']:,} ({_fmt(m['paper_params'], 0)}) | {m['memory_mb']:.2f} "
            f"({_fmt(m['paper_memory_mb'], 2)}) | {m['peak_forward_kib']:.1f} | {m['flops']:,} ({_fmt(m['paper_flops'], 0)}) | "
            f"{m['latency_ms']:.2f} ({_fmt(m['paper_latency_ms'], 2)}) | {_fmt(m.get('train_s_per_epoch'), 1)} "
            f"({_fmt(m['paper_train_s_per_epoch'], 2)}) |"
        )
    lines += [
        "",
        "Memory: parameter and buffer bytes in MiB (what the paper's 0.39 MB for 103,378 float32 "
        "parameters is); peak forward: the largest extra CPU memory a batch-1 forward pass allocates "
        "(torch.profiler's allocator totals). FLOPs: torch's FlopCounterMode, 2 per multiply-add (the "
        "paper's figures look like multiply-adds). Latency: median batch-1 forward incl. feature "
        "scaling on this machine's CPU. Training time: each run's timing.json (written by the trainer for "
        "every trained run: training-epoch seconds, validation excluded, summed over every call that "
        "trained it, per epoch), on the training device; untrained variants (quick mode) have none. "
        "Our Longformer keeps the layer stack of the other variants (see cfmimo.models.cluster_models).",
        "",
        *_timing_lines(results),
        f"## Runtime at K = {rt['K']} (Sect. VII; CPU, {rt['threads']} threads, {rt['realizations']} realizations)",
        "",
        "| | model | DCC + closed form | ratio |",
        "| --- | ---: | ---: | ---: |",
        f"| paper | {rt['paper_model_ms']} ms | {rt['paper_dcc_closed_form_ms'] / 1e3:.1f} s | {rt['paper_ratio']:.0f} |",
        f"| ours | {rt['model_ms']:.2f} ms | {rt['dcc_closed_form_ms'] / 1e3:.3f} s | {rt['ratio']:.1f} |",
        "",
        "Model: positions -> features -> model -> rescaled powers and binary clusters, one setup. "
        "DCC + closed form: from the channel realizations and pilot noise: MMSE estimates, Q = "
        f"{cfg['dcc_q']} strongest APs, UatF statistics of the MMSE combiners/precoders, closed-form "
        "max-min UL/DL powers.",
        "",
        "## Figures",
        "",
        *(
            f"![{t}](figures/{f})\n"
            for t, f in (
                ("Fig. 5", "fig5_activations.png"),
                ("Fig. 6", "fig6_se_vs_K.png"),
                ("Fig. 7", "fig7_connections.png"),
                ("Fig. 8", "fig8_layout.png"),
                ("Fig. 9", "fig9_power_cdf.png"),
                ("Fig. 10", "fig10_noise.png"),
                ("Fig. 11", "fig11_variants.png"),
            )
        ),
        "Tables: `se_by_scheme.csv` (every scheme and K: mean and worst-UE SE, connections, APs per UE, "
        "unserved UEs), `table4.csv`, `runtime.csv`, `fig8_layout.csv`, `fig9_power_quantiles.csv`.",
    ]
    if results["metrics"]["nonfinite_se"]:
        lines += ["", f"**Non-finite SEs:** {results['metrics']['nonfinite_se']}"]
    atomic_write_text(out / "report.md", "\n".join(lines) + "\n")


def _timing_lines(results: dict) -> list[str]:
    """One line per training run from its timing.json (``metrics.runs``): s/epoch, steps/s, wall
    time, device and threads (empty for results written before these fields existed)."""
    runs = results.get("metrics", {}).get("runs", {})
    rows = [
        f"| {name} | {_fmt(r.get('train_s_per_epoch'), 1)} | {_fmt(r.get('steps_per_s'), 1)} | "
        f"{_fmt(r.get('wall_seconds'), 0)} | {r.get('device', '')} | {r.get('threads', '')} |"
        for name, r in runs.items()
        if "steps_per_s" in r
    ]
    if not rows:
        return []
    return [
        "Training runs (timing.json):",
        "",
        "| run | s/epoch | steps/s | wall [s] | device | threads |",
        "| --- | ---: | ---: | ---: | --- | ---: |",
        *rows,
        "",
    ]
