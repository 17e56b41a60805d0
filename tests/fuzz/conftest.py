"""Bad-input tests: each module lists ``CASES`` (see ``fuzz_harness.py``); they run once per module in a
memory-capped worker process and every case must end in a clear error."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fuzz_harness import run_module


@pytest.fixture(scope="module")
def fuzz_results(request, tmp_path_factory) -> dict[str, dict]:
    """{case id: result} for every case of the requesting module."""
    return run_module(request.module.__file__, tmp_path_factory.mktemp("fuzz"))
