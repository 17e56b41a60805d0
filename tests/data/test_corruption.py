"""Corrupt files never crash, hang, traceback or fool a dataset reader.

Every byte of a small shard (~13 KB) and of its manifest is corrupted in turn (XOR 0xFF; for the
manifest also XOR 0x01, which keeps ASCII text ASCII and so reaches the structure checks instead of
the UTF-8 decoder), and ``load_dataset`` reads each corrupted copy in a worker subprocess. Each flip
ends as one of

    clear       ValueError whose message names the corrupted file
    vague       ValueError that does not name it
    same        the reader returned exactly the original manifest and arrays (the flip changed
                nothing a reader uses)
    undetected  the reader returned a manifest or arrays that differ from the original
    traceback   any other exception
    hang        no answer within the per-flip timeout
    crash       the worker died (segfault, abort)

Only ``clear`` and ``same`` are acceptable. The worker reports the start and end of every flip on
stdout; if it dies or stops answering, the parent records that flip and restarts it after it (so
one crash never hides the others), as ``tests/fuzz/fuzz_harness.py`` does.

The full sweep is ``slow``; a sample of 300 positions runs in the default suite.
Run standalone for the counts: ``python tests/data/test_corruption.py report``.
"""

from __future__ import annotations

import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

FLIP_TIMEOUT_S = 10.0
ACCEPTABLE = {"clear", "same"}


class _Timeout(BaseException):
    pass


def make_dataset(folder: Path) -> Path:
    from cfmimo.config import preset
    from cfmimo.data.generation import run_generation
    from cfmimo.data.spec import DatasetSpec

    spec = DatasetSpec(
        scenario=preset("tree-transformer", realizations=4), sizes=[(3, 4)], samples=4, shard_size=4, seed=2
    )
    run_generation(spec, folder, scheduler="sync")
    return folder


def all_flips(folder: Path) -> list[tuple[str, int, int]]:
    """(file name, byte position, xor mask) for every byte of the shard and the manifest."""
    shard = next(folder.glob("K*.h5")).name
    flips = [(shard, i, 0xFF) for i in range(len((folder / shard).read_bytes()))]
    size = len((folder / "dataset.json").read_bytes())
    for mask in (0xFF, 0x01):
        flips += [("dataset.json", i, mask) for i in range(size)]
    return flips


def _same(a, b) -> bool:
    import torch

    if a.manifest != b.manifest or a.groups.keys() != b.groups.keys():
        return False
    for key in a.groups:
        ga, gb = a.groups[key], b.groups[key]
        if ga.keys() != gb.keys():
            return False
        for name in ga:
            x, y = ga[name], gb[name]
            if x.dtype != y.dtype or x.shape != y.shape or not torch.equal(x, y):
                return False
    return True


def _worker(original: str, scratch: str, flips_file: str, skip: int) -> None:
    import shutil

    from cfmimo.data.storage import load_dataset

    def on_alarm(signum, frame):
        raise _Timeout

    signal.signal(signal.SIGALRM, on_alarm)
    original_dir, scratch_dir = Path(original), Path(scratch)
    shutil.rmtree(scratch_dir, ignore_errors=True)
    shutil.copytree(original_dir, scratch_dir)
    reference = load_dataset(original_dir)
    pristine = {p.name: p.read_bytes() for p in original_dir.iterdir() if p.is_file()}
    flips = json.loads(Path(flips_file).read_text())
    for index, (name, pos, mask) in enumerate(flips):
        if index < skip:
            continue
        data = bytearray(pristine[name])
        data[pos] ^= mask
        (scratch_dir / name).write_bytes(data)
        print(json.dumps({"start": index}), flush=True)
        signal.setitimer(signal.ITIMER_REAL, FLIP_TIMEOUT_S)
        message = ""
        try:
            content = load_dataset(scratch_dir)
            status = "same" if _same(content, reference) else "undetected"
        except ValueError as err:
            message = str(err)
            status = "clear" if name in message else "vague"
        except _Timeout:
            status = "hang"
        except Exception as err:
            status, message = "traceback", f"{type(err).__name__}: {err}"
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            (scratch_dir / name).write_bytes(pristine[name])
        print(json.dumps({"index": index, "status": status, "message": message[:300]}), flush=True)


def _pump(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def run_flips(original: Path, flips: list[tuple[str, int, int]], root: Path) -> list[dict]:
    """Results of every flip, in order (workers restarted after a crash or hang)."""
    flips_file = root / "flips.json"
    flips_file.write_text(json.dumps(flips))
    results: dict[int, dict] = {}
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    while len(results) < len(flips):
        done = len(results)
        proc = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "worker",
                str(original),
                str(root / "scratch"),
                str(flips_file),
                str(done),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True).start()
        current, status = None, None
        while True:
            try:  # the worker's alarm ends a slow flip; this deadline catches a hang inside C code
                line = lines.get(timeout=FLIP_TIMEOUT_S + 20 if current is not None else 120)
            except queue.Empty:
                proc.kill()
                status = "hang"
                break
            if line is None:
                status = "crash"
                break
            if not line.startswith("{"):
                continue
            record = json.loads(line)
            if "start" in record:
                current = record["start"]
            else:
                results[record["index"]] = record
                current = None
        proc.wait()
        if current is not None:
            results[current] = {"index": current, "status": status, "message": f"exit code {proc.returncode}"}
        elif len(results) == done:
            raise RuntimeError(f"corruption worker produced no result (exit {proc.returncode})")
    return [results[i] for i in range(len(flips))]


def summarize(flips: list[tuple[str, int, int]], results: list[dict]) -> dict:
    out: dict = {}
    for (name, _, mask), r in zip(flips, results, strict=True):
        key = f"{'shard' if name.endswith('.h5') else 'manifest'} xor 0x{mask:02X}"
        out.setdefault(key, Counter())[r["status"]] += 1
    return {k: dict(v) for k, v in out.items()}


def _check(flips, results) -> None:
    bad = [(f, r) for f, r in zip(flips, results, strict=True) if r["status"] not in ACCEPTABLE]
    counts = Counter(r["status"] for r in results)
    assert not bad, f"{counts}: first failures {bad[:5]}"
    assert counts["clear"] > 0.9 * len(flips)  # nearly every flip is detected (the rest change nothing)


@pytest.fixture(scope="module")
def original(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("corruption") / "ds")


def test_sampled_byte_flips_are_all_detected(original, tmp_path):
    flips = random.Random(0).sample(all_flips(original), 300)
    _check(flips, run_flips(original, flips, tmp_path))


@pytest.mark.slow
def test_every_byte_flip_of_shard_and_manifest_is_detected(original, tmp_path):
    flips = all_flips(original)
    results = run_flips(original, flips, tmp_path)
    print(json.dumps(summarize(flips, results)))
    _check(flips, results)


if __name__ == "__main__":
    if sys.argv[1] == "worker":
        _worker(*sys.argv[2:5], int(sys.argv[5]))
    else:  # report: the full sweep's counts as JSON
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            ds = make_dataset(Path(tmp) / "ds")
            flips = all_flips(ds)
            start = time.perf_counter()
            results = run_flips(ds, flips, Path(tmp))
            print(
                json.dumps(
                    {
                        "flips": len(flips),
                        "shard_bytes": len(next(ds.glob("K*.h5")).read_bytes()),
                        "manifest_bytes": len((ds / "dataset.json").read_bytes()),
                        "seconds": round(time.perf_counter() - start, 1),
                        "counts": summarize(flips, results),
                        "examples": [r for r in results if r["status"] not in ACCEPTABLE][:10],
                    },
                    indent=1,
                )
            )
