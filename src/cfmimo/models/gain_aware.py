"""Gain-aware position models (issue 15, item 3): the Tree-Transformer and the ELU-CosFormer with
the large-scale gains β_lk as inputs beside the positions.

Why: under the book's drops the 4 dB shadowing is redrawn for every setup, so positions alone
cannot tell the max-min optimum (docs/learning.md, "What positions alone can achieve"); the gains
β_lk (what an operator measures from uplink pilots) carry it.

Inputs. ``model(ue, ap, ue_mask=None, ap_mask=None, gain_db=None)`` with the positions as for every
power model (``cfmimo.models`` contract) and ``gain_db`` [B, L, K], the gains over noise in dB as
stored in datasets (``Network.gain_db``), REQUIRED. The model normalizes them itself,
g_lk = (gain_db_lk − μ) / σ, with μ, σ the mean and standard deviation of every training gain
(``fit_gain_norm``), held as buffers of the ``gain_norm`` submodule: they travel in the
checkpoint's state_dict and in an exported ONNX graph, so no caller ever normalizes gains. A model
whose ``gain_norm`` was never set (NaN) raises ValueError naming it.

Pair encoder (any L). Each UE–AP link gets the descriptor
    h_lk = MLP([a_l ; u_k ; g_lk]) ∈ R^d,  MLP = Linear(5, d) -> ReLU -> Linear(d, d),
pooled over the real APs by mean and max, [mean_l h_lk ; max_l h_lk] -> Linear(2d, d) = e^gain_k.
Max-pooling keeps the strongest links visible (the max-min optimum is driven by them); the mean
keeps the rest. Padded APs are excluded from both pools, so padding never changes a real output,
and the pools are invariant to the AP order.

- "tree_transformer_gain": ``TreeTransformerPower`` (Table I, 584,354 parameters) with
  e_k = W_UE u_k + b_UE + e^gain_k (d = d_enc) feeding the fusion, tree, root encoder and decoder
  unchanged (+ 3,328 parameters at d_enc = 32: 587,682). Same properties as the base: any K and L, padding-
  invariant, AP-order-invariant, UE-order-dependent through the tree.
- "elu_cosformer_gain": ``EluCosFormerCluster`` (103,378) with the embedded token
  x_k = Linear(2L+2)([u_k ; a_1..a_L]) + e^gain_k (d = d_mod); same mask / UL / DL heads
  (+ 12,800 parameters at d_mod = 64: 116,178). L stays fixed by the base model's token width and mask
  head (``num_aps``); UE padding is exact, and the cosFormer re-weighting keeps the UE order
  relevant as in the base model (equivariant under reversing the real UEs).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from cfmimo.models import ModelConfig, register_model
from cfmimo.models.cluster_models import ClusterPowerOutput, EluCosFormerCluster
from cfmimo.models.tree_transformer import TreeTransformerPower

GAIN_INPUT_MODEL_NAMES = ("tree_transformer_gain", "elu_cosformer_gain")


def fit_gain_norm(groups: Mapping[object, Mapping[str, torch.Tensor]]) -> tuple[float, float]:
    """(μ, σ) in dB of every stored gain ``gain_db`` [n, L, K] of every group (the training set's).

    ValueError naming ``gain_db`` when a group lacks it, holds non-finite values, or σ = 0.
    """
    parts = []
    for key, g in groups.items():
        if "gain_db" not in g:
            raise ValueError(f"group {key} lacks 'gain_db': the gain-aware models need the stored gains")
        parts.append(g["gain_db"].double().flatten())
    if not parts:
        raise ValueError("gain_db: no training groups to fit the gain normalization on")
    x = torch.cat(parts)
    if not bool(torch.isfinite(x).all()):
        raise ValueError("gain_db: the training gains hold non-finite values (NaN or inf)")
    mean, std = float(x.mean()), float(x.std(correction=0))
    if not std > 0:
        raise ValueError(f"gain_db: the training gains have zero spread (all {mean:g} dB); cannot normalize")
    return mean, std


class GainNorm(nn.Module):
    """g = (gain_db − μ) / σ with (μ, σ) as buffers ``mean_db``, ``std_db`` (NaN until ``set``).

    Shapes: gain_db [B, L, K] (dB) -> [B, L, K] in gain_db's dtype.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean_db", torch.tensor(math.nan, dtype=torch.float64))
        self.register_buffer("std_db", torch.tensor(math.nan, dtype=torch.float64))

    def set(self, mean_db: float, std_db: float) -> GainNorm:
        if not (math.isfinite(mean_db) and math.isfinite(std_db) and std_db > 0):
            raise ValueError(f"gain_norm: needs a finite mean and a std > 0, got {mean_db!r}, {std_db!r}")
        self.mean_db.fill_(mean_db)
        self.std_db.fill_(std_db)
        return self

    def to_dict(self) -> dict[str, float]:
        return {"mean_db": float(self.mean_db), "std_db": float(self.std_db)}

    def forward(self, gain_db: torch.Tensor) -> torch.Tensor:
        tracing = torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling()
        if not tracing and not bool(torch.isfinite(self.std_db)):
            raise ValueError(
                "gain_norm: the gain normalization (gain_norm.mean_db, gain_norm.std_db) is not set; "
                "train the model (it is fitted on the training gains) or load a checkpoint that has it"
            )
        return (gain_db - self.mean_db.to(gain_db.dtype)) / self.std_db.to(gain_db.dtype)


class PairGainEncoder(nn.Module):
    """e^gain_k = Linear([mean_l h_lk ; max_l h_lk]), h_lk = MLP([a_l ; u_k ; g_lk]) (module docstring).

    Shapes: ue [B, K, 2], ap [B, L, 2], g [B, L, K] (normalized), ap_mask [B, L] | None -> [B, K, d].
    """

    def __init__(self, d: int) -> None:
        super().__init__()
        self.pair = nn.Sequential(nn.Linear(5, d), nn.ReLU(), nn.Linear(d, d))
        self.out = nn.Linear(2 * d, d)

    def forward(
        self, ue: torch.Tensor, ap: torch.Tensor, g: torch.Tensor, ap_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        B, K, L = ue.shape[0], ue.shape[1], ap.shape[1]
        pair = torch.cat(
            [ap[:, :, None, :].expand(B, L, K, 2), ue[:, None, :, :].expand(B, L, K, 2), g.unsqueeze(-1)],
            dim=-1,
        )  # [B, L, K, 5]
        h = self.pair(pair)  # [B, L, K, d]
        if ap_mask is None:
            mean, top = h.mean(1), h.amax(1)  # [B, K, d] each
        else:
            w = ap_mask[:, :, None, None]  # [B, L, 1, 1]
            mean = (h * w.to(h.dtype)).sum(1) / w.to(h.dtype).sum(1).clamp_min(1.0)
            top = h.masked_fill(~w, -torch.inf).amax(1)
        return self.out(torch.cat([mean, top], dim=-1))


def check_gain(gain_db: object, ue: torch.Tensor, ap: torch.Tensor, owner: str) -> torch.Tensor:
    """``gain_db`` if it is a floating tensor [B, L, K] matching the positions; else ValueError naming it."""
    if gain_db is None:
        raise ValueError(f"gain_db: {owner} takes the large-scale gains [B, L, K] (dB over noise) as input")
    if not isinstance(gain_db, torch.Tensor) or not gain_db.is_floating_point():
        raise ValueError(f"gain_db must be a floating tensor [B, L, K], got {type(gain_db).__name__}")
    want = (ue.shape[0], ap.shape[1], ue.shape[1])
    if tuple(gain_db.shape) != want:
        raise ValueError(f"gain_db must have shape [B, L, K] = {list(want)}, got {list(gain_db.shape)}")
    return gain_db


@register_model("tree_transformer_gain")
class GainTreeTransformerPower(TreeTransformerPower):
    """The Tree-Transformer with the pooled link descriptor added to its UE embedding (module
    docstring). Shapes: ue [B, K, 2], ap [B, L, 2], masks, gain_db [B, L, K] -> [B, K, 2]."""

    uses_gains = True

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self.gain_norm = GainNorm()
        self.gain_encoder = PairGainEncoder(self.config.d_enc)

    def forward(
        self,
        ue: torch.Tensor,
        ap: torch.Tensor,
        ue_mask: torch.Tensor | None = None,
        ap_mask: torch.Tensor | None = None,
        gain_db: torch.Tensor | None = None,
    ) -> torch.Tensor:
        g = self.gain_norm(check_gain(gain_db, ue, ap, type(self).__name__))
        extra = self.gain_encoder(ue, ap, g.to(ue.dtype), ap_mask)  # [B, K, d_enc]
        return self.decode(*self.encode(ue, ap, ue_mask, ap_mask, ue_extra=extra))


@register_model("elu_cosformer_gain")
class GainEluCosFormerCluster(EluCosFormerCluster):
    """The ELU-CosFormer with the pooled link descriptor added to its token embedding (module
    docstring). Shapes: as ``EluCosFormerCluster`` plus gain_db [B, L, K] -> ClusterPowerOutput."""

    uses_gains = True

    def build_heads(self) -> None:
        super().build_heads()  # the gain modules are registered after the heads, before the encoder
        self.gain_norm = GainNorm()
        self.gain_encoder = PairGainEncoder(self.config.d_mod)

    def forward(
        self,
        ue: torch.Tensor,
        ap: torch.Tensor,
        ue_mask: torch.Tensor | None = None,
        ap_mask: torch.Tensor | None = None,
        gain_db: torch.Tensor | None = None,
    ) -> ClusterPowerOutput:
        g = self.gain_norm(check_gain(gain_db, ue, ap, type(self).__name__))
        extra = self.gain_encoder(ue, ap, g.to(ue.dtype), ap_mask)  # [B, K, d_mod]
        return self.heads(self.encode_tokens(ue, ap, ue_mask, ap_mask, extra=extra), ue_mask)


def uses_gains(model: nn.Module) -> bool:
    """Whether ``model`` takes ``gain_db`` (a gain-aware model of this module)."""
    return bool(getattr(model, "uses_gains", False))


def set_gain_norm(model: nn.Module, mean_db: float, std_db: float) -> None:
    """Store the training statistics in a gain-aware model (its ``gain_norm`` buffers)."""
    if not uses_gains(model):
        raise ValueError(f"{type(model).__name__} does not take gains: it has no gain_norm")
    model.gain_norm.set(mean_db, std_db)
