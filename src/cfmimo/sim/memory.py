"""Memory estimates for the statistics path, checked before allocating (issue #16).

``estimate_statistics_bytes`` counts the tensors that ``network_statistics`` (fast MMSE path) and
the channel state it reads hold at their peak, per chunk of realizations; ``statistics_chunk``
picks the largest chunk of realizations that fits a limit; ``check_memory`` raises a ValueError
that names the sizes and the estimate when even the smallest chunk does not fit. The default
limit is the memory the operating system reports as available (``available_memory_bytes``).

The counts are upper bounds of the live working set (tensor payloads, not allocator slack or
the Python process); measured peaks are reported by ``benchmarks/scale.py``.
"""

from __future__ import annotations

import os

import torch

#: Fraction of the available memory the automatic chunking plans to use (room for the rest).
DEFAULT_FRACTION = 0.5


def _address_space_left() -> int | None:
    """Bytes left under this process's address-space limit (``ulimit -v``, RLIMIT_AS), if one is set."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft == resource.RLIM_INFINITY:
            return None
        with open("/proc/self/statm", encoding="ascii") as fh:
            used = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        return max(0, soft - used)
    except (ImportError, OSError, ValueError, AttributeError):
        return None


def available_memory_bytes() -> int:
    """Memory available to new allocations: the smaller of what the system reports (Linux:
    MemAvailable; elsewhere: physical memory) and what is left under an address-space limit."""
    system = _system_memory_bytes()
    capped = _address_space_left()
    return system if capped is None else min(system, capped)


def _system_memory_bytes() -> int:
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def _complex_size(dtype: torch.dtype) -> int:
    if dtype in (torch.float64, torch.complex128):
        return 16
    if dtype in (torch.float32, torch.complex64):
        return 8
    raise TypeError(f"dtype must be float32/float64 or complex64/complex128, got {dtype}")


def estimate_statistics_bytes(
    K: int,
    L: int,
    N: int,
    realizations: int,
    batch: int = 1,
    dtype: torch.dtype = torch.complex64,
    *,
    cluster_aps: int | None = None,
    chunk: int | None = None,
    include_state: bool = True,
) -> int:
    """Peak bytes of the UL/DL UatF statistics of ``batch`` setups (centralized MMSE, fast path).

    Args:
        K, L, N: UEs, APs, antennas per AP.
        realizations: T, the small-scale realizations per setup.
        batch: B, setups processed together.
        dtype: the channels' dtype (float32/complex64 or float64/complex128).
        cluster_aps: the largest number of serving APs of a UE when UEs have different serving
            sets (per-UE clusters, e.g. Q strongest: Q); None for one common set (full cell-free).
        chunk: realizations processed at once (default: all).
        include_state: count the channel state the statistics read (h, h_hat [B, T, L, K, N],
            the estimator/covariance matrices [B, L, K, N, N] x 4) as well.

    Returns:
        An upper bound of the bytes live at the peak.
    """
    for name, value in (("K", K), ("L", L), ("N", N), ("realizations", realizations), ("batch", batch)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    c = _complex_size(dtype)
    t = realizations if chunk is None else max(1, min(chunk, realizations))
    LN = L * N
    total = 0
    if include_state:
        total += 2 * batch * realizations * L * K * N * c  # h, h_hat
        total += 4 * batch * L * K * N * N * c  # R, A, B, C
    rows = batch * t * K * LN * c  # one [B, t, K, LN] tensor
    small = batch * t * K * K * c  # one [B, t, K, K] tensor
    accumulator = 8 * batch * K * K * c + 4 * batch * L * K * c
    if cluster_aps is None or cluster_aps >= L:
        if LN < K:  # direct LN x LN form: S, its LU copy, the solution and the rows
            work = 4 * rows + 3 * batch * t * LN * LN * c + 2 * small
        else:  # Woodbury: rows, X, conj h, V + Gram, inverse, coefficients, cross (+ temporaries)
            work = 5 * rows + 8 * small + batch * LN * LN * c
    else:
        m = max(1, cluster_aps)
        direct = m * N < K
        if direct:
            sub = batch * t * K * (m * N) ** 2 * c  # every UE's principal submatrix
            s = batch * t * ((L + m) * N) ** 2 * c
            work = 5 * rows + 3 * sub + 2 * s + 4 * small
        else:  # per-UE Woodbury: per-AP Grams [B, t, L, K, K] and per-UE [B, t, K, K, K]
            work = 5 * rows + batch * t * (L * K * K + 4 * K * K * K) * c + 4 * small
    return int(total + work + accumulator)


def statistics_chunk(
    K: int,
    L: int,
    N: int,
    realizations: int,
    batch: int = 1,
    dtype: torch.dtype = torch.complex64,
    *,
    cluster_aps: int | None = None,
    limit_bytes: int | None = None,
) -> int:
    """The largest chunk of realizations whose estimated peak stays within ``limit_bytes``.

    Default limit: ``DEFAULT_FRACTION`` of ``available_memory_bytes()``. Raises ValueError (via
    ``check_memory``) when even one realization at a time does not fit.
    """
    limit = int(DEFAULT_FRACTION * available_memory_bytes()) if limit_bytes is None else int(limit_bytes)
    kw = dict(cluster_aps=cluster_aps, include_state=False)  # the state exists already
    one = estimate_statistics_bytes(K, L, N, realizations, batch, dtype, chunk=1, **kw)
    check_memory(
        one, limit, f"UatF statistics (K={K}, L={L}, N={N}, realizations={realizations}, batch={batch})"
    )
    per = estimate_statistics_bytes(K, L, N, realizations, batch, dtype, chunk=2, **kw) - one
    if per <= 0:
        return realizations
    return int(max(1, min(realizations, 1 + (limit - one) // per)))


def check_memory(estimate_bytes: int, limit_bytes: int | None = None, what: str = "allocation") -> None:
    """Raise ValueError naming ``what`` and both sizes if ``estimate_bytes`` exceeds the limit.

    Default limit: ``available_memory_bytes()``.
    """
    limit = available_memory_bytes() if limit_bytes is None else int(limit_bytes)
    if estimate_bytes > limit:
        raise ValueError(
            f"{what} needs an estimated {estimate_bytes / 2**30:.2f} GiB, more than the limit of "
            f"{limit / 2**30:.2f} GiB; reduce the batch, the realizations, K or L (or raise the limit)"
        )


def estimate_network_bytes(K: int, L: int, N: int, batch: int = 1, dtype: torch.dtype = torch.float32) -> int:
    """Upper bound of the peak bytes of ``sample_networks`` for ``batch`` setups: the UE-UE distances
    and shadowing correlation (float64 [B, K, K] and their displacement [B, K, K, 2], the factor of the
    correlation), and the correlation matrices R [B, L, K, N, N] (complex, with their construction)."""
    real = 8  # the layout and shadowing run in float64
    ue_pairs = batch * K * K * real * 6
    correlation = batch * L * K * N * N * _complex_size(dtype) * 3
    links = batch * L * K * real * 8
    return ue_pairs + correlation + links


def check_scenario_memory(
    K: int,
    L: int,
    N: int,
    realizations: int,
    batch: int = 1,
    dtype: torch.dtype = torch.float32,
    *,
    limit_bytes: int | None = None,
) -> int:
    """Check, before anything is allocated, that sampling ``batch`` networks and their statistics fits:
    networks plus the statistics of the smallest realization chunk (the statistics path chunks the
    rest automatically). ValueError naming the sizes and the estimate otherwise; returns the estimate."""
    complex_dtype = torch.complex128 if dtype == torch.float64 else torch.complex64
    estimate = estimate_network_bytes(K, L, N, batch, complex_dtype) + estimate_statistics_bytes(
        K, L, N, max(1, realizations), batch, complex_dtype, chunk=1
    )
    check_memory(
        estimate,
        limit_bytes,
        what=f"sampling {batch} setup(s) with K = {K} UEs, L = {L} APs, N = {N} antennas, "
        f"{realizations} realizations",
    )
    return estimate
