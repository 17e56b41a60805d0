"""The positions-only references: exact when there is no shadowing, never above the optimum."""

from __future__ import annotations

import torch

from cfmimo.config import preset
from cfmimo.data.spec import DatasetSpec
from cfmimo.experiments.position_references import (
    cached_reference_rows,
    position_only_references,
    reference_gaps,
)
from cfmimo.sim.network import sample_networks


def _groups(spec: DatasetSpec) -> dict:
    out = {}
    for K, L in spec.sizes:
        net = sample_networks(spec.group_scenario(K, L), spec.samples, seed=spec.group_seed(K, L))
        out[(K, L)] = {
            "ue_positions": net.ue_positions,
            "ap_positions": net.ap_positions,
            "sample_index": torch.arange(spec.samples),
        }
    return out


def test_references_bound_and_exactness() -> None:
    for std in (0.0, 6.0):
        spec = DatasetSpec(
            scenario=preset("tree-transformer", realizations=20, shadowing_std_db=std),
            sizes=[(3, 4), (6, 4)],
            samples=6,
            labels=False,
        )
        rows = position_only_references(spec, _groups(spec), spec.sizes, samples=6)
        gaps = reference_gaps(rows)
        for r in rows:  # the optimum is the max-min optimum: no allocation beats its worst UE
            for link in ("ul", "dl"):
                assert r[f"opt_{link}"] >= r[f"constant_{link}"] - 1e-6
                assert r[f"opt_{link}"] >= r[f"shadowing_free_{link}"] - 1e-6
        if std == 0.0:  # without shadowing, positions determine the optimum exactly
            assert abs(gaps["shadowing_free_gap_ul"]) < 1e-4 and abs(gaps["shadowing_free_gap_dl"]) < 1e-4
        else:
            assert gaps["shadowing_free_gap_ul"] > 0.01 and gaps["shadowing_free_gap_dl"] > 0.01
        assert gaps["constant_gap_ul"] > 0.0


def test_cached_reference_rows_are_reused_only_for_the_same_key(tmp_path):
    path, calls = tmp_path / "refs.json", []

    def compute(value: float):
        def run():
            calls.append(value)
            return [{"K": 2, "L": 4, "opt_ul": value}]

        return run

    key = {"samples": 3, "test_spec": {"seed": 1, "sizes": [[2, 4]]}}
    assert cached_reference_rows(path, key, compute(1.5)) == [{"K": 2, "L": 4, "opt_ul": 1.5}]
    assert cached_reference_rows(path, dict(key), compute(9.0)) == [{"K": 2, "L": 4, "opt_ul": 1.5}]
    assert calls == [1.5]  # the second call read the file
    assert cached_reference_rows(path, {**key, "samples": 4}, compute(2.5))[0]["opt_ul"] == 2.5
    path.write_text("{not json")  # a damaged file is recomputed, not trusted
    assert cached_reference_rows(path, key, compute(3.5))[0]["opt_ul"] == 3.5
    assert calls == [1.5, 2.5, 3.5]
