"""Durable, atomic file writes shared by every writer (configs, datasets, interop files).

A file is written to a temporary name in its folder, flushed and fsynced, renamed into place, and the
folder fsynced, so a crash or power loss leaves either the old file or the new one, never a torn
one. Files get mode 0o666 minus the umask (as ``open()`` would), whatever they hold.
"""

from __future__ import annotations

import errno
import os
import uuid
from pathlib import Path


def fsync_dir(folder: str | os.PathLike) -> None:
    """fsync a directory, so a rename inside it survives a power loss (no-op where unsupported)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as err:  # some filesystems refuse fsync on directories
        if err.errno not in (errno.EINVAL, errno.EBADF, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path``: a temporary file in the same folder, fsync, rename, fsync folder."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """UTF-8 text through :func:`atomic_write_bytes`, creating missing parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_bytes(path, text.encode("utf-8"))
