"""The output layout every ``cfmimo reproduce <paper>`` writes, checked once for all reproduction
tests (fixture ``reproduction_outputs``: pytest's importlib mode leaves test helpers unimportable,
so the check travels as a fixture, as ``small_factory`` in tests/conftest.py)."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

#: top-level keys of results.json that the CLI, report.md and the docs read
RESULT_KEYS = {"paper", "mode", "wall_time_s", "models", "metrics", "claims"}
#: the fields of ``experiments.common.claim``; a reproduction may add its own (``claim_extra``)
CLAIM_FIELDS = {"id", "description", "paper_value", "ours", "holds"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _positive(value: Any) -> bool:
    """A finite number > 0, or a dict whose values all are (e.g. latency per size)."""
    if isinstance(value, dict):
        return bool(value) and all(_positive(v) for v in value.values())
    return (
        isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    )


def check_reproduction_outputs(
    out: Path,
    results: dict[str, Any],
    *,
    paper: str,
    mode: str,
    claim_ids: set[str],
    claim_extra: Iterable[str] = (),
    models: Iterable[str] | None = None,
    csvs: Iterable[str] = (),
    figures: Iterable[str] = (),
    report_contains: Iterable[str] = (),
    csv_larger_than: int = 0,
) -> dict[str, Any]:
    """Assert the layout of a reproduction's output folder ``out`` (``results``: what ``run``
    returned) and return results.json as read from disk:

    * results.json: the keys of ``RESULT_KEYS``, ``paper`` and ``mode`` as given, a positive finite
      wall time, the same claims as returned;
    * claims: exactly the ids ``claim_ids`` (each once), each with exactly the fields of
      ``common.claim`` plus ``claim_extra``, a non-empty description and ``holds`` True, False or None;
    * models: exactly ``models`` when given; each with a positive integer parameter count and a
      positive latency (``latency_ms``: a number, or a dict of numbers per size);
    * ``csvs`` (names in ``out``, without .csv): a header and at least one row, every row as wide as
      the header, the file larger than ``csv_larger_than`` bytes; ``figures`` (names in
      ``out/figures``, without .png): PNG files larger than 1000 bytes;
    * report.md: a Markdown title, over 100 bytes, containing every string of ``report_contains``.
    """
    on_disk = json.loads((out / "results.json").read_text())
    assert RESULT_KEYS <= set(on_disk), RESULT_KEYS - set(on_disk)
    assert on_disk["paper"] == paper and on_disk["mode"] == mode, (on_disk["paper"], on_disk["mode"])
    assert _positive(on_disk["wall_time_s"]), on_disk["wall_time_s"]
    assert on_disk["claims"] == results["claims"]
    ids = [c["id"] for c in on_disk["claims"]]
    assert len(ids) == len(set(ids)), ids
    assert set(ids) == claim_ids, set(ids) ^ claim_ids
    for c in on_disk["claims"]:
        assert set(c) == CLAIM_FIELDS | set(claim_extra), (c["id"], set(c))
        assert isinstance(c["description"], str) and c["description"], c["id"]
        assert c["holds"] is None or isinstance(c["holds"], bool), (c["id"], c["holds"])
    if models is not None:
        assert set(on_disk["models"]) == set(models), set(on_disk["models"])
    for name, m in on_disk["models"].items():
        assert isinstance(m["params"], int) and m["params"] > 0, name
        assert _positive(m["latency_ms"]), (name, m["latency_ms"])
    for name in csvs:
        path = out / f"{name}.csv"
        with path.open() as f:
            header, *rows = list(csv.reader(f))
        assert header and rows and all(len(r) == len(header) for r in rows), name
        assert path.stat().st_size > csv_larger_than, name
    for name in figures:
        path = out / "figures" / f"{name}.png"
        assert path.read_bytes()[:8] == PNG_SIGNATURE and path.stat().st_size > 1000, name
    report = (out / "report.md").read_text()
    assert report.startswith("# ") and len(report) > 100
    for text in report_contains:
        assert text in report, text
    return on_disk


@pytest.fixture
def reproduction_outputs():
    """``check_reproduction_outputs``: the layout checks shared by the reproduction tests."""
    return check_reproduction_outputs
