"""Atomic, durable writes (cfmimo.fileio), used by configs, datasets and interop files."""

from __future__ import annotations

import os
import stat

import pytest

from cfmimo.config import atomic_write_text as config_write
from cfmimo.fileio import atomic_write_bytes, atomic_write_text


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_mode_follows_the_umask_like_open(tmp_path, umask):
    old = os.umask(umask)
    try:
        config_write(tmp_path / "a" / "train.yaml", "x: 1\n")
        with open(tmp_path / "ref.txt", "w") as f:
            f.write("x")
    finally:
        os.umask(old)
    got = stat.S_IMODE((tmp_path / "a" / "train.yaml").stat().st_mode)
    assert got == stat.S_IMODE((tmp_path / "ref.txt").stat().st_mode) == 0o666 & ~umask
    assert (tmp_path / "a" / "train.yaml").read_text() == "x: 1\n"


def test_file_and_folder_are_fsynced_around_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(
        os,
        "fsync",
        lambda fd: (events.append(("fsync", os.path.isdir(f"/proc/self/fd/{fd}"))), real_fsync(fd)),
    )
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append(("replace", None)), real_replace(a, b)))
    atomic_write_text(tmp_path / "m.json", "{}")
    assert events == [("fsync", False), ("replace", None), ("fsync", True)]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "f.bin"
    atomic_write_bytes(target, b"old")

    def fail(a, b):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]
