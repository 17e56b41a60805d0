"""How close can an allocation computed from positions alone get to the max-min optimum?

Two references, both blind to shadowing and to the small-scale fading, evaluated on the true
channels of stored samples (regenerated from their scenario, seed and index):

* ``constant``: full UL power for every UE and an equal split of the DL budget;
* ``shadowing_free``: the exact max-min powers (closed form) of the same positions with the
  shadowing switched off, i.e. what a perfect position-to-power regressor that ignores shadowing
  would output (same small-scale realizations).

Their gap to the optimum's worst-UE SE is the context for the tree-transformer paper's "within
0.12 b/s/Hz of the optimal SE" claim: any model that sees only positions faces the same shadowing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

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
) -> list[dict[str, float]]:
    """Per size (K, L): the mean worst-UE UL/DL SE of the optimum and of the two references
    (module docstring) over the first ``samples`` stored samples.

    Shapes: groups[(K, L)] with "ue_positions" [n, K, 2], "ap_positions" [n, L, 2],
    "sample_index" [n] -> one row per size with keys K, L, opt_ul, opt_dl, constant_ul,
    constant_dl, shadowing_free_ul, shadowing_free_dl.
    """
    problem, solver = MaxMinPower(), MaxMinClosedForm()
    rows = []
    with torch.no_grad():
        for K, L in sizes:
            g = groups[(K, L)]
            n = min(samples, int(g["sample_index"].shape[0]))
            ue, ap = g["ue_positions"][:n].float(), g["ap_positions"][:n].float()
            index = [int(i) for i in g["sample_index"][:n]]
            scenario, seed = spec.group_scenario(K, L), spec.group_seed(K, L)
            true = networks_from_positions(scenario, ap, ue, seed=seed, indices=index)
            inst = power_instance(true, sample_channel_state(true), combiner=spec.combiner)
            row = {"K": K, "L": L}
            blind = networks_from_positions(
                scenario.with_(shadowing_std_db=0.0), ap, ue, seed=seed, indices=index
            )
            free = solver(power_instance(blind, sample_channel_state(blind), combiner=spec.combiner))
            equal_dl = torch.full_like(inst.ul_budget, scenario.dl_power_per_ap_mw * L / K)
            for name, alloc in (
                ("opt", solver(inst)),
                ("constant", Allocation(p_ul=inst.ul_budget.clone(), p_dl=equal_dl)),
                ("shadowing_free", Allocation(p_ul=free.p_ul, p_dl=free.p_dl)),
            ):
                m = problem.metrics(inst, alloc)
                row[f"{name}_ul"] = m["min_se_ul"].mean().item()
                row[f"{name}_dl"] = m["min_se_dl"].mean().item()
            rows.append(row)
    return rows


def reference_gaps(rows: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Average over sizes of the worst-UE SE gap of each reference to the optimum (b/s/Hz)."""
    out = {}
    for name in ("constant", "shadowing_free"):
        for link in ("ul", "dl"):
            out[f"{name}_gap_{link}"] = sum(r[f"opt_{link}"] - r[f"{name}_{link}"] for r in rows) / len(rows)
    return out
