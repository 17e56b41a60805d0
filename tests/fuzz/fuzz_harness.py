"""Bad-input harness: run many bad inputs in a memory-capped subprocess, classify each outcome.

A case is *clear* when
  * a CLI case exits non-zero through the CLI's own error path (``SystemExit``, no other exception
    escaped, no "Traceback" printed), or an API case raises ``ValueError``/``TypeError``;
  * the message names the field or file (one of ``Case.names``, case-insensitive, ``{tmp}``
    replaced by the case's folder);
  * it finishes within ``Case.timeout_s`` under an address-space cap (``MEMORY_LIMIT_BYTES``).

Anything else is classified ``accepted`` (no error at all), ``vague`` (right kind, message names
nothing), ``traceback`` (another exception escaped), ``memory`` (an allocation failed under the cap
before any check), ``hang`` (timeout) or ``crash`` (the worker died: a segfault or abort).

The cases of one test module run in ONE worker process (imports are paid once). The worker prints a
JSON line when a case starts and another when it ends; if it dies or stops answering, the parent
records the case it was in and restarts the worker after it, so one crash never hides the others.

Usage from a test module (``tests/fuzz/conftest.py`` puts this folder on ``sys.path``)::

    from fuzz_harness import Case
    CASES = [Case("simulate-K-zero", names=("K",), cli=("simulate", "--K", "0")), ...]

    @pytest.mark.parametrize("case_id", [c.id for c in CASES])
    def test_bad_input_is_a_clear_error(fuzz_results, case_id):
        assert_clear(fuzz_results, case_id)

(``fuzz_results`` is conftest's module-scoped fixture: all cases of the module run once.)
"""

from __future__ import annotations

import importlib.util
import json
import os
import queue
import re
import resource
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

#: address-space cap of the worker: a case that tries to allocate more fails as "memory"
MEMORY_LIMIT_BYTES = 6 << 30


@dataclass(frozen=True)
class Case:
    """One bad input.

    id:        unique within its module (used as the pytest id and the case's folder name)
    names:     the message must contain one of these (field, argument or file names)
    cli:       CLI arguments (strings may contain ``{tmp}``, the case's folder), or None
    call:      an API call ``call(folder)`` that must raise ValueError/TypeError, or None
    setup:     ``setup(folder)`` writes the case's input files before the call
    timeout_s: wall-clock bound for the case
    """

    id: str
    names: tuple[str, ...]
    cli: Sequence[str] | None = None
    call: Callable[[Path], object] | None = None
    setup: Callable[[Path], None] | None = None
    timeout_s: float = 60.0

    def __post_init__(self) -> None:
        if (self.cli is None) == (self.call is None):
            raise ValueError(f"case {self.id}: set exactly one of cli and call")
        if not re.fullmatch(r"[A-Za-z0-9_.\-]+", self.id):
            raise ValueError(f"case id {self.id!r}: use letters, digits, '.', '_' and '-' only")


class _Timeout(BaseException):
    """Raised by the alarm handler; a BaseException so no `except Exception` swallows it."""


def load_cases(module_path: str | os.PathLike) -> list[Case]:
    spec = importlib.util.spec_from_file_location(f"fuzz_cases_{Path(module_path).stem}", module_path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(Path(module_path).parent))
    spec.loader.exec_module(module)
    cases = list(module.CASES)
    ids = [c.id for c in cases]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{module_path}: duplicate case ids")
    return cases


def _names_in(message: str, names: Sequence[str], folder: Path) -> bool:
    text = message.lower()
    return any(n.replace("{tmp}", str(folder)).lower() in text for n in names)


def _run_cli(case: Case, folder: Path) -> dict:
    from typer.testing import CliRunner

    from cfmimo.cli import app

    args = [a.replace("{tmp}", str(folder)) for a in case.cli]
    result = CliRunner().invoke(app, args, catch_exceptions=True)
    output = result.output
    escaped = result.exception is not None and not isinstance(result.exception, SystemExit)
    if escaped:
        exc = result.exception
        if isinstance(exc, MemoryError) or "can't allocate memory" in str(exc):
            status = "memory"
        else:
            status = "traceback"
        output += "".join(traceback.format_exception(exc))[-2000:]
    elif result.exit_code == 0:
        status = "accepted"
    elif "Traceback" in output:
        status = "traceback"
    elif not _names_in(output, case.names, folder):
        status = "vague"
    else:
        status = "clear"
    return {"status": status, "message": output[-1500:]}


def _run_call(case: Case, folder: Path) -> dict:
    try:
        case.call(folder)
    except (ValueError, TypeError) as err:
        message = f"{type(err).__name__}: {err}"
        status = "clear" if _names_in(message, case.names, folder) else "vague"
        return {"status": status, "message": message[-1500:]}
    except MemoryError as err:
        return {"status": "memory", "message": repr(err)[-1500:]}
    except Exception as err:  # everything else is a failure of the case, recorded with its trace
        status = "memory" if "can't allocate memory" in str(err) else "traceback"
        return {"status": status, "message": "".join(traceback.format_exception(err))[-1500:]}
    return {"status": "accepted", "message": ""}


def _worker(module_path: str, root: str, skip: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))

    def on_alarm(signum, frame):
        raise _Timeout

    signal.signal(signal.SIGALRM, on_alarm)
    for index, case in enumerate(load_cases(module_path)):
        if index < skip:
            continue
        folder = Path(root) / case.id
        folder.mkdir(parents=True, exist_ok=True)
        print(json.dumps({"start": case.id}), flush=True)
        start = time.perf_counter()
        signal.setitimer(signal.ITIMER_REAL, case.timeout_s)
        try:
            if case.setup is not None:
                case.setup(folder)
            result = _run_cli(case, folder) if case.cli is not None else _run_call(case, folder)
        except _Timeout:
            result = {"status": "hang", "message": f"no answer within {case.timeout_s} s"}
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        result.update(id=case.id, seconds=round(time.perf_counter() - start, 3))
        print(json.dumps(result), flush=True)


def _pump(stream, lines: queue.Queue) -> None:
    """Copy the worker's lines into a queue (None at its end), so the parent can wait with a deadline."""
    for line in stream:
        lines.put(line)
    lines.put(None)


def run_module(module_path: str | os.PathLike, root: Path) -> dict[str, dict]:
    """Run every case of ``module_path`` (in worker subprocesses); {case id: result}."""
    cases = load_cases(module_path)
    timeouts = {c.id: c.timeout_s for c in cases}
    results: dict[str, dict] = {}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200", "NO_COLOR": "1"}
    while len(results) < len(cases):
        done = len(results)
        proc = subprocess.Popen(
            [sys.executable, __file__, str(module_path), str(root), str(done)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True).start()
        current, status = None, None
        while True:
            # the worker's own alarm ends a slow case; this deadline catches what the alarm cannot
            # (a loop inside C code) and a worker that dies before its first case
            wait = timeouts[current] + 30 if current else 300
            try:
                line = lines.get(timeout=wait)
            except queue.Empty:
                proc.kill()
                status = "hang"
                break
            if line is None:
                proc.wait()
                status = "crash"
                break
            if not line.startswith("{"):
                continue
            record = json.loads(line)
            if "start" in record:
                current = record["start"]
            else:
                results[record["id"]] = record
                current = None
        proc.wait()
        if current is not None:  # died or hung inside a case
            message = f"worker exit code {proc.returncode}" if status == "crash" else "no answer"
            results[current] = {"id": current, "status": status, "message": message, "seconds": None}
        elif len(results) == done:
            raise RuntimeError(f"fuzz worker for {module_path} produced no result (exit {proc.returncode})")
    return results


def assert_clear(results: dict[str, dict], case_id: str) -> None:
    """The pytest assertion for one case, with its status and message on failure."""
    result = results[case_id]
    assert result["status"] == "clear", (
        f"{case_id}: {result['status']} ({result['seconds']} s)\n{result['message']}"
    )


if __name__ == "__main__":
    _worker(sys.argv[1], sys.argv[2], int(sys.argv[3]))
