"""The ELU-CosFormer reproduction under both pilot models, side by side (issue 15, item 1).

Reads the ``results.json`` of ``elu_cosformer.run`` calls (e.g. one with ``pilot_model: book`` and
one with ``pilot_model: per_ap_orthogonal``) and evaluates every claim of the paper's Figs. 6-7
(Sect. VI-A/B of ../shared/papers/elu-cosformer-clustering-power.md) on each, from the curves
(average per-UE SE per K), so that every run is judged by the same rule:

- ``opt_uc_above_cf``: Optimal UC-CF above Optimal CF for every K > tau_p ("beyond K ≈ 10");
- ``pred_within_10pct``: Predicted UC-CF within 10 % of Optimal UC-CF for every K >= 10 ("closely
  tracks"), |relative difference|;
- ``pred_above_dcc``: Predicted UC-CF above DCC for every K >= 10;
- ``dcc_lowest``: DCC the lowest of the four schemes at every K ("consistently yields the lowest SE");
- ``fewer_connections``: Predicted UC-CF fewer AP-UE connections than Optimal CF at every K (Fig. 7);

each in UL and DL. Two references that are not claims of the paper are added because they explain
the claims: the same "above CF" test for the strongest-per-AP clusters (what a mask that ranks UEs
by their true gains achieves; no model involved) and "above DCC" on the mean worst-UE SE (the
max-min objective; the model's near-uniform powers raise the average, not the worst UE).

``python -m cfmimo.experiments.elu_cosformer.pilots LABEL=results.json ... --out pilots.md
[--json pilots.json]`` writes the Markdown comparison (claims table marked holds/fails per run, the
margins behind each verdict, Fig. 6 numbers per run).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

#: the per-AP pilot cap of the paper's scenario (Table III, tau_p = 10)
TAU_P = 10
LINKS = ("ul", "dl")
SCHEMES = ("optimal_cf", "dcc", "optimal_uc_cf", "predicted_uc_cf", "strongest_uc_cf")
LABELS = {
    "optimal_cf": "Optimal CF",
    "dcc": "DCC",
    "optimal_uc_cf": "Optimal UC-CF",
    "predicted_uc_cf": "Predicted UC-CF",
    "strongest_uc_cf": "Strongest-per-AP UC-CF",
}


def _series(curves: dict[str, Any], scheme: str, metric: str) -> dict[int, float]:
    c = curves[scheme]
    return dict(zip((int(k) for k in c["K"]), c[metric], strict=True))


def _claim(
    cid: str, text: str, margins: dict[int, float], holds_if: str, paper: bool = True
) -> dict[str, Any]:
    """A claim from per-K margins: holds iff every margin is > 0 ("positive") or <= 0.10 ("within")."""
    if not margins:
        return {"id": cid, "claim": text, "paper": paper, "holds": None, "margins": {}}
    values = list(margins.values())
    ok = all(v > 0 for v in values) if holds_if == "positive" else all(abs(v) <= 0.10 for v in values)
    return {"id": cid, "claim": text, "paper": paper, "holds": ok, "margins": margins}


def pilot_claims(results: dict[str, Any], tau_p: int = TAU_P) -> list[dict[str, Any]]:
    """Every Fig. 6-7 claim (module docstring) of one run, UL and DL, with the per-K margins:
    differences in b/s/Hz ("above"), relative differences ("within"), connection differences."""
    curves = results["metrics"]["curves"]
    out = []
    for link in LINKS:
        se = {s: _series(curves, s, f"mean_se_{link}") for s in SCHEMES if s in curves}
        worst = {s: _series(curves, s, f"min_se_{link}") for s in SCHEMES if s in curves}
        Ks = sorted(se["predicted_uc_cf"])
        L = link.upper()
        out.append(
            _claim(
                f"opt_uc_above_cf_{link}",
                f"Optimal UC-CF above Optimal CF for K > tau_p ({L}; margin b/s/Hz)",
                {K: se["optimal_uc_cf"][K] - se["optimal_cf"][K] for K in Ks if K > tau_p},
                "positive",
            )
        )
        out.append(
            _claim(
                f"pred_within_10pct_{link}",
                f"Predicted UC-CF within 10 % of Optimal UC-CF for K >= 10 ({L}; relative difference)",
                {
                    K: (se["predicted_uc_cf"][K] - se["optimal_uc_cf"][K]) / abs(se["optimal_uc_cf"][K])
                    if se["optimal_uc_cf"][K]
                    else math.inf
                    for K in Ks
                    if K >= 10
                },
                "within",
            )
        )
        out.append(
            _claim(
                f"pred_above_dcc_{link}",
                f"Predicted UC-CF above DCC for K >= 10 ({L}; margin b/s/Hz)",
                {K: se["predicted_uc_cf"][K] - se["dcc"][K] for K in Ks if K >= 10},
                "positive",
            )
        )
        others = ("optimal_cf", "optimal_uc_cf", "predicted_uc_cf")
        out.append(
            _claim(
                f"dcc_lowest_{link}",
                f"DCC the lowest of the four schemes at every K ({L}; next-lowest minus DCC, b/s/Hz)",
                {K: min(se[s][K] for s in others) - se["dcc"][K] for K in Ks},
                "positive",
            )
        )
        if "strongest_uc_cf" in se:
            out.append(
                _claim(
                    f"ref_strongest_above_cf_{link}",
                    f"reference: strongest-per-AP UC-CF above Optimal CF for K > tau_p ({L}; margin b/s/Hz)",
                    {K: se["strongest_uc_cf"][K] - se["optimal_cf"][K] for K in Ks if K > tau_p},
                    "positive",
                    paper=False,
                )
            )
        out.append(
            _claim(
                f"ref_pred_worst_above_dcc_{link}",
                f"reference: Predicted UC-CF mean worst-UE SE above DCC's for K >= 10 ({L}; margin b/s/Hz)",
                {K: worst["predicted_uc_cf"][K] - worst["dcc"][K] for K in Ks if K >= 10},
                "positive",
                paper=False,
            )
        )
    conn = {s: _series(curves, s, "connections") for s in ("optimal_cf", "predicted_uc_cf")}
    out.append(
        _claim(
            "fewer_connections",
            "Predicted UC-CF fewer AP-UE connections than Optimal CF at every K (Fig. 7; CF minus UC-CF)",
            {K: conn["optimal_cf"][K] - conn["predicted_uc_cf"][K] for K in sorted(conn["optimal_cf"])},
            "positive",
        )
    )
    return out


def _verdict(holds: bool | None) -> str:
    return "n/a" if holds is None else ("holds" if holds else "**fails**")


def _margins(m: dict[int, float], relative: bool) -> str:
    if not m:
        return "-"
    fmt = (lambda v: f"{v:+.0%}") if relative else (lambda v: f"{v:+.3f}" if abs(v) < 50 else f"{v:+.0f}")
    lo, hi = min(m, key=m.get), max(m, key=m.get)
    return f"{fmt(m[lo])} (K={lo}) .. {fmt(m[hi])} (K={hi})"


def _book_share(results: dict[str, Any], scheme: str) -> str:
    c = results["metrics"]["curves"][scheme]
    shares = c.get("book_pilots")
    if results["config"].get("pilot_model", "book") == "book":
        return "n/a (the book's estimator throughout)"
    if not shares or not any(shares):
        return "none"
    return ", ".join(f"K={K}: {s:.0%}" for K, s in zip(c["K"], shares, strict=True) if s)


def comparison_markdown(runs: dict[str, dict[str, Any]], tau_p: int = TAU_P) -> tuple[str, dict[str, Any]]:
    """The Markdown comparison and its data ({label: claims}) of runs {label: results.json}."""
    claims = {label: pilot_claims(r, tau_p) for label, r in runs.items()}
    labels = list(runs)
    first = claims[labels[0]]
    lines = [
        "| claim | " + " | ".join(labels) + " |",
        "| --- | " + " | ".join("---" for _ in labels) + " |",
    ]
    for i, c in enumerate(first):
        rel = c["id"].startswith("pred_within")
        cells = [
            f"{_verdict(claims[lb][i]['holds'])}: {_margins(claims[lb][i]['margins'], rel)}" for lb in labels
        ]
        lines.append(f"| {c['claim']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Margins: the smallest and largest per-K margin (a claim holds iff every margin is > 0, or for "
        "'within 10 %' every |relative difference| <= 10 %).",
        "",
        "Setups scored with the book's estimator (references over the tau_p cap): "
        + "; ".join(
            f"{lb}: Optimal CF {_book_share(runs[lb], 'optimal_cf')}, DCC {_book_share(runs[lb], 'dcc')}"
            for lb in labels
        )
        + ".",
        "",
        "Average per-UE SE [b/s/Hz] UL / DL per K (Fig. 6), and Predicted UC-CF's mean worst-UE SE:",
        "",
    ]
    for lb in labels:
        cur = runs[lb]["metrics"]["curves"]
        shown = [s for s in SCHEMES if s in cur]
        lines += [
            f"**{lb}**",
            "",
            "| K | " + " | ".join(LABELS[s] for s in shown) + " | worst-UE Pred. UC-CF |",
            "| ---: | " + " | ".join("---:" for _ in shown) + " | ---: |",
        ]
        p = cur["predicted_uc_cf"]
        for i, K in enumerate(p["K"]):
            cells = [f"{cur[s]['mean_se_ul'][i]:.3f} / {cur[s]['mean_se_dl'][i]:.3f}" for s in shown]
            lines.append(
                f"| {K} | " + " | ".join(cells) + f" | {p['min_se_ul'][i]:.3f} / {p['min_se_dl'][i]:.3f} |"
            )
        lines.append("")
    data = {
        lb: [{**c, "margins": {str(k): v for k, v in c["margins"].items()}} for c in cl]
        for lb, cl in claims.items()
    }
    return "\n".join(lines), data


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="LABEL=path/to/results.json (one per run, in column order)")
    parser.add_argument("--out", type=Path, required=True, help="Markdown file to write")
    parser.add_argument("--json", type=Path, default=None, help="also write the claims as JSON")
    args = parser.parse_args(argv)
    runs = {}
    for item in args.runs:
        label, sep, path = item.partition("=")
        if not sep or not label or not path:
            raise SystemExit(f"runs: expected LABEL=path/to/results.json, got {item!r}")
        try:
            runs[label] = json.loads(Path(path).read_text())
        except (OSError, ValueError) as err:
            raise SystemExit(f"runs: cannot read {path}: {err}") from None
    text, data = comparison_markdown(runs)
    from cfmimo.config import atomic_write_text

    atomic_write_text(args.out, text + "\n")
    if args.json is not None:
        atomic_write_text(args.json, json.dumps(data, indent=1) + "\n")


if __name__ == "__main__":
    main()
