"""Outputs of ``cfmimo reproduce egat``: per-figure CSVs and PNGs, Tables II-V, the claims of issue 14
("Must show") against ours with their tolerances, results.json and report.md (written atomically)."""

from __future__ import annotations

import itertools
import statistics
from pathlib import Path
from typing import Any

from cfmimo.config import atomic_write_text
from cfmimo.experiments.common import claim, pyplot, save_figure, write_csv, write_json
from cfmimo.experiments.egat.config import BASELINES, FIXED_SIZE, EgatConfig

PAPER = (
    "egat-fronthaul (Resource Allocation in Fronthaul-Constrained Cell-Free Networks Using "
    "Edge-Graph Attention Networks)"
)
LABELS = {
    "egat_fh": "EGAT",
    "engnn_fh": "ENGNN",
    "bgnn_fh": "BGNN",
    "dnn_fh": "DNN",
    "ao_sca_reweighted": "AO-SCA (reweighted)",
    "ao_sca_literal": "AO-SCA (literal)",
    "pc_wmmse": "PC-WMMSE",
    "fc_zf": "FC-ZF",
}
GNNS = ("egat_fh", "engnn_fh", "bgnn_fh")
#: one colour per policy in every figure (matplotlib's tab10 cycle, in LABELS order)
COLORS = {p: f"C{i}" for i, p in enumerate(LABELS)}
# Tables II-IV of the paper: feasibility without the heuristic scaling
PAPER_TABLE2 = {  # C in Mbit/s
    "egat_fh": {40: 0.912, 50: 0.946, 60: 0.949, 70: 0.965, 80: 0.983, 90: 0.991},
    "engnn_fh": {40: 0.901, 50: 0.928, 60: 0.945, 70: 0.981, 80: 0.990, 90: 0.992},
    "bgnn_fh": {40: 0.876, 50: 0.892, 60: 0.908, 70: 0.947, 80: 0.966, 90: 0.967},
}
PAPER_TABLE3 = {  # L APs
    "egat_fh": {7: 0.946, 8: 0.949, 9: 0.952, 10: 0.942},
    "engnn_fh": {7: 0.944, 8: 0.945, 9: 0.943, 10: 0.942},
    "bgnn_fh": {7: 0.917, 8: 0.908, 9: 0.931, 10: 0.927},
}
PAPER_TABLE4 = {  # K UEs
    "egat_fh": {4: 0.949, 5: 0.959, 6: 0.958, 7: 0.967},
    "engnn_fh": {4: 0.945, 5: 0.962, 6: 0.967, 7: 0.974},
    "bgnn_fh": {4: 0.908, 5: 0.943, 6: 0.948, 7: 0.946},
}
PAPER_TABLE5 = {  # (K, L): (ENGNN, EGAT) FLOPs
    (3, 4): (2.5e6, 2.7e6),
    (3, 8): (4.6e6, 5.1e6),
    (3, 10): (5.7e6, 6.4e6),
    (6, 4): (4.5e6, 5.0e6),
    (6, 8): (8.5e6, 9.7e6),
    (6, 10): (1.1e7, 1.2e7),
}
TOL_FEASIBLE = 0.05  # issue 14: +-0.05 on every feasibility entry
TOL_APS = (1.5, 2.5)  # "about two serving APs per UE"
TOL_ITER = (7.0, 11.0)  # "converges within 8-10 iterations", +-1
TOL_FLOPS = (1.08, 1.14)
TOL_LATENCY = (1.2, 1.8)  # "roughly 1.5 times"
TOL_STABLE = 0.05  # largest relative change of the validation WSR over the last 1/6 of training


def _r(x: Any, nd: int = 3) -> Any:
    return None if x is None else round(float(x), nd)


def _policies(evaluation: dict[str, dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(p for row in evaluation.values() for p in row))


def _series(evaluation, group, axis: str, policy: str, field: str) -> dict[Any, float]:
    out = {}
    for s in group:
        row = evaluation[s.key]
        if policy in row:
            out[getattr(s, axis)] = row[policy][field]
    return out


# -------------------------------------------------------------------------------------- claims
def claims(cfg: EgatConfig, runs, groups, evaluation, latency, flops) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def add(cid, desc, paper, ours, holds, tolerance, note) -> None:
        out.append({**claim(cid, desc, paper, ours, holds), "tolerance": tolerance, "note": note})

    def feas_claim(cid, desc, table, group, axis, models, extra_floor=None):
        ours, held, paper_vals = {}, True, {}
        for m in models:
            if m not in runs:
                continue
            vals = _series(evaluation, group, axis, m, "feasible_unrepaired")
            ref = {k: v for k, v in table[m].items() if k in vals}
            ours[m] = {f"{k:g}": _r(vals[k]) for k in ref}
            paper_vals[m] = {f"{k:g}": v for k, v in ref.items()}
            for k, v in ref.items():
                ok = abs(vals[k] - v) <= TOL_FEASIBLE
                if extra_floor and m in extra_floor[0]:
                    ok = ok and vals[k] >= extra_floor[1]
                held = held and ok
        return ours, paper_vals, held

    reduced = cfg.mode != "full"
    red = " (reduced mode: a subset of the paper's grid)" if reduced else ""
    ours, paper, held = feas_claim(
        "table2",
        "",
        PAPER_TABLE2,
        groups["table2"],
        "C_mbps",
        GNNS,
        extra_floor=(("egat_fh", "engnn_fh"), 0.90),
    )
    add(
        "table2_feasibility",
        "Table II: feasibility without repair per C (40..90 Mbit/s), EGAT and ENGNN >= 0.90",
        paper,
        ours,
        held,
        f"|ours - paper| <= {TOL_FEASIBLE} per entry; EGAT, ENGNN >= 0.90",
        "test-time association pi > 0.5, no repair; feasible = every AP within (3b) and (3c)" + red,
    )
    ours, paper, held = feas_claim("t3", "", PAPER_TABLE3, groups["table3"], "L", ("egat_fh",))
    add(
        "table3_egat_feasibility",
        "Table III: EGAT feasibility without repair for L = 7..10 APs (trained at 8)",
        paper,
        ours,
        held,
        f"|ours - paper| <= {TOL_FEASIBLE} per entry",
        f"K = 4, C = {cfg.capacity_mbps:g} Mbit/s" + red,
    )
    ours, paper, held = feas_claim("t4", "", PAPER_TABLE4, groups["table4"], "K", ("egat_fh",))
    add(
        "table4_egat_feasibility",
        "Table IV: EGAT feasibility without repair for K = 4..7 UEs (trained at 4)",
        paper,
        ours,
        held,
        f"|ours - paper| <= {TOL_FEASIBLE} per entry",
        f"L = 8, C = {cfg.capacity_mbps:g} Mbit/s" + red,
    )
    # BGNN lowest feasibility in Tables III and IV (mean over the sweep)
    means = {}
    for m in GNNS:
        if m in runs:
            vals = [
                evaluation[s.key][m]["feasible_unrepaired"] for s in (*groups["table3"], *groups["table4"])
            ]
            means[m] = statistics.fmean(vals)
    add(
        "tables34_bgnn_lowest",
        "Tables III-IV: BGNN has the lowest feasibility among the GNNs",
        {m: _r(statistics.fmean([*PAPER_TABLE3[m].values(), *PAPER_TABLE4[m].values()])) for m in GNNS},
        {m: _r(v) for m, v in means.items()},
        (min(means, key=means.get) == "bgnn_fh") if "bgnn_fh" in means and len(means) > 1 else None,
        "mean over the L and K sweeps; BGNN strictly lowest",
        "",
    )
    # EGAT WSR >= every other policy at every setting
    worst = None
    for s in dict.fromkeys(s for g in ("table2", "table3", "table4") for s in groups[g]):
        row = evaluation[s.key]
        e = row["egat_fh"]["wsr"]
        for p, v in row.items():
            if p == "egat_fh":
                continue
            gap = e - v["wsr"]
            if worst is None or gap < worst[0]:
                worst = (gap, s.key, p)
    add(
        "egat_wsr_best",
        "Figs. 6-8: EGAT's WSR (with repair) >= every baseline at every C, L and K",
        "EGAT best everywhere",
        {"min margin (bit/s/Hz)": _r(worst[0]), "at": worst[1], "vs": worst[2]},
        worst[0] >= 0,
        ">= 0 at every setting (mean over the test set; AO-SCA on its subset)",
        f"AO-SCA on the first {cfg.ao_sca_samples} test samples of each setting, the others on {cfg.test_samples}",
    )
    aps = _series(evaluation, groups["table4"], "K", "egat_fh", "aps_per_ue")
    k0, ks = cfg.train_K, sorted(aps)
    falling = all(aps[b] <= aps[a] + 0.05 for a, b in itertools.pairwise(ks)) and aps[ks[-1]] < aps[ks[0]]
    add(
        "fig9_egat_two_aps",
        "Fig. 9: EGAT ~2 serving APs per UE at K = 4, falling with K",
        "~2 at K = 4, decreasing",
        {f"K={k}": _r(v, 2) for k, v in aps.items()},
        TOL_APS[0] <= aps[k0] <= TOL_APS[1] and falling,
        f"{TOL_APS[0]} <= APs/UE(K={k0}) <= {TOL_APS[1]}; non-increasing in K (slack 0.05), last < first",
        "APs per UE of the repaired test-time decision",
    )
    losses = {
        s.key: evaluation[s.key]["egat_fh"]["repair_loss"]
        for s in dict.fromkeys(s for g in groups.values() for s in g)
    }
    worst_loss = max(losses, key=losses.get)
    add(
        "repair_loss_below_3pct",
        "Sect. V-A: the heuristic scaling costs EGAT < 3 % of its WSR",
        "< 0.03",
        {"max": _r(losses[worst_loss]), "at": worst_loss, "mean": _r(statistics.fmean(losses.values()))},
        losses[worst_loss] < 0.03,
        "1 - mean(repaired WSR) / mean(unrepaired WSR) < 0.03 at every setting",
        "",
    )
    iters = {f"{s.C_mbps:g}": evaluation[s.key]["ao_sca_literal"]["iterations"] for s in groups["table2"]}
    add(
        "fig4a_ao_sca_iterations",
        "Fig. 4a: AO-SCA converges within 8-10 iterations",
        "8-10",
        {C: _r(v, 1) for C, v in iters.items()},
        all(TOL_ITER[0] <= v <= TOL_ITER[1] for v in iters.values()),
        f"mean iterations (literal variant, |df| <= 1e-3 |f|) in [{TOL_ITER[0]}, {TOL_ITER[1]}] per C",
        f"max_iter = {cfg.ao_sca_max_iter}"
        + ("; capped far below convergence in this mode" if cfg.ao_sca_max_iter < 12 else ""),
    )
    if "egat_fh" in runs and "engnn_fh" in runs:
        ratios = {f"K={r['K']},L={r['L']}": r["egat_fh"] / r["engnn_fh"] for r in flops}
        egat_abs = [r["egat_fh"] for r in flops]
        add(
            "table5_flops_ratio",
            "Table V: EGAT / ENGNN FLOPs 1.08-1.14, EGAT 2.5e6-1.2e7 per sample",
            {f"K={k},L={l}": f"{e / n:.2f} ({e:.1e})" for (k, l), (n, e) in PAPER_TABLE5.items()},
            {k: f"{v:.2f} ({r['egat_fh']:.1e})" for (k, v), r in zip(ratios.items(), flops, strict=True)},
            all(TOL_FLOPS[0] <= v <= TOL_FLOPS[1] for v in ratios.values())
            and all(2.5e6 * 0.5 <= e <= 1.2e7 * 2 for e in egat_abs),
            f"ratio in [{TOL_FLOPS[0]}, {TOL_FLOPS[1]}] at every (K, L); EGAT within a factor 2 of 2.5e6-1.2e7",
            "FlopCounterMode, one forward of one sample, matmuls only (report.md: the ratio is set by the "
            "number of heads, not by the last layer)",
        )
        dev = "cuda" if "cuda" in latency else "cpu"
        k0s = str(cfg.train_K)
        lat = latency[dev][k0s]
        ratio = lat["egat_fh"] / lat["engnn_fh"]
        ao = statistics.fmean(
            evaluation[s.key][p]["seconds_per_instance"]
            for s in groups["table4"]
            for p in ("ao_sca_reweighted", "ao_sca_literal")
        )
        others = {
            p: 1e3 * statistics.fmean(evaluation[s.key][p]["seconds_per_instance"] for s in groups["table4"])
            for p in ("pc_wmmse", "fc_zf")
        }
        slowest = 1e3 * ao > max(max(latency[dev][str(s.K)].values()) for s in groups["table4"]) and all(
            1e3 * ao > v for v in others.values()
        )
        add(
            "fig10_latency",
            "Fig. 10: EGAT inference ~1.5x ENGNN's; AO-SCA slowest",
            {"egat/engnn": 1.5, "slowest": "AO-SCA"},
            {
                "egat/engnn": _r(ratio, 2),
                "device": dev,
                "ao_sca_ms_per_instance": _r(1e3 * ao, 1),
                **{f"{p}_ms_per_instance": _r(v, 2) for p, v in others.items()},
            },
            TOL_LATENCY[0] <= ratio <= TOL_LATENCY[1] and slowest,
            f"ratio in [{TOL_LATENCY[0]}, {TOL_LATENCY[1]}] at K = {cfg.train_K}; AO-SCA above every other policy",
            f"models: median per sample over a batch of {cfg.latency_batch}; AO-SCA: median per instance "
            "(one instance at a time, CVXPY + Clarabel); timings on a shared machine",
        )
    hist = [h for h in runs["egat_fh"].record["history"] if "val_objective" in h]
    if len(hist) >= 2:
        last = hist[-1]["val_objective"]
        tail = [h["val_objective"] for h in hist if h["step"] >= hist[-1]["step"] * 250 / 300]
        change = max(abs(v - last) for v in tail) / max(abs(last), 1e-12)
        add(
            "fig4bc_training_stable",
            "Fig. 4b-c: EGAT training stable after ~250 of 300 epochs",
            "stable over the last 1/6",
            {"max relative change of val WSR over the last 1/6": _r(change), "points": len(tail)},
            change <= TOL_STABLE if len(tail) >= 2 else None,
            f"<= {TOL_STABLE} (repaired validation WSR); n/a with < 2 validations in the window",
            f"{cfg.steps} steps (the paper: 30,000)",
        )
    return out


# --------------------------------------------------------------------------------------- plots
def _label(p: str) -> str:
    return LABELS.get(p, p)


def _style(p: str) -> str:
    return "--s" if p in BASELINES else "-o"


def _plot_lines(evaluation, group, axis, field, ylabel, title, path: Path, policies) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    for p in policies:
        pts = sorted(_series(evaluation, group, axis, p, field).items())
        if pts:
            ax.plot(
                [a for a, _ in pts],
                [b for _, b in pts],
                _style(p),
                ms=3,
                color=COLORS.get(p),
                label=_label(p),
            )
    ax.set_xlabel({"C_mbps": "fronthaul capacity C [Mbit/s]", "L": "APs L", "K": "UEs K"}[axis])
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    save_figure(fig, path)


def _plot_fig4(cfg, runs, groups, evaluation, path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    for s in groups["table2"]:
        for variant, field, ls in (
            ("ao_sca_literal", "f_mean", "-"),
            ("ao_sca_reweighted", "wsr_iter_mean", ":"),
        ):
            y = evaluation[s.key][variant][field]
            axes[0].plot(range(len(y)), y, ls, label=f"{_label(variant)}, C = {s.C_mbps:g}")
    axes[0].set_xlabel("iteration")
    axes[0].set_ylabel("f (10) / WSR [bit/s/Hz]")
    axes[0].set_title("(a) AO-SCA convergence")
    axes[0].legend(fontsize=6)
    for name, r in runs.items():
        h = [
            {
                "step": 0.0,
                "val_objective": r.record["initial_val_objective"],
                "val/wsr_unrepaired": r.record["initial_val_logs"].get("wsr_unrepaired", float("nan")),
            }
        ]
        h += [x for x in r.record["history"] if "val_objective" in x]
        axes[1].plot(
            [x["step"] for x in h],
            [x["val_objective"] for x in h],
            "-o",
            ms=2,
            color=COLORS.get(name),
            label=f"{_label(name)} repaired",
        )
        if name == "egat_fh":
            axes[1].plot(
                [x["step"] for x in h],
                [x.get("val/wsr_unrepaired", float("nan")) for x in h],
                "--",
                color=COLORS.get(name),
                label="EGAT unrepaired",
            )
        c = r.record["train_curve"]
        axes[2].plot(
            [x["step"] for x in c],
            [x["train_loss"] for x in c],
            "-o",
            ms=2,
            lw=0.8,
            color=COLORS.get(name),
            label=_label(name),
        )
    axes[1].set_xlabel("training step")
    axes[1].set_ylabel("validation WSR [bit/s/Hz]")
    axes[1].set_title("(b) WSR during training")
    axes[1].legend(fontsize=6)
    axes[2].set_xlabel("training step")
    axes[2].set_ylabel("loss (33)")
    axes[2].set_title("(c) training loss")
    axes[2].legend(fontsize=6)
    for ax in axes:
        ax.grid(alpha=0.3)
    save_figure(fig, path)


def _plot_cdf(groups, evaluation, path: Path) -> None:
    plt = pyplot()
    sets = groups["fig5"]
    fig, axes = plt.subplots(1, len(sets), figsize=(5.4 * len(sets), 3.8), squeeze=False)
    for ax, s in zip(axes[0], sets, strict=True):
        for p, v in evaluation[s.key].items():
            x = sorted(v["wsr_samples"])
            ax.step(
                x,
                [(i + 1) / len(x) for i in range(len(x))],
                where="post",
                color=COLORS.get(p),
                label=f"{_label(p)} (n={len(x)})",
            )
        ax.set_xlabel("WSR [bit/s/Hz]")
        ax.set_ylabel("CDF")
        ax.set_title(f"Fig. 5: L = {s.L} APs, K = {s.K}, C = {s.C_mbps:g} Mbit/s")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="lower right")
    save_figure(fig, path)


def _plot_latency(latency, evaluation, groups, path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    for dev, per_k in latency.items():
        names = list(dict.fromkeys(n for v in per_k.values() for n in v))
        for n in names:
            pts = sorted((int(k), v[n]) for k, v in per_k.items() if n in v)
            ax.plot(
                [a for a, _ in pts],
                [b for _, b in pts],
                "-o" if dev == "cpu" else "-^",
                ms=3,
                color=COLORS.get(n),
                label=f"{_label(n)} ({dev})",
            )
    for p in BASELINES:
        pts = sorted((s.K, 1e3 * evaluation[s.key][p]["seconds_per_instance"]) for s in groups["table4"])
        ax.plot([a for a, _ in pts], [b for _, b in pts], "--s", ms=3, color=COLORS.get(p), label=_label(p))
    ax.set_yscale("log")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("UEs K")
    ax.set_ylabel("inference time per sample [ms]")
    ax.set_title("Fig. 10")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5))
    save_figure(fig, path)


# ------------------------------------------------------------------------------------- outputs
FIELDS = (
    "feasible_unrepaired",
    "wsr",
    "wsr_unrepaired",
    "repair_loss",
    "aps_per_ue",
    "sampled_wsr",
    "sampled_feasible_unrepaired",
    "n",
)


def _table_rows(evaluation, group, axis):
    for s in group:
        for p, v in evaluation[s.key].items():
            yield [getattr(s, axis), p, *(v.get(f) for f in FIELDS)]


def write_outputs(
    cfg: EgatConfig, out: Path, runs, groups, evaluation, latency, flops, *, wall_time_s: float
) -> dict[str, Any]:
    out = Path(out)
    figs = out / "figures"
    figs.mkdir(parents=True, exist_ok=True)
    policies = _policies(evaluation)
    for name, axis in (("table2", "C_mbps"), ("table3", "L"), ("table4", "K")):
        write_csv(out / f"{name}.csv", (axis, "policy", *FIELDS), _table_rows(evaluation, groups[name], axis))
    write_csv(
        out / "fig5_cdf.csv",
        ("L", "K", "C_mbps", "policy", "sample", "wsr"),
        (
            [s.L, s.K, s.C_mbps, p, i, w]
            for s in groups["fig5"]
            for p, v in evaluation[s.key].items()
            for i, w in enumerate(v["wsr_samples"])
        ),
    )
    write_csv(
        out / "fig4_ao_sca.csv",
        ("C_mbps", "variant", "iteration", "value_bit_s_hz"),
        (
            [s.C_mbps, v, t, y]
            for s in groups["table2"]
            for v, f in (("ao_sca_literal", "f_mean"), ("ao_sca_reweighted", "wsr_iter_mean"))
            for t, y in enumerate(evaluation[s.key][v][f])
        ),
    )
    hist_cols = (
        "step",
        "val_objective",
        "val/wsr_unrepaired",
        "val/feasible_unrepaired",
        "val/lagrangian",
        "val/mean_aps_per_ue",
    )
    write_csv(
        out / "fig4_training.csv",
        ("model", *hist_cols),
        ([n, *(h.get(c) for c in hist_cols)] for n, r in runs.items() for h in r.record["history"]),
    )
    curve_cols = (
        "step",
        "train_loss",
        "train_objective",
        "train_lagrangian",
        "train_feasible",
        "train_mu_mean",
    )
    write_csv(
        out / "fig4_train_loss.csv",
        ("model", *curve_cols),
        ([n, *(h.get(c) for c in curve_cols)] for n, r in runs.items() for h in r.record["train_curve"]),
    )
    write_csv(
        out / "fig10_latency.csv",
        ("device", "K", "policy", "ms_per_sample"),
        [
            *(
                [dev, k, n, v]
                for dev, per_k in latency.items()
                for k, row in per_k.items()
                for n, v in row.items()
            ),
            *(
                ["cpu", s.K, p, 1e3 * evaluation[s.key][p]["seconds_per_instance"]]
                for s in groups["table4"]
                for p in BASELINES
            ),
        ],
    )
    t5_cols = list(dict.fromkeys(k for r in flops for k in r))
    write_csv(out / "table5_flops.csv", t5_cols, ([r.get(c) for c in t5_cols] for r in flops))

    _plot_fig4(cfg, runs, groups, evaluation, figs / "fig4.png")
    _plot_cdf(groups, evaluation, figs / "fig5.png")
    _plot_lines(
        evaluation,
        groups["table2"],
        "C_mbps",
        "wsr",
        "WSR with repair [bit/s/Hz]",
        "Fig. 6",
        figs / "fig6.png",
        policies,
    )
    _plot_lines(
        evaluation,
        groups["table3"],
        "L",
        "wsr",
        "WSR with repair [bit/s/Hz]",
        f"Fig. 7 (trained at L = {cfg.train_L})",
        figs / "fig7.png",
        policies,
    )
    _plot_lines(
        evaluation,
        groups["table4"],
        "K",
        "wsr",
        "WSR with repair [bit/s/Hz]",
        f"Fig. 8 (trained at K = {cfg.train_K})",
        figs / "fig8.png",
        policies,
    )
    _plot_lines(
        evaluation,
        groups["table4"],
        "K",
        "aps_per_ue",
        "serving APs per UE",
        "Fig. 9",
        figs / "fig9.png",
        policies,
    )
    _plot_latency(latency, evaluation, groups, figs / "fig10.png")

    cl = claims(cfg, runs, groups, evaluation, latency, flops)
    dev = "cuda" if "cuda" in latency else "cpu"
    k0 = str(cfg.train_K)
    base = f"L{cfg.train_L}-K{cfg.train_K}-C{cfg.capacity_mbps:g}"
    models = {}
    for name, r in runs.items():
        rec = r.record
        models[name] = {
            "params": rec["parameters"],
            "latency_ms": latency[dev][k0].get(name),
            "metrics": {
                **{k: v for k, v in evaluation[base][name].items() if k != "wsr_samples"},
                "train_seconds": rec["seconds"],
                "steps": rec["steps"],
                "steps_per_second": rec["steps_per_second"],
                "val_wsr_untrained": rec["initial_val_objective"],
                "val_wsr_final": rec["history"][-1].get("val_objective") if rec["history"] else None,
                "val_feasible_final": rec["history"][-1].get("val/feasible_unrepaired")
                if rec["history"]
                else None,
                "multipliers": rec["recipe_state"],
                "fixed_size": name in FIXED_SIZE,
            },
        }
    metrics = {
        "settings": {
            g: [{"key": s.key, "L": s.L, "K": s.K, "C_mbps": s.C_mbps} for s in ss]
            for g, ss in groups.items()
        },
        "evaluation": {
            k: {p: {f: v for f, v in res.items() if f not in ("wsr_samples",)} for p, res in row.items()}
            for k, row in evaluation.items()
        },
        "latency_ms_per_sample": latency,
        "table5_flops": flops,
    }
    results = {
        "paper": PAPER,
        "mode": cfg.mode,
        "wall_time_s": wall_time_s,
        "device": dev,
        "config": cfg.model_dump(mode="json") | {"steps": cfg.steps, "val_every": cfg.val_every},
        "models": models,
        "metrics": metrics,
        "claims": cl,
    }
    write_json(out / "results.json", results)
    atomic_write_text(out / "report.md", _report(cfg, results, groups))
    return results


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v).replace("|", "/")


def _feas_table(results, groups, name: str, axis: str, paper: dict) -> list[str]:
    ev = results["metrics"]["evaluation"]
    head = [f"{getattr(s, axis):g}" for s in groups[name]]
    lines = [f"| policy | {' | '.join(head)} |", "| --- |" + " ---: |" * len(head)]
    for p in dict.fromkeys(p for s in groups[name] for p in ev[s.key]):
        cells = []
        for s in groups[name]:
            v = ev[s.key].get(p)
            if v is None:
                cells.append("n/a")
                continue
            ref = paper.get(p, {}).get(getattr(s, axis))
            cell = f"{v['feasible_unrepaired']:.3f}"
            cell += f" ({ref:.3f})" if ref is not None else ""
            cell += f" / {v['wsr']:.2f}"
            cells.append(cell)
        lines.append(f"| {_label(p)} | {' | '.join(cells)} |")
    return lines


def _report(cfg: EgatConfig, results: dict[str, Any], groups) -> str:
    C0 = cfg.capacity_mbps
    lines = [
        f"# EGAT fronthaul reproduction ({results['mode']} mode)",
        "",
        f"Paper: {PAPER}, Sect. V (Figs. 4-10, Tables II-V). Wall time {results['wall_time_s'] / 60:.1f} min "
        f"(device: {results['device']}, torch threads: {cfg.threads or 'default'}). WSR in bit/s/Hz (x 10 for "
        "Mbit/s at 10 MHz); feasibility is *without* repair (test-time association pi > 0.5), WSR *with* the "
        "Sect. V-A repair.",
        "",
        "## Claims",
        "",
        "| claim | paper | ours | holds | tolerance | note |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for c in results["claims"]:
        holds = "n/a" if c["holds"] is None else ("yes" if c["holds"] else "no")
        lines.append(
            f"| {c['id']}: {c['description']} | {_fmt(c['paper_value'])} | {_fmt(c['ours'])} | {holds} | "
            f"{c['tolerance']} | {c['note']} |"
        )
    lines += [
        "",
        f"## Models (trained at L = {cfg.train_L}, K = {cfg.train_K}; metrics at C = {C0:g} Mbit/s)",
        "",
    ]
    lines += [
        "| model | parameters | ms/sample | steps | train s | steps/s | feasible w/o repair | WSR repaired | WSR raw | repair loss | APs/UE | sampled WSR | final mean mu |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for m, e in results["models"].items():
        mt = e["metrics"]
        mu = mt["multipliers"].get("mu_mean")
        lines.append(
            f"| {_label(m)} | {e['params']} | {_fmt(e['latency_ms'])} | {mt['steps']} | {mt['train_seconds']:.0f} | "
            f"{mt['steps_per_second']:.2f} | {mt['feasible_unrepaired']:.3f} | {mt['wsr']:.2f} | "
            f"{mt['wsr_unrepaired']:.2f} | {mt['repair_loss']:.3f} | {mt['aps_per_ue']:.2f} | {mt['sampled_wsr']:.2f} | "
            f"{_fmt(mu)} |"
        )
    lines += [
        "",
        f"## Table II (feasibility without repair, paper in parentheses / WSR with repair), K = {cfg.train_K}, L = {cfg.train_L}",
        "",
        *_feas_table(results, groups, "table2", "C_mbps", PAPER_TABLE2),
        "",
        f"## Table III (L APs, K = {cfg.train_K}, C = {C0:g} Mbit/s)",
        "",
        *_feas_table(results, groups, "table3", "L", PAPER_TABLE3),
        "",
        f"## Table IV (K UEs, L = {cfg.train_L}, C = {C0:g} Mbit/s)",
        "",
        *_feas_table(results, groups, "table4", "K", PAPER_TABLE4),
        "",
        "Baselines' feasibility is that of their decision before their own feasibility step (AO-SCA: thresholded "
        "beams before the repair; PC-WMMSE: WMMSE before dropping; FC-ZF: feasible by its back-off). "
        f"The DNN is fixed-size: n/a wherever L != {cfg.train_L} or K != {cfg.train_K}.",
        "",
        "## Table V (FLOPs per sample, one forward pass)",
        "",
        "| K | L | ENGNN | EGAT | ratio | paper ENGNN / EGAT | EGAT, 1 head | EGAT, last layer with node updates | ENGNN, same |",
        "| ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    for r in results["metrics"]["table5_flops"]:
        if "egat_fh" not in r or "engnn_fh" not in r:
            continue
        p = PAPER_TABLE5.get((r["K"], r["L"]))
        lines.append(
            f"| {r['K']} | {r['L']} | {r['engnn_fh']:.3g} | {r['egat_fh']:.3g} | {r['egat_fh'] / r['engnn_fh']:.2f} | "
            f"{'{:.2g} / {:.2g}'.format(*p) if p else '-'} | {r['egat_fh_1head']:.3g} ({r['egat_fh_1head'] / r['engnn_fh']:.2f}) | "
            f"{r['egat_fh_last_nodes']:.3g} | {r.get('engnn_fh_last_nodes', float('nan')):.3g} "
            f"({r['egat_fh_last_nodes'] / r.get('engnn_fh_last_nodes', float('nan')):.2f}) |"
        )
    lines += [
        "",
        "Why the ratio differs from the paper's 1.08-1.14: not the last layer (updating the nodes in the last "
        "layer of both models, dead computation since the heads (27) read edges only, leaves the ratio within "
        "0.01), but the number of attention heads: every head repeats the W maps and widens the MLP input "
        "(2 H d), so one head gives ~0.86 and two heads (our default, 'multi-head') ~1.37 against our ENGNN "
        "approximation (masked means, MLP input 5d). The paper's ratio lies between; it gives neither its head "
        "count nor its widths (its ENGNN count is ~3.5x ours at the same size). FlopCounterMode counts matmuls "
        "only (softmax, LeakyReLU and LayerNorm are element-wise), which leaves out part of EGAT's extra cost.",
        "",
        "Figures: `figures/fig4.png` (a: AO-SCA f (10) per iteration, literal variant solid, reweighted actual WSR "
        "dotted; b: validation WSR; c: training loss), `fig5.png` (CDFs), `fig6.png`-`fig9.png`, `fig10.png`. "
        "Tables: `table2.csv`, `table3.csv`, `table4.csv` (also Fig. 9's APs per UE), `table5_flops.csv`, "
        "`fig4_ao_sca.csv`, `fig4_training.csv`, `fig4_train_loss.csv`, `fig5_cdf.csv`, `fig10_latency.csv`.",
        "",
        "## Assumptions and deviations",
        "",
        "- Scenario: `egat` preset (Table I: 500 m square with wrap-around, COST231-Hata three-slope, 8 dB "
        "shadowing with 0.5 km decorrelation, -85 dBm noise, 10 MHz, 1 W per AP, N = 2 antennas, perfect CSI, "
        f"one Rayleigh realization per sample, w_k = 1). C = {C0:g} Mbit/s where the paper does not vary it (Table I "
        "omits it; Tables II-IV coincide there).",
        f"- Test sets: {cfg.test_samples} samples per (L, K), the same channels for every C; AO-SCA (both "
        f"variants) on the first {cfg.ao_sca_samples} of them, max {cfg.ao_sca_max_iter} iterations; PC-WMMSE with "
        f"<= {cfg.pc_wmmse_max_iterations} WMMSE iterations; FC-ZF with its back-off.",
        f"- Training: one capacity-conditioned model per architecture (C ~ U[{cfg.train_capacity_mbps[0]:g}, "
        f"{cfg.train_capacity_mbps[1]:g}] Mbit/s per training sample, C an AP input feature), trained once at "
        f"L = {cfg.train_L}, K = {cfg.train_K} and tested on every setting; {cfg.train_samples} training samples, "
        f"batch {cfg.batch_size}, Adam {cfg.lr:g} with x0.3 at 60 %% and 85 %% of the steps (ours), "
        f"{cfg.steps} steps (the paper: 300 epochs x 100 x 256 = 30,000; the GPU default), S = {cfg.pg_samples} "
        "Bernoulli draws with a leave-one-out baseline, the model at the end of training is evaluated.",
        f"- Multipliers: mu = '{cfg.mu}', eta_mu = {cfg.dual_lr:g} (docs/learning.md 'Reproducing the EGAT paper': "
        "measured against the paper's shared per-AP mu at equal step budgets; the shared mu stays ~0 because "
        "the batch-mean violation is negative while most APs are below capacity; the per-instance mu raises the "
        "feasibility without repair 2-20x, at a repaired-WSR cost after 900 steps that depends on the seed: "
        "0 to -4.2 bit/s/Hz).",
        "- Models: the registry's EGAT / ENGNN / BGNN / DNN (docs/learning.md 'EGAT fronthaul models' lists every "
        f"deviation: ENGNN and BGNN are approximations of refs. [33], [32]); sizes {cfg.model_overrides or 'registry defaults'}.",
        "- Repair loss: 1 - mean(repaired WSR) / mean(unrepaired WSR) per setting; it can be negative (scaling "
        "a beam down also lowers the interference it causes). Feasible: largest relative excess over (3b)-(3c) "
        "<= 1e-6. The sampled variant: one Bernoulli(pi) draw per link (seeded per setting), then repaired.",
        "- AO-SCA details (docs/problems.md): smoothed indicator with delta = 0.01 on ||v|| / sqrt(P), nats "
        "inside, MRT start with gamma = 0, x = 1 iff ||v_lk|| >= 0.1 sqrt(P_l), stop at |df| <= 1e-3 |f|, "
        "scored with actual SINRs and repaired; 'literal' = Algorithm 1 as printed (keeps every link on), "
        "'reweighted' = rates frozen at the previous iterate (reweighted-l1, switches links off).",
        "- Resuming: finished runs (`runs/<model>/result.json`) and baseline results (`baselines/*.json`) are "
        "reused when their configuration matches; an unfinished run restarts from step 0.",
    ]
    if results["mode"] != "full":
        lines.append(
            "- **Reduced mode**: sizes, steps, test sets and AO-SCA iterations are far below the paper's; a claim "
            "that fails here says nothing about the full recipe."
        )
    return "\n".join(lines) + "\n"
