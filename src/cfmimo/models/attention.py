"""Multi-head self-attention over padded token sets: softmax, cosFormer, Performer (FAVOR+) and
Longformer-style sliding-window softmax.

Every block maps tokens ``x`` [B, S, d] with a key padding mask [B, S] (True = real token, None =
no padding) to [B, S, d]. Q, K, V come from one fused projection ``nn.Linear(d, 3d)``
(elu-cosformer eq. (22)), are split into ``heads`` heads of size d_head = d / heads (eq. (23)),
combined by one of the attention kernels below and projected back by ``nn.Linear(d, d)``
(eq. (27)). Padding is exact: padded keys are removed from every numerator *and* normalizer, so a
real token's output does not depend on how much padding a batch carries (the public
linear-attention packages leak padded keys into the normalizers; see DESIGN.md section 5).

Kernels (functional, on q, k, v [B, H, S, D] and key_mask [B, S]):

- ``softmax_attention``: softmax(q kᵀ / sqrt(D)) v through ``F.scaled_dot_product_attention``
  with a boolean mask that excludes padded keys (Vaswani et al. 2017).
- ``cosformer_attention`` (Qin et al. 2022; elu-cosformer eqs. (24)-(26), (28)):
  ``out_i = Σ_j s_ij v_j / Σ_j s_ij`` with ``s_ij = φ(q_i)·φ(k_j) cos(π (i - j) / (2M))``, where M
  is the sample's true number of tokens and i, j = 1..M are the positions of the real tokens in
  order (the cosFormer code's convention; only i - j enters, so 0..M-1 gives the same result).
  Linear time through cos(a - b) = cos a cos b + sin a sin b: with θ_i = π i / (2M), the feature
  map ``[φ(q_i) cos θ_i, φ(q_i) sin θ_i]`` (size 2D) turns the re-weighted scores into a plain dot
  product, so only the D x D sums ``Σ_j φ(k_j) cos θ_j v_jᵀ`` (and the sine twin) are formed.
  Eq. (26) of the paper writes the product without a normalizer; we follow the cosFormer paper
  and normalize by the row sum of the re-weighted scores.
- ``performer_attention`` (Choromanski et al. 2021, FAVOR+): positive orthogonal random features
  ``φ(x) = exp(ωᵀx' - |x'|²/2) / sqrt(F)``, x' = x / D^(1/4), so that E[φ(q)·φ(k)] =
  exp(q·k / sqrt(D)); the F x D matrix ω is drawn once (``orthogonal_random_features``) and never
  redrawn.
- ``longformer_attention`` (Beltagy et al. 2020, local attention only, no global tokens):
  softmax(q_i k_jᵀ / sqrt(D)) v over the real keys j with |i - j| <= w (the one-sided window),
  i, j the ranks of the tokens among the real tokens of the sample, as for cosFormer. Linear time:
  the keys and values are padded by w on both sides and ``unfold`` gives each query its 2w + 1
  neighbours [B, H, S, D, 2w + 1], so memory and time are O(S w D) and no S x S tensor is built.
  Padding anywhere in the sequence is exact: the real tokens are first gathered to the front in
  order (a stable sort of the mask; the identity for the usual end-padded batches) so that
  positions equal ranks, and the outputs are scattered back.

``reference_attention`` computes each of them directly with the S x S score matrix (O(S²)): the
readable reference the linear-time kernels are tested against. The linear kernels never build an
S x S tensor: their memory and time are O(S) (O(S D²) for cosFormer, O(S D F) for Performer,
O(S w D) for the sliding window).

Normalizer safety (cosFormer). With a non-negative φ (relu, elu1, softplus, sigmoid) the
normalizer Σ_j s_ij is >= 0 (the cosine weights lie in (0, 1] since |i - j| < M) but can be 0, e.g.
when relu zeroes a whole query; with φ that can be negative (elu, gelu, leaky_relu) it can also be
negative or cross zero. We use a sign-preserving clamp, den ← sign(den) · max(|den|, eps) with
sign(0) = +1: wherever |den| >= eps the output is the exact ratio, whose attention weights sum to
one (an affine combination of the values, the defining property of a normalized attention), and
elsewhere the output stays finite (|out| <= |num| / eps). Dividing by |den| instead would flip the
sign of the whole output wherever den < 0, changing the function even far from the singularity;
any rule that keeps the sign must jump at den = 0, which is where the clamp puts the jump.

The clamp keeps the forward pass finite, but it does not make a kernel that crosses zero
trainable: near den = 0 the output and its gradient reach |num| / eps. Measured (2026-11-23, K = 20,
L = 16, regressing the per-AP ranking of the large-scale gains from positions, 1500 AdamW steps at
lr 1e-3): with φ = raw ELU the loss spikes and the Spearman correlation of the scores with the gains
stays at 0.09 (0.09 at lr 1e-4), against 0.84 with φ = ELU + 1 and 0.84 with ReLU (ceiling from
distances alone 0.85). ELU-CosFormer therefore uses φ(x) = ELU(x) + 1 ("elu1"): the paper's ELU
(eq. (28), α = 1) shifted by its lower bound -α, so φ > 0, the normalizer is positive, the weights
of each query are a convex combination, and ELU's smooth, non-zero response to negative inputs (the
paper's reason for choosing it) is kept. The raw ELU stays selectable ("elu") for Fig. 5.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

ATTENTION_KINDS = ("softmax", "cosformer", "performer", "longformer")

KERNEL_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": F.relu,  # the original cosFormer
    "elu": F.elu,  # eq. (28) with α = 1, raw: can be negative (see the module docstring)
    "elu1": lambda x: F.elu(x) + 1.0,  # ELU-CosFormer's φ (Katharopoulos et al. 2020), positive
    "gelu": F.gelu,
    "leaky_relu": F.leaky_relu,
    "softplus": F.softplus,
    "sigmoid": torch.sigmoid,
}

COSFORMER_EPS = 1e-6
PERFORMER_EPS = 1e-12


def _check_kind(kind: str) -> None:
    if kind not in ATTENTION_KINDS:
        raise ValueError(f"attention kind must be one of {ATTENTION_KINDS}, got {kind!r}")


def kernel_feature_map(x: torch.Tensor, activation: str) -> torch.Tensor:
    """The cosFormer kernel φ (eqs. (24)-(25)), applied elementwise; ``activation`` is a key of
    ``KERNEL_ACTIVATIONS``."""
    if activation not in KERNEL_ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(KERNEL_ACTIVATIONS)}, got {activation!r}")
    return KERNEL_ACTIVATIONS[activation](x)


def _mask_or_ones(x: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
    """The key mask [B, S] (all True when None) for tokens x [B, H, S, D]."""
    if key_mask is None:
        return torch.ones_like(x[:, 0, :, 0], dtype=torch.bool)
    if key_mask.dtype != torch.bool or key_mask.shape != x[:, 0, :, 0].shape:
        raise ValueError(
            f"key_mask must be a bool tensor of shape [B, S] = {tuple(x[:, 0, :, 0].shape)}, "
            f"got {key_mask.dtype} {tuple(key_mask.shape)}"
        )
    return key_mask


def _safe_denominator(den: torch.Tensor, eps: float) -> torch.Tensor:
    """Sign-preserving clamp |den| >= eps, with sign(0) = +1 (see the module docstring)."""
    return torch.where(den >= 0, den.clamp_min(eps), den.clamp_max(-eps))


def cosformer_angles(key_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """θ_i = π i / (2 M) for the real tokens, i = 1..M their rank among the real tokens of the
    sample and M their number (padded tokens get the angle of the preceding real token; they are
    masked out anyway). Shapes: key_mask [B, S] -> [B, S]."""
    pos = key_mask.to(dtype).cumsum(-1)  # [B, S], 1..M on the real tokens
    length = key_mask.to(dtype).sum(-1, keepdim=True).clamp_min(1.0)  # [B, 1]
    return (0.5 * math.pi) * pos / length


def cosformer_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_mask: torch.Tensor | None = None,
    *,
    activation: str = "relu",
    eps: float = COSFORMER_EPS,
) -> torch.Tensor:
    """cosFormer attention in linear time (elu-cosformer eqs. (24)-(26); Qin et al. 2022).

    Shapes: q, k [B, H, S, D], v [B, H, S, E], key_mask [B, S] (True = real) -> [B, H, S, E];
    outputs at padded query positions are zero.
    """
    mask = _mask_or_ones(q, key_mask)
    m = mask[:, None, :, None].to(q.dtype)  # [B, 1, S, 1]
    theta = cosformer_angles(mask, q.dtype)[:, None, :, None]  # [B, 1, S, 1]
    cos, sin = torch.cos(theta), torch.sin(theta)
    qf = kernel_feature_map(q, activation)
    kf = kernel_feature_map(k, activation) * m  # padded keys contribute nothing
    q2 = torch.cat([qf * cos, qf * sin], dim=-1)  # [B, H, S, 2D]
    k2 = torch.cat([kf * cos, kf * sin], dim=-1)  # [B, H, S, 2D]
    kv = torch.einsum("bhsd,bhse->bhde", k2, v)  # [B, H, 2D, E]
    num = torch.einsum("bhsd,bhde->bhse", q2, kv)  # [B, H, S, E]
    den = torch.einsum("bhsd,bhd->bhs", q2, k2.sum(dim=-2)).unsqueeze(-1)  # [B, H, S, 1]
    return num / _safe_denominator(den, eps) * m


def orthogonal_random_features(
    features: int, dim: int, *, generator: torch.Generator, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """FAVOR+ projection ω [features, dim]: stacked blocks of dim orthogonal rows (QR of a Gaussian
    matrix), each row rescaled by the norm of an independent Gaussian vector so its marginal law is
    N(0, I_dim) (Choromanski et al. 2021, Sect. 2.4). Drawn in float64 on the CPU from
    ``generator``, so the result depends only on the generator's seed."""
    blocks = []
    for start in range(0, features, dim):
        g = torch.randn(dim, dim, generator=generator, dtype=torch.float64)
        q, _ = torch.linalg.qr(g)
        blocks.append(q.T[: min(dim, features - start)])
    omega = torch.cat(blocks, dim=0)  # [F, dim], orthonormal rows within a block
    norms = torch.randn(features, dim, generator=generator, dtype=torch.float64).norm(dim=-1)
    return (omega * norms[:, None]).to(dtype)


def performer_feature_map(
    x: torch.Tensor, projection: torch.Tensor, *, is_query: bool, key_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Positive random features φ(x) = exp(ωᵀx' - |x'|²/2 - c) / sqrt(F), x' = x / D^(1/4).

    The stabilizer c (detached) cancels in the attention ratio: the max over features per query,
    or the max over the real keys and features per (sample, head) for keys, whose padded entries are
    set to zero. Shapes: x [B, H, S, D], projection [F, D], key_mask [B, S] -> [B, H, S, F].
    """
    x = x * x.shape[-1] ** -0.25
    logits = x @ projection.to(x.dtype).T - 0.5 * (x * x).sum(-1, keepdim=True)  # [B, H, S, F]
    if is_query:
        stab = logits.amax(dim=-1, keepdim=True)
    else:
        mask = _mask_or_ones(x, key_mask)[:, None, :, None]  # [B, 1, S, 1]
        stab = logits.masked_fill(~mask, -torch.inf).amax(dim=(-2, -1), keepdim=True)
        stab = torch.where(torch.isfinite(stab), stab, torch.zeros_like(stab))  # no real key
    phi = torch.exp(logits - stab.detach()) * projection.shape[0] ** -0.5
    return phi if is_query else phi * mask.to(phi.dtype)


def performer_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_mask: torch.Tensor | None = None,
    *,
    projection: torch.Tensor,
    eps: float = PERFORMER_EPS,
) -> torch.Tensor:
    """FAVOR+ attention in linear time (Choromanski et al. 2021): φ(Q) (φ(K)ᵀ V) / φ(Q) φ(K)ᵀ 1.

    Shapes: q, k [B, H, S, D], v [B, H, S, E], projection [F, D], key_mask [B, S] -> [B, H, S, E];
    outputs at padded query positions are zero.
    """
    mask = _mask_or_ones(q, key_mask)
    qf = performer_feature_map(q, projection, is_query=True)  # [B, H, S, F]
    kf = performer_feature_map(k, projection, is_query=False, key_mask=mask)  # [B, H, S, F]
    kv = torch.einsum("bhsf,bhse->bhfe", kf, v)  # [B, H, F, E]
    num = torch.einsum("bhsf,bhfe->bhse", qf, kv)  # [B, H, S, E]
    den = torch.einsum("bhsf,bhf->bhs", qf, kf.sum(dim=-2)).unsqueeze(-1)  # [B, H, S, 1]
    return num / den.clamp_min(eps) * mask[:, None, :, None].to(q.dtype)


def softmax_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_mask: torch.Tensor | None = None,
    *,
    dropout: float = 0.0,
) -> torch.Tensor:
    """Scaled dot-product attention with padded keys excluded (a sample without any real token
    attends to all its tokens, so no row is empty; its outputs are meaningless and ignored).

    Shapes: q, k [B, H, S, D], v [B, H, S, E], key_mask [B, S] -> [B, H, S, E].
    """
    if key_mask is None:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)
    mask = _mask_or_ones(q, key_mask)
    mask = mask | ~mask.any(dim=-1, keepdim=True)  # [B, S], no fully masked row
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :], dropout_p=dropout)


def _check_window(window: int) -> None:
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be an int >= 1 (one-sided, in tokens), got {window!r}")


def longformer_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_mask: torch.Tensor | None = None,
    *,
    window: int,
    dropout: float = 0.0,
) -> torch.Tensor:
    """Sliding-window softmax attention in O(S w) (Longformer's local attention, no global tokens).

    Query i attends to the real keys j with |rank_i - rank_j| <= ``window`` (ranks among the real
    tokens of the sample), with weights softmax(q_i·k_j / sqrt(D)); ``dropout`` drops attention
    weights (training only, as in ``F.scaled_dot_product_attention``).

    Shapes: q, k [B, H, S, D], v [B, H, S, E], key_mask [B, S] (True = real) -> [B, H, S, E];
    outputs at padded query positions are zero.
    """
    _check_window(window)
    b, h, s, _ = q.shape
    if key_mask is not None:
        mask = _mask_or_ones(q, key_mask)
        # Real tokens first, in order (stable): then positions are ranks. End-padded batches (ours)
        # get the identity permutation; any other padding pattern stays exact.
        order = torch.sort((~mask).to(torch.uint8), dim=-1, stable=True).indices  # [B, S]
        mask = mask.gather(-1, order)  # [B, S], real tokens first
        idx = order[:, None, :, None]  # [B, 1, S, 1]
        q, k, v = (x.gather(-2, idx.expand(b, h, s, x.shape[-1])) for x in (q, k, v))
    else:
        mask = torch.ones(b, s, dtype=torch.bool, device=q.device)
    w = max(0, min(window, s - 1))  # |i - j| <= S - 1 always: a wider window changes nothing
    n = 2 * w + 1
    # Neighbourhoods j = i - w .. i + w; out-of-range neighbours are zero padding, masked below.
    k_win = F.pad(k, (0, 0, w, w)).unfold(-2, n, 1)  # [B, H, S, D, 2w+1]
    v_win = F.pad(v, (0, 0, w, w)).unfold(-2, n, 1)  # [B, H, S, E, 2w+1]
    valid = F.pad(mask, (w, w), value=False).unfold(-1, n, 1)  # [B, S, 2w+1], real key in range
    valid = valid | ~valid.any(-1, keepdim=True)  # no empty row (padded queries only): stays finite
    scores = torch.einsum("bhsd,bhsdn->bhsn", q, k_win) / math.sqrt(q.shape[-1])  # [B, H, S, 2w+1]
    weights = torch.softmax(scores.masked_fill(~valid[:, None], -torch.inf), dim=-1)
    if dropout > 0:
        weights = F.dropout(weights, p=dropout)
    out = torch.einsum("bhsn,bhsen->bhse", weights, v_win) * mask[:, None, :, None].to(q.dtype)
    if key_mask is not None:
        out = torch.empty_like(out).scatter_(-2, idx.expand_as(out), out)  # back to input order
    return out


def reference_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_mask: torch.Tensor | None = None,
    *,
    kind: str = "softmax",
    activation: str = "relu",
    projection: torch.Tensor | None = None,
    window: int | None = None,
    eps: float | None = None,
) -> torch.Tensor:
    """The same attentions computed directly from the S x S score matrix, O(S²): a readable
    reference for tests (the cosFormer weights come from cos(π (i - j) / (2M)) itself, not from
    the cos/sin decomposition; the Performer from its explicit features; the Longformer from the
    banded mask |rank_i - rank_j| <= window on the full score matrix).

    Shapes: q, k [B, H, S, D], v [B, H, S, E], key_mask [B, S] -> [B, H, S, E]; outputs at padded
    query positions are zero for every kind but softmax.
    """
    _check_kind(kind)
    mask = _mask_or_ones(q, key_mask)
    keys = mask[:, None, None, :]  # [B, 1, 1, S]
    if kind == "softmax":
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # [B, H, S, S]
        scores = scores.masked_fill(~(keys | ~mask.any(-1)[:, None, None, None]), -torch.inf)
        return torch.softmax(scores, dim=-1) @ v
    if kind == "longformer":
        if window is None:
            raise ValueError("reference_attention(kind='longformer') needs the window")
        _check_window(window)
        rank = mask.to(q.dtype).cumsum(-1)  # [B, S], 1..M on the real tokens
        band = (rank[:, :, None] - rank[:, None, :]).abs() <= window  # [B, S, S]
        allowed = band[:, None] & keys  # [B, 1, S, S]
        allowed = allowed | ~allowed.any(-1, keepdim=True)  # no empty row
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # [B, H, S, S]
        weights = torch.softmax(scores.masked_fill(~allowed, -torch.inf), dim=-1)
        return weights @ v * mask[:, None, :, None].to(q.dtype)
    if kind == "cosformer":
        pos = mask.to(q.dtype).cumsum(-1)  # [B, S], i = 1..M
        length = mask.to(q.dtype).sum(-1).clamp_min(1.0)[:, None, None]  # [B, 1, 1]
        w = torch.cos(math.pi * (pos[:, :, None] - pos[:, None, :]) / (2 * length))  # [B, S, S]
        phi_q, phi_k = kernel_feature_map(q, activation), kernel_feature_map(k, activation)
        scores = phi_q @ phi_k.transpose(-1, -2) * w[:, None] * keys  # [B, H, S, S]
        den = _safe_denominator(scores.sum(-1, keepdim=True), COSFORMER_EPS if eps is None else eps)
    else:
        if projection is None:
            raise ValueError("reference_attention(kind='performer') needs the projection [F, D]")
        phi_q = performer_feature_map(q, projection, is_query=True)
        phi_k = performer_feature_map(k, projection, is_query=False, key_mask=mask)
        scores = phi_q @ phi_k.transpose(-1, -2) * keys  # [B, H, S, S]
        den = scores.sum(-1, keepdim=True).clamp_min(PERFORMER_EPS if eps is None else eps)
    return scores @ v / den * mask[:, None, :, None].to(q.dtype)


class MultiheadAttention(nn.Module):
    """Multi-head self-attention with a fused QKV projection (eqs. (22)-(23)) and an output
    projection (eq. (27)); ``kind`` picks the kernel (``ATTENTION_KINDS``).

    ``activation`` is the cosFormer kernel φ; ``features`` (F) and ``seed`` fix the Performer's
    random projection (a buffer, saved in the state dict, never redrawn, no parameter); ``window``
    is the Longformer's one-sided window w (2w + 1 keys per query). ``dropout`` drops softmax and
    sliding-window attention weights in training; the linear kernels have no weight matrix to drop.

    Shapes: x [B, S, d], mask [B, S] (True = real) -> [B, S, d].
    """

    def __init__(
        self,
        d_model: int,
        heads: int,
        *,
        kind: str = "softmax",
        activation: str = "relu",
        features: int = 256,
        seed: int = 0,
        window: int = 4,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        _check_kind(kind)
        if d_model % heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by heads ({heads})")
        if kind == "cosformer":
            kernel_feature_map(torch.zeros(()), activation)  # validates the name
        if kind == "longformer":
            _check_window(window)
        self.kind, self.activation, self.heads, self.dropout = kind, activation, heads, dropout
        self.window = window
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        if kind == "performer":
            generator = torch.Generator().manual_seed(seed)
            self.register_buffer(
                "projection", orthogonal_random_features(features, d_model // heads, generator=generator)
            )

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        b, s, d = x.shape
        qkv = self.qkv(x).view(b, s, 3, self.heads, d // self.heads)  # [B, S, 3, H, D]
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 x [B, H, S, D]
        if self.kind == "softmax":
            a = softmax_attention(q, k, v, mask, dropout=self.dropout if self.training else 0.0)
        elif self.kind == "cosformer":
            a = cosformer_attention(q, k, v, mask, activation=self.activation)
        elif self.kind == "longformer":
            a = longformer_attention(
                q, k, v, mask, window=self.window, dropout=self.dropout if self.training else 0.0
            )
        else:
            a = performer_attention(q, k, v, mask, projection=self.projection)
        return self.out(a.transpose(1, 2).reshape(b, s, d))  # [B, S, d]


class EncoderLayer(nn.Module):
    """Transformer encoder layer around ``MultiheadAttention`` with a ReLU FFN of width ``ff``.

    ``norm_first=True`` (default) is elu-cosformer eqs. (12)-(14) as written, where Z̃ is the
    layer-normalized Z: Z₁ = Z + A(LN(Z)); Z = Z₁ + W₂ ReLU(W₁ LN(Z₁) + b₁) + b₂ (pre-norm, and
    eq. (22) takes Q, K, V from the normalized input). ``norm_first=False`` is the post-norm layer
    of Vaswani et al. / ``nn.TransformerEncoderLayer``: Z₁ = LN(Z + A(Z)); Z = LN(Z₁ + FFN(Z₁)).
    Both have the same parameters (two LayerNorms). Dropout as in ``nn.TransformerEncoderLayer``:
    after each sublayer and inside the FFN.

    Shapes: x [B, S, d], mask [B, S] (True = real) -> [B, S, d].
    """

    def __init__(
        self,
        d_model: int,
        heads: int,
        ff: int,
        *,
        kind: str = "cosformer",
        activation: str = "relu",
        features: int = 256,
        seed: int = 0,
        window: int = 4,
        dropout: float = 0.0,
        norm_first: bool = True,
    ) -> None:
        super().__init__()
        self.attn = MultiheadAttention(
            d_model,
            heads,
            kind=kind,
            activation=activation,
            features=features,
            seed=seed,
            window=window,
            dropout=dropout,
        )
        self.ffn = nn.Sequential(
            nn.Linear(d_model, ff), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ff, d_model)
        )  # eqs. (13)-(14)
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.drop1, self.drop2 = nn.Dropout(dropout), nn.Dropout(dropout)
        self.norm_first = norm_first

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.norm_first:
            x = x + self.drop1(self.attn(self.norm1(x), mask))  # eq. (12)
            return x + self.drop2(self.ffn(self.norm2(x)))  # eqs. (13)-(14)
        x = self.norm1(x + self.drop1(self.attn(x, mask)))
        return self.norm2(x + self.drop2(self.ffn(x)))
