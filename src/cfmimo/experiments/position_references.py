"""How close can an allocation computed from positions alone get to the max-min optimum?

Two references, both blind to shadowing and to the small-scale fading, evaluated on the true
channels of stored samples (regenerated from their scenario, seed and index):

* ``constant``: full UL power for every UE and an equal split of the DL budget;
* ``shadowing_free``: the exact max-min powers (closed form) of the same positions with the
  shadowing switched off, i.e. what a perfect position-to-power regressor that ignores shadowing
  would output (same small-scale realizations).

Their gap to the optimum's worst-UE SE is the context for the tree-transformer paper's "within
0.12 b/s/Hz of the optimal SE" claim: any model that sees only positions faces the same shadowing.

On a site with a fixed shadowing field (``Scenario.shadowing_field``) positions DO determine the
gains, up to the position noise the models see (tree-transformer eq. (10)). A third reference,
``noisy_site`` (with ``sigma_ue_m`` > 0 on such a site), is the exact max-min optimum computed from
the site's gains read at the noisy UE positions the model gets (same noise streams as
``experiments.common.predict_group``; positions clamped into the area): what a perfect
positions-only model of that site could reach.

Every reference reports the worst-UE SE (the max-min objective; keys ``{name}_{link}``) and the mean
per-UE SE (``{name}_mean_{link}``) averaged over the samples.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from cfmimo.config import Scenario, atomic_write_text
from cfmimo.data.spec import DatasetSpec
from cfmimo.policies.classical.power import MaxMinClosedForm
from cfmimo.problems.base import Allocation
from cfmimo.problems.maxmin_power import MaxMinPower, power_instance
from cfmimo.sim.network import networks_from_positions, sample_channel_state


def position_only_references(
    spec: DatasetSpec,
    groups: Mapping[tuple[int, int], Mapping[str, torch.Tensor]],
    sizes: Sequence[tuple[int, int]],
    samples: int,
    *,
    sigma_ue_m: float = 0.0,
    noise_seed: int = 0,
) -> list[dict[str, float]]:
    """Per size (K, L): the mean worst-UE and mean per-UE UL/DL SE of the optimum and of the
    references (module docstring) over the first ``samples`` stored samples. ``sigma_ue_m``,
    ``noise_seed``: the models' evaluation noise, for the ``noisy_site`` reference (site scenarios).

    Shapes: groups[(K, L)] with "ue_positions" [n, K, 2], "ap_positions" [n, L, 2],
    "sample_index" [n] -> one row per size with keys K, L, opt_ul, opt_dl, constant_ul,
    constant_dl, shadowing_free_ul, shadowing_free_dl (worst UE), the same with ``_mean_`` before
    the link (mean per-UE SE), and noisy_site_* on a site with a shadowing field and noise.
    """
    rows = []
    for K, L in sizes:
        g = groups[(K, L)]
        n = min(samples, int(g["sample_index"].shape[0]))
        rows.append(
            {
                "K": K,
                "L": L,
                **size_references(
                    spec.group_scenario(K, L),
                    spec.group_seed(K, L),
                    g["ue_positions"][:n],
                    g["ap_positions"][:n],
                    [int(i) for i in g["sample_index"][:n]],
                    combiner=spec.combiner,
                    sigma_ue_m=sigma_ue_m,
                    noise_seed=noise_seed,
                ),
            }
        )
    return rows


def size_references(
    scenario: Scenario,
    seed: int,
    ue: torch.Tensor,
    ap: torch.Tensor,
    indices: Sequence[int],
    *,
    combiner: str = "mmse",
    sigma_ue_m: float = 0.0,
    noise_seed: int = 0,
) -> dict[str, float]:
    """The references of one size on given setups (module docstring): the setups of ``scenario``
    with these positions and sample ``indices`` (their shadowing and channel streams come from
    ``(seed, indices)``, so sampled setups are reproduced exactly), served as the scenario's
    clustering says. Returns the means over the setups of the worst-UE SE (``{name}_{link}``) and
    the mean per-UE SE (``{name}_mean_{link}``) for name in opt, constant, shadowing_free and, on a
    site with ``sigma_ue_m`` > 0, noisy_site.

    Shapes: ue [n, K, 2], ap [n, L, 2], indices [n]."""
    from cfmimo.policies.neural import noisy_positions

    problem, solver = MaxMinPower(), MaxMinClosedForm()
    ue, ap, index = ue.float(), ap.float(), [int(i) for i in indices]
    L, K = ap.shape[1], ue.shape[1]
    row: dict[str, float] = {}
    with torch.no_grad():
        true = networks_from_positions(scenario, ap, ue, seed=seed, indices=index)
        inst = power_instance(true, sample_channel_state(true), combiner=combiner)
        blind = networks_from_positions(
            scenario.with_(shadowing_std_db=0.0), ap, ue, seed=seed, indices=index
        )
        free = solver(power_instance(blind, sample_channel_state(blind), combiner=combiner))
        equal_dl = torch.full_like(inst.ul_budget, scenario.dl_power_per_ap_mw * L / K)
        allocations = [
            ("opt", solver(inst)),
            ("constant", Allocation(p_ul=inst.ul_budget.clone(), p_dl=equal_dl)),
            ("shadowing_free", Allocation(p_ul=free.p_ul, p_dl=free.p_dl)),
        ]
        if scenario.shadowing_field and sigma_ue_m > 0:
            seen = noisy_positions(ue, sigma_ue_m, seed=noise_seed, name="eval_noise/ue", indices=index)
            seen = seen.clamp(0.0, scenario.area_side_m)  # the site's field covers the area
            site = networks_from_positions(scenario, ap, seen, seed=seed, indices=index)
            guess = solver(power_instance(site, sample_channel_state(site), combiner=combiner))
            allocations.append(("noisy_site", Allocation(p_ul=guess.p_ul, p_dl=guess.p_dl)))
        for name, alloc in allocations:
            m = problem.metrics(inst, alloc)
            for link in ("ul", "dl"):
                row[f"{name}_{link}"] = m[f"min_se_{link}"].mean().item()
                row[f"{name}_mean_{link}"] = m[f"se_{link}"].mean().item()
    return row


def cached_reference_rows(
    path: Path, key: Mapping[str, Any], compute: Callable[[], list[dict[str, float]]]
) -> list[dict[str, float]]:
    """The reference rows stored at ``path`` (JSON {"key", "rows"}) when they were computed for
    ``key``, else ``compute()``, written there atomically. The references are the slow part of an
    evaluation (the exact optimum of every reference setup with all its realizations, ~45 min for
    the tree-transformer's 195 test sizes on one core) and depend only on the key, so a rerun that
    adds a model reuses them; any change of the key (test set, samples, noise) recomputes."""
    key = json.loads(json.dumps(key))  # plain JSON types, as read back
    if path.is_file():
        try:
            stored = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            stored = None
        if isinstance(stored, dict) and stored.get("key") == key and isinstance(stored.get("rows"), list):
            return stored["rows"]
    rows = compute()
    atomic_write_text(path, json.dumps({"key": key, "rows": rows}, indent=1))
    return rows


def reference_gaps(rows: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Average over sizes of the SE gap of each reference to the optimum (b/s/Hz): worst UE
    (``{name}_gap_{link}``) and mean per-UE SE (``{name}_mean_gap_{link}``, negative when the
    reference trades fairness for a higher mean)."""
    out = {}
    for name in ("constant", "shadowing_free", "noisy_site"):
        if not rows or f"{name}_ul" not in rows[0]:
            continue
        for link in ("ul", "dl"):
            out[f"{name}_gap_{link}"] = sum(r[f"opt_{link}"] - r[f"{name}_{link}"] for r in rows) / len(rows)
            out[f"{name}_mean_gap_{link}"] = sum(
                r[f"opt_mean_{link}"] - r[f"{name}_mean_{link}"] for r in rows
            ) / len(rows)
    return out


#: the deployments of the study, as the reports name them
DEPLOYMENT_TEXT = {
    "book": "the book's drops: APs, UEs and shadowing redrawn for every setup (settings a, d)",
    "fixed": "a fixed AP layout (deployment_seed), shadowing drawn per drop (setting b)",
    "site": "a site: fixed AP layout and a fixed shadowing field; test UEs are new positions on it (setting c)",
}

#: the references' labels in the study tables
REFERENCE_LABELS = {
    "constant": "positions-only: constant powers",
    "shadowing_free": "positions-only: shadowing-free optimum",
    "noisy_site": "positions-only: exact optimum of the site at the noisy positions",
}


def study_table_lines(study: Mapping[str, Any]) -> list[str]:
    """Markdown rows of a study table (header included): each model's setting and gaps
    (``{min,mean}_se_gap_{ul,dl}``), then the references of ``reference_gaps``."""
    lines = [
        "| allocation | setting | worst-UE gap UL | worst-UE gap DL | mean gap UL | mean gap DL |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for name, g in study["models"].items():
        lines.append(
            f"| {name} | {g['setting']} | {g['min_se_gap_ul']:.3f} | {g['min_se_gap_dl']:.3f} | "
            f"{g['mean_se_gap_ul']:.3f} | {g['mean_se_gap_dl']:.3f} |"
        )
    refs = study["references"]
    for name, label in REFERENCE_LABELS.items():
        if f"{name}_gap_ul" in refs:
            lines.append(
                f"| {label} | reference | {refs[f'{name}_gap_ul']:.3f} | {refs[f'{name}_gap_dl']:.3f} | "
                f"{refs[f'{name}_mean_gap_ul']:.3f} | {refs[f'{name}_mean_gap_dl']:.3f} |"
            )
    return lines
