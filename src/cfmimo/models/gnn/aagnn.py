"""AAGNN (Deng & Han) and its two ablations: AAGNN-woA (no attention) and EGAT (ref. [15]'s attention).

Hidden representations live on the antenna-level edges: ``x [B, L, K, N, C]`` (x_kmn of the paper,
AP m = our l). With ``d`` the association, every layer sees ``d x`` and ``(1 - d) x`` (the tilde/hat
inputs of eq. (7)) through 8 weight matrices C_in x C_out, no bias (eq. (13) with q2 = r = 0):

* AAGNN-woA, eqs. (14)-(15): x' = sigma(O1~ d x_kmn + O1^ (1-d) x_kmn + O2~ agg_{c!=n} d x_kmc
  + O2^ ... + P~ agg_{b!=m} agg_c d_kb x_kbc + P^ ... + Q~ agg_{a!=k} d_am x_amn + Q^ ...);
* AAGNN, eqs. (18)-(20): t = the O and P terms (18a), z = the Q terms (18b), then
  x' = (alpha h^H t_km) t_km + sum_{a!=k} (beta h^H z_am) z_am, alpha and beta learnable per layer;
* EGAT: AAGNN-woA whose Q sums become GAT softmax-attention averages (ref. [15]):
  w_ka = softmax_{a in S, a != k}(LeakyReLU(a_t^T Q x_kmn + a_n^T Q x_amn)), S = the UEs served
  (Q~) or not served (Q^) by AP m, one attention per set and layer.

Real/complex: the paper's x and W are complex; here the first layer takes (Re, Im) of the input as 2
channels and the last returns 2 channels (Re, Im) of the precoder, with real C_in x C_out matrices
(this is what the paper's widths [2, 128, 128, 128, 128, 2] and its 397,313 parameters imply).
AAGNN's correlation h^H t needs complex hidden vectors: its hidden channels are read as C/2 complex
channels (channel pairs (2c, 2c+1) = (Re, Im)); lambda = alpha sum_n conj(h_n) t_nc is complex per
complex channel (the paper's raw correlation, no scaling) and multiplies t_c as a complex number.
h is the model's input g (``link_input``: direction kept, magnitude = log(1 + SNR) / input_scale).

Activation (the paper does not name sigma in (15); (20) has none): ReLU for woA and EGAT, none for
AAGNN (its attention is the nonlinearity; "relu", "tanh", "leaky_relu", "gelu" are accepted). The
raw correlation attention is quadratic in x, so hidden values grow ~x^2 per layer (0.35 -> 6 -> 6e3
-> 5e9 -> 5e21 over 5 layers at init): the head's peak normalization keeps the output and its
gradients finite for a few layers, but [2,64,64,64,64,2] overflows float32 at the default init;
``attention_norm="cosine"`` (a stated deviation) makes every layer 1-homogeneous. Initialization
(the paper states none): ``init="mrt"`` (default, ``mrt_init_``) or the nn.Linear-style "default".
None on the output layer. Aggregation: "sum" (the paper's
sums) or "mean" (over the non-empty set; empty sets give zero). Output head: exact per-AP scaling
``V_l sqrt(P_l) / ||V_l||_F`` after zeroing unserved links (``power_head``); the paper states
constraint (1b) but not its head, and the sum rate is maximized at full power per AP here.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor, nn

from cfmimo.models import ModelConfig, register_model, with_defaults
from cfmimo.models.gnn.base import PrecoderModel, resolve_widths
from cfmimo.models.gnn.layers import (
    EdgeAttentionScore,
    attend,
    channels_to_complex,
    complex_to_channels,
    masked_softmax,
    power_head,
)

_ACTIVATIONS = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "none": nn.Identity,
}


def activation(name: str) -> nn.Module:
    if name not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {name!r}")
    return _ACTIVATIONS[name]()


def _init_weight(n: int, c_in: int, c_out: int) -> nn.Parameter:
    # nn.Linear's default init for a Linear(n * c_in, c_out) on the concatenated inputs
    bound = 1.0 / math.sqrt(n * c_in)
    return nn.Parameter(torch.empty(n, c_in, c_out).uniform_(-bound, bound))


def antenna_counts(d: Tensor, N: int, how: str) -> tuple[Tensor, ...]:
    """Reciprocal set sizes of the eq. (14) aggregations (all ones for "sum"; 0 for empty sets):
    (1/|c != n|, 1/|b != m served|, 1/|b != m unserved|, 1/|a != k served|, 1/|a != k unserved|),
    the AP ones per link [B, L, K] counting antennas too, the UE ones per link [B, L, K].

    Shapes: d [B, L, K] float.
    """
    if how == "sum":
        one = torch.ones_like(d)
        return (one,) * 5
    if how != "mean":
        raise ValueError(f"aggregation must be 'sum' or 'mean', got {how!r}")
    u = 1.0 - d
    inv = lambda c: 1.0 / c.clamp_min(1.0)  # noqa: E731
    n_ant = torch.full_like(d, float(N - 1))  # the same for every link
    ap_s, ap_u = (d.sum(1, keepdim=True) - d) * N, (u.sum(1, keepdim=True) - u) * N
    ue_s, ue_u = d.sum(2, keepdim=True) - d, u.sum(2, keepdim=True) - u
    return inv(n_ant), inv(ap_s), inv(ap_u), inv(ue_s), inv(ue_u)


def o_and_p_terms(x: Tensor, d: Tensor, w: Tensor, inv: tuple[Tensor, ...]) -> Tensor:
    """sum of the O1, O2 and P terms of eq. (15) / (18a), computed with the linearity of the weights
    (aggregate per link first, multiply per element only twice), for weights
    w = [O1~, O1^, O2~, O2^, P~, P^] [6, C_in, C_out].

    O2~ sum_{c != n} d x_kmc = d (O2~ S_km - O2~ x_kmn) with S_km = sum_c x_kmc; P~ sum_{b != m}
    sum_c d_kb x_kbc = P~ (sum_b d_kb S_kb - d_km S_km).

    Shapes: x [B, L, K, N, C_in]; d [B, L, K]; inv (``antenna_counts``) -> [B, L, K, N, C_out].
    """
    u = 1.0 - d
    i_n, i_ps, i_pu = inv[0], inv[1], inv[2]
    # per element: d (O1~ - O2~/c_n) x + (1 - d) (O1^ - O2^/c_n) x; c_n is the same for every link
    c = float(i_n.flatten()[0]) if i_n.numel() else 1.0
    a_s, a_u = w[0] - c * w[2], w[1] - c * w[3]
    y = x @ torch.cat([a_s, a_u], dim=-1)  # [B, L, K, N, 2 C_out]
    y_s, y_u = y.chunk(2, dim=-1)
    out = d[..., None, None] * y_s + u[..., None, None] * y_u
    S = x.sum(3)  # [B, L, K, C_in]
    Sd, Su = S * d[..., None], S * u[..., None]
    per_link = (
        (d * i_n)[..., None] * (S @ w[2])
        + (u * i_n)[..., None] * (S @ w[3])
        + i_ps[..., None] * ((Sd.sum(1, keepdim=True) - Sd) @ w[4])
        + i_pu[..., None] * ((Su.sum(1, keepdim=True) - Su) @ w[5])
    )
    return out + per_link[:, :, :, None, :]


class WoALayer(nn.Module):
    """One AAGNN-woA layer, eqs. (14)-(15): 8 matrices C_in x C_out, no bias (module docstring)."""

    def __init__(self, c_in: int, c_out: int, how: str) -> None:
        super().__init__()
        self.weight = _init_weight(8, c_in, c_out)  # [O1~ O1^ O2~ O2^ P~ P^ Q~ Q^]
        self.how = how

    def forward(self, x: Tensor, d: Tensor) -> Tensor:
        inv = antenna_counts(d, x.shape[3], self.how)
        w = self.weight
        # Q terms: Q~ sum_{a != k} d_am x_amn = Q~ (T~_mn - d_km x_kmn) / c~_km, T~_mn = sum_a d_am x_amn
        u = 1.0 - d
        dd, du = d[..., None, None], u[..., None, None]
        i_s, i_u = inv[3][..., None, None], inv[4][..., None, None]
        ts, tu = (x * dd).sum(2, keepdim=True), (x * du).sum(2, keepdim=True)  # [B, L, 1, N, C_in]
        if self.how == "sum":  # c~ = 1: fold -Q~ d x into the per-element O1~ product (2 products, not 4)
            out = o_and_p_terms(x, d, torch.cat([(w[0] - w[6])[None], (w[1] - w[7])[None], w[2:6]]), inv)
        else:
            out = o_and_p_terms(x, d, w[:6], inv)
            y_s, y_u = (x @ torch.cat([w[6], w[7]], dim=-1)).chunk(2, dim=-1)
            out = out - i_s * dd * y_s - i_u * du * y_u
        return out + i_s * (ts @ w[6]) + i_u * (tu @ w[7])


class AttentionLayer(nn.Module):
    """One AAGNN layer, eqs. (18)-(20): t from 6 matrices, z from 2, raw correlation attention."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        how: str,
        alpha: float = 0.1,
        beta: float = 0.1,
        norm: str = "none",
    ) -> None:
        super().__init__()
        if c_out % 2:
            raise ValueError(f"AAGNN widths must be even (complex channel pairs), got {c_out}")
        if norm not in ("none", "cosine"):
            raise ValueError(f"attention_norm must be 'none' or 'cosine', got {norm!r}")
        self.weight = _init_weight(8, c_in, c_out)  # [O1~ O1^ O2~ O2^ P~ P^] -> t (18a), [Q~ Q^] -> z (18b)
        self.alpha = nn.Parameter(torch.tensor(alpha))
        self.beta = nn.Parameter(torch.tensor(beta))
        self.how = how
        self.norm = norm

    def forward(self, x: Tensor, d: Tensor, g: Tensor) -> Tensor:
        """Shapes: x [B, L, K, N, C_in]; d [B, L, K]; g complex [B, L, K, N] -> [B, L, K, N, C_out]."""
        inv = antenna_counts(d, x.shape[3], self.how)
        t = _as_complex(o_and_p_terms(x, d, self.weight[:6], inv))  # [B, L, K, N, C/2]
        zz = x @ torch.cat([self.weight[6], self.weight[7]], dim=-1)
        z_s, z_u = zz.chunk(2, dim=-1)
        z = _as_complex(d[..., None, None] * z_s + (1.0 - d)[..., None, None] * z_u)
        gc = g.conj()
        lam_self = self.alpha * torch.einsum("blkn,blknc->blkc", gc, t)  # lambda_kkm, eq. (19)
        lam = self.beta * torch.einsum("blkn,blanc->blkac", gc, z)  # lambda_akm [B, L, K, A, C/2]
        if self.norm == "cosine":  # deviation (stated): lambda / (||h_km|| ||t_km||), per complex channel
            tiny = torch.finfo(x.dtype).tiny
            g2 = _abs2(g).sum(-1)  # [B, L, K]
            t2, z2 = _abs2(t).sum(-2), _abs2(z).sum(-2)  # [B, L, K, C/2] (norms over antennas)
            lam_self = lam_self / (g2[..., None] * t2).clamp_min(tiny).sqrt()
            lam = lam / (g2[:, :, :, None, None] * z2[:, :, None]).clamp_min(tiny).sqrt()
        K = x.shape[2]
        off = 1.0 - torch.eye(K, dtype=x.dtype, device=x.device)  # a != k
        lam = lam * off[None, None, :, :, None]
        msg = torch.einsum("blkac,blanc->blknc", lam, z)
        if self.how == "mean":
            msg = msg / max(K - 1, 1)
        out = lam_self[:, :, :, None, :] * t + msg  # eq. (20)
        return torch.view_as_real(out).flatten(-2)


def _abs2(x: Tensor) -> Tensor:
    return x.real.square() + x.imag.square()


def _as_complex(x: Tensor) -> Tensor:
    """Real [..., C] -> complex [..., C/2] (channel pairs (Re, Im))."""
    return torch.view_as_complex(x.unflatten(-1, (-1, 2)).contiguous())


class EGATLayer(nn.Module):
    """AAGNN-woA layer whose UE aggregation (Q~, Q^) is GAT softmax attention (ref. [15])."""

    def __init__(self, c_in: int, c_out: int, how: str, heads: int = 1) -> None:
        super().__init__()
        if c_out % heads:
            raise ValueError(f"EGAT width {c_out} must be divisible by heads {heads}")
        self.weight = _init_weight(6, c_in, c_out)  # O1~ O1^ O2~ O2^ P~ P^
        self.q_served = nn.Linear(c_in, c_out, bias=False)
        self.q_unserved = nn.Linear(c_in, c_out, bias=False)
        self.att_served = EdgeAttentionScore(c_out, c_out, heads)
        self.att_unserved = EdgeAttentionScore(c_out, c_out, heads)
        self.how = how

    def forward(self, x: Tensor, d: Tensor) -> Tensor:
        out = o_and_p_terms(x, d, self.weight, antenna_counts(d, x.shape[3], self.how))
        K = x.shape[2]
        not_self = ~torch.eye(K, dtype=torch.bool, device=x.device)
        served = d > 0.5  # [B, L, K]
        for q, att, members in (
            (self.q_served, self.att_served, served),
            (self.q_unserved, self.att_unserved, ~served),
        ):
            y = q(x).transpose(2, 3)  # [B, L, N, K, C_out]: the antenna vertex (m, n) sees its K edges
            mask = members[:, :, None, None, :] & not_self  # [B, L, 1, K(target), K(neighbour)]
            w = masked_softmax(att(y, y), mask[..., None], dim=-2)  # [B, L, N, K, K, H]
            out = out + attend(w, y).transpose(2, 3)
        return out


#: sigma(x) - sigma(-x) = c x for these activations (the "split" pairs of the MRT init), with c
_ODD_PART = {"relu": 1.0, "gelu": 1.0, "leaky_relu": 1.0 + nn.LeakyReLU().negative_slope}


def _identity_block(c_in: int, c_out: int, enc_in: str, enc_out: str, c: float = 1.0) -> Tensor:
    """The [c_in, c_out] self-weight that passes (Re, Im) of the input through one layer unchanged.

    Encodings: "pair" = channels (0, 1) hold (Re, Im); "split" = channels (0..3) hold
    (Re, -Re, Im, -Im) before the activation, so (sigma(ch0) - sigma(ch1)) / c = Re after it (exact
    for ReLU and GELU, c = 1; leaky ReLU c = 1 + slope). Other channels start empty.
    """
    decode = {"pair": torch.eye(2), "split": torch.tensor([[1.0, 0], [-1, 0], [0, 1], [0, -1]]) / c}
    encode = {"pair": torch.eye(2), "split": torch.tensor([[1.0, -1, 0, 0], [0, 0, 1, -1]])}
    block = decode[enc_in] @ encode[enc_out]  # [2 or 4, 2 or 4]
    if block.shape[0] > c_in or block.shape[1] > c_out:
        raise ValueError(
            f"init='mrt' needs hidden widths >= {max(block.shape)} with this activation, got {c_in} -> {c_out}"
        )
    out = torch.zeros(c_in, c_out)
    out[: block.shape[0], : block.shape[1]] = block
    return out


@torch.no_grad()
def mrt_init_(model: _AntennaGNN, scale: float) -> None:
    """MRT-preserving initialization (``ModelConfig.init = "mrt"``; the paper states no init).

    The self matrices O1~ and O1^ of every layer (eq. (15) / (18a)) start as identity pairs that pass
    (Re, Im) of the input link g (``link_input``) to the output; every other weight (O2, P, Q, EGAT's
    Q projections) starts at ``scale`` x its default init (the identity blocks get the same small
    noise). With ``scale = 0`` the untrained model outputs ``power_head(g)``: MRT directions, per-link
    magnitude log(1 + SNR), each AP scaled to P_l (AAGNN needs ``attention_norm="cosine"`` for that:
    the raw attention multiplies every layer by alpha |h|^2). Hidden layers keep the signal in 2
    (activation "none", AAGNN's complex pair) or 4 channels (ReLU-type: (Re, -Re, Im, -Im)).
    """
    act = model.config.activation
    if act == "none":
        hidden = "pair"
        c = 1.0
    elif act in _ODD_PART:
        hidden = "split"
        c = _ODD_PART[act]
    else:
        raise ValueError(f"init='mrt' needs activation in {['none', *_ODD_PART]}, got {act!r}")
    if isinstance(model, AAGNN) and hidden != "pair":
        raise ValueError("init='mrt' for aagnn needs activation='none' (hidden channels are complex pairs)")
    n = len(model.layers)
    for i, layer in enumerate(model.layers):
        layer.weight.mul_(scale)
        c_in, c_out = layer.weight.shape[1:]
        block = _identity_block(
            c_in, c_out, "pair" if i == 0 else hidden, "pair" if i == n - 1 else hidden, c
        ).to(layer.weight)
        layer.weight[0] += block
        layer.weight[1] += block
        if isinstance(layer, EGATLayer):
            layer.q_served.weight.mul_(scale)
            layer.q_unserved.weight.mul_(scale)
        if isinstance(layer, AttentionLayer):  # x' = (alpha cos(h, t)) t = t at t = h
            layer.alpha.fill_(1.0)
            layer.beta.fill_(1.0)


class _AntennaGNN(PrecoderModel):
    """Shared stack: input (Re, Im) of g, hidden layers with activation, output 2 channels -> head."""

    def __init__(self, config: ModelConfig, make_layer) -> None:
        super().__init__(config)
        widths = resolve_widths(config)
        if widths[0] != 2 or widths[-1] != 2:
            raise ValueError(f"widths must start and end with 2 (Re, Im), got {list(widths)}")
        self.widths = widths
        self.layers = nn.ModuleList(make_layer(a, b) for a, b in itertools.pairwise(widths))
        self.act = activation(config.activation)
        if config.init == "mrt":
            mrt_init_(self, config.init_scale)

    def run_layer(self, layer: nn.Module, x: Tensor, d: Tensor, g: Tensor) -> Tensor:
        return layer(x, d)

    def forward(self, h: Tensor, association: Tensor, p_max: Tensor, noise: Tensor) -> Tensor:
        h, association, p_max, noise, g, _ = self.prepare(h, association, p_max, noise)
        d = association.to(p_max.dtype)
        x = complex_to_channels(g)  # [B, L, K, N, 2]
        for i, layer in enumerate(self.layers):
            x = self.run_layer(layer, x, d, g)
            if i < len(self.layers) - 1:
                x = self.act(x)
        return power_head(channels_to_complex(x), association, p_max, self.config.power_scaling)


@register_model("aagnn_woa")
class AAGNNwoA(_AntennaGNN):
    """AAGNN without attention, eqs. (14)-(15). Defaults: widths [2,128,128,128,128,2], sum
    aggregation, no bias: 397,312 parameters (the paper's Table I lists 397,313)."""

    def __init__(self, config: ModelConfig) -> None:
        config = with_defaults(config, d_mod=128, layers=4, init="mrt")
        super().__init__(config, lambda a, b: WoALayer(a, b, config.aggregation))


@register_model("aagnn")
class AAGNN(_AntennaGNN):
    """AAGNN, eqs. (18)-(20), raw correlation attention, alpha and beta per layer (init 0.1), no
    activation by default (eq. (20) has none: the attention is the nonlinearity). Defaults: widths
    [2,64,64,2]: 8 * 4,352 + 2 * 3 = 34,822 parameters (Table I's 115,617 is a width-sweep result
    whose widths the paper does not give)."""

    def __init__(self, config: ModelConfig) -> None:
        config = with_defaults(config, d_mod=64, layers=2, activation="none", init="mrt")
        super().__init__(
            config, lambda a, b: AttentionLayer(a, b, config.aggregation, norm=config.attention_norm)
        )

    def run_layer(self, layer: nn.Module, x: Tensor, d: Tensor, g: Tensor) -> Tensor:
        return layer(x, d, g)


@register_model("aagnn_egat")
class AAGNNEGAT(_AntennaGNN):
    """EGAT baseline: AAGNN-woA with ref. [15]'s softmax attention on the UE aggregation (``heads``
    heads, default 1). Defaults: widths [2,128,128,128,128,2]: 397,312 + 4 * (4*128 + 2) = 399,368
    parameters (Table I: 399,365; the paper does not give its attention layout)."""

    def __init__(self, config: ModelConfig) -> None:
        config = with_defaults(config, d_mod=128, layers=4, heads=1, init="mrt")
        super().__init__(config, lambda a, b: EGATLayer(a, b, config.aggregation, _heads(b, config.heads)))


def _heads(width: int, heads: int) -> int:
    # the 2-channel output layer cannot split into more heads than channels
    return heads if width % heads == 0 else 1
