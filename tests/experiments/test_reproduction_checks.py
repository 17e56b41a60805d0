"""The shared layout check of the reproduction tests (``reproduction_outputs``, conftest.py) accepts
a well-formed output folder and rejects each way of breaking it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cfmimo.experiments.common import claim, pyplot, save_figure, write_csv, write_json


def _folder(out: Path) -> dict:
    """A minimal well-formed output folder (one claim, one model, one CSV, one figure)."""
    results = {
        "paper": "demo",
        "mode": "tiny",
        "wall_time_s": 1.5,
        "models": {"m": {"params": 10, "latency_ms": {"5x10": 0.2}}},
        "metrics": {},
        "claims": [{**claim("c1", "claim one", 1.0, 0.9, False), "note": "n"}],
    }
    write_json(out / "results.json", results)
    write_csv(out / "t.csv", ["a", "b"], [[1, 2.5], [3, 4.5]])
    plt = pyplot()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    (out / "figures").mkdir()
    save_figure(fig, out / "figures" / "f.png")
    (out / "report.md").write_text("# Demo reproduction\n\n" + "claim c1 does not hold. " * 10)
    return results


KW = dict(
    paper="demo",
    mode="tiny",
    claim_ids={"c1"},
    claim_extra={"note"},
    models={"m"},
    csvs=("t",),
    figures=("f",),
)


def _json(change, *, disk_only: bool = False):
    """A break of results.json: ``change`` applied on disk and, unless ``disk_only``, to what the
    run returned as well (so that only the intended check sees a difference)."""

    def apply(out: Path, results: dict) -> None:
        data = json.loads((out / "results.json").read_text())
        change(data)
        write_json(out / "results.json", data)
        if not disk_only:
            change(results)

    return apply


def _file(name: str, content: bytes):
    return lambda out, results: (out / name).write_bytes(content)


BREAKS = {
    "missing key": _json(lambda d: d.pop("metrics")),
    "other paper": _json(lambda d: d.update(paper="other")),
    "other mode": _json(lambda d: d.update(mode="quick")),
    "zero wall time": _json(lambda d: d.update(wall_time_s=0.0)),
    "claims differ from the run's": _json(lambda d: d["claims"][0].update(ours=0.8), disk_only=True),
    "extra claim": _json(lambda d: d["claims"].append(claim("c2", "two", 1, 1, True))),
    "claim twice": _json(lambda d: d["claims"].append(d["claims"][0])),
    "claim without note": _json(lambda d: d["claims"][0].pop("note")),
    "claim with unknown field": _json(lambda d: d["claims"][0].update(extra=1)),
    "empty description": _json(lambda d: d["claims"][0].update(description="")),
    "holds not a bool": _json(lambda d: d["claims"][0].update(holds="yes")),
    "zero latency": _json(lambda d: d["models"]["m"].update(latency_ms={"5x10": 0})),
    "params not an int": _json(lambda d: d["models"]["m"].update(params=10.0)),
    "other models": _json(lambda d: d["models"].update(n=d["models"]["m"])),
    "csv without rows": _file("t.csv", b"a,b\n"),
    "ragged csv": _file("t.csv", b"a,b\n1,2\n3\n"),
    "not a png": _file("figures/f.png", b"x" * 2000),
    "tiny png": _file("figures/f.png", b"\x89PNG\r\n\x1a\n" + b"x" * 100),
    "report without title": _file("report.md", b"no title " * 20),
}


def test_a_well_formed_folder_passes(tmp_path, reproduction_outputs):
    results = _folder(tmp_path)
    on_disk = reproduction_outputs(tmp_path, results, **KW, report_contains=("c1",), csv_larger_than=10)
    assert on_disk == results


@pytest.mark.parametrize("what", sorted(BREAKS))
def test_each_break_is_caught(tmp_path, reproduction_outputs, what):
    results = _folder(tmp_path)
    BREAKS[what](tmp_path, results)
    with pytest.raises(AssertionError):
        reproduction_outputs(tmp_path, results, **KW)


def test_report_text_and_csv_size_are_checked(tmp_path, reproduction_outputs):
    results = _folder(tmp_path)
    with pytest.raises(AssertionError, match="Assumptions"):
        reproduction_outputs(tmp_path, results, **KW, report_contains=("Assumptions",))
    with pytest.raises(AssertionError, match="t"):
        reproduction_outputs(tmp_path, results, **KW, csv_larger_than=1000)
