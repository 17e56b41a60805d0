"""Centralized UL combiners over each UE's serving APs (book Section 5.1), batched.

With D_k the serving mask of UE k, p the UL powers the combiners are designed for and
Z_l = sum_i p_i C_il + I (block-diagonal over APs, the same for every realization):

  * MMSE   (book eq. (5.11)):  v_k = p_k (sum_i p_i D_k hhat_i hhat_i^H D_k + D_k Z D_k)^+ D_k hhat_k
  * P-MMSE (book eq. (5.16)):  the same with both sums only over P_k = {i : D_k D_i != 0}
  * P-RZF  (book eq. (5.18)):  P-MMSE without the error covariances (Z = I)
  * MR     (book eq. (5.14)):  v_k = D_k hhat_k

Structure used (DESIGN.md section 6): by the Woodbury identity, with X_l = Z_l^(-1) Hhat_l and
G^(k) = sum_{l in M_k} Hhat_l^H X_l (K x K),

    v_k = X P^(1/2) (I + P^(1/2) G^(k) P^(1/2))^(-1) P^(1/2) e_k,

restricted to UE k's APs. Only N x N inverses per AP and setup and K x K solves per realization
are needed instead of one (LN) x (LN) solve. When all UEs share the same serving set (e.g. all
APs serve all UEs), G^(k) does not depend on k and one K x K inverse per realization serves all
UEs: this fast path is taken per setup automatically.
"""

from __future__ import annotations

import torch

COMBINERS = ("mmse", "pmmse", "przf", "mr")


def _check(
    h_hat: torch.Tensor, error_cov: torch.Tensor, serving: torch.Tensor, ul_power: torch.Tensor
) -> None:
    if h_hat.dim() != 5 or not h_hat.is_complex():
        raise ValueError(f"h_hat must be complex [B, T, L, K, N], got {tuple(h_hat.shape)} {h_hat.dtype}")
    batch, _, L, K, N = h_hat.shape
    if error_cov.shape != (batch, L, K, N, N):
        raise ValueError(
            f"error_cov must be [B, L, K, N, N] = {(batch, L, K, N, N)}, got {tuple(error_cov.shape)}"
        )
    if serving.shape != (batch, L, K):
        raise ValueError(f"serving must be [B, L, K] = {(batch, L, K)}, got {tuple(serving.shape)}")
    if ul_power.shape != (batch, K):
        raise ValueError(f"ul_power must be [B, K] = {(batch, K)}, got {tuple(ul_power.shape)}")


def _real_masked_sum(mask: torch.Tensor, per_ap: torch.Tensor) -> torch.Tensor:
    """sum_l mask[b, l, k] per_ap[b, t, l, ...] as one real matmul (complex x bool is slow on CPU).

    Shapes:
        mask [B, L, K], per_ap complex [B, T, L, *S] -> [B, T, K, *S].
    """
    batch, T, L = per_ap.shape[:3]
    rest = per_ap.shape[3:]
    flat = torch.view_as_real(per_ap).movedim(2, 1).reshape(batch, L, -1)  # [B, L, T*S*2]
    out = mask.transpose(1, 2).to(flat.dtype) @ flat  # [B, K, T*S*2]
    out = out.reshape(batch, -1, T, *rest, 2).movedim(1, 2)  # [B, T, K, *S, 2]
    return torch.view_as_complex(out.contiguous())


def _unit_columns(K: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return torch.eye(K, dtype=dtype, device=device)[..., None]  # [K, K, 1]: e_k per UE k


def _woodbury_shared(x: torch.Tensor, h_hat: torch.Tensor, sqrt_p: torch.Tensor) -> torch.Tensor:
    """Coefficients when every UE has the same serving set (here: all APs; X, hhat pre-masked).

    Shapes:
        x, h_hat [B, T, L, K, N], sqrt_p [B, K] -> coefficients [B, T, K(j), K(k)].
    """
    gram = torch.einsum("btlin,btljn->btij", h_hat.conj(), x)  # [B, T, K, K]
    s = sqrt_p[:, None, :, None] * gram * sqrt_p[:, None, None, :]
    s = s + torch.eye(s.shape[-1], dtype=s.dtype, device=s.device)
    inv = torch.linalg.inv(s)  # one K x K inverse per realization serves every UE
    return sqrt_p[:, None, :, None] * inv * sqrt_p[:, None, None, :]


def _woodbury_per_ue(gram_k: torch.Tensor, sqrt_p_k: torch.Tensor, sqrt_p_own: torch.Tensor) -> torch.Tensor:
    """Coefficients c_k = sqrt(P_k) (I + sqrt(P_k) G^(k) sqrt(P_k))^(-1) e_k sqrt(p_k), per UE.

    Shapes:
        gram_k [B, T, K(k), K, K], sqrt_p_k [B, K(k), K] (powers of the UEs in UE k's sums),
        sqrt_p_own [B, K] -> coefficients [B, T, K(j), K(k)].
    """
    K = gram_k.shape[-1]
    sp = sqrt_p_k[:, None]  # [B, 1, K(k), K]
    s = sp[..., :, None] * gram_k * sp[..., None, :] + torch.eye(K, dtype=gram_k.dtype, device=gram_k.device)
    sol = torch.linalg.solve(s, _unit_columns(K, gram_k.dtype, gram_k.device)).squeeze(
        -1
    )  # [B, T, K(k), K(j)]
    coeff = sp * sol * sqrt_p_own[:, None, :, None]
    return coeff.transpose(-1, -2)


def mmse_combiners(
    h_hat: torch.Tensor,
    error_cov: torch.Tensor,
    serving: torch.Tensor,
    ul_power: torch.Tensor,
    *,
    method: str = "fast",
) -> torch.Tensor:
    """Centralized MMSE combiners (book eq. (5.11)) via the Woodbury form (module docstring).

    ``method="fast"`` (default) takes the row-layout path of ``mmse_combiner_rows`` (per UE the
    cheaper exact form); ``method="reference"`` is the original implementation, kept for tests and
    benchmarks. Both give the same combiners (float64 agreement ~1e-13).

    Shapes:
        h_hat [B, T, L, K, N], error_cov [B, L, K, N, N], serving [B, L, K] bool, ul_power [B, K]
        -> v [B, T, L, K, N], zero on links outside each UE's serving set.
    """
    _check(h_hat, error_cov, serving, ul_power)
    if method == "fast":
        rows = mmse_combiner_rows(_rows(h_hat), error_cov, serving, ul_power)  # [B, T, K, L*N]
        return rows.view(*h_hat.shape[:2], h_hat.shape[3], *h_hat.shape[2:3], h_hat.shape[4]).transpose(2, 3)
    if method != "reference":
        raise ValueError(f"method must be 'fast' or 'reference', got {method!r}")
    return _mmse_combiners_reference(h_hat, error_cov, serving, ul_power)


def _mmse_combiners_reference(
    h_hat: torch.Tensor, error_cov: torch.Tensor, serving: torch.Tensor, ul_power: torch.Tensor
) -> torch.Tensor:
    """The original batched Woodbury implementation (reference path of ``mmse_combiners``)."""
    cdtype = h_hat.dtype
    p = ul_power.to(h_hat.real.dtype)
    eye = torch.eye(h_hat.shape[-1], dtype=cdtype, device=h_hat.device)
    z = torch.einsum("bk,blknm->blnm", p.to(cdtype), error_cov) + eye  # [B, L, N, N]
    x = torch.einsum("blnm,btlkm->btlkn", torch.linalg.inv(z), h_hat)  # [B, T, L, K, N]
    sqrt_p = p.sqrt().to(cdtype)
    shared = serving.all(dim=2) | ~serving.any(dim=2)  # [B, L]: AP serves all UEs or none
    same_sets = shared.all(dim=1)  # [B]: every UE has the same serving set
    coeff = torch.empty(*h_hat.shape[:2], h_hat.shape[3], h_hat.shape[3], dtype=cdtype, device=h_hat.device)
    fast = same_sets.nonzero().squeeze(1)
    slow = (~same_sets).nonzero().squeeze(1)
    if fast.numel():
        keep = serving[fast].any(dim=2)[:, None, :, None, None].to(cdtype)  # [b, 1, L, 1, 1]
        coeff[fast] = _woodbury_shared(x[fast] * keep, h_hat[fast], sqrt_p[fast])
    if slow.numel():
        gram = torch.einsum("btlin,btljn->btlij", h_hat[slow].conj(), x[slow])  # [b, T, L, K, K]
        gram_k = _real_masked_sum(serving[slow], gram)  # [b, T, K(k), K, K]
        sp = sqrt_p[slow]
        coeff[slow] = _woodbury_per_ue(gram_k, sp[:, None, :].expand(-1, sp.shape[1], -1), sp)
    v = torch.einsum("btljn,btjk->btlkn", x, coeff)
    return v * serving[:, None, :, :, None]


def _rows(x: torch.Tensor, *, conj: bool = False) -> torch.Tensor:
    """[B, T, L, K, N] -> row layout [B, T, K, L*N] (one copy): UE k's stacked channel is a row.

    In this layout every product below is a plain batched matmul on contiguous blocks (no layout
    copies around einsum). ``conj=True`` stores the complex conjugate in the same single pass.
    """
    b, t, L, K, N = x.shape
    out = torch.empty(b, t, K, L, N, dtype=x.dtype, device=x.device)
    out.copy_((x.conj() if conj else x).transpose(2, 3))  # conj resolved inside the copy
    return out.view(b, t, K, L * N)


def bmm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Batched matmul over all leading dims as one 3-D ``torch.bmm`` (no broadcasting).

    torch.matmul on 4-D operands with a conjugated or transposed view can materialize a copy of
    the operand first; bmm on 3-D views passes the transpose/conjugation to BLAS (measured with
    torch.profiler: no aten::copy_ for ``bmm(a.conj(), b.mT)``).

    Shapes:
        a [..., n, k], b [..., k, m] (same leading dims) -> [..., n, m].
    """
    lead = a.shape[:-2]
    out = torch.bmm(a.reshape(-1, *a.shape[-2:]), b.reshape(-1, *b.shape[-2:]))
    return out.view(*lead, *out.shape[-2:])


def _z_matrix(error_cov: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Z_l = sum_i p_i C_il + I (realization independent). Shapes: -> [B, L, N, N]."""
    n = error_cov.shape[-1]
    z = torch.einsum("bk,blknm->blnm", p.to(error_cov.dtype), error_cov)  # [B, L, N, N]
    return z + torch.eye(n, dtype=z.dtype, device=z.device)


def _apply_per_ap(rows: torch.Tensor, mats: torch.Tensor) -> torch.Tensor:
    """Row layout per-AP products: out[b, t, k, l, :] = mats[b, l] @ rows[b, t, k, l, :].

    One batched matmul over (b, l) with (t, k) as matrix rows, read in place (strided).

    Shapes:
        rows [B, T, K, L*N], mats [B, L, N, N] -> [B, T, K, L*N].
    """
    b, t, K, _ = rows.shape
    L, N = mats.shape[1], mats.shape[-1]
    if L <= 32:
        # One block-diagonal (LN x LN) matmul per setup: L times the flops of the per-AP products,
        # but large contiguous GEMMs beat the strided (t, k)-row products and their copies for
        # the usual L (measured 2x at L = 16, N = 4, K = 10, T = 100, B = 64).
        bd = torch.zeros(b, L, N, L, N, dtype=mats.dtype, device=mats.device)
        ar = torch.arange(L, device=mats.device)
        bd[:, ar, :, ar, :] = mats.transpose(0, 1)  # [L, b, N, N] -> diagonal blocks
        bd = bd.view(b, L * N, L * N)
        return torch.matmul(rows.reshape(b, t * K, L * N), bd.mT).view(b, t, K, L * N)
    out = torch.empty_like(rows)
    torch.matmul(
        rows.reshape(b, t * K, L, N).transpose(1, 2), mats.mT, out=out.view(b, t * K, L, N).transpose(1, 2)
    )
    return out


def _shared_rows(hr: torch.Tensor, xr: torch.Tensor, sqrt_p: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Combiner rows when every UE is served by the same APs (``xr``, ``hr`` zero elsewhere).

    V = P (I + P^(1/2) G P^(1/2))^(-1)-weighted rows of X, G = Hhat^H X (module docstring):
    with S = P^(1/2) G P^(1/2) + I, row k of V is sum_j sqrt(p_j) [S^(-1)]_jk sqrt(p_k) x_j.

    Shapes:
        hr, xr [b, T, K, LN] (row layout), sqrt_p [b, K] real, p [b, K] -> v rows [b, T, K, LN].
    """
    K = hr.shape[2]
    sp = sqrt_p.to(hr.dtype)
    gram = bmm(hr.conj(), xr.mT)  # [b, T, K(i), K(j)] = hhat_i^H x_j
    s = sp[:, None, :, None] * gram * sp[:, None, None, :]
    s = s + torch.eye(K, dtype=s.dtype, device=s.device)
    inv = torch.linalg.inv(s)  # [b, T, K, K]: one inverse per realization serves every UE
    coeff = sp[:, None, :, None] * inv * sp[:, None, None, :]  # [b, T, K(j), K(k)]
    return bmm(coeff.mT, xr)  # row k = sum_j coeff[j, k] x_j


def _shared_direct_rows(hr: torch.Tensor, z: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Book eq. (5.11) directly when every UE has the same serving APs and K > LN:

        v_k = p_k S^(-1) hhat_k,  S = sum_i p_i hhat_i hhat_i^H + blkdiag(Z),

    one LN x LN solve with K right-hand sides per realization (instead of a K x K inverse).
    APs outside the common set must have zero rows in ``hr``: S is block-diagonal there and
    the combiners vanish on them.

    Shapes:
        hr [b, T, K, LN], z [b, L, N, N], p [b, K] real -> v rows [b, T, K, LN].
    """
    b, t, K, LN = hr.shape
    L, N = z.shape[1], z.shape[-1]
    s = bmm((hr * p.to(hr.dtype)[:, None, :, None]).mT, hr.conj())  # [b, T, LN, LN]
    blocks = s.view(b, t, L, N, L, N).diagonal(dim1=2, dim2=4)  # [b, T, N, N, L]
    blocks += z.permute(0, 2, 3, 1)[:, None]
    y = _solve(s.reshape(b * t, LN, LN), hr.reshape(b * t, K, LN).mT)  # [bT, LN, K]
    return (y.mT.reshape(b, t, K, LN) * p.to(hr.dtype)[:, None, :, None]).contiguous()


def _served_aps(serving: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per UE, its serving APs first (in AP order), padded with its non-serving APs.

    Shapes:
        serving [b, L, K] -> (index [b, K, m] long, valid [b, K, m] bool), m = largest cluster.
    """
    count = serving.sum(1)  # [b, K]
    m = max(int(count.max()), 1)
    order = torch.sort((~serving).to(torch.uint8), dim=1, stable=True).indices  # [b, L, K]
    index = order[:, :m].transpose(1, 2).contiguous()  # [b, K, m]: distinct APs per UE
    valid = torch.arange(m, device=serving.device) < count[..., None]
    return index, valid


DIRECT_SOLVER = "lapack"  # per-UE solves of _direct_rows: "lapack" (solve_ex) or "torch" (hpd_solve)
DIRECT_CHUNK = 512  # per-UE systems per chunk of _direct_rows (cache-resident gather, solve, scatter)


def _direct_rows(
    hr: torch.Tensor,
    z: torch.Tensor,
    serving: torch.Tensor,
    p: torch.Tensor,
    *,
    solver: str | None = None,
    chunk: int | None = None,
) -> torch.Tensor:
    """Per-UE direct form over the served antennas (book eq. (5.11) restricted to M_k):

        v_k[M_k] = p_k (S[M_k, M_k])^(-1) hhat_k[M_k],  S = sum_i p_i hhat_i hhat_i^H + blkdiag(Z),

    S shared by all UEs of a realization; each UE solves one (|M_k| N) x (|M_k| N) system. Clusters
    smaller than the largest are padded with an identity block and a zero right-hand side, which
    leaves the solution exact and zero there.

    The systems are built, solved and scattered back in chunks of ``chunk`` (default
    ``DIRECT_CHUNK``) UE systems, so the gathered submatrices (and LAPACK's copy of them) stay in
    the CPU caches instead of streaming [B, T, K, mN, mN] tensors through memory (measured 1.3x
    for the whole Q = 8 statistics, docs/benchmarks.md). ``solver`` (default ``DIRECT_SOLVER``):
    "lapack" solves with ``torch.linalg.solve_ex`` (LU, one LAPACK call per system); "torch"
    with ``cfmimo.sim.hpd_solve`` (batched block elimination in torch; exact, not faster on CPU).
    With several intra-op threads the chunks are spread over threads (LAPACK batches run one
    matrix after another on one thread). Off the CPU the default chunk is one whole setup.

    Shapes:
        hr [b, T, K, LN] row layout, z [b, L, N, N] (Z itself), serving [b, L, K], p [b, K] real
        -> v rows [b, T, K, LN] (zero outside each UE's serving APs).
    """
    solver = DIRECT_SOLVER if solver is None else solver
    if solver not in ("lapack", "torch"):
        raise ValueError(f"solver must be 'lapack' or 'torch', got {solver!r}")
    if chunk is None:  # on a GPU the batched solvers want large batches: one setup at a time
        chunk = DIRECT_CHUNK if hr.device.type == "cpu" else hr.shape[1] * hr.shape[2]
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    b, t, K, LN = hr.shape
    L, N = z.shape[1], z.shape[-1]
    index, valid = _served_aps(serving)  # [b, K, m]
    m = index.shape[-1]
    n = m * N
    padded = not bool(valid.all())
    # source per realization: [S | Hhat^T], [size, size + K]. S = sum_i p_i hhat_i hhat_i^H +
    # blkdiag(Z); with padding, m dummy APs L..L+m-1 follow with an identity block each (slot j
    # of a UE pads with dummy AP L + j, so the padded rows stay distinct and the system
    # block-diagonal) and zero hhat. Column size + k is UE k's right-hand side hhat_k.
    size = (L + m) * N if padded else LN
    width = size + K
    pc = p.to(hr.dtype)
    src = hr.new_zeros(b, t, size, width)
    # (a contiguous product, then copied: bmm into the strided view loops per matrix with 2 threads)
    src[:, :, :LN, :LN] = torch.matmul((hr * pc[:, None, :, None]).mT, hr.conj())
    if padded:
        src[:, :, LN:size, LN:size] = torch.eye(m * N, dtype=src.dtype, device=src.device)
        slot = torch.arange(L, L + m, device=hr.device).expand_as(index)
        index = torch.where(valid, index, slot)
    blocks = src[:, :, :size, :size].unflatten(2, (size // N, N)).unflatten(4, (size // N, N))
    blocks.diagonal(dim1=2, dim2=4)[..., :L] += z.permute(0, 2, 3, 1)[:, None]  # [b, T, N, N, L]
    src[:, :, :LN, size:] = hr.mT
    rows = (index[..., None] * N + torch.arange(N, device=hr.device)).reshape(b, K, n)  # [b, K, mN]
    ue = torch.arange(K, device=hr.device)[None, :, None]
    # flat element indices into one realization's source, per setup
    flat_a = (rows[..., None, :] * width + rows[..., :, None]).reshape(b, K * n * n)  # column-major A
    flat_b = (rows * width + size + ue).reshape(b, K * n)  # right-hand sides
    cols = torch.cat([rows, (size + ue).expand(b, K, 1)], dim=-1)  # [b, K, mN + 1]
    flat_m = (rows[..., :, None] * width + cols[..., None, :]).reshape(b, K * n * (n + 1))  # [A | hhat_k]
    out = hr.new_zeros(b, t, K, size)
    per = max(1, chunk // K)  # realizations per chunk
    jobs = [(i, s0, min(s0 + per, t)) for i in range(b) for s0 in range(0, t, per)]

    def run(part: list[tuple[int, int, int]]) -> None:
        from cfmimo.sim.hpd_solve import _Workspace, solve_augmented_

        work = _Workspace(per * K, hr.dtype, hr.device) if solver == "torch" else None
        for i, s0, s1 in part:
            tt = s1 - s0
            flat = src[i, s0:s1].reshape(tt, size * width)
            if solver == "torch":
                aug = torch.gather(flat, 1, flat_m[i].expand(tt, -1)).view(tt * K, n, n + 1)
                ok = solve_augmented_(aug, n, work=work)
                x = aug[:, :, n]
                if not bool(ok.all()):  # not HPD to working precision: LAPACK (LU, pivoting)
                    a = torch.gather(flat, 1, flat_a[i].expand(tt, -1)).view(tt * K, n, n).mT
                    rhs = torch.gather(flat, 1, flat_b[i].expand(tt, -1)).view(tt * K, n, 1)
                    bad = (~ok).nonzero().squeeze(1)
                    x = x.clone()
                    x[bad] = torch.linalg.solve_ex(a[bad], rhs[bad])[0].squeeze(-1)
            else:
                # gathered transposed (column-major), the layout LAPACK factorizes in
                a = torch.gather(flat, 1, flat_a[i].expand(tt, -1)).view(tt * K, n, n).mT
                rhs = torch.gather(flat, 1, flat_b[i].expand(tt, -1)).view(tt * K, n, 1)
                x = torch.linalg.solve_ex(a, rhs)[0]
            out[i, s0:s1].scatter_(2, rows[i].expand(tt, K, n), x.reshape(tt, K, n))

    threads = torch.get_num_threads()
    if hr.device.type != "cpu" or threads < 2 or len(jobs) < 2:
        run(jobs)
    else:
        from concurrent.futures import ThreadPoolExecutor

        parts = [jobs[j::threads] for j in range(threads)]
        # grad and inference modes are thread-local: the workers run in the caller's, or writing
        # into ``out`` (an inference tensor under torch.inference_mode) fails in a worker
        inference, grad = torch.is_inference_mode_enabled(), torch.is_grad_enabled()

        def run_in_mode(part: list[tuple[int, int, int]]) -> None:
            with torch.inference_mode(inference), torch.set_grad_enabled(grad):
                run(part)

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(run_in_mode, parts))
    out *= pc[:, None, :, None]
    return out[..., :LN] if padded else out


def _solve(a: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """Batched solve a x = rhs, split over the intra-op threads.

    Batched LAPACK solves on the CPU run one matrix after another on one thread; running the
    pieces of the batch in parallel threads (the GIL is released inside torch) uses every core.

    Shapes:
        a [..., n, n], rhs [..., n, r] -> [..., n, r].
    """
    threads = torch.get_num_threads()
    if a.device.type != "cpu" or threads < 2 or a.shape[0] < threads:
        return torch.linalg.solve_ex(a, rhs)[0]
    from concurrent.futures import ThreadPoolExecutor

    parts = list(zip(a.chunk(threads), rhs.chunk(threads), strict=True))
    with ThreadPoolExecutor(len(parts)) as pool:
        outs = list(pool.map(lambda ar: torch.linalg.solve_ex(*ar)[0], parts))
    return torch.cat(outs)


def _woodbury_rows(
    hr: torch.Tensor, xr: torch.Tensor, serving: torch.Tensor, sqrt_p: torch.Tensor
) -> torch.Tensor:
    """Per-UE Woodbury form (K x K solve per UE): v_k = X_{M_k} P^(1/2) (I + P^(1/2) G^(k) P^(1/2))^(-1)
    P^(1/2) e_k p_k^(1/2), G^(k) = sum_{l in M_k} Hhat_l^H X_l.

    Shapes:
        hr, xr [b, T, K, LN], serving [b, L, K], sqrt_p [b, K] real -> v rows [b, T, K, LN].
    """
    b, t, K, LN = hr.shape
    L = serving.shape[1]
    N = LN // L
    # per-AP Gram matrices G_l[i, j] = hhat_li^H x_lj: [b, T, L, K, K]
    hl = hr.view(b, t, K, L, N).transpose(2, 3)
    xl = xr.view(b, t, K, L, N).transpose(2, 3)
    gram = torch.matmul(hl.conj(), xl.mT)  # [b, T, L, K, K]
    gram_k = _real_masked_sum(serving, gram)  # [b, T, K(k), K, K]
    sp = sqrt_p.to(hr.dtype)
    coeff = _woodbury_per_ue(gram_k, sp[:, None, :].expand(-1, K, -1), sp)  # [b, T, K(j), K(k)]
    # row k = sum_j coeff[j, k] x_j restricted to k's APs
    v = torch.matmul(coeff.mT, xr)
    mask = serving.transpose(1, 2).repeat_interleave(N, dim=-1)  # [b, K, LN]
    return v * mask[:, None]


def mmse_combiner_rows(
    hr: torch.Tensor, error_cov: torch.Tensor, serving: torch.Tensor, ul_power: torch.Tensor
) -> torch.Tensor:
    """Centralized MMSE combiners (book eq. (5.11)) in row layout, the fast path.

    Per setup: if every UE has the same serving set, one K x K inverse per realization serves all
    UEs (Woodbury). Otherwise, per UE, the cheaper exact form: the direct solve over the
    |M_k| N served antennas (one shared LN x LN matrix per realization, one Cholesky per UE)
    when |M_k| N < K, else the K x K Woodbury solve. UEs without serving APs get v_k = 0.

    Shapes:
        hr [B, T, K, L*N] (``_rows(h_hat)``), error_cov [B, L, K, N, N], serving [B, L, K] bool,
        ul_power [B, K] -> v rows [B, T, K, L*N].
    """
    K, N = hr.shape[2], error_cov.shape[-1]
    p = ul_power.to(hr.real.dtype)
    sqrt_p = p.sqrt()
    shared = serving.all(dim=2) | ~serving.any(dim=2)  # [B, L]: AP serves all UEs or none
    same_sets = shared.all(dim=1)  # [B]
    out = torch.empty_like(hr)
    if bool(same_sets.all()):
        if hr.shape[-1] < K:  # more UEs than antennas: the LN x LN direct solve is cheaper
            if not bool(serving.all()):
                keep = serving[:, :, 0].repeat_interleave(N, dim=1).to(hr.dtype)  # [B, LN]
                hr = hr * keep[:, None, None, :]
            return _shared_direct_rows(hr, _z_matrix(error_cov, p), p)
        zinv = torch.linalg.inv(_z_matrix(error_cov, p))
        xr = _apply_per_ap(hr, zinv)
        if not bool(serving.all()):  # some APs serve nobody: drop them from every sum
            keep = serving[:, :, 0].repeat_interleave(N, dim=1).to(hr.dtype)  # [B, LN]
            xr, hr = xr * keep[:, None, None, :], hr * keep[:, None, None, :]
        return _shared_rows(hr, xr, sqrt_p, p)
    fast = same_sets.nonzero().squeeze(1)
    if fast.numel():
        out[fast] = mmse_combiner_rows(hr[fast], error_cov[fast], serving[fast], ul_power[fast])
    slow = (~same_sets).nonzero().squeeze(1)
    d, hs, ps = serving[slow], hr[slow], p[slow]
    size = d.sum(1) * N  # [b, K] served antennas per UE
    direct = (size < K) & (size > 0)
    rows = torch.zeros_like(hs)
    if bool(direct.any()):
        z = _z_matrix(error_cov[slow], ps)
        rows = rows + _direct_rows(hs, z, d & direct[:, None, :], ps)
    if bool((~direct & (size > 0)).any()):
        zinv = torch.linalg.inv(_z_matrix(error_cov[slow], ps))
        xr = _apply_per_ap(hs, zinv)
        rows = rows + _woodbury_rows(hs, xr, d & ~direct[:, None, :], sqrt_p[slow])
    out[slow] = rows
    return out


def partial_combiners(
    h_hat: torch.Tensor,
    error_cov: torch.Tensor | None,
    serving: torch.Tensor,
    ul_power: torch.Tensor,
    *,
    chunk: int | None = None,
) -> torch.Tensor:
    """P-MMSE (book eq. (5.16)); with ``error_cov=None``, P-RZF (book eq. (5.18)).

    Only UEs in P_k = {i : D_k D_i != 0} enter UE k's combiner. ``chunk`` bounds the number of
    realizations processed at once (the per-UE Z_l^(k) makes the intermediate [B, T, K, L, K, N]).

    Shapes:
        h_hat [B, T, L, K, N], error_cov [B, L, K, N, N] or None, serving [B, L, K], ul_power [B, K]
        -> v [B, T, L, K, N].
    """
    if error_cov is not None:
        _check(h_hat, error_cov, serving, ul_power)
    batch, T, L, K, N = h_hat.shape
    cdtype = h_hat.dtype
    s_f = serving.to(h_hat.real.dtype)
    share = (s_f.transpose(1, 2) @ s_f) > 0  # [B, K(k), K(i)]: UE i in P_k
    p = ul_power.to(h_hat.real.dtype)
    p_k = p[:, None, :] * share  # [B, K(k), K(i)]
    sqrt_p_k = p_k.sqrt().to(cdtype)
    sqrt_p = p.sqrt().to(cdtype)
    z_inv = None
    if error_cov is not None:
        eye = torch.eye(N, dtype=cdtype, device=h_hat.device)
        z = torch.einsum("bki,blinm->bklnm", p_k.to(cdtype), error_cov) + eye  # [B, K(k), L, N, N]
        z_inv = torch.linalg.inv(z)
    if chunk is None:
        chunk = max(1, int(2**25 // max(1, batch * K * L * K * N)))
    out = []
    for start in range(0, T, chunk):
        hh = h_hat[:, start : start + chunk]
        if z_inv is None:
            gram = torch.einsum("btlin,btljn->btlij", hh.conj(), hh)
            gram_k = _real_masked_sum(serving, gram)  # [B, t, K(k), K, K]
            coeff = _woodbury_per_ue(gram_k, sqrt_p_k, sqrt_p)  # [B, t, K(j), K(k)]
            v = torch.einsum("btljn,btjk->btlkn", hh, coeff)
        else:
            xk = torch.einsum("bklnm,btljm->btkljn", z_inv, hh)  # [B, t, K(k), L, K(j), N]
            gram_k = torch.einsum("blk,btlin,btkljn->btkij", serving.to(cdtype), hh.conj(), xk)
            coeff = _woodbury_per_ue(gram_k, sqrt_p_k, sqrt_p)
            v = torch.einsum("btkljn,btjk->btlkn", xk, coeff)
        out.append(v)
    return torch.cat(out, dim=1) * serving[:, None, :, :, None]


def mr_combiners(h_hat: torch.Tensor, serving: torch.Tensor) -> torch.Tensor:
    """MR (book eq. (5.14)): v_k = D_k hhat_k.

    Shapes:
        h_hat [B, T, L, K, N], serving [B, L, K] -> [B, T, L, K, N].
    """
    return h_hat * serving[:, None, :, :, None]


def combiners(
    scheme: str,
    h_hat: torch.Tensor,
    error_cov: torch.Tensor,
    serving: torch.Tensor,
    ul_power: torch.Tensor,
    *,
    method: str = "fast",
) -> torch.Tensor:
    """Dispatch by name: 'mmse', 'pmmse', 'przf' or 'mr'. Shapes as in the functions above.

    ``method`` ("fast" or "reference") selects the MMSE implementation (``mmse_combiners``).
    """
    if scheme == "mmse":
        return mmse_combiners(h_hat, error_cov, serving, ul_power, method=method)
    if scheme == "pmmse":
        return partial_combiners(h_hat, error_cov, serving, ul_power)
    if scheme == "przf":
        return partial_combiners(h_hat, None, serving, ul_power)
    if scheme == "mr":
        return mr_combiners(h_hat, serving)
    raise ValueError(f"combiner must be one of {', '.join(COMBINERS)}; got {scheme!r}")
