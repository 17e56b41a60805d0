"""UatF SE of centralized MR with a relaxed (real-valued) serving mask: a differentiable proxy.

The exact SEs of the elu-cosformer paper use MMSE combiners built from the chosen clusters
(``sim.combining``); they are Monte Carlo averages of matrix inverses whose dependence on the
serving mask is discrete. To give a clustering head a gradient (``cfmimo.learn.dynamic``) we use
the closed-form UatF SINRs of *MR* combining/precoding with v_k = D_k ĥ_k (book Cor. 5.6 and
Cor. 6.3 with orthogonal pilots), in which the mask enters only through sums over APs, so a soft
mask d_lk in [0, 1] is meaningful and at d in {0, 1} the values are the exact MR ones:

    UL:  SINR_k = p_k (Σ_l d_lk b_lk)² / (Σ_i p_i Σ_l d_lk t_lki + Σ_l d_lk b_lk)
    DL:  SINR_k = ρ_k Σ_l d_lk b_lk / (Σ_i ρ_i Σ_l d_li t_lik / Σ_l d_li b_li + 1)

with b_lk = tr(B_lk) (estimate covariance) and t_lki = tr(B_lk R_li), noise variance 1 (gains are
over noise), and DL precoders normalized on average (w_k = D_k ĥ_k / sqrt(E||D_k ĥ_k||²)).
The coherent pilot-contamination terms are left out: the expressions are exact when pilots are
orthogonal (e.g. the paper's training sizes K <= tau_p) and an approximation otherwise.

Adding AP l to UE k's cluster raises its signal coherently and its interference and noise
linearly, so the sign of ∂SE/∂d_lk says whether the link pays off: the information a mask needs.
"""

from __future__ import annotations

import torch

from cfmimo.sim.uatf import spectral_efficiency


def mr_traces(estimate_cov: torch.Tensor, correlation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """b_lk = tr(B_lk) and t_lki = tr(B_lk R_li), real.

    Shapes:
        estimate_cov B, correlation R [B, L, K, N, N] -> (b [B, L, K], t [B, L, K, K]).
    """
    b = torch.diagonal(estimate_cov, dim1=-2, dim2=-1).sum(-1).real
    t = torch.einsum("blknm,blimn->blki", estimate_cov, correlation).real
    return b, t


def relaxed_mr_se(
    mask: torch.Tensor,
    b: torch.Tensor,
    t: torch.Tensor,
    p_ul: torch.Tensor,
    p_dl: torch.Tensor,
    prelog_ul: float,
    prelog_dl: float,
    eps: float = 1e-12,
) -> tuple[torch.Tensor, torch.Tensor]:
    """UL and DL SEs of centralized MR for a relaxed mask (module docstring); differentiable in
    ``mask`` and the powers.

    Shapes:
        mask [B, L, K] (real, in [0, 1]); b [B, L, K]; t [B, L, K, K]; p_ul, p_dl [B, K] (mW)
        -> (se_ul [B, K], se_dl [B, K]).
    """
    dtype = b.dtype
    d = mask.to(dtype)
    p_ul, p_dl = p_ul.to(dtype), p_dl.to(dtype)
    gain = (d * b).sum(1)  # [B, K]: Σ_l d_lk b_lk
    # UL: Σ_i p_i Σ_l d_lk t_lki
    ul_int = torch.einsum("blk,blki,bi->bk", d, t, p_ul)
    sinr_ul = p_ul * gain.square() / (ul_int + gain).clamp_min(eps)
    # DL: Σ_i ρ_i Σ_l d_li t_lik / Σ_l d_li b_li
    dl_int = torch.einsum("bli,blik,bi->bk", d, t, p_dl / gain.clamp_min(eps))
    sinr_dl = p_dl * gain / (dl_int + 1.0)
    return spectral_efficiency(sinr_ul, prelog_ul), spectral_efficiency(sinr_dl, prelog_dl)
