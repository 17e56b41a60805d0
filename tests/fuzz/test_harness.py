"""The harness itself classifies every failure kind (so a green fuzz test means what it says)."""

from __future__ import annotations

import textwrap

from fuzz_harness import run_module

CASES_SOURCE = """
import os, time
import torch
from fuzz_harness import Case

def _value_error(folder):
    raise ValueError("p_max must be positive")

CASES = [
    Case("clear", names=("p_max",), call=_value_error),
    Case("vague", names=("budget",), call=_value_error),
    Case("accepted", names=("x",), call=lambda folder: None),
    Case("traceback", names=("x",), call=lambda folder: [][1]),
    Case("memory", names=("x",), call=lambda folder: torch.empty(1 << 40, dtype=torch.uint8)),
    Case("hang", names=("x",), call=lambda folder: time.sleep(60), timeout_s=1),
    Case("crash", names=("x",), call=lambda folder: os.abort()),
    Case("after-crash", names=("p_max",), call=_value_error),
    Case("cli-clear", names=("K",), cli=("simulate", "--K", "0")),
    Case("cli-accepted", names=("x",), cli=("presets",)),
]
"""


def test_every_outcome_is_classified(tmp_path):
    module = tmp_path / "cases.py"
    module.write_text(textwrap.dedent(CASES_SOURCE))
    results = run_module(module, tmp_path / "work")
    status = {k: v["status"] for k, v in results.items()}
    assert status == {
        "clear": "clear",
        "vague": "vague",
        "accepted": "accepted",
        "traceback": "traceback",
        "memory": "memory",
        "hang": "hang",
        "crash": "crash",
        "after-crash": "clear",
        "cli-clear": "clear",
        "cli-accepted": "accepted",
    }
