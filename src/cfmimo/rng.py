"""Named, independent random streams derived from one seed.

No global RNG state anywhere in cfmimo: every sampling function takes a seed (or generator)
explicitly. A stream is identified by ``(seed, name, index)``, so

* a sample's content depends only on (config, seed, sample index), never on the batch it was
  drawn in, the number of workers or the order of work (DESIGN.md section 3);
* adding a new random step with a new name never changes the numbers of existing steps.

Streams are CPU generators: random numbers are drawn on the CPU and moved to the target device,
so the same seed gives the same tensors on CPU and GPU.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch


def stream_seed(seed: int, name: str, index: int = 0) -> int:
    """A 63-bit seed for stream ``(seed, name, index)``, stable across platforms and versions."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if not isinstance(index, int) or index < 0:
        raise ValueError(f"index must be a non-negative int, got {index!r}")
    digest = hashlib.blake2b(f"{seed}/{name}/{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def stream(seed: int, name: str, index: int = 0) -> torch.Generator:
    """A fresh CPU generator for stream ``(seed, name, index)``."""
    g = torch.Generator(device="cpu")
    g.manual_seed(stream_seed(seed, name, index))
    return g


def sample_indices(first_index: int, batch: int) -> range:
    """The global sample indices of a batch that starts at ``first_index``."""
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    if first_index < 0:
        raise ValueError(f"first_index must be >= 0, got {first_index}")
    return range(first_index, first_index + batch)


def per_sample(
    draw, seed: int, name: str, indices: Sequence[int], *, device: torch.device | str | None = None
) -> torch.Tensor:
    """Stack ``draw(generator)`` over samples, each with its own stream ``(seed, name, index)``.

    The loop runs over samples only to give each its own stream (so results do not depend on
    batch composition); the physics that follows is batched.

    Shapes:
        draw(g) -> [...]; result -> [len(indices), ...] on ``device``.
    """
    out = torch.stack([draw(stream(seed, name, i)) for i in indices])
    return out if device is None else out.to(device)


def complex_normal(
    shape: Sequence[int], generator: torch.Generator, dtype: torch.dtype = torch.complex64
) -> torch.Tensor:
    """i.i.d. CN(0, 1) samples: (randn + j randn)/sqrt(2), real part drawn first.

    Always drawn in float32 and then cast, so float32 and float64 runs see the same realizations
    (torch's randn yields different sequences per dtype).
    """
    x = torch.view_as_complex(torch.randn((*shape, 2), generator=generator, dtype=torch.float32))
    return x.to(dtype) / 2**0.5
