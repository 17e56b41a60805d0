"""Hybrid Tree-Transformer power allocator (Chafaa, Bacci, Sanguinetti: "Tree Meets Transformer",
Sect. III-B, Table I).

Pipeline (Shapes: ue [B, K, 2], ap [B, L, 2] -> [B, K, 2] in (0, 1)):

a) AP encoder: e_l = MLP(a_l) = W₂ ReLU(W₁ a_l + b₁) + b₂ ∈ R^d_enc, averaged over the real APs:
   e^AP = (1/L) Σ_l e_l.
b) UE embedding: e_k = W_UE u_k + b_UE ∈ R^d_enc.
c) Fusion: z_k = [e_k ; e^AP] ∈ R^(2 d_enc).
d) Binary tree compressor: z_k^(0) = W₀ z_k + b₀ ∈ R^d_mod, then M = ceil(log2 K) stages of
   z_q^(m) = W [z_(2q-1)^(m-1) ; z_(2q)^(m-1)] + b with ONE merge layer W (d_mod x 2 d_mod) shared by
   all stages, a zero vector appended to every level with an odd number of nodes, root z_1^(M).
   Note that the paper puts no nonlinearity in the merge, so the whole tree is an affine pooling,
   z_root = Σ_k A_(k,K) z_k^(0) + c_K, with matrix weights A_(k,K) (products of the two halves of W)
   that depend on the position of UE k: the root, hence every output, depends on the UE order.
e) Transformer encoder (``nn.TransformerEncoder``: d_mod, ``heads``, dim_feedforward ``ff``,
   ``layers`` post-norm layers) on the single root token -> z'_root. With one token the softmax
   is 1, so each attention block is out_proj(v_proj(z)): the query and key projections (16,640 of
   the 584,354 parameters in Table II's setting) get zero gradient (up to round-off).
f) Shared decoder: MLP [z_k ; z'_root] (2 d_enc + d_mod) -> d_mod (64) -> 2, ReLU, then sigmoid.
g) The rescaler (eqs. (12)-(13)) is applied outside the model (``cfmimo.data.transforms``).

Table I / II: d_enc 32, d_mod 64, 4 heads, 2 layers and PyTorch's default dim_feedforward 2048
give exactly 584,354 parameters ("tree_transformer"); "tree_transformer_lean" takes ff = 4 d_mod
(256) unless the config sets ``ff``. The layer sizes follow the authors' public code
(github.com/irchchaf/Hybrid-Tree-Transformer-Model: decoder hidden width = d_mod).

Padding. A padded batch gives each sample the tree of its unpadded UEs: the real UEs are first
moved (stably) to the front, padded leaves are zero vectors, a parent is kept only if its left
child is real (so a real node next to padding merges with a zero vector, exactly the paper's odd-
level padding, and a parent of two padded nodes is zero), and sample b's root is read at its own
stage M_b = ceil(log2 K_b) (K_b = 1: the projected descriptor z_1^(0), M_b = 0). The loop runs
over the ceil(log2 K_max) stages only, vectorized across samples and users. Padded APs are
excluded from the AP mean. Outputs at padded UEs are meaningless.

Inference fast path. Without masks, in eval mode and without autograd, ``forward`` runs
``forward_fast``: the same function with the linear maps between a UE's position and the first
nonlinearity folded into cached weights and the one-token attention reduced to out_proj(v_proj(.))
(equal to the masked path to round-off; at batch 1 faster than the authors' model.py at every K
measured, docs/benchmarks.md). Training, padded batches and exports use the masked path below.

ONNX. The number of stages, ceil(log2 K), is data-dependent on K: a plain trace bakes it in (the
legacy exporter then gives wrong outputs for other K, e.g. 1.5e-2 off at K = 17 when traced at
K = 5) and torch.export specializes K. So whenever the tree cannot branch on K in Python (ONNX
export with either exporter, tracing, torch.export, a symbolic K under ``torch.compile``) the loop
runs ``EXPORT_DEPTH`` (16) stages, with every slice taken relative to the tensor shapes: extra
stages act on a single node and never touch the root (read at each sample's own stage), so one
graph serves any 1 <= K <= 2**16 and any L. Verified against onnxruntime (tests/models/
test_tree_transformer.py): ``torch.onnx.export(dynamo=False, dynamic_axes=...)`` (~1 s; with or
without the masks as inputs) and ``torch.onnx.export(dynamo=True, dynamic_shapes=...)`` (~25 s,
marked slow). A bare ``torch.export.export`` with a dynamic K still fails: the symbolic-shape
engine guards on whether intermediate level sizes ceil(K / 2^m) equal 1 (layout checks in the
merge Linear); the ONNX exporter's own torch.export call does not raise on these.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import torch
from torch import nn

from cfmimo.models import ModelConfig, masked_mean, register_model, with_defaults

EXPORT_DEPTH = 16  # tree stages unrolled in an exported graph: K <= 2**16 UEs


def _fixed_depth(num_nodes: int | torch.SymInt) -> bool:
    """Whether the tree must not depend on K through Python control flow: ONNX export (either
    exporter), torch.export / tracing, or a symbolic K (e.g. ``torch.compile(dynamic=True)``)."""
    return bool(
        torch.onnx.is_in_onnx_export()
        or torch.compiler.is_exporting()
        or torch.jit.is_tracing()
        or isinstance(num_nodes, torch.SymInt)
    )


def compact_real_first(x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Stable move of the real entries to the front: real ones keep their order, then the padded.

    Shapes: x [B, K, D], mask [B, K] -> x [B, K, D], mask [B, K] (a prefix of True per sample).
    """
    real = mask.to(torch.long)
    count = real.sum(-1, keepdim=True)  # [B, 1]
    dest = torch.where(mask, real.cumsum(-1) - 1, count + (1 - real).cumsum(-1) - 1)  # [B, K]
    out = torch.zeros_like(x).scatter(1, dest.unsqueeze(-1).expand_as(x), x)
    return out, torch.zeros_like(mask).scatter(1, dest, mask)


class BinaryTreeCompressor(nn.Module):
    """Sect. III-B d): projection W₀ and the shared merge layer W; returns the per-sample root.

    Shapes: z [B, K, 2 d_enc], mask [B, K] (real UEs a prefix of each row) -> [B, d_mod].
    """

    def __init__(self, d_in: int, d_mod: int) -> None:
        super().__init__()
        self.project = nn.Linear(d_in, d_mod)  # W₀, b₀
        self.merge = nn.Linear(2 * d_mod, d_mod)  # W, b (shared by all stages)

    def forward(self, z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.project(z) * mask.unsqueeze(-1).to(z.dtype)  # [B, K, d], padded leaves = 0
        root = x[:, 0]  # K_b = 1: M_b = 0
        n = x.shape[1]
        stages = EXPORT_DEPTH if _fixed_depth(n) else math.ceil(math.log2(max(n, 1)))
        for _ in range(stages):
            x = torch.cat([x, torch.zeros_like(x[:, :1])], dim=1)  # [B, n+1, d], zero pad vector
            m = torch.cat([mask, torch.zeros_like(mask[:, :1])], dim=1)  # [B, n+1]
            left, right = x[:, :-1:2], x[:, 1::2]  # 2 x [B, ceil(n/2), d]: nodes 2q-1, 2q (1-based)
            continues = m[:, 1:2]  # [B, 1]: >= 2 real nodes, so this stage is <= M_b
            mask = m[:, :-1:2]  # [B, ceil(n/2)]: a parent is real iff its left child is
            x = self.merge(torch.cat([left, right], dim=-1)) * mask.unsqueeze(-1).to(x.dtype)
            root = torch.where(continues, x[:, 0], root)
        return root


@register_model("tree_transformer")
class TreeTransformerPower(nn.Module):
    """The hybrid Tree-Transformer (Sect. III-B): ``ModelConfig`` fields d_enc, d_mod, heads,
    layers, ff (dim_feedforward), dropout; defaults = Table I (584,354 parameters).

    Shapes: ue [B, K, 2], ap [B, L, 2], ue_mask [B, K], ap_mask [B, L] (True = real) -> [B, K, 2].
    """

    @classmethod
    def model_defaults(cls, config: ModelConfig) -> dict[str, object]:
        """This model's defaults for the config fields left unset (none: Table I)."""
        return {}

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        config = with_defaults(config, **self.model_defaults(config))
        self.config = config  # resolved: record this one in checkpoints
        d_enc, d_mod = config.d_enc, config.d_mod
        if d_mod % config.heads:
            raise ValueError(f"d_mod ({d_mod}) must be divisible by heads ({config.heads})")
        self.ap_encoder = nn.Sequential(nn.Linear(2, d_enc), nn.ReLU(), nn.Linear(d_enc, d_enc))  # a)
        self.ue_embedding = nn.Linear(2, d_enc)  # b)
        self.tree = BinaryTreeCompressor(2 * d_enc, d_mod)  # d)
        layer = nn.TransformerEncoderLayer(
            d_mod, config.heads, dim_feedforward=config.ff, dropout=config.dropout, batch_first=True
        )
        self.root_encoder = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)  # e)
        self.decoder = nn.Sequential(
            nn.Linear(2 * d_enc + d_mod, d_mod), nn.ReLU(), nn.Linear(d_mod, 2)
        )  # f)

    def encode(
        self,
        ue: torch.Tensor,
        ap: torch.Tensor,
        ue_mask: torch.Tensor | None = None,
        ap_mask: torch.Tensor | None = None,
        ue_extra: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Fused descriptors z [B, K, 2 d_enc] (steps a-c) and the refined root z'_root [B, d_mod]
        (steps d-e). ``ue_extra`` [B, K, d_enc]: added to the UE embedding e_k (the gain-aware
        variant's pooled link descriptor, ``models.gain_aware``)."""
        if ue.ndim != 3 or ue.shape[-1] != 2 or ap.ndim != 3 or ap.shape[-1] != 2:
            raise ValueError(
                f"ue and ap must be [B, K, 2] and [B, L, 2], got {tuple(ue.shape)}, {tuple(ap.shape)}"
            )
        e_ap = masked_mean(self.ap_encoder(ap), ap_mask, 1)  # [B, d_enc]
        e_ue = self.ue_embedding(ue)  # [B, K, d_enc]
        if ue_extra is not None:
            e_ue = e_ue + ue_extra
        z = torch.cat([e_ue, e_ap.unsqueeze(1).expand_as(e_ue)], dim=-1)  # [B, K, 2 d_enc]
        if ue_mask is None:
            root = self.tree(z, torch.ones_like(ue[..., 0], dtype=torch.bool))
        else:
            root = self.tree(*compact_real_first(z, ue_mask))
        return z, self.root_encoder(root.unsqueeze(1)).squeeze(1)  # [B, d_mod]

    def decode(self, z: torch.Tensor, root: torch.Tensor) -> torch.Tensor:
        """Shared per-UE decoder (step f). Shapes: z [B, K, 2 d_enc], root [B, d_mod] -> [B, K, 2]."""
        z_dec = torch.cat([z, root.unsqueeze(1).expand(-1, z.shape[1], -1)], dim=-1)  # [B, K, 2d_enc+d_mod]
        return torch.sigmoid(self.decoder(z_dec))

    def forward(
        self,
        ue: torch.Tensor,
        ap: torch.Tensor,
        ue_mask: torch.Tensor | None = None,
        ap_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if ue_mask is None and ap_mask is None and self.can_use_fast_path(ue):
            return self.forward_fast(ue, ap)
        return self.decode(*self.encode(ue, ap, ue_mask, ap_mask))

    def can_use_fast_path(self, ue: torch.Tensor) -> bool:
        """Whether ``forward`` may take ``forward_fast``: inference (eval mode, no autograd, so
        dropout is off and nothing needs the masked graph's gradients), a concrete K (not while
        exporting, tracing or compiling with a symbolic K: the exported graph must keep the
        fixed-depth tree) and no final norm on the root encoder (the fast path does not apply one)."""
        return (
            not self.training
            and not torch.is_grad_enabled()
            and not _fixed_depth(ue.shape[1])
            and self.root_encoder.norm is None
        )

    def forward_fast(self, ue: torch.Tensor, ap: torch.Tensor) -> torch.Tensor:
        """Unpadded inference in fewer and smaller ops: the same function as ``forward`` without
        masks (equal to round-off; tests/models/test_tree_transformer.py checks 1e-10 in float64).

        The network is affine from the UE position u_k up to the first nonlinearity on every path
        that does not go through the root, so the linear maps are folded (W_ue, then the first half
        of W₀ or of the decoder's first layer) and applied to the 2-D positions directly:

        - leaves: x_k = W₀ [W_ue u_k + b_ue ; e^AP] + b₀ = A u_k + c, A = W₀ₐ W_ue [d_mod, 2];
        - first merge: W [x_(2q-1) ; x_(2q)] + b = [W_L A, W_R A] [u_(2q-1) ; u_(2q)] + (W_L + W_R) c + b
          (a [4 -> d_mod] map on pairs of positions; an odd last UE merges with the zero vector:
          W_L A u + W_L c + b), so the K leaf vectors are never formed;
        - later merges as the paper (zero vector appended to an odd level, one shared W);
        - the root encoder on one token: softmax over one key is 1, so self-attention is
          out_proj(v_proj(z)) (the query and key projections drop out, exactly);
        - decoder: ReLU(D_z [W_ue u_k + b_ue ; e^AP] + D_r z'_root + d) = ReLU(G u_k + g), G = D_zₐ W_ue.

        Per UE this is a 4 x d_mod map per pair and a 2 x d_mod + d_mod x 2 decoder, instead of
        the 2 d_enc x d_mod projection, the first 2 d_mod x d_mod merge and the
        (2 d_enc + d_mod) x d_mod decoder layer: about 5x fewer flops at large K.

        The folded weights are cached (``_folded_weights``) and carry no gradient: inference only,
        in eval mode (no dropout). Batch-1 latency vs the authors' model.py: benchmarks/
        authors_latency.py and docs/benchmarks.md.

        Shapes: ue [B, K, 2], ap [B, L, 2] -> [B, K, 2].
        """
        if ue.ndim != 3 or ue.shape[-1] != 2 or ap.ndim != 3 or ap.shape[-1] != 2:
            raise ValueError(
                f"ue and ap must be [B, K, 2] and [B, L, 2], got {tuple(ue.shape)}, {tuple(ap.shape)}"
            )
        f = self._folded_weights()
        b, k, _ = ue.shape
        e_ap = self.ap_encoder(ap).mean(1)  # [B, d_enc], a)
        if k == 1:  # M = 0: the root is the projected descriptor A u + c
            root = torch.addmm(torch.addmm(f.leaf_bias, e_ap, f.leaf_ap), ue[:, 0], f.leaf_w)
        else:
            # the first merge on pairs of positions: [B, K//2, 4] -> [B, K//2, d_mod]
            pairs = ue[:, : k - k % 2].reshape(b, k // 2, 4)
            x = torch.baddbmm(
                torch.addmm(f.pair_bias, e_ap, f.pair_ap).unsqueeze(1), pairs, f.pair_w.expand(b, 4, -1)
            )
            if k % 2:  # the last UE merges with the zero vector
                last = torch.addmm(torch.addmm(f.odd_bias, e_ap, f.odd_ap), ue[:, -1], f.odd_w)  # [B, d_mod]
                x = torch.cat([x, last.unsqueeze(1)], dim=1)  # [B, ceil(K/2), d_mod]
            merge = self.tree.merge
            d_mod = merge.out_features
            while x.shape[1] > 1:  # later stages as the paper: zero vector on odd levels, one W
                if x.shape[1] % 2:
                    x = torch.cat([x, x.new_zeros(b, 1, d_mod)], dim=1)
                x = merge(x.reshape(b, x.shape[1] // 2, 2 * d_mod))  # [B, n/2, d_mod]
            root = x[:, 0]  # [B, d_mod]
        for layer, (w_sa, b_sa) in zip(self.root_encoder.layers, f.attention, strict=True):  # e)
            x = root
            if layer.norm_first:
                x = x + torch.addmm(b_sa, layer.norm1(x), w_sa)
                root = x + layer.linear2(layer.activation(layer.linear1(layer.norm2(x))))
            else:
                x = layer.norm1(torch.addmm(b_sa, x, w_sa).add_(x))
                root = layer.norm2(layer.linear2(layer.activation(layer.linear1(x))).add_(x))
        g_c = torch.addmm(torch.addmm(f.dec_bias, e_ap, f.dec_ap), root, f.dec_root)  # [B, d_mod]
        h = torch.baddbmm(g_c.unsqueeze(1), ue, f.dec_w.expand(b, 2, -1)).relu_()  # [B, K, d_mod]
        return torch.sigmoid(self.decoder[2](h))  # f)

    def _folded_weights(self) -> SimpleNamespace:
        """The folded weights of ``forward_fast`` (stored as right factors, x @ W), recomputed when a
        parameter changes (its data pointer, dtype/device or in-place version counter)."""
        params = self._fold_params()
        key = tuple((p.data_ptr(), p._version, p.dtype, p.device) for p in params)
        cached = self.__dict__.get("_fold_cache")
        if cached is not None and cached[0] == key:
            return cached[1]
        with torch.no_grad():
            d_enc, d_mod = self.config.d_enc, self.config.d_mod
            w_ue, b_ue = self.ue_embedding.weight, self.ue_embedding.bias  # [d_enc, 2], [d_enc]
            w0, b0 = self.tree.project.weight, self.tree.project.bias  # [d_mod, 2 d_enc]
            w, bias = self.tree.merge.weight, self.tree.merge.bias  # [d_mod, 2 d_mod]
            w_l, w_r = w[:, :d_mod], w[:, d_mod:]
            leaf_w, leaf_bias, leaf_ap = (
                w0[:, :d_enc] @ w_ue,
                w0[:, :d_enc] @ b_ue + b0,
                w0[:, d_enc:],
            )  # A; c = ..
            d1 = self.decoder[0].weight  # [d_mod, 2 d_enc + d_mod]
            attention = []
            for layer in self.root_encoder.layers:
                attn = layer.self_attn
                w_v, b_v = attn.in_proj_weight[2 * d_mod :], attn.in_proj_bias[2 * d_mod :]
                w_o, b_o = attn.out_proj.weight, attn.out_proj.bias
                attention.append(((w_o @ w_v).T.contiguous(), w_o @ b_v + b_o))  # out_proj(v_proj(.))
            folded = SimpleNamespace(
                leaf_w=leaf_w.T.contiguous(),  # [2, d_mod]
                leaf_bias=leaf_bias,
                leaf_ap=leaf_ap.T.contiguous(),  # [d_enc, d_mod]
                pair_w=torch.cat([w_l @ leaf_w, w_r @ leaf_w], dim=1).T.contiguous()[None],  # [1, 4, d_mod]
                pair_bias=(w_l + w_r) @ leaf_bias + bias,
                pair_ap=((w_l + w_r) @ leaf_ap).T.contiguous(),
                odd_w=(w_l @ leaf_w).T.contiguous(),
                odd_bias=w_l @ leaf_bias + bias,
                odd_ap=(w_l @ leaf_ap).T.contiguous(),
                attention=attention,
                dec_w=(d1[:, :d_enc] @ w_ue).T.contiguous()[None],  # G [1, 2, d_mod]
                dec_bias=self.decoder[0].bias + d1[:, :d_enc] @ b_ue,
                dec_ap=d1[:, d_enc : 2 * d_enc].T.contiguous(),
                dec_root=d1[:, 2 * d_enc :].T.contiguous(),
            )
        self.__dict__["_fold_cache"] = (key, folded)
        return folded

    def _fold_params(self) -> list[torch.Tensor]:
        mods = [self.ue_embedding, self.tree.project, self.tree.merge, self.decoder[0]]
        params = [t for m in mods for t in (m.weight, m.bias)]
        for layer in self.root_encoder.layers:
            a = layer.self_attn
            params += [a.in_proj_weight, a.in_proj_bias, a.out_proj.weight, a.out_proj.bias]
        return params


@register_model("tree_transformer_lean")
class LeanTreeTransformerPower(TreeTransformerPower):
    """``tree_transformer`` with dim_feedforward = 4 d_mod (256) unless the config sets ``ff``."""

    @classmethod
    def model_defaults(cls, config: ModelConfig) -> dict[str, object]:
        return {"ff": 4 * config.d_mod}
