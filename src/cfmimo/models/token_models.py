"""Token-per-UE attention baselines of the tree-transformer paper's Table II ("transformer",
"cosformer", "performer"), with the inputs of its ref. [8] and of the elu-cosformer paper
(Sect. IV-A, eq. (11)).

Each UE is one token x_k = [u_k ; a_1 ; ... ; a_L] ∈ R^(2L+2) (its own position, then all AP
positions in the given order), embedded by Linear(2L+2, d_mod) (eq. (11)), passed through encoder
layers and mapped by Linear(d_mod, 2) + sigmoid to (p~_UL, p~_DL). The input width fixes L:
``ModelConfig.num_aps`` (default 16, Table II); an input with another number of APs raises
ValueError, and so does an ``ap_mask`` with padded APs (padded APs would be read as positions;
these fixed-L baselines do not support them). Padded UEs are exact: they are excluded as keys of
every attention (normalizers included) and never change the outputs of the real UEs.

Per-model defaults (the rule): a ``ModelConfig`` field that the config does not set explicitly
(pydantic's ``model_fields_set``) takes the model's own default below; a field set explicitly
always wins. ``model.config`` holds the resolved config, which is the one to record in a
checkpoint (a ``model_dump()`` of it rebuilds the same architecture).

- "transformer": layers 3, ff 2048 (``nn.TransformerEncoderLayer``, post-norm, softmax, with
  ``src_key_padding_mask``): 845,826 parameters at L = 16 (Table II).
- "cosformer", "performer": layers 2, ff 4 d_mod (256), ``attention.EncoderLayer`` in the
  pre-norm form of elu-cosformer eqs. (12)-(14): 102,338 parameters at L = 16 (Table II; the
  elu-cosformer paper's 103,378 adds its clustering head Linear(64, 16); see ``cluster_models``,
  which shares the embedding and encoders defined here). "cosformer" takes φ from
  ``ModelConfig.activation`` ("relu" = CosFormer, "elu" = ELU-CosFormer); "performer" takes F =
  ``ModelConfig.features`` (256) random features, layer i seeded with i (fixed, not redrawn).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn

from cfmimo.models import ModelConfig, register_model, with_defaults
from cfmimo.models.attention import EncoderLayer


def ue_tokens(ue: torch.Tensor, ap: torch.Tensor) -> torch.Tensor:
    """x_k = [u_k ; a_1 ; ... ; a_L]. Shapes: ue [B, K, 2], ap [B, L, 2] -> [B, K, 2L + 2]."""
    aps = ap.reshape(ap.shape[0], 1, -1).expand(-1, ue.shape[1], -1)  # [B, K, 2L]
    return torch.cat([ue, aps], dim=-1)


class _TokenModel(nn.Module, ABC):
    """Embedding (eq. (11)) -> ``self.encode`` -> output heads, for a fixed L: the common base of
    the power models here and the clustering models of ``cluster_models``.

    A concrete model combines one encoder base (``_SoftmaxEncoderModel``, ``_EncoderLayerModel``:
    ``build_encoder`` + ``encode``) with one head base (``_PowerHeadModel`` here, the clustering
    heads there: ``build_heads`` + ``forward``). The heads are built right after the embedding and
    before the encoder, so parameters are registered (and drawn from the global RNG) in the order
    embedding, heads, encoder.
    """

    @classmethod
    def model_defaults(cls, config: ModelConfig) -> dict[str, object]:
        """This model's defaults for the config fields left unset (see the module docstring)."""
        return {}

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config = with_defaults(config, **self.model_defaults(config))
        if config.d_mod % config.heads:
            raise ValueError(f"d_mod ({config.d_mod}) must be divisible by heads ({config.heads})")
        self.num_aps = config.num_aps
        self.embedding = nn.Linear(2 * config.num_aps + 2, config.d_mod)
        self.build_heads()
        self.build_encoder()

    @abstractmethod
    def build_heads(self) -> None:
        """Create the output heads (modules on ``self``) from ``self.config``."""

    @abstractmethod
    def build_encoder(self) -> None:
        """Create the encoder layers (modules on ``self``) from ``self.config``."""

    @abstractmethod
    def encode(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """The encoder layers. Shapes: x [B, K, d_mod], mask [B, K] | None -> [B, K, d_mod]."""

    def encode_tokens(
        self,
        ue: torch.Tensor,
        ap: torch.Tensor,
        ue_mask: torch.Tensor | None = None,
        ap_mask: torch.Tensor | None = None,
        extra: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Checked inputs -> tokens -> embedding (eq. (11)) -> encoder: Z_out. ``extra``
        [B, K, d_mod] is added to the embedded tokens (the gain-aware variants' pooled link
        descriptor, ``models.gain_aware``).

        Shapes: ue [B, K, 2], ap [B, L, 2], ue_mask [B, K], ap_mask [B, L] (True = real)
        -> [B, K, d_mod].
        """
        if ue.ndim != 3 or ue.shape[-1] != 2 or ap.ndim != 3 or ap.shape[-1] != 2:
            raise ValueError(
                f"ue and ap must be [B, K, 2] and [B, L, 2], got {tuple(ue.shape)}, {tuple(ap.shape)}"
            )
        if ap.shape[1] != self.num_aps:
            raise ValueError(
                f"{type(self).__name__} is built for L = num_aps = {self.num_aps} APs (input width "
                f"2L + 2 = {2 * self.num_aps + 2}), got ap with L = {ap.shape[1]}"
            )
        if ap_mask is not None and not bool(ap_mask.all()):
            raise ValueError("ap_mask: padded APs are not supported by the fixed-L token models")
        x = self.embedding(ue_tokens(ue, ap))  # [B, K, d_mod]
        if extra is not None:
            x = x + extra
        return self.encode(x, ue_mask)


class _PowerHeadModel(_TokenModel):
    """Head Linear(d_mod, 2) + sigmoid -> (p~_UL, p~_DL).

    Shapes: ue [B, K, 2], ap [B, L, 2], ue_mask [B, K], ap_mask [B, L] (True = real) -> [B, K, 2].
    """

    def build_heads(self) -> None:
        self.head = nn.Linear(self.config.d_mod, 2)

    def forward(
        self,
        ue: torch.Tensor,
        ap: torch.Tensor,
        ue_mask: torch.Tensor | None = None,
        ap_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return torch.sigmoid(self.head(self.encode_tokens(ue, ap, ue_mask, ap_mask)))


class _SoftmaxEncoderModel(_TokenModel):
    """``nn.TransformerEncoder`` of post-norm softmax layers (ref. [8]); defaults: layers 3,
    ff 2048."""

    @classmethod
    def model_defaults(cls, config: ModelConfig) -> dict[str, object]:
        return {"layers": 3, "ff": 2048}

    def build_encoder(self) -> None:
        cfg = self.config
        layer = nn.TransformerEncoderLayer(
            cfg.d_mod, cfg.heads, dim_feedforward=cfg.ff, dropout=cfg.dropout, batch_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)

    def encode(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return self.encoder(x, src_key_padding_mask=None if mask is None else ~mask)


class _EncoderLayerModel(_TokenModel):
    """Pre-norm ``attention.EncoderLayer`` stack (eqs. (12)-(14)) of attention ``kind``; defaults:
    layers 2, ff 4 d_mod. Layer i seeds its Performer projection with i."""

    kind = "cosformer"

    @classmethod
    def model_defaults(cls, config: ModelConfig) -> dict[str, object]:
        return {"layers": 2, "ff": 4 * config.d_mod}

    def build_encoder(self) -> None:
        cfg = self.config
        self.layers = nn.ModuleList(
            EncoderLayer(
                cfg.d_mod,
                cfg.heads,
                cfg.ff,
                kind=self.kind,
                activation=cfg.activation,
                features=cfg.features,
                seed=i,
                window=cfg.window,
                dropout=cfg.dropout,
            )
            for i in range(cfg.layers)
        )

    def encode(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, mask)
        return x


@register_model("transformer")
class TransformerPower(_PowerHeadModel, _SoftmaxEncoderModel):
    """Softmax Transformer baseline (ref. [8]): 3 ``nn.TransformerEncoderLayer`` (d_mod 64, 4 heads,
    dim_feedforward 2048, post-norm) -> 845,826 parameters at L = 16."""


@register_model("cosformer")
class CosFormerPower(_PowerHeadModel, _EncoderLayerModel):
    """CosFormer baseline (ELU-CosFormer with ``activation="elu"``): 2 pre-norm layers, ff 256 ->
    102,338 parameters at L = 16."""

    kind = "cosformer"


@register_model("performer")
class PerformerPower(_PowerHeadModel, _EncoderLayerModel):
    """Performer (FAVOR+, F = ``features``) baseline: 2 pre-norm layers, ff 256 -> 102,338
    parameters at L = 16 (the random projections are buffers, not parameters)."""

    kind = "performer"
