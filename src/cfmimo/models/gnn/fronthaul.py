"""Learned models for the fronthaul-constrained WSR problem (egat-fronthaul.md Sects. IV-V).

**Channel-graph contract** (every model here; dense, batched, masked, DESIGN.md section 11):

    model(ap [B, L, 2], ue [B, K, 2], edge [B, L, K, 2N], mask [B, L, K] bool | None)
        -> FronthaulOutput(beams complex [B, L, K, N], logits [B, L, K])

* AP features ``[P_l / P_ref, C_l / C_ref]`` (Sect. IV-B: f_AP = [P_max, C_max]); UE features
  ``[xi_k, w_k]`` (noise standard deviation, weight); edge features ``[Re g_lk, Im g_lk]`` (2N
  channels, the paper's [Re h, Im h]) with the **input normalization** below. ``mask`` is the graph's
  edge set (True = link present; None = the paper's complete bipartite graph). An AP or UE with no
  neighbour receives a zero message (no NaN in outputs or gradients, tested).
* Input normalization: link gains span ~70 dB, so each link keeps its direction and its magnitude
  becomes ``log(1 + P_l ||h_lk||^2 / xi_k^2) / input_scale`` (the shared ``layers.link_input``);
  ``input_scale`` (mean log-SNR), ``power_ref`` and ``capacity_ref`` (means of P and C) are fitted
  on the training set by :meth:`FronthaulModel.fit_inputs` and kept as buffers, so a checkpoint's
  state dict restores them. :meth:`FronthaulModel.graph_inputs` maps an instance to the features.
* Outputs: raw beams (27)/(35), before masking (36) and normalization (37), and association logits
  with ``pi = sigmoid(logits)`` (27). :func:`fronthaul_decision` applies (36)-(37) through the shared
  ``power_head`` (exact per-AP scaling: every AP that serves someone transmits at full power) with
  either the test-time association ``pi > 0.5`` or Bernoulli samples. Training uses the raw outputs
  (``cfmimo.learn.policy_gradient.fronthaul_pg_loss``).

Models (registry names): ``egat_fh`` (EGAT, (17)-(27)), ``engnn_fh`` (ENGNN, ref. [33]), ``bgnn_fh``
(BGNN, ref. [32]) and ``dnn_fh`` (DNN, ref. [40], fixed L, K, N). All four take the antennas as
feature channels (2N), hence a fixed N (``config.antennas``, default 2 = Table I's M), as in the
paper; the three GNNs take any L and K and are equivariant to UE and AP permutations (tested).

Deviations from the paper, stated:
* (19) prints the residual *inside* MLP_AP; (22) and (26) put it outside. (19) is read as a typo:
  the residual is outside the MLP everywhere, ``f' = Norm(f + MLP(concat_c heads))``.
* "3 linear layers, ReLU, batch normalization" (Sect. V-A): MLPs are Linear-ReLU-Linear-ReLU-Linear
  and the normalization is LayerNorm after the residual: BatchNorm would couple the samples of a
  batch (batch = per-sample must hold in training too) and keeps running statistics.
* Attention logits act on the raw layer-(l-1) features with one linear functional per head and
  feature (``EdgeAttentionScore``): ``a^T [W_AP f || W_e e || W_UE f]`` is such a functional per head,
  so the function class is the paper's; the functionals are not tied to the value maps W (a few
  hundred extra parameters). (23)-(24) share a_e; here each side has its own (the middle slot sees
  W_AP f_b in (23) and W_UE f_k in (24), different features). LeakyReLU slope 0.001 as stated.
* Per-head transforms keep the width: d' = d (``config.d_mod``), C = ``config.heads`` heads.
* The heads (27) read only the edge features, so the last update layer of EGAT and ENGNN updates
  the edges only (its node updates would feed nothing).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from cfmimo.models import ModelConfig, register_model, with_defaults
from cfmimo.models.gnn.layers import (
    EdgeAttentionScore,
    attend,
    attend_pairs,
    link_input,
    masked_aggregate,
    masked_softmax,
    others_aggregate,
    power_head,
)

__all__ = [
    "BGNN",
    "EGAT",
    "ENGNN",
    "FRONTHAUL_GNN_NAMES",
    "FRONTHAUL_MODEL_NAMES",
    "FronthaulDNN",
    "FronthaulModel",
    "FronthaulOutput",
    "fronthaul_decision",
]

FRONTHAUL_MODEL_NAMES = ("egat_fh", "engnn_fh", "bgnn_fh", "dnn_fh")
FRONTHAUL_GNN_NAMES = ("egat_fh", "engnn_fh", "bgnn_fh")  # equivariant, any L and K
LEAKY_SLOPE = 0.001  # sigma(x) = max(0.001 x, x), Sect. IV-C


class FronthaulOutput(NamedTuple):
    """Raw model outputs. Shapes: beams complex [B, L, K, N] (27)/(35); logits [B, L, K] (27)."""

    beams: Tensor
    logits: Tensor

    @property
    def pi(self) -> Tensor:
        """Association probabilities pi = sigmoid(logits), [B, L, K]."""
        return torch.sigmoid(self.logits)


def fronthaul_decision(
    out: FronthaulOutput,
    power: Tensor,
    *,
    mask: Tensor | None = None,
    sample: bool = False,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """(36)-(37): association (test time ``pi > 0.5``, or one Bernoulli(pi) draw with ``sample``)
    restricted to ``mask``, beams zeroed off it and each AP scaled to full power ``P_l``.

    Shapes: power [B, L]; mask [B, L, K] bool or None -> (precoders complex [B, L, K, N], serving
    bool [B, L, K]).
    """
    if sample:
        if generator is None:
            raise ValueError("sample=True needs a generator (the association sampling stream)")
        u = torch.rand(out.logits.shape, generator=generator, dtype=out.logits.dtype, device=generator.device)
        serving = u.to(out.logits.device) < out.pi
    else:
        serving = out.logits > 0  # pi > 0.5
    if mask is not None:
        serving = serving & mask
    return power_head(out.beams, serving, power, "exact"), serving


def _mlp(d_in: int, d_hidden: int, d_out: int, layers: int = 3) -> nn.Sequential:
    """``layers`` linear layers with ReLU between them (none after the last)."""
    mods: list[nn.Module] = []
    width = d_in
    for _ in range(layers - 1):
        mods += [nn.Linear(width, d_hidden), nn.ReLU()]
        width = d_hidden
    mods.append(nn.Linear(width, d_out))
    return nn.Sequential(*mods)


class FronthaulModel(nn.Module):
    """Base: the contract's validation, the fitted input statistics, the feature map (module docstring)."""

    config: ModelConfig
    fixed_size: tuple[int, int] | None = None  # (L, K) for the DNN

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.antennas = config.antennas
        self.register_buffer("input_scale", torch.tensor(1.0))
        self.register_buffer("power_ref", torch.tensor(1.0))
        self.register_buffer("capacity_ref", torch.tensor(1.0))

    # ------------------------------------------------------------------ inputs
    @staticmethod
    def _log_snr_input(instance, scale: Tensor | float) -> tuple[Tensor, Tensor]:
        h = instance.h / instance.noise.sqrt()[:, None, :, None].to(instance.h.dtype)  # per-UE noise = 1
        ones = torch.ones(h.shape[0], dtype=instance.power.dtype, device=h.device)
        return link_input(h, instance.power, ones, scale)

    @torch.no_grad()
    def fit_inputs(self, instance) -> dict[str, float]:
        """Fit ``input_scale`` (mean log(1 + SNR) over all links), ``power_ref``, ``capacity_ref`` (means
        of P and C) on a training set (a ``FronthaulInstance``); returns them."""
        _, log_snr = self._log_snr_input(instance, 1.0)
        values = {
            "input_scale": max(float(log_snr.mean()), 1e-3),
            "power_ref": float(instance.power.mean()),
            "capacity_ref": float(instance.capacity.mean()),
        }
        for name, value in values.items():
            getattr(self, name).fill_(value)
        return values

    def graph_inputs(self, instance) -> tuple[Tensor, Tensor, Tensor]:
        """Instance -> (ap [B, L, 2], ue [B, K, 2], edge [B, L, K, 2N]) in the parameters' dtype."""
        real = self.input_scale.dtype
        cplx = torch.complex64 if real == torch.float32 else torch.complex128
        g, _ = self._log_snr_input(instance, self.input_scale)
        g = g.to(cplx)
        edge = torch.cat([g.real, g.imag], dim=-1)
        ap = torch.stack([instance.power / self.power_ref, instance.capacity / self.capacity_ref], -1)
        ue = torch.stack([instance.noise.sqrt(), instance.weights], -1)
        return ap.to(real), ue.to(real), edge

    def check_inputs(self, ap: Tensor, ue: Tensor, edge: Tensor, mask: Tensor | None) -> Tensor:
        """Validate the contract; returns the mask (all True when None)."""
        if not isinstance(edge, Tensor) or edge.dim() != 4 or edge.is_complex():
            raise ValueError(f"edge must be a real tensor [B, L, K, 2N], got {getattr(edge, 'shape', edge)}")
        B, L, K, C = edge.shape
        if C != 2 * self.antennas:
            raise ValueError(
                f"{type(self).__name__} has a fixed number of antennas: edge has 2N = {C} channels, "
                f"built with N = {self.antennas} (config.antennas)"
            )
        if ap.shape != (B, L, 2):
            raise ValueError(f"ap must be [B, L, 2] = {[B, L, 2]}, got {tuple(ap.shape)}")
        if ue.shape != (B, K, 2):
            raise ValueError(f"ue must be [B, K, 2] = {[B, K, 2]}, got {tuple(ue.shape)}")
        if self.fixed_size is not None and (L, K) != self.fixed_size:
            raise ValueError(
                f"{type(self).__name__} has a fixed size: got L = {L} APs and K = {K} UEs, "
                f"built with L = {self.fixed_size[0]}, K = {self.fixed_size[1]} (config.num_aps, num_ues)"
            )
        if mask is None:
            return torch.ones(B, L, K, dtype=torch.bool, device=edge.device)
        if mask.shape != (B, L, K) or mask.dtype != torch.bool:
            raise ValueError(
                f"mask must be bool [B, L, K] = {[B, L, K]}, got {mask.dtype} {tuple(mask.shape)}"
            )
        return mask

    def _output(self, e: Tensor) -> FronthaulOutput:
        """Post-processing (27), (35): edge features [B, L, K, d] -> beams, logits."""
        v = self.head_v(e)  # [B, L, K, 2N]
        N = self.antennas
        return FronthaulOutput(torch.complex(v[..., :N], v[..., N:]), self.head_x(e).squeeze(-1))

    def forward_instance(self, instance, mask: Tensor | None = None) -> FronthaulOutput:
        """``forward(*graph_inputs(instance), mask)``."""
        return self(*self.graph_inputs(instance), mask)


class _GraphModel(FronthaulModel):
    """Pre-processing MLPs with one hidden layer (Sect. IV-B), ``layers`` update layers, heads (27)."""

    reads_nodes = False  # the output heads read edge features only

    def __init__(self, config: ModelConfig, make_layer) -> None:
        super().__init__(config)
        d = config.d_mod
        self.pre_ap = _mlp(2, d, d, 2)
        self.pre_ue = _mlp(2, d, d, 2)
        self.pre_e = _mlp(2 * config.antennas, d, d, 2)
        # the heads read only the edges (27): the last layer's node updates would be dead computation
        # (parameters without gradient), so it updates edges only, unless the readout uses the nodes
        n = config.layers
        self.layers = nn.ModuleList(
            make_layer(d, config.heads, nodes=self.reads_nodes or i < n - 1) for i in range(n)
        )
        self.head_v = nn.Linear(d, 2 * config.antennas)  # MLP_v: a single linear layer (27)
        self.head_x = nn.Linear(d, 1)  # MLP_x: single layer, sigmoid applied by FronthaulOutput.pi

    def forward(self, ap: Tensor, ue: Tensor, edge: Tensor, mask: Tensor | None = None) -> FronthaulOutput:
        mask = self.check_inputs(ap, ue, edge, mask)
        a, u, e = self.pre_ap(ap), self.pre_ue(ue), self.pre_e(edge)
        for layer in self.layers:
            a, u, e = layer(a, u, e, mask)
        return self._output(e)


class EGATLayer(nn.Module):
    """One EGAT update layer, (17)-(26), multi-head; residual outside the MLPs (module docstring).

    Shapes: a [B, L, d], u [B, K, d], e [B, L, K, d], mask [B, L, K] bool -> same shapes.
    """

    def __init__(self, d: int, heads: int, nodes: bool = True) -> None:
        super().__init__()
        self.d, self.heads, self.nodes = d, heads, nodes
        H = heads
        self.w_ap = nn.Linear(d, H * d, bias=False)  # W_AP per head
        self.w_ue = nn.Linear(d, H * d, bias=False)  # W_UE per head
        self.w_e = nn.Linear(d, H * d, bias=False)  # W_e per head
        if nodes:  # node updates (17)-(22); the last layer of a model reading edges only skips them
            self.att_ap = EdgeAttentionScore(d, d, H, LEAKY_SLOPE, d_edge=d)  # (17)
            self.att_ue = EdgeAttentionScore(d, d, H, LEAKY_SLOPE, d_edge=d)  # (20)
            self.mlp_ap = _mlp(2 * H * d, d, d)  # (19)
            self.mlp_ue = _mlp(2 * H * d, d, d)  # (22)
            self.norm_ap, self.norm_ue = nn.LayerNorm(d), nn.LayerNorm(d)
        self.att_e_ap = EdgeAttentionScore(2 * d, d, H, LEAKY_SLOPE)  # (23): target [e_bk || f_b]
        self.att_e_ue = EdgeAttentionScore(2 * d, d, H, LEAKY_SLOPE)  # (24): target [e_bk || f_k]
        self.mlp_e = _mlp(2 * H * d, d, d)  # (26)
        self.norm_e = nn.LayerNorm(d)

    def forward(self, a: Tensor, u: Tensor, e: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        B, L, K, d = e.shape
        H = self.heads
        We = self.w_e(e).view(B, L, K, H, d)
        Wa = self.w_ap(a).view(B, L, H, d)
        Wu = self.w_ue(u).view(B, K, H, d)
        eT, WeT, maskT = e.transpose(1, 2), We.transpose(1, 2), mask.transpose(1, 2)
        e_new = self._edges(a, u, e, mask, We, Wa, Wu)
        if not self.nodes:
            return a, u, e_new

        # AP nodes, (17)-(18): target b, neighbours k in N_b, pair value [W_e e_bk || W_UE f_k]
        alpha = masked_softmax(self.att_ap(a, u, e), mask[..., None], dim=-2)  # [B, L, K, H]
        values = torch.cat([We, Wu[:, None].expand(B, L, K, H, d)], -1).reshape(B, L, K, 2 * H * d)
        agg_a = attend_pairs(alpha, values)  # [B, L, 2Hd]: heads concatenated

        # UE nodes, (20)-(21): target k, neighbours b in N_k, pair value [W_e e_bk || W_AP f_b]
        alpha = masked_softmax(self.att_ue(u, a, eT), maskT[..., None], dim=-2)  # [B, K, L, H]
        values = torch.cat([WeT, Wa[:, None].expand(B, K, L, H, d)], -1).reshape(B, K, L, 2 * H * d)
        agg_u = attend_pairs(alpha, values)  # [B, K, 2Hd]

        # (19), (22): MLP of the concatenated heads, residual outside the MLP
        return self.norm_ap(a + self.mlp_ap(agg_a)), self.norm_ue(u + self.mlp_ue(agg_u)), e_new

    def _edges(
        self, a: Tensor, u: Tensor, e: Tensor, mask: Tensor, We: Tensor, Wa: Tensor, Wu: Tensor
    ) -> Tensor:
        """Edge update (23)-(26) from the layer-(l-1) features."""
        B, L, K, d = e.shape
        H = self.heads
        eT, WeT, maskT = e.transpose(1, 2), We.transpose(1, 2), mask.transpose(1, 2)
        # edges (23)-(25): neighbours (b, m), m in N_b \ k, and (n, k), n in N_k \ b
        not_k = ~torch.eye(K, dtype=torch.bool, device=e.device)
        not_b = ~torch.eye(L, dtype=torch.bool, device=e.device)
        x_ap = torch.cat([e, a[:, :, None].expand(B, L, K, d)], -1)  # target term of (23)
        beta = masked_softmax(self.att_e_ap(x_ap, e), (mask[:, :, None, :] & not_k)[..., None], dim=-2)
        edge_ap = attend(beta, We.reshape(B, L, K, H * d))  # [B, L, K, Hd]: sum_m beta W_e e_bm
        node_ap = Wa[:, :, None] * beta.sum(-2)[..., None]  # sum_m beta W_AP f_b (0 if N_b \ k empty)
        x_ue = torch.cat([eT, u[:, :, None].expand(B, K, L, d)], -1)  # target term of (24)
        beta = masked_softmax(self.att_e_ue(x_ue, eT), (maskT[:, :, None, :] & not_b)[..., None], dim=-2)
        edge_ue = attend(beta, WeT.reshape(B, K, L, H * d)).transpose(1, 2)  # [B, L, K, Hd]
        node_ue = Wu[:, None] * beta.sum(-2).transpose(1, 2)[..., None]  # [B, L, K, H, d]
        agg_e = torch.cat([(edge_ap + edge_ue).view(B, L, K, H, d), node_ap + node_ue], -1)
        agg_e = agg_e.reshape(B, L, K, 2 * H * d)
        return self.norm_e(e + self.mlp_e(agg_e))  # (26), residual outside the MLP


class ENGNNLayer(nn.Module):
    """ENGNN update layer (ref. [33] as far as the paper describes it: node and edge updates, no
    attention). Approximation: uniform (masked mean) aggregation in place of EGAT's attention,
    the same neighbour sets and residual/norm layout, and the edge update sees its own feature, its
    two end nodes and the means of the other edges at its AP and at its UE:

        f_b' = Norm(f_b + MLP([f_b || mean_{k in N_b} (e_bk || f_k)]))
        f_k' = Norm(f_k + MLP([f_k || mean_{b in N_k} (e_bk || f_b)]))
        e_bk' = Norm(e_bk + MLP([e_bk || f_b || f_k || mean_{m != k} e_bm || mean_{n != b} e_nk]))

    Shapes: as ``EGATLayer``.
    """

    def __init__(self, d: int, heads: int = 1, nodes: bool = True) -> None:
        super().__init__()
        self.nodes = nodes
        if nodes:
            self.mlp_ap = _mlp(3 * d, d, d)
            self.mlp_ue = _mlp(3 * d, d, d)
            self.norm_ap, self.norm_ue = nn.LayerNorm(d), nn.LayerNorm(d)
        self.mlp_e = _mlp(5 * d, d, d)
        self.norm_e = nn.LayerNorm(d)

    def forward(self, a: Tensor, u: Tensor, e: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        B, L, K, d = e.shape
        w = mask[..., None]
        same_ap = others_aggregate(e, w, dim=2, how="mean")
        same_ue = others_aggregate(e, w, dim=1, how="mean")
        edge_in = torch.cat(
            [e, a[:, :, None].expand(B, L, K, d), u[:, None].expand(B, L, K, d), same_ap, same_ue], -1
        )
        e_new = self.norm_e(e + self.mlp_e(edge_in))
        if not self.nodes:
            return a, u, e_new
        to_ap = masked_aggregate(torch.cat([e, u[:, None].expand(B, L, K, d)], -1), w, dim=2, how="mean")
        to_ue = masked_aggregate(torch.cat([e, a[:, :, None].expand(B, L, K, d)], -1), w, dim=1, how="mean")
        return (
            self.norm_ap(a + self.mlp_ap(torch.cat([a, to_ap], -1))),
            self.norm_ue(u + self.mlp_ue(torch.cat([u, to_ue], -1))),
            e_new,
        )


class BGNNLayer(nn.Module):
    """BGNN update layer (ref. [32] as far as the paper describes it: a weighted bipartite graph whose
    edges carry the channel coefficients and a node-only message passing). Approximation: edge
    features are *not* updated (they stay the pre-processed channel embedding), messages are
    ``MLP([f_neighbour || e_bk])`` summed over the neighbours (a weighted-graph sum), nodes updated by
    ``Norm(f + MLP([f || sum of messages]))``; the beams and logits are read from
    ``[e_bk || f_b || f_k]`` after the last layer (``BGNN._output``).

    Shapes: as ``EGATLayer`` (``e`` returned unchanged).
    """

    def __init__(self, d: int, heads: int = 1, nodes: bool = True) -> None:
        super().__init__()
        self.msg_to_ap = _mlp(2 * d, d, d, 2)
        self.msg_to_ue = _mlp(2 * d, d, d, 2)
        self.upd_ap = _mlp(2 * d, d, d, 2)
        self.upd_ue = _mlp(2 * d, d, d, 2)
        self.norm_ap, self.norm_ue = nn.LayerNorm(d), nn.LayerNorm(d)

    def forward(self, a: Tensor, u: Tensor, e: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        B, L, K, d = e.shape
        w = mask[..., None]
        m_ap = masked_aggregate(self.msg_to_ap(torch.cat([u[:, None].expand(B, L, K, d), e], -1)), w, dim=2)
        m_ue = masked_aggregate(
            self.msg_to_ue(torch.cat([a[:, :, None].expand(B, L, K, d), e], -1)), w, dim=1
        )
        return (
            self.norm_ap(a + self.upd_ap(torch.cat([a, m_ap], -1))),
            self.norm_ue(u + self.upd_ue(torch.cat([u, m_ue], -1))),
            e,
        )


@register_model("egat_fh")
class EGAT(_GraphModel):
    """EGAT (17)-(27) for the fronthaul problem (module docstring). Defaults: d = 32, 2 heads, 3 layers."""

    def __init__(self, config: ModelConfig) -> None:
        config = with_defaults(config, d_mod=32, heads=2, layers=3, antennas=2)
        super().__init__(config, EGATLayer)


@register_model("engnn_fh")
class ENGNN(_GraphModel):
    """ENGNN (ref. [33]; ``ENGNNLayer``). Defaults: d = 32, 3 layers (heads unused)."""

    def __init__(self, config: ModelConfig) -> None:
        config = with_defaults(config, d_mod=32, layers=3, antennas=2)
        super().__init__(config, ENGNNLayer)


@register_model("bgnn_fh")
class BGNN(_GraphModel):
    """BGNN (ref. [32]; ``BGNNLayer``). Defaults: d = 32, 3 layers. The output heads read
    ``MLP([e_bk || f_b || f_k])`` (one hidden layer) since the edges are not updated."""

    reads_nodes = True

    def __init__(self, config: ModelConfig) -> None:
        config = with_defaults(config, d_mod=32, layers=3, antennas=2)
        super().__init__(config, BGNNLayer)
        d = config.d_mod
        self.readout = _mlp(3 * d, d, d, 2)

    def forward(self, ap: Tensor, ue: Tensor, edge: Tensor, mask: Tensor | None = None) -> FronthaulOutput:
        mask = self.check_inputs(ap, ue, edge, mask)
        a, u, e = self.pre_ap(ap), self.pre_ue(ue), self.pre_e(edge)
        for layer in self.layers:
            a, u, e = layer(a, u, e, mask)
        B, L, K, d = e.shape
        z = self.readout(torch.cat([e, a[:, :, None].expand(B, L, K, d), u[:, None].expand(B, L, K, d)], -1))
        return self._output(z)


@register_model("dnn_fh")
class FronthaulDNN(FronthaulModel):
    """Fully connected DNN (ref. [40]): all features flattened -> MLP -> beams and logits; fixed L, K,
    N (``config.num_aps``, ``num_ues``, ``antennas``; a ValueError names the size otherwise). Not
    equivariant. Defaults: L = 8, K = 4, N = 2 (Table I), ``layers`` = 3 hidden layers of 4 d_mod = 256.
    ``mask`` only restricts the decision (``fronthaul_decision``); it is not an input."""

    def __init__(self, config: ModelConfig) -> None:
        config = with_defaults(config, d_mod=64, layers=3, num_aps=8, num_ues=4, antennas=2)
        super().__init__(config)
        L, K, N = config.num_aps, config.num_ues, config.antennas
        self.fixed_size = (L, K)
        width = 4 * config.d_mod
        self.net = _mlp(2 * L + 2 * K + 2 * N * L * K, width, L * K * (2 * N + 1), config.layers + 1)

    def forward(self, ap: Tensor, ue: Tensor, edge: Tensor, mask: Tensor | None = None) -> FronthaulOutput:
        self.check_inputs(ap, ue, edge, mask)
        B, L, K, C = edge.shape
        y = self.net(torch.cat([ap.flatten(1), ue.flatten(1), edge.flatten(1)], -1)).view(B, L, K, C + 1)
        N = self.antennas
        return FronthaulOutput(torch.complex(y[..., :N], y[..., N:C]), y[..., C])
