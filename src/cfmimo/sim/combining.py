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
    h_hat: torch.Tensor, error_cov: torch.Tensor, serving: torch.Tensor, ul_power: torch.Tensor
) -> torch.Tensor:
    """Centralized MMSE combiners (book eq. (5.11)) via the Woodbury form (module docstring).

    Shapes:
        h_hat [B, T, L, K, N], error_cov [B, L, K, N, N], serving [B, L, K] bool, ul_power [B, K]
        -> v [B, T, L, K, N], zero on links outside each UE's serving set.
    """
    _check(h_hat, error_cov, serving, ul_power)
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
    scheme: str, h_hat: torch.Tensor, error_cov: torch.Tensor, serving: torch.Tensor, ul_power: torch.Tensor
) -> torch.Tensor:
    """Dispatch by name: 'mmse', 'pmmse', 'przf' or 'mr'. Shapes as in the functions above."""
    if scheme == "mmse":
        return mmse_combiners(h_hat, error_cov, serving, ul_power)
    if scheme == "pmmse":
        return partial_combiners(h_hat, error_cov, serving, ul_power)
    if scheme == "przf":
        return partial_combiners(h_hat, None, serving, ul_power)
    if scheme == "mr":
        return mr_combiners(h_hat, serving)
    raise ValueError(f"combiner must be one of {', '.join(COMBINERS)}; got {scheme!r}")
