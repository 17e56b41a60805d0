"""Bad command-line input to `simulate`, `presets` and `solve max-min` ends in a clear error."""

from __future__ import annotations

import pytest
from fuzz_harness import Case, assert_clear

from cfmimo.config import preset


def _write(name: str, text: str):
    def setup(folder):
        (folder / name).write_text(text)

    return setup


CASES = [
    Case("simulate-K-zero", names=("K",), cli=("simulate", "--K", "0")),
    Case("simulate-unknown-preset", names=("preset",), cli=("simulate", "--preset", "nope")),
    Case(
        "simulate-missing-config",
        names=("{tmp}/none.yaml", "none.yaml"),
        cli=("simulate", "--config", "{tmp}/none.yaml"),
    ),
    Case(
        "simulate-config-unknown-field",
        names=("bogus",),
        setup=_write("s.yaml", "preset: aagnn\nbogus: 3\n"),
        cli=("simulate", "--config", "{tmp}/s.yaml"),
    ),
    Case("presets-unknown", names=("preset",), cli=("presets", "nope")),
    Case("solve-max-min-bad-dl", names=("dl-constraint",), cli=("solve", "max-min", "--dl-constraint", "x")),
    Case("preset-negative-L", names=("L",), call=lambda folder: preset("aagnn", L=-1)),
]


@pytest.mark.parametrize("case_id", [c.id for c in CASES])
def test_bad_input_is_a_clear_error(fuzz_results, case_id):
    assert_clear(fuzz_results, case_id)
