"""Joint AP clustering and UL/DL power models of the elu-cosformer paper (Sect. IV, Table IV).

Architecture (Sect. IV-A, Fig. 2). Each UE is one token x_k = [u_k ; a_1 ; ... ; a_L] ∈ R^(2L+2)
(``token_models.ue_tokens``), embedded by Linear(2L+2, d_mod) (eq. (11)) and passed through M
encoder layers; three parallel heads read the encoder output Z_out [K, d_mod]:

- mask head, eq. (15): M = sigmoid(Z_out W_mask + b_mask) ∈ (0, 1)^(K x L), one association score
  per (UE, AP); returned transposed, [L, K], in the book's AP-major convention;
- UL head, eq. (17): p~_UL = sigmoid(Z_out W_UL + b_UL) ∈ (0, 1)^K;
- DL head, eq. (18): p~_DL = sigmoid(Z_out W_DL + b_DL) ∈ (0, 1)^K.

The rescaling of the powers (eqs. (19)-(21)) happens outside the model, as for the power models
(``cfmimo.data.transforms``). ``cluster_mask`` turns the scores into the binary serving mask of
eq. (16), with a repair step that gives every UE a serving AP whenever the τp limit allows it.

Registered models (all with L = ``ModelConfig.num_aps`` = 16, d_mod = 64, 4 heads; parameter counts
at those values, asserted in the tests):

- "elu_cosformer": 2 pre-norm ``attention.EncoderLayer`` (eqs. (12)-(14)) with cosFormer attention
  (eqs. (22)-(27)) and φ = ELU + 1 (eq. (28) shifted to be positive; ``attention``), ff 4 d_mod
  = 256, dropout 0.1 -> 103,378 (Table IV).
- "cosformer_cluster": the same with φ = ReLU (the original cosFormer) -> 103,378 (Table IV).
- "performer_cluster": the same layers with FAVOR+ attention, F = ``features`` = 256 random
  features, layer i seeded with i (fixed buffers, not parameters) -> 103,378 (Table IV).
- "longformer_cluster": the same layers with sliding-window softmax attention (one-sided window
  ``ModelConfig.window``, default 4) -> 103,378. The paper's Longformer (7,102,738 parameters) is a
  HuggingFace model with its own, much wider layer stack; ours keeps the layer stack of the other
  variants and changes only the attention, so the comparison isolates the attention mechanism
  (and keeps exact padding, which the public packages lack; see DESIGN.md section 5).
- "transformer_cluster": 3 post-norm ``nn.TransformerEncoderLayer`` (softmax, ff 2048), the
  encoder of ``token_models.TransformerPower`` -> 846,866 (Table IV).

Defaults follow the rule of ``token_models``: a ``ModelConfig`` field the config does not set
explicitly takes the model's default (above; dropout 0.1 for all five, the activation "elu1"
(ELU + 1, see ``attention``) / "relu" for the two cosFormers); a field set explicitly always wins;
``model.config`` is the resolved config.

Padding. Padded UEs (``ue_mask`` False) are excluded as keys of every attention, normalizers
included, so they never change the outputs of the real UEs; their mask scores are set to 0 (never
selected) and their powers are meaningless (ignored by callers). Padded APs are not supported (the
input width fixes L): an ``ap_mask`` with a False entry raises ValueError.

Order of the UEs. The performer and transformer variants have no positional information: their
outputs are permutation-equivariant in the UEs. The cosFormer re-weighting cos(π (i - j) / (2K))
and the Longformer window |i - j| <= w depend on the UEs' ranks, so those models are NOT
permutation-equivariant; both depend on i - j only through |i - j|, so they are equivariant under
reversing the order of the real UEs (and, like every model here, under appending padding).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cfmimo.models import ModelConfig, register_model
from cfmimo.models.token_models import _EncoderLayerModel, _SoftmaxEncoderModel, _TokenModel
from cfmimo.sim.clustering import limit_ues_per_ap

CLUSTER_MODEL_NAMES = (
    "elu_cosformer",
    "cosformer_cluster",
    "performer_cluster",
    "longformer_cluster",
    "transformer_cluster",
)


@dataclass(frozen=True)
class ClusterPowerOutput:
    """Output of a clustering + power model.

    Attributes:
        mask: [B, L, K] association scores M (eq. (15)) in (0, 1), transposed to AP-major; exactly
            0 at padded UEs. Binarize with ``cluster_mask`` (eq. (16)).
        power: [B, K, 2] normalized powers (p~_UL, p~_DL) in (0, 1) (eqs. (17)-(18)).
        mask_logits: [B, L, K] the pre-sigmoid scores (training uses them for a gradient that does
            not vanish when the sigmoid saturates; ``cfmimo.learn.dynamic``).
    """

    mask: torch.Tensor
    power: torch.Tensor
    mask_logits: torch.Tensor | None = None


class _ClusterHeadModel(_TokenModel):
    """Mask head Linear(d_mod, L) + sigmoid and UL/DL heads Linear(d_mod, 1) + sigmoid on Z_out.

    Shapes: ue [B, K, 2], ap [B, L, 2], ue_mask [B, K], ap_mask [B, L] (True = real)
    -> ClusterPowerOutput(mask [B, L, K], power [B, K, 2]).
    """

    @classmethod
    def model_defaults(cls, config: ModelConfig) -> dict[str, object]:
        return {**super().model_defaults(config), "dropout": 0.1}

    def build_heads(self) -> None:
        d, n_aps = self.config.d_mod, self.config.num_aps
        self.mask_head = nn.Linear(d, n_aps)  # eq. (15)
        self.ul_head = nn.Linear(d, 1)  # eq. (17)
        self.dl_head = nn.Linear(d, 1)  # eq. (18)

    def forward(
        self,
        ue: torch.Tensor,
        ap: torch.Tensor,
        ue_mask: torch.Tensor | None = None,
        ap_mask: torch.Tensor | None = None,
    ) -> ClusterPowerOutput:
        return self.heads(self.encode_tokens(ue, ap, ue_mask, ap_mask), ue_mask)

    def heads(self, z: torch.Tensor, ue_mask: torch.Tensor | None) -> ClusterPowerOutput:
        """Eqs. (15), (17), (18) on Z_out. Shapes: z [B, K, d_mod], ue_mask [B, K] -> output."""
        logits = self.mask_head(z).transpose(1, 2)  # [B, L, K]
        scores = torch.sigmoid(logits)
        if ue_mask is not None:
            scores = scores.masked_fill(~ue_mask[:, None, :], 0.0)  # padded UEs are never selected
        power = torch.sigmoid(torch.cat([self.ul_head(z), self.dl_head(z)], dim=-1))  # [B, K, 2]
        return ClusterPowerOutput(mask=scores, power=power, mask_logits=logits)


@register_model("elu_cosformer")
class EluCosFormerCluster(_ClusterHeadModel, _EncoderLayerModel):
    """ELU-CosFormer (the paper's model): cosFormer attention with φ = ELU + 1 -> 103,378 parameters.

    φ is the paper's ELU (eq. (28), α = 1) shifted by α so that it is positive ("elu1"): with the
    raw ELU the linear-attention normalizer crosses zero and training is unstable (module
    docstring); ``ModelConfig(activation="elu")`` still selects the raw kernel.
    """

    kind = "cosformer"

    @classmethod
    def model_defaults(cls, config: ModelConfig) -> dict[str, object]:
        return {**super().model_defaults(config), "activation": "elu1"}


@register_model("cosformer_cluster")
class CosFormerCluster(_ClusterHeadModel, _EncoderLayerModel):
    """CosFormer (φ = ReLU) with the clustering and power heads -> 103,378 parameters."""

    kind = "cosformer"

    @classmethod
    def model_defaults(cls, config: ModelConfig) -> dict[str, object]:
        return {**super().model_defaults(config), "activation": "relu"}


@register_model("performer_cluster")
class PerformerCluster(_ClusterHeadModel, _EncoderLayerModel):
    """Performer (FAVOR+, F = ``features``) with the clustering and power heads -> 103,378
    parameters (the random projections are buffers)."""

    kind = "performer"


@register_model("longformer_cluster")
class LongformerCluster(_ClusterHeadModel, _EncoderLayerModel):
    """Sliding-window softmax attention (window ``ModelConfig.window``) in the same layer stack ->
    103,378 parameters (the paper's HuggingFace Longformer has 7,102,738; see the module
    docstring)."""

    kind = "longformer"


@register_model("transformer_cluster")
class TransformerCluster(_ClusterHeadModel, _SoftmaxEncoderModel):
    """3 post-norm softmax ``nn.TransformerEncoderLayer`` (ff 2048) with the clustering and power
    heads -> 846,866 parameters."""


def _rank(keys: torch.Tensor, candidate: torch.Tensor, *, descending: bool) -> torch.Tensor:
    """Rank (0-based) of each candidate among the candidates of its row (an AP), by key; ties by UE
    index. Non-candidates rank after all candidates. Shapes: keys, candidate [B, L, K] -> [B, L, K]."""
    fill = -torch.inf if descending else torch.inf
    order = torch.sort(torch.where(candidate, keys, fill), dim=-1, descending=descending, stable=True).indices
    positions = torch.arange(keys.shape[-1], device=keys.device).expand_as(order)
    return torch.empty_like(order).scatter_(-1, order, positions)


def cluster_mask(
    scores: torch.Tensor,
    tau_p: int,
    threshold: float = 0.3,
    ue_mask: torch.Tensor | None = None,
    ensure_served: bool = True,
) -> torch.Tensor:
    """Binary serving mask from association scores: eq. (16) plus a repair step.

    Eq. (16): at every AP keep the ``tau_p`` real UEs with the largest scores
    (``sim.clustering.limit_ues_per_ap``; ties by UE index), then those with score > ``threshold``.

    Repair (``ensure_served``), so that every real UE has a serving AP whenever possible, in
    vectorized rounds (each batched over B; every round with a proposal serves at least one more
    UE, so there are at most K rounds):

    1. while some AP has spare capacity (< tau_p UEs): every unserved real UE proposes to its
       highest-scoring AP with spare capacity, ignoring the threshold; every AP accepts its
       proposals by decreasing score, up to its spare capacity;
    2. once every AP is full, UEs still unserved take slots from redundantly served UEs: each UE
       served by >= 2 APs offers its weakest link (lowest score; one link per UE per round, so it
       stays served); every unserved UE proposes to its highest-scoring AP holding such a link; the
       AP accepts proposals by decreasing score up to its number of offered links and drops that
       many offered links, weakest first.

    The rounds stop when no unserved UE can propose. With K real UEs <= tau_p L that leaves every
    real UE served (otherwise some AP would hold a redundant link or spare capacity). With
    K > tau_p L some UEs necessarily stay unserved (160 UEs at tau_p = 10, L = 16): they are left
    unserved, and the caller reports them (``sim.clustering.unserved_ues``). Samples that eq. (16)
    already serves completely are returned unchanged. Padded UEs are never served, and no AP ever
    serves more than ``tau_p`` UEs.

    Shapes:
        scores [B, L, K], ue_mask [B, K] bool (True = real; None = all real) -> [B, L, K] bool.
    """
    if scores.ndim != 3:
        raise ValueError(f"scores must be [B, L, K], got shape {tuple(scores.shape)}")
    if isinstance(tau_p, bool) or not isinstance(tau_p, int) or tau_p < 1:
        raise ValueError(f"tau_p must be an int >= 1, got {tau_p!r}")
    b, n_aps, k = scores.shape
    if ue_mask is None:
        real = torch.ones(b, k, dtype=torch.bool, device=scores.device)
    elif ue_mask.dtype != torch.bool or ue_mask.shape != (b, k):
        raise ValueError(
            f"ue_mask must be a bool tensor of shape [B, K] = {(b, k)}, got {ue_mask.dtype} {tuple(ue_mask.shape)}"
        )
    else:
        real = ue_mask
    s = scores.detach().to(torch.float64)  # [B, L, K]
    served = limit_ues_per_ap(real[:, None, :].expand(b, n_aps, k), s, tau_p) & (s > threshold)  # eq. (16)
    if not ensure_served:
        return served
    # Repair only the samples with an unserved real UE (a few percent in practice): the rest are final.
    todo = (real & ~served.any(dim=1)).any(dim=-1).nonzero().flatten()  # [B']
    if todo.numel():
        served = served.clone()
        served[todo] = _repair(served[todo], s[todo], real[todo], tau_p)
    return served


def output_clusters(
    out: ClusterPowerOutput, tau_p: int, threshold: float = 0.3, ue_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """``cluster_mask`` of a model output, ranked by the logits when it has them.

    sigmoid(z) > ξ is z > logit(ξ), so the clusters are those of the scores, except that float32
    scores saturate at 1.0 for z >~ 17 and tie, which would make eq. (16)'s top-tau_p arbitrary
    among strongly associated UEs; the logits keep the order. The logits are not zeroed at padded
    UEs, so a padded batch must pass its ``ue_mask``. Shapes: [B, L, K] -> [B, L, K] bool.
    """
    if out.mask_logits is None:
        return cluster_mask(out.mask, tau_p, threshold, ue_mask)
    level = math.log(threshold / (1.0 - threshold)) if threshold > 0 else -math.inf
    return cluster_mask(out.mask_logits.detach(), tau_p, level, ue_mask)


def _repair(served: torch.Tensor, s: torch.Tensor, real: torch.Tensor, tau_p: int) -> torch.Tensor:
    """The repair rounds of ``cluster_mask``. Shapes: served [B, L, K] bool, s [B, L, K] float64,
    real [B, K] bool -> [B, L, K] bool."""
    n_aps, k = s.shape[1:]
    for _ in range(k + 1):  # each round with a proposal serves >= 1 more UE
        unserved = real & ~served.any(dim=1)  # [B, K]
        spare = tau_p - served.sum(dim=-1)  # [B, L], >= 0
        # Step 2's offers: the weakest link of every UE served by >= 2 APs.
        weakest = torch.where(served, s, torch.inf).argmin(dim=1)  # [B, K]
        offered = F.one_hot(weakest, n_aps).transpose(1, 2).bool() & served  # [B, L, K]
        offered &= (served.sum(dim=1) >= 2)[:, None, :]
        # Step 1 while any AP of the sample has spare capacity, else step 2.
        capacity = torch.where((spare > 0).any(-1, keepdim=True), spare, offered.sum(dim=-1))  # [B, L]
        options = (capacity > 0)[..., None] & unserved[:, None, :]  # [B, L, K]
        proposing = options.any(dim=1)  # [B, K]
        if not bool(proposing.any()):
            break
        best = torch.where(options, s, -torch.inf).argmax(dim=1)  # [B, K]
        proposal = F.one_hot(best, n_aps).transpose(1, 2).bool() & proposing[:, None, :]  # [B, L, K]
        accept = proposal & (_rank(s, proposal, descending=True) < capacity[..., None])
        n_drop = (accept.sum(dim=-1) - spare).clamp_min(0)  # [B, L], 0 in step 1
        drop = offered & (_rank(s, offered, descending=False) < n_drop[..., None])
        served = (served | accept) & ~drop
    return served
