"""Reading arrays from untrusted ``.npz`` files without letting a header decide the allocation.

NumPy allocates the shape a ``.npy`` member's header declares before it reads the data, so a
128-byte member declaring 10^10 values (or a zip bomb of zeros) exhausts memory. :func:`npz_array`
reads the header first and refuses a declared size larger than the member's uncompressed size or
than ``max_bytes``; every error is a ValueError naming the file and the array.
"""

from __future__ import annotations

import math
import os

import numpy as np

__all__ = ["npz_array"]

_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


def npz_array(z: np.lib.npyio.NpzFile, name: str, path: str | os.PathLike, max_bytes: int) -> np.ndarray:
    """``z[name]`` after checking its declared size (see the module docstring)."""
    member = f"{name}.npy"
    if member not in z.zip.namelist():
        raise ValueError(f"{path}: array '{name}' is not a .npy member")
    info = z.zip.getinfo(member)
    try:
        with z.zip.open(member) as f:
            version = np.lib.format.read_magic(f)
            if version not in _HEADER_READERS:
                raise ValueError(f"unsupported .npy version {version}")
            shape, _, dtype = _HEADER_READERS[version](f)
    except ValueError as err:
        raise ValueError(f"{path}: array '{name}' has no valid .npy header: {err}") from None
    size = math.prod(shape) * dtype.itemsize
    if size > max_bytes or size > info.file_size:
        raise ValueError(
            f"{path}: array '{name}' declares shape {shape} ({size} bytes), more than its "
            f"{info.file_size}-byte member or the {max_bytes}-byte limit"
        )
    return z[name]
