"""Batched solves of small Hermitian positive-definite (HPD) systems in torch, without LAPACK.

``torch.linalg.solve`` on a CPU batch of small matrices makes one LAPACK call per matrix, and
each call costs far more than its arithmetic (a 32 x 32 complex LU: ~11k complex MACs, measured
~10 us per matrix, ~1 GFLOP/s). Here the elimination is vectorized ACROSS the batch instead:

* recursive block Gaussian elimination without pivoting on the augmented matrix [A | B]
  (block LDL^H: exact for HPD A, whose Schur complements are HPD): split A = [[A11, A12],
  [A21, A22]], solve the top block row A11 [R | Y1] = [A12 | B1] recursively, form the Schur
  complement and right-hand side [A22 - A21 R | B2 - A21 Y1] with one ``torch.bmm``, solve it
  recursively for X2, then X1 = Y1 - R X2 (one more ``bmm``);
* leaves (at most ``LEAF`` x ``LEAF``) are inverted in place by Gauss-Jordan with explicit
  elementwise formulas over the whole batch, and applied to their block row with one ``bmm``;
* the batch is processed in chunks small enough to stay in the CPU caches.

The arithmetic is that of an LU without pivoting (n^3/3 complex MACs for one right-hand side);
in float64 it agrees with ``torch.linalg.solve`` to ~1e-15 relative on well-conditioned HPD
matrices (tests/sim/test_hpd_solve.py).

Non-HPD input: without pivoting a Hermitian matrix is positive definite exactly when every
pivot is real and positive. The reciprocal pivots are recorded; a matrix with a pivot whose real
part is not > 0, or with a non-finite pivot or solution, is reported (``solve_augmented_``) or
re-solved with ``torch.linalg.solve_ex`` (LU with partial pivoting; ``hpd_solve``), so the
result for such matrices is LAPACK's.

Speed (docs/benchmarks.md, "Simulator and solver speed"): on a 2-core AMD EPYC under load,
1 thread, 32 x 32 complex64, this is about as fast as the batched LAPACK LU (within +-10 %),
not faster: every torch operation costs ~5-10 us of dispatch, so a chunk must hold hundreds of
matrices to amortize the ~300 operations of one elimination, and then it no longer fits the
L2 cache. It is therefore NOT the default of the statistics path (``combining._direct_rows``
uses LAPACK unless ``combining.DIRECT_SOLVER = "torch"``); it is kept as the measured bound of
what plain torch does here. It runs on any device torch supports (not measured on a GPU).
"""

from __future__ import annotations

import torch

LEAF = 8  # largest block inverted by elementwise Gauss-Jordan (an AP pair at N = 4)
CHUNK = 512  # matrices per chunk: ~4 MiB of complex64 32 x 33 augmented matrices


class _Workspace:
    """Scratch buffers reused across the chunks of one solve (no allocation per operation)."""

    def __init__(self, chunk: int, dtype: torch.dtype, device: torch.device) -> None:
        self.chunk, self.dtype, self.device = chunk, dtype, device
        self._bufs: dict[tuple[str, int, int], torch.Tensor] = {}

    def get(self, role: str, rows: int, cols: int, c: int) -> torch.Tensor:
        """A [c, rows, cols] buffer; distinct roles never share memory (a leaf and its product)."""
        key = (role, rows, cols)
        if key not in self._bufs:
            self._bufs[key] = torch.empty(self.chunk, rows, cols, dtype=self.dtype, device=self.device)
        return self._bufs[key][:c]


def _invert_leaf_(d: torch.Tensor, rpiv: torch.Tensor) -> None:
    """In-place Gauss-Jordan inversion of each d[i] without pivoting; rpiv <- 1 / pivots.

    One pivot step, for pivot i with p = 1 / d[i, i] (all ops over the batch):
        row' = d[i, :] p with row'[i] = p;   col' = d[:, i] with col'[i] = -1;
        d <- d with row i and column i zeroed, minus col' row'^T.
    This gives d[r, j] - d[r, i] d[i, j] p off row/column i, d[i, j] p on row i, -d[r, i] p on
    column i and p at (i, i): the classic in-place inversion step.

    Shapes:
        d [c, k, k] contiguous, rpiv [c, k] (view, written).
    """
    k = d.shape[-1]
    unit = torch.eye(k, dtype=d.dtype, device=d.device)
    for i in range(k):
        p = torch.reciprocal(d[:, i, i], out=rpiv[:, i])
        d[:, i, i] = 1
        row = d[:, i, :] * p[:, None]  # [c, k], row[i] = p
        d[:, i, i] = 0
        col = d[:, :, i] - unit[i]  # [c, k], col[i] = -1
        d[:, i, :] = 0
        d[:, :, i] = 0
        d.addcmul_(col[:, :, None], row[:, None, :], value=-1)


def _eliminate_(m: torch.Tensor, n: int, rpiv: torch.Tensor, work: _Workspace) -> None:
    """Solve A X = B in place for m = [A | B]: afterwards m[:, :, n:] holds X (A is overwritten).

    Shapes:
        m [c, n, w] (a view of a contiguous [c, n0, w0] buffer, unit column stride), w > n,
        rpiv [c, n] (view, receives the reciprocal pivots).
    """
    c, _, w = m.shape
    if n <= LEAF:
        d = work.get("leaf", n, n, c)
        d.copy_(m[:, :, :n])
        _invert_leaf_(d, rpiv)
        tmp = work.get("product", n, w - n, c)
        torch.bmm(d, m[:, :, n:], out=tmp)
        m[:, :, n:].copy_(tmp)
        return
    h = n // 2
    _eliminate_(m[:, :h], h, rpiv[:, :h], work)  # top block row -> [*, A11^-1 A12 | A11^-1 B1]
    tmp = work.get("product", n - h, w - h, c)
    torch.bmm(m[:, h:, :h], m[:, :h, h:], out=tmp)
    m[:, h:, h:].sub_(tmp)  # [A22 - A21 R | B2 - A21 Y1]
    _eliminate_(m[:, h:, h:], n - h, rpiv[:, h:], work)  # -> X2
    tmp = work.get("product", h, w - n, c)
    torch.bmm(m[:, :h, h:n], m[:, h:, n:], out=tmp)
    m[:, :h, n:].sub_(tmp)  # X1 = Y1 - R X2


def solve_augmented_(m: torch.Tensor, n: int, *, work: _Workspace | None = None) -> torch.Tensor:
    """Solve A X = B for a batch of augmented matrices m = [A | B] in place (A HPD).

    Afterwards ``m[:, :, n:]`` holds X; A's part is overwritten. Returns ``ok`` [c] bool: False
    where a pivot was not real-positive or a pivot or the solution is not finite (A not HPD,
    or too ill-conditioned for elimination without pivoting); those rows of X are not
    meaningful and must be solved another way (``hpd_solve`` falls back to LAPACK).

    Shapes:
        m [c, n, n + r] contiguous complex or real -> ok [c].
    """
    if m.dim() != 3 or m.shape[1] != n or m.shape[2] <= n:
        raise ValueError(f"m must be [c, n, n + r] with n = {n}, r >= 1; got {tuple(m.shape)}")
    if not m.is_contiguous():
        raise ValueError("m must be contiguous (it is solved in place)")
    c = m.shape[0]
    if work is None:
        work = _Workspace(c, m.dtype, m.device)
    rpiv = torch.empty(c, n, dtype=m.dtype, device=m.device)
    _eliminate_(m, n, rpiv, work)
    positive = (rpiv.real > 0).all(dim=1)
    if rpiv.is_complex():
        positive = positive & torch.isfinite(rpiv.imag).all(dim=1)
    return positive & torch.isfinite(m[:, :, n:]).flatten(1).all(dim=1)


def hpd_solve(a: torch.Tensor, b: torch.Tensor, *, chunk: int = CHUNK) -> torch.Tensor:
    """Solve a x = b for a batch of HPD matrices, vectorized across the batch (module docstring).

    Matrices that turn out not to be HPD (see ``solve_augmented_``) are re-solved with
    ``torch.linalg.solve_ex``. Works for any n >= 1 and real or complex dtypes.

    Shapes:
        a [..., n, n], b [..., n, r] (same leading dims) -> x [..., n, r].
    """
    if a.dim() < 2 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"a must be [..., n, n], got {tuple(a.shape)}")
    n = a.shape[-1]
    if b.dim() != a.dim() or b.shape[:-1] != a.shape[:-1]:
        raise ValueError(f"b must be [..., n, r] matching a {tuple(a.shape)}, got {tuple(b.shape)}")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    lead, r = a.shape[:-2], b.shape[-1]
    dtype = torch.promote_types(a.dtype, b.dtype)
    a3 = a.reshape(-1, n, n).to(dtype)
    b3 = b.reshape(-1, n, r).to(dtype)
    total = a3.shape[0]
    x = torch.empty(total, n, r, dtype=dtype, device=a.device)
    if total == 0 or r == 0:
        return x.view(*lead, n, r)
    size = min(chunk, total)
    work = _Workspace(size, dtype, a.device)
    buf = torch.empty(size, n, n + r, dtype=dtype, device=a.device)
    bad = []
    for start in range(0, total, size):
        stop = min(start + size, total)
        m = buf[: stop - start]
        m[:, :, :n].copy_(a3[start:stop])
        m[:, :, n:].copy_(b3[start:stop])
        ok = solve_augmented_(m, n, work=work)
        x[start:stop] = m[:, :, n:]
        if not bool(ok.all()):
            bad.append(start + (~ok).nonzero().squeeze(1))
    if bad:
        idx = torch.cat(bad)
        x[idx] = torch.linalg.solve_ex(a3[idx], b3[idx])[0]
    return x.view(*lead, n, r)
