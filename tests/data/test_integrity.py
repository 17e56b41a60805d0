"""Dataset integrity: manifest validation, file checksums before HDF5, shard attributes, lazy plan,
the writer's lock, fsync before rename, file modes, shard-size independence, bounded Dask connect."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from cfmimo.config import preset
from cfmimo.data.generation import _power_instance, generate_shard, regenerate, run_generation
from cfmimo.data.spec import DatasetSpec
from cfmimo.data.storage import (
    MANIFEST,
    dataset_lock,
    file_sha256,
    load_dataset,
    read_manifest,
    shard_name,
    spec_hash,
    write_manifest,
)


def _spec(**overrides) -> DatasetSpec:
    base = dict(
        scenario=preset("tree-transformer", realizations=6),
        sizes=[(3, 4), (5, 2)],
        samples=6,
        shard_size=4,
        seed=5,
    )
    return DatasetSpec(**{**base, **overrides})


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("small") / "ds"
    run_generation(_spec(), folder, scheduler="sync")
    return folder


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for p in src.iterdir():
        if p.name != ".lock":
            (dst / p.name).write_bytes(p.read_bytes())
    return dst


def _raw(folder: Path) -> dict:
    return json.loads((folder / MANIFEST).read_text())


def test_manifest_records_the_sha256_of_every_shard_file(small):
    m = read_manifest(small)
    assert m["format"] == 2 and m["spec_hash"] == spec_hash(_spec().identity())
    names = sorted(p.name for p in small.glob("K*.h5"))
    assert sorted(m["shards"]) == names and len(names) == 4
    for name in names:
        assert m["shards"][name] == file_sha256((small / name).read_bytes())


def test_edited_spec_is_an_error_not_another_dataset(small, tmp_path):
    folder = _copy(small, tmp_path / "ds")
    body = _raw(folder)
    body["spec"]["seed"] = 6  # a hand edit: regenerate() would now rebuild other channels
    (folder / MANIFEST).write_text(json.dumps(body))
    with pytest.raises(
        ValueError, match=r"dataset.json: the stored spec does not match its 'spec_hash'.*edited"
    ):
        load_dataset(folder)
    with pytest.raises(ValueError, match="spec was edited"):  # the generator refuses it too
        run_generation(_spec(seed=6), folder, scheduler="sync")
    body["spec_hash"] = spec_hash(body["spec"])  # a consistent edit still breaks the manifest's own hash
    (folder / MANIFEST).write_text(json.dumps(body))
    with pytest.raises(ValueError, match=r"dataset.json was modified after it was written"):
        load_dataset(folder)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda b: b.pop("shards"), r"missing fields \['shards'\]"),
        (lambda b: b.update(extra=1), r"unknown fields \['extra'\]"),
        (lambda b: b.update(format=3), r"field 'format' is 3"),
        (lambda b: b.update(format="2"), r"field 'format' is '2'"),
        (lambda b: b.update(spec_hash=7), r"field 'spec_hash' must be 16 hex digits"),
        (lambda b: b.update(spec=[1]), r"field 'spec' must be an object"),
        (lambda b: b.update(cfmimo=None), r"field 'cfmimo' must be a version string"),
    ],
)
def test_manifest_structure_is_validated_field_by_field(small, tmp_path, edit, message):
    folder = _copy(small, tmp_path / "ds")
    body = _raw(folder)
    edit(body)
    (folder / MANIFEST).write_text(json.dumps(body))
    with pytest.raises(ValueError, match=message):
        load_dataset(folder)


def test_manifest_shard_table_entries_are_validated(small, tmp_path):
    folder = _copy(small, tmp_path / "ds")
    body = _raw(folder)
    body["shards"]["K099-L004-0000000.h5"] = "0" * 64  # a group the spec does not have
    write_manifest(folder, body)  # consistently re-hashed: the entry itself must be refused
    with pytest.raises(ValueError, match=r"field 'shards' has an invalid entry 'K099-L004-0000000.h5'"):
        load_dataset(folder)


def test_format_1_folders_are_refused_with_a_regenerate_message(small, tmp_path):
    folder = _copy(small, tmp_path / "ds")
    body = _raw(folder)
    old = {"format": 1, "cfmimo": body["cfmimo"], "spec_hash": body["spec_hash"], "spec": body["spec"]}
    (folder / MANIFEST).write_text(json.dumps(old))
    with pytest.raises(ValueError, match=r"older cfmimo \(dataset format 1.*regenerate it"):
        load_dataset(folder)


def test_garbage_with_a_recorded_checksum_is_an_hdf5_error_naming_the_file(small, tmp_path):
    folder = _copy(small, tmp_path / "ds")
    name = shard_name(3, 4, 0)
    garbage = b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 8
    (folder / name).write_bytes(garbage)
    body = _raw(folder)
    body["shards"][name] = file_sha256(garbage)  # as if the writer had recorded these bytes
    write_manifest(folder, body)
    with pytest.raises(ValueError, match=rf"corrupt shard .*{name}: HDF5 could not read it"):
        load_dataset(folder)


def test_shard_attributes_must_match_the_spec(small, tmp_path):
    other = tmp_path / "other"
    run_generation(_spec(seed=9, sizes=[(3, 4)], samples=4), other, scheduler="sync")
    folder = _copy(small, tmp_path / "ds")
    name = shard_name(3, 4, 0)
    data = (other / name).read_bytes()  # a well-formed shard of another dataset, same name and size
    (folder / name).write_bytes(data)
    body = _raw(folder)
    body["shards"][name] = file_sha256(data)
    write_manifest(folder, body)
    with pytest.raises(
        ValueError, match=rf"shard .*{name}: attribute 'seed' is 9, but the manifest's spec implies 5"
    ):
        load_dataset(folder)


def test_unrecorded_and_missing_shards_are_named(small, tmp_path):
    folder = _copy(small, tmp_path / "ds")
    name = shard_name(5, 2, 4)
    body = _raw(folder)
    del body["shards"][name]
    write_manifest(folder, body)
    with pytest.raises(ValueError, match=rf"shard .*{name} is not recorded in the manifest"):
        load_dataset(folder)
    with pytest.raises(ValueError, match=rf"{name} is not recorded in the manifest"):
        run_generation(_spec(), folder, scheduler="sync")  # never adopted nor overwritten
    (folder / name).unlink()
    with pytest.raises(ValueError, match=rf"missing shard .*{name}"):
        load_dataset(folder)
    assert run_generation(_spec(), folder, scheduler="sync")["new_samples"] == 2
    a, b = load_dataset(folder), load_dataset(small)
    for key in a.groups:
        for k in a.groups[key]:
            assert torch.equal(a.groups[key][k], b.groups[key][k])


@pytest.mark.parametrize(
    ("shard_size", "message"), [(500, "shard files, more than"), (10**7, "missing shard")]
)
def test_a_manifest_claiming_1e12_samples_fails_fast(small, tmp_path, shard_size, message):
    folder = _copy(small, tmp_path / "ds")
    body = _raw(folder)
    body["spec"].update(samples=10**12, shard_size=shard_size)
    body["spec_hash"] = spec_hash(body["spec"])
    body["shards"] = {}
    write_manifest(folder, body)
    for p in folder.glob("K*.h5"):
        p.unlink()
    start = time.perf_counter()
    with pytest.raises(ValueError, match=message):
        load_dataset(folder)
    assert time.perf_counter() - start < 5.0  # no walk over the plan before the first read


def test_lock_refuses_a_second_writer_and_keeps_its_temporaries(tmp_path):
    folder = tmp_path / "ds"
    run_generation(_spec(samples=2), folder, scheduler="sync")
    holder = (
        "import sys, time; from pathlib import Path; from cfmimo.data.storage import dataset_lock\n"
        "with dataset_lock(sys.argv[1]):\n"
        "    (Path(sys.argv[1]) / '.K003-L004-0000000.h5.tmp-live').write_bytes(b'in progress')\n"
        "    print('locked', flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", holder, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(
            ValueError, match=rf"{folder} is being written by another .*held by process {proc.pid}"
        ):
            run_generation(_spec(samples=2), folder, scheduler="sync")
        assert (folder / ".K003-L004-0000000.h5.tmp-live").exists()  # the other writer's file survives
    finally:
        proc.kill()
        proc.wait()
    with dataset_lock(folder):  # released by the OS when its holder died
        pass


def test_two_concurrent_generate_processes(tmp_path):
    """Two real writers into one folder: one finishes the dataset, the other gets the lock error."""
    folder, release = tmp_path / "ds", tmp_path / "release"
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from cfmimo.data.spec import DatasetSpec\nfrom cfmimo.data.generation import run_generation\n"
        "spec = DatasetSpec.model_validate_json(sys.argv[2])\n"
        "def hold(n):  # the winner keeps the lock until the test has seen the loser's answer\n"
        "    deadline = time.time() + 120\n"
        "    while not Path(sys.argv[3]).exists() and time.time() < deadline:\n"
        "        time.sleep(0.02)\n"
        "try:\n"
        "    run_generation(spec, sys.argv[1], scheduler='sync', progress=hold)\n"
        "    print('done')\n"
        "except ValueError as err:\n"
        "    print('refused:', err)\n"
    )
    spec = _spec()
    args = [sys.executable, "-c", code, str(folder), spec.model_dump_json(), str(release)]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    deadline = time.time() + 120
    while all(p.poll() is None for p in procs) and time.time() < deadline:
        time.sleep(0.02)
    release.touch()
    outputs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert sorted(o[:8] for o in outputs) == ["done", "refused:"], outputs
    assert "being written by another" in " ".join(outputs)
    assert not list(folder.glob(".*.tmp-*"))
    reference = tmp_path / "ref"
    run_generation(spec, reference, scheduler="sync")
    a, b = load_dataset(folder), load_dataset(reference)
    for key in b.groups:
        for k in b.groups[key]:
            assert torch.equal(a.groups[key][k], b.groups[key][k])


def test_files_are_fsynced_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", f"{src} -> {dst}"))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    folder = tmp_path / "ds"
    run_generation(_spec(sizes=[(3, 4)], samples=4), folder, scheduler="sync")
    renames = [i for i, e in enumerate(events) if e[0] == "replace"]
    targets = [events[i][1].split(" -> ")[1] for i in renames]
    assert sorted({Path(t).name for t in targets}) == [shard_name(3, 4, 0), MANIFEST]
    for i in renames:
        src = events[i][1].split(" -> ")[0]
        assert events[i - 1] == ("fsync", src)  # the file's bytes are on disk before the rename
        assert events[i + 1] == ("fsync", str(folder))  # and the rename itself after
    # the manifest records the shard's checksum before the shard appears
    assert Path(targets[-1]).name == shard_name(3, 4, 0) and Path(targets[-2]).name == MANIFEST


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_manifest_and_shards_get_the_same_mode(tmp_path, umask):
    old = os.umask(umask)
    try:
        run_generation(_spec(sizes=[(3, 4)], samples=2), tmp_path / "ds", scheduler="sync")
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "ds").iterdir()}
    assert modes == {MANIFEST: 0o666 & ~umask, shard_name(3, 4, 0): 0o666 & ~umask, ".lock": 0o666 & ~umask}


def test_sample_content_is_bitwise_independent_of_shard_size():
    """shard_size 7 vs 60: every array of every sample bit-identical (the batch a sample is computed
    in never changes its numbers), and regenerate() rebuilds the very networks and statistics."""
    arrays: dict[int, dict[tuple[int, int], dict[str, np.ndarray]]] = {}
    for shard_size in (7, 60):
        spec = _spec(sizes=[(3, 4), (6, 9)], samples=60, shard_size=shard_size, seed=1)
        parts: dict[tuple[int, int], list] = {}
        for task in spec.iter_plan():
            parts.setdefault((task.K, task.L), []).append(generate_shard(spec, task))
        arrays[shard_size] = {
            key: {k: np.concatenate([p[k] for p in ps]) for k in ps[0]} for key, ps in parts.items()
        }
    for key in ((3, 4), (6, 9)):
        a, b = arrays[7][key], arrays[60][key]
        assert a.keys() == b.keys() and len(a) == 16
        for name in a:
            assert a[name].shape[0] == 60
            assert np.array_equal(a[name], b[name]), (key, name)
    spec = _spec(sizes=[(3, 4), (6, 9)], samples=60, shard_size=7, seed=1)
    net, state = regenerate(spec, 6, 9, index=33, count=3)
    inst = _power_instance(spec, net, state, 6, 9)
    stored = {k: v[33:36] for k, v in arrays[7][(6, 9)].items()}
    assert np.array_equal(net.gain_db.numpy(), stored["gain_db"])
    assert np.array_equal(inst.uplink.interference.numpy(), stored["ul_interference"])
    assert np.array_equal(inst.downlink.ap_power_share.numpy(), stored["dl_ap_power_share"])


def test_unreachable_scheduler_is_a_bounded_clear_error_without_a_folder(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    folder = tmp_path / "ds"
    start = time.perf_counter()
    with pytest.raises(
        ValueError, match=rf"cannot connect to the Dask scheduler tcp://127.0.0.1:{port} \(timeout 1 s"
    ):
        run_generation(_spec(), folder, scheduler=f"tcp://127.0.0.1:{port}", connect_timeout_s=1)
    assert time.perf_counter() - start < 20
    assert not folder.exists()


def test_a_failed_start_removes_the_folder_it_created(tmp_path, monkeypatch):
    import cfmimo.data.generation as generation

    def broken(*args, **kwargs):
        raise RuntimeError("cluster failed to start")

    monkeypatch.setattr(generation, "_connect", broken)
    with pytest.raises(RuntimeError):
        run_generation(_spec(), tmp_path / "a" / "b" / "ds", scheduler="local")
    assert list(tmp_path.iterdir()) == []  # the folder and the parents it created are gone


def test_non_finite_arrays_are_never_stored(tmp_path, monkeypatch):
    import cfmimo.data.generation as generation

    real = generation.generate_shard

    def with_nan(spec, task):
        arrays = real(spec, task)
        if task.start == 4:
            arrays["p_dl"][1, 0] = np.nan
        return arrays

    monkeypatch.setattr(generation, "generate_shard", with_nan)
    folder = tmp_path / "ds"
    with pytest.raises(
        ValueError, match=r"K003-L004-0000004.h5: p_dl of sample 5 of group \(K=3, L=4\) is not finite"
    ):
        run_generation(_spec(sizes=[(3, 4)]), folder, scheduler="sync")
    assert sorted(read_manifest(folder)["shards"]) == [shard_name(3, 4, 0)]  # the first shard only
    assert not (folder / shard_name(3, 4, 4)).exists()


def test_inspect_json_stays_valid_json_with_non_finite_labels(small, tmp_path):
    from typer.testing import CliRunner

    from cfmimo.cli import app
    from cfmimo.data.storage import encode_shard, read_shard

    folder = _copy(small, tmp_path / "ds")
    name = shard_name(3, 4, 0)
    arrays, attrs = read_shard(folder / name)
    arrays["se_ul"][:] = np.inf  # a file that verifies (as if written so), whose labels are not finite
    data = encode_shard(arrays, {k: v for k, v in attrs.items() if k != "checksum"})
    (folder / name).write_bytes(data)
    body = _raw(folder)
    body["shards"][name] = file_sha256(data)
    write_manifest(folder, body)
    result = CliRunner().invoke(app, ["data", "inspect", str(folder), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output, parse_constant=pytest.fail)  # strict JSON: no NaN/Infinity
    assert summary["groups"]["K=3,L=4"]["se_ul"]["max"] is None
    assert summary["groups"]["K=3,L=4"]["p_ul"]["max"] > 0
