"""Bad input to `data generate`, `data inspect`, dataset spec files, manifests, shards and the
Python data API (DatasetSpec, run_generation, load_dataset, loaders) ends in a clear error."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch
from fuzz_harness import Case, assert_clear

SPEC_OK = "scenario: {realizations: 4}\nsizes: [[2, 2]]\nsamples: 2\n"
SHARD = "K002-L002-0000000.h5"
_held_locks: list[int] = []  # lock file descriptors held by the worker for the rest of its run


def _spec(**overrides):
    from cfmimo.data.spec import DatasetSpec

    base = {"scenario": {"realizations": 4}, "sizes": [[2, 2]], "samples": 2}
    return DatasetSpec.model_validate({**base, **overrides})


def _write(name: str, content: str | bytes):
    def setup(folder: Path) -> None:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)

    return setup


def _dataset(folder: Path) -> Path:
    from cfmimo.data.generation import run_generation

    ds = folder / "ds"
    run_generation(_spec(), ds, scheduler="sync")
    return ds


def _with_dataset(edit=None, spec_file: str | None = None):
    """Setup: a valid 2-sample dataset in {tmp}/ds, then ``edit(ds)``; ``spec_file``: write it to {tmp}/s.yaml."""

    def setup(folder: Path) -> None:
        ds = _dataset(folder)
        if edit is not None:
            edit(ds)
        if spec_file is not None:
            (folder / "s.yaml").write_text(spec_file)

    return setup


def _edit_manifest(change, rehash: bool = False):
    def edit(ds: Path) -> None:
        body = json.loads((ds / "dataset.json").read_text())
        change(body)
        if rehash:
            from cfmimo.data.storage import spec_hash, write_manifest

            body["spec_hash"] = spec_hash(body["spec"])
            write_manifest(ds, body)
        else:
            (ds / "dataset.json").write_text(json.dumps(body))

    return edit


def _manifest_text(text: str | bytes):
    def edit(ds: Path) -> None:
        (ds / "dataset.json").write_bytes(text.encode() if isinstance(text, str) else text)

    return edit


def _shard_bytes(transform):
    def edit(ds: Path) -> None:
        path = ds / SHARD
        path.write_bytes(transform(path.read_bytes()))

    return edit


def _shard_is_dir(ds: Path) -> None:
    (ds / SHARD).unlink()
    (ds / SHARD).mkdir()


def _lock_held(folder: Path) -> None:
    import fcntl

    ds = _dataset(folder)
    fd = os.open(ds / ".lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # a separate open file description: conflicts like another process
    _held_locks.append(fd)


def _format_1(ds: Path) -> None:
    body = json.loads((ds / "dataset.json").read_text())
    old = {k: body[k] for k in ("cfmimo", "spec_hash", "spec")}
    (ds / "dataset.json").write_text(json.dumps({"format": 1, **old}))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _groups(**extra):
    n, K, L = 3, 2, 2
    g = {
        "ap_positions": torch.zeros(n, L, 2),
        "ue_positions": torch.zeros(n, K, 2),
        "sample_index": torch.arange(n),
        **extra,
    }
    return {(K, L): g}


def _items(sizes):
    return [{"ue_positions": torch.zeros(k, 2), "K": k, "L": l} for k, l in sizes]


GEN = ("data", "generate", "--out", "{tmp}/ds", "--scheduler", "sync")
INSPECT = ("data", "inspect", "{tmp}/ds")


def _gen_spec(name: str, text: str | bytes, names: tuple[str, ...]) -> Case:
    return Case(
        f"generate-spec-{name}",
        names=names,
        setup=_write("s.yaml", text),
        cli=(*GEN, "--spec", "{tmp}/s.yaml"),
    )


def _inspect(name: str, setup, names: tuple[str, ...], *extra: str) -> Case:
    return Case(f"inspect-{name}", names=names, setup=setup, cli=(*INSPECT, *extra))


def _api(name: str, names: tuple[str, ...], call, setup=None) -> Case:
    return Case(f"api-{name}", names=names, call=call, setup=setup)


def _load(folder: Path):
    from cfmimo.data.storage import load_dataset

    return load_dataset(folder / "ds")


CASES = [
    # ------------------------------------------------------------------ data generate: options
    Case("generate-K-letters", names=("--K",), cli=(*GEN, "--K", "a,b")),
    Case("generate-K-zero", names=("--K",), cli=(*GEN, "--K", "0")),
    Case("generate-L-empty", names=("--L",), cli=(*GEN, "--L", ",")),
    Case("generate-samples-zero", names=("--samples",), cli=(*GEN, "--samples", "0")),
    Case("generate-shard-size-zero", names=("--shard-size",), cli=(*GEN, "--shard-size", "0")),
    Case("generate-realizations-zero", names=("--realizations",), cli=(*GEN, "--realizations", "0")),
    Case("generate-workers-zero", names=("--workers",), cli=(*GEN, "--workers", "0")),
    Case("generate-seed-huge", names=("seed",), cli=(*GEN, "--seed", str(2**70))),
    Case("generate-unknown-dataset", names=("dataset", "preset"), cli=(*GEN, "--dataset", "nope")),
    Case("generate-unknown-preset", names=("preset",), cli=(*GEN, "--preset", "nope")),
    Case("generate-bad-scheduler", names=("scheduler",), cli=(*GEN[:-2], "--scheduler", "bogus")),
    Case(
        "generate-unreachable-scheduler",
        names=("scheduler",),
        cli=(*GEN[:-2], "--scheduler", f"tcp://127.0.0.1:{_free_port()}", "--connect-timeout", "1"),
        timeout_s=30,
    ),
    Case("generate-connect-timeout-zero", names=("--connect-timeout",), cli=(*GEN, "--connect-timeout", "0")),
    Case(
        "generate-samples-1e12",
        names=("samples",),
        cli=(*GEN, "--samples", str(10**12), "--shard-size", "10"),
        timeout_s=20,
    ),
    # ------------------------------------------------------------------ data generate: --out
    Case(
        "generate-out-is-a-file", names=("{tmp}/ds",), setup=_write("ds", "x"), cli=(*GEN, "--samples", "2")
    ),
    Case(
        "generate-out-parent-missing",
        names=("nowhere",),
        cli=("data", "generate", "--out", "{tmp}/nowhere/ds", "--scheduler", "sync", "--samples", "2"),
    ),
    Case(
        "generate-out-holds-another-dataset",
        names=("samples: 2 -> 3",),
        setup=_with_dataset(spec_file=SPEC_OK.replace("samples: 2", "samples: 3")),
        cli=(*GEN, "--spec", "{tmp}/s.yaml"),
    ),
    Case(
        "generate-out-corrupt-manifest",
        names=("dataset.json",),
        setup=_with_dataset(_manifest_text("{")),
        cli=(*GEN, "--samples", "2"),
    ),
    Case("generate-out-locked", names=(".lock",), setup=_lock_held, cli=(*GEN, "--samples", "2")),
    Case(
        "generate-out-format-1",
        names=("format 1",),
        setup=_with_dataset(_format_1),
        cli=(*GEN, "--samples", "2"),
    ),
    Case(
        "generate-out-corrupt-shard",
        names=(SHARD,),
        setup=_with_dataset(_shard_bytes(lambda b: b[:-1] + bytes([b[-1] ^ 1])), spec_file=SPEC_OK),
        cli=(*GEN, "--spec", "{tmp}/s.yaml"),
    ),
    # ------------------------------------------------------------------ spec files
    Case("generate-spec-missing", names=("none.yaml",), cli=(*GEN, "--spec", "{tmp}/none.yaml")),
    Case("generate-spec-is-a-directory", names=("{tmp}",), cli=(*GEN, "--spec", "{tmp}")),
    _gen_spec("bad-yaml", "sizes: [[2, 2]\nsamples: : 3\n", ("s.yaml",)),
    _gen_spec("not-utf8", b"samples: 2\nseed: \xff\xfe\n", ("s.yaml",)),
    _gen_spec("a-list", "- 1\n- 2\n", ("s.yaml",)),
    _gen_spec("empty", "", ("s.yaml",)),
    _gen_spec("unknown-field", SPEC_OK + "bogus: 3\n", ("bogus",)),
    _gen_spec("samples-negative", SPEC_OK.replace("samples: 2", "samples: -1"), ("samples",)),
    _gen_spec("sizes-empty", SPEC_OK.replace("[[2, 2]]", "[]"), ("sizes",)),
    _gen_spec("sizes-repeated", SPEC_OK.replace("[[2, 2]]", "[[2, 2], [2, 2]]"), ("sizes",)),
    _gen_spec("sizes-triple", SPEC_OK.replace("[[2, 2]]", "[[2, 2, 2]]"), ("sizes",)),
    _gen_spec("combiner-unknown", SPEC_OK + "combiner: zf\n", ("combiner",)),
    _gen_spec("dl-constraint-unknown", SPEC_OK + "dl_constraint: total\n", ("dl_constraint",)),
    _gen_spec("labels-not-bool", SPEC_OK + "labels: maybe\n", ("labels",)),
    _gen_spec("seed-huge", SPEC_OK + f"seed: {2**70}\n", ("seed",)),
    _gen_spec("seed-float", SPEC_OK + "seed: 1.5\n", ("seed",)),
    _gen_spec("shard-plan-1e12", SPEC_OK.replace("samples: 2", "samples: 1000000000000"), ("samples",)),
    _gen_spec("scenario-not-a-mapping", SPEC_OK.replace("{realizations: 4}", "nope"), ("scenario",)),
    _gen_spec(
        "scenario-realizations-nan",
        SPEC_OK.replace("realizations: 4", "realizations: .nan"),
        ("realizations",),
    ),
    # ------------------------------------------------------------------ data inspect: folders and manifests
    Case("inspect-missing-folder", names=("nowhere",), cli=("data", "inspect", "{tmp}/nowhere")),
    Case("inspect-folder-is-a-file", names=("{tmp}/ds",), setup=_write("ds", "x"), cli=INSPECT),
    Case("inspect-no-manifest", names=("dataset.json",), setup=_write("ds/other.txt", "x"), cli=INSPECT),
    _inspect("manifest-empty", _with_dataset(_manifest_text("")), ("dataset.json",)),
    _inspect("manifest-not-json", _with_dataset(_manifest_text("{format: 2")), ("dataset.json",)),
    _inspect("manifest-a-list", _with_dataset(_manifest_text("[1, 2]")), ("dataset.json",)),
    _inspect("manifest-not-utf8", _with_dataset(_manifest_text(b'{"format": \xff}')), ("dataset.json",)),
    _inspect("manifest-nan", _with_dataset(_manifest_text('{"format": NaN}')), ("dataset.json",)),
    _inspect("manifest-deep-nesting", _with_dataset(_manifest_text("[" * 200_000)), ("dataset.json",)),
    _inspect(
        "manifest-duplicate-key",
        _with_dataset(_manifest_text('{"format": 2, "format": 2}')),
        ("dataset.json",),
    ),
    _inspect("manifest-format-1", _with_dataset(_format_1), ("format 1",)),
    _inspect("manifest-format-9", _with_dataset(_edit_manifest(lambda b: b.update(format=9))), ("format",)),
    _inspect(
        "manifest-missing-shards", _with_dataset(_edit_manifest(lambda b: b.pop("shards"))), ("shards",)
    ),
    _inspect("manifest-unknown-field", _with_dataset(_edit_manifest(lambda b: b.update(x=1))), ("'x'",)),
    _inspect(
        "manifest-edited-spec",
        _with_dataset(_edit_manifest(lambda b: b["spec"].update(seed=7))),
        ("spec_hash",),
    ),
    _inspect(
        "manifest-edited-shard-table",
        _with_dataset(_edit_manifest(lambda b: b["shards"].update({SHARD: "0" * 64}))),
        ("manifest_sha256",),
    ),
    _inspect(
        "manifest-invalid-spec",
        _with_dataset(_edit_manifest(lambda b: b["spec"].update(samples=0), rehash=True)),
        ("samples",),
    ),
    _inspect(
        "manifest-claims-1e12-samples",
        _with_dataset(
            _edit_manifest(lambda b: b["spec"].update(samples=10**12, shard_size=10**7), rehash=True)
        ),
        (SHARD,),
    ),
    _inspect(
        "manifest-bad-shard-entry",
        _with_dataset(_edit_manifest(lambda b: b["shards"].update({"../x.h5": "0" * 64}), rehash=True)),
        ("shards",),
    ),
    # ------------------------------------------------------------------ shards
    _inspect("shard-missing", _with_dataset(lambda ds: (ds / SHARD).unlink()), (SHARD,)),
    _inspect("shard-empty", _with_dataset(_shard_bytes(lambda b: b"")), (SHARD,)),
    _inspect("shard-truncated", _with_dataset(_shard_bytes(lambda b: b[: len(b) // 2])), (SHARD,)),
    _inspect("shard-random-bytes", _with_dataset(_shard_bytes(lambda b: os.urandom(len(b)))), (SHARD,)),
    _inspect(
        "shard-one-bit",
        _with_dataset(_shard_bytes(lambda b: b[:900] + bytes([b[900] ^ 1]) + b[901:])),
        (SHARD,),
    ),
    _inspect("shard-is-a-directory", _with_dataset(_shard_is_dir), (SHARD,)),
    _inspect(
        "shard-garbage-no-verify",
        _with_dataset(_shard_bytes(lambda b: b"\x89HDF\r\n\x1a\n" + b"\x00" * 600)),
        (SHARD,),
        "--no-verify",
    ),
    # ------------------------------------------------------------------ Python API
    _api("spec-samples-zero", ("samples",), lambda f: _spec(samples=0)),
    _api("spec-sizes-zero-K", ("sizes",), lambda f: _spec(sizes=[[0, 2]])),
    _api("spec-sizes-not-pairs", ("sizes",), lambda f: _spec(sizes=[3])),
    _api("spec-shard-size-negative", ("shard_size",), lambda f: _spec(shard_size=-1)),
    _api("spec-seed-text", ("seed",), lambda f: _spec(seed="x")),
    _api("spec-combiner", ("combiner",), lambda f: _spec(combiner="zf")),
    _api("spec-unknown-field", ("bogus",), lambda f: _spec(bogus=1)),
    _api("spec-scenario-text", ("scenario",), lambda f: _spec(scenario="nope")),
    _api("spec-too-many-shards", ("shard_size",), lambda f: _spec(samples=10**9, shard_size=1)),
    _api(
        "dataset-preset-unknown",
        ("preset",),
        lambda f: __import__("cfmimo.data.spec").data.spec.dataset_preset("x"),
    ),
    _api(
        "load-spec-file-binary",
        ("s.yaml",),
        lambda f: __import__("cfmimo.data.spec").data.spec.load_spec_file(f / "s.yaml"),
        setup=_write("s.yaml", b"\x00\xff\x00"),
    ),
    _api(
        "run-generation-not-a-spec",
        ("spec",),
        lambda f: __import__("cfmimo.data.generation").data.generation.run_generation(
            {"samples": 2}, f / "ds"
        ),
    ),
    _api(
        "run-generation-scheduler-int",
        ("scheduler",),
        lambda f: __import__("cfmimo.data.generation").data.generation.run_generation(
            _spec(), f / "ds", scheduler=5
        ),
    ),
    _api(
        "run-generation-workers-zero",
        ("workers",),
        lambda f: __import__("cfmimo.data.generation").data.generation.run_generation(
            _spec(), f / "ds", workers=0
        ),
    ),
    _api(
        "run-generation-timeout-negative",
        ("connect_timeout_s",),
        lambda f: __import__("cfmimo.data.generation").data.generation.run_generation(
            _spec(), f / "ds", scheduler="tcp://127.0.0.1:1", connect_timeout_s=-1
        ),
    ),
    _api("load-dataset-missing", ("nowhere",), lambda f: _load(f / "nowhere")),
    _api(
        "load-dataset-edited-spec",
        ("spec_hash",),
        _load,
        setup=_with_dataset(_edit_manifest(lambda b: b["spec"].update(seed=3))),
    ),
    _api(
        "read-shard-missing",
        ("x.h5",),
        lambda f: __import__("cfmimo.data.storage").data.storage.read_shard(f / "x.h5"),
    ),
    _api(
        "grouped-dataset-empty",
        ("groups",),
        lambda f: __import__("cfmimo.data.loaders").data.loaders.GroupedDataset({}),
    ),
    _api(
        "grouped-dataset-bad-key",
        ("groups",),
        lambda f: __import__("cfmimo.data.loaders").data.loaders.GroupedDataset({(2,): _groups()[(2, 2)]}),
    ),
    _api(
        "grouped-dataset-missing-key",
        ("sample_index",),
        lambda f: __import__("cfmimo.data.loaders").data.loaders.GroupedDataset(
            {(2, 2): {k: v for k, v in _groups()[(2, 2)].items() if k != "sample_index"}}
        ),
    ),
    _api(
        "grouped-dataset-wrong-shape",
        ("p_ul",),
        lambda f: __import__("cfmimo.data.loaders").data.loaders.GroupedDataset(
            _groups(p_ul=torch.zeros(3, 5))
        ),
    ),
    _api(
        "make-loader-batch-zero",
        ("batch_size",),
        lambda f: __import__("cfmimo.data.loaders").data.loaders.make_loader(_groups(), 0, shuffle=False),
    ),
    _api(
        "make-loader-shuffle-without-seed",
        ("seed",),
        lambda f: __import__("cfmimo.data.loaders").data.loaders.make_loader(_groups(), 2, shuffle=True),
    ),
    _api(
        "make-loader-transform-not-callable",
        ("transform",),
        lambda f: __import__("cfmimo.data.loaders").data.loaders.make_loader(
            _groups(), 2, shuffle=False, transform=5
        ),
    ),
    _api(
        "pad-collate-empty",
        ("samples",),
        lambda f: __import__("cfmimo.data.loaders").data.loaders.pad_collate([]),
    ),
    _api(
        "collate-same-size-mixed",
        ("pad_collate",),
        lambda f: __import__("cfmimo.data.loaders").data.loaders.collate_same_size(_items([(2, 2), (3, 2)])),
    ),
    _api(
        "fit-power-scaler-unlabelled",
        ("p_ul",),
        lambda f: __import__("cfmimo.data.loaders").data.loaders.fit_power_scaler(_groups()),
    ),
]


@pytest.mark.parametrize("case_id", [c.id for c in CASES])
def test_bad_input_is_a_clear_error(fuzz_results, case_id):
    assert_clear(fuzz_results, case_id)


def test_enough_distinct_cases():
    assert len(CASES) >= 45 and len({c.id for c in CASES}) == len(CASES)
