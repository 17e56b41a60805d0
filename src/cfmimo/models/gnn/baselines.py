"""The AAGNN paper's three other learned baselines (Sect. IV), each as far as its source allows.

* ``mrt_gnn`` (ref. [17], the ee-gnn paper): a link-level GNN gives per-link powers on unit MRT
  directions, v_lk = sqrt(p_lk) h_lk / ||h_lk||, with sum_k p_lk = P_l over the UEs AP l serves
  (a masked softmax per AP: full power, p_lk = 0 on unserved links), scored coherently by eq. (2).
  Layers follow ee-gnn eq. (11): per link, the mean of ReLU(W_c x + b_c) over each of 4 channel
  categories (the link itself, the same UE's other APs, the same AP's other UEs, all other links),
  concatenated. Inputs per link: log(1 + SNR)/input_scale and d_lk (ee-gnn uses large-scale gains
  for an EE objective; here the instantaneous link gains). Approximation: ee-gnn's node/edge
  processor split (10), its (a, b) uniform power distribution and its EE loss are not used.
  Equivariant in UEs, APs and antennas (inputs are antenna-invariant; MRT permutes with them).
* ``sunet`` (ref. [7], SUNet): a CNN over the AP x UE grid with the N antennas' (Re, Im) and the
  association as image channels (2N + 1), hence fixed N. Approximation: SUNet's architecture
  search, its searched cells and down/up-sampling are not reproduced; this is a fixed U-Net-like
  stack of 3x3 convolutions (ReLU) with a skip from the first to the last hidden block. Not
  permutation-equivariant (by design of a CNN); takes any L and K (zero padding), only the trained N.
* ``gnn16`` (ref. [16], Wang et al.): an AP-UE bipartite GNN with edge features (Re, Im of
  h_lk in 2N channels, log-SNR, d_lk), AP and UE nodes updated by the mean of an MLP of their edges,
  edges updated from [edge || AP node || UE node]; output 2N channels per edge. Approximation: the
  antenna selection part of [16] is dropped and layer sizes are ours. Equivariant in UEs and APs,
  fixed N (antennas are feature channels, not graph vertices, exactly why the AAGNN paper excludes it
  from the N sweep).

All three end in the same feasibility head: zero on unserved links, exact per-AP scaling.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn

from cfmimo.models import ModelConfig, register_model, with_defaults
from cfmimo.models.gnn.base import PrecoderModel
from cfmimo.models.gnn.layers import (
    channels_to_complex,
    complex_to_channels,
    masked_aggregate,
    masked_softmax,
    power_head,
)


class SINRnetLayer(nn.Module):
    """ee-gnn eq. (11) on a grid of entries [..., R, C', C]: concat over 4 categories of the mean of
    ReLU(W_c x + b_c) over the entry itself, the other entries of its column axis ``dims[0]``, the
    other entries of its row axis ``dims[1]``, and the rest (both indices different).

    ``dims=(1, 2)`` (default): links [B, L, K, C] (other APs of the UE, other UEs of the AP), used by
    ``mrt_gnn``. ``dims=(-3, -2)``: one K x K gain matrix per AP [B, L, K, K, C] (``ee_gnn``: self,
    column = other rows, row = other columns, rest). Every mean is over all entries (an empty set,
    e.g. K = 1, gives zero)."""

    def __init__(self, c_in: int, c_out: int, dims: tuple[int, int] = (1, 2)) -> None:
        super().__init__()
        self.maps = nn.ModuleList(nn.Linear(c_in, c_out) for _ in range(4))
        self.dims = dims

    def forward(self, x: Tensor) -> Tensor:
        d0, d1 = (d if d >= 0 else x.dim() + d for d in self.dims)
        y = [torch.relu(m(x)) for m in self.maps]
        L, K = x.shape[d0], x.shape[d1]
        # others_aggregate with unit weights, without materializing weights and counts (same values)
        same_ue = (y[1].sum(d0, keepdim=True) - y[1]) / max(L - 1, 1)  # other APs of this UE
        same_ap = (y[2].sum(d1, keepdim=True) - y[2]) / max(K - 1, 1)  # other UEs of this AP
        total = y[3].sum((d0, d1), keepdim=True)
        rest = total - y[3].sum(d0, keepdim=True) - y[3].sum(d1, keepdim=True) + y[3]  # b != l and a != k
        rest = rest / max((L - 1) * (K - 1), 1)
        return torch.cat([y[0], same_ue, same_ap, rest], dim=-1)


@register_model("mrt_gnn")
class MRTGNN(PrecoderModel):
    """MRT directions + GNN per-link powers (ref. [17]); module docstring. Defaults: hidden 32 per
    category (d_mod), 3 layers."""

    def __init__(self, config: ModelConfig) -> None:
        config = with_defaults(config, d_mod=32, layers=3)
        super().__init__(config)
        width, layers = [2], []
        for _ in range(config.layers):
            layers.append(SINRnetLayer(width[-1], config.d_mod))
            width.append(4 * config.d_mod)
        self.layers = nn.ModuleList(layers)
        self.out = nn.Linear(width[-1], 1)

    def forward(self, h: Tensor, association: Tensor, p_max: Tensor, noise: Tensor) -> Tensor:
        h, association, p_max, noise, _g, log_snr = self.prepare(h, association, p_max, noise)
        x = torch.stack([log_snr, association.to(log_snr.dtype)], dim=-1)  # [B, L, K, 2]
        for layer in self.layers:
            x = layer(x)
        share = masked_softmax(self.out(x)[..., 0], association, dim=2)  # [B, L, K], sums to 1 per AP
        power = share * p_max[..., None]
        norm = (h.real.square() + h.imag.square()).sum(-1)
        direction = (
            h * torch.where(norm > 0, norm.clamp_min(torch.finfo(norm.dtype).tiny).rsqrt(), 0.0)[..., None]
        )
        tiny = torch.finfo(power.dtype).tiny  # sqrt'(0) = inf: keep unserved links' gradient at 0
        amplitude = torch.where(power > 0, power.clamp_min(tiny).sqrt(), torch.zeros_like(power))
        v = direction * amplitude[..., None]
        return power_head(v, association, p_max, "clip")  # zero on unserved links; already feasible


class _FixedN(PrecoderModel):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self.fixed_antennas = config.antennas


@register_model("sunet")
class SUNetLike(_FixedN):
    """U-Net-like CNN over the AP x UE grid (ref. [7] approximated; module docstring). Defaults:
    d_mod 64 channels, layers 4 hidden conv blocks, N = ``antennas`` (16)."""

    def __init__(self, config: ModelConfig) -> None:
        config = with_defaults(config, d_mod=64, layers=4)
        super().__init__(config)
        N, C = config.antennas, config.d_mod
        chans = [2 * N + 1] + [C] * config.layers
        self.blocks = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1) for a, b in itertools.pairwise(chans))
        self.out = nn.Conv2d(C, 2 * N, 3, padding=1)

    def forward(self, h: Tensor, association: Tensor, p_max: Tensor, noise: Tensor) -> Tensor:
        h, association, p_max, noise, g, _ = self.prepare(h, association, p_max, noise)
        _B, _L, _K, N = h.shape
        img = torch.cat([complex_to_channels(g).flatten(-2), association[..., None].to(p_max.dtype)], -1)
        x = img.permute(0, 3, 1, 2)  # [B, 2N+1, L, K]
        skip = None
        for i, conv in enumerate(self.blocks):
            x = torch.relu(conv(x))
            if i == 0:
                skip = x
        x = self.out(x + skip)  # [B, 2N, L, K]
        v = channels_to_complex(x.permute(0, 2, 3, 1).unflatten(-1, (N, 2)))
        return power_head(v, association, p_max, self.config.power_scaling)


class BipartiteLayer(nn.Module):
    """Edge/node update of the [16]-like GNN: nodes from the mean of MLP(edge) over their links (all
    links, the association is an edge feature), then edges from [edge || AP || UE]."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.to_ap = nn.Sequential(nn.Linear(c, c), nn.ReLU())
        self.to_ue = nn.Sequential(nn.Linear(c, c), nn.ReLU())
        self.edge = nn.Linear(3 * c, c)

    def forward(self, e: Tensor) -> Tensor:
        one = torch.ones_like(e[..., :1])
        ap = masked_aggregate(self.to_ap(e), one, dim=2, how="mean")  # [B, L, C]
        ue = masked_aggregate(self.to_ue(e), one, dim=1, how="mean")  # [B, K, C]
        L, K = e.shape[1], e.shape[2]
        cat = torch.cat([e, ap[:, :, None].expand(-1, -1, K, -1), ue[:, None].expand(-1, L, -1, -1)], -1)
        return torch.relu(self.edge(cat)) + e  # residual


@register_model("gnn16")
class GNN16Like(_FixedN):
    """AP-UE bipartite edge GNN (ref. [16] approximated; module docstring). Defaults: d_mod 128,
    layers 3, N = ``antennas`` (16)."""

    def __init__(self, config: ModelConfig) -> None:
        config = with_defaults(config, d_mod=128, layers=3)
        super().__init__(config)
        N, C = config.antennas, config.d_mod
        self.embed = nn.Linear(2 * N + 2, C)
        self.layers = nn.ModuleList(BipartiteLayer(C) for _ in range(config.layers))
        self.out = nn.Linear(C, 2 * N)

    def forward(self, h: Tensor, association: Tensor, p_max: Tensor, noise: Tensor) -> Tensor:
        h, association, p_max, noise, g, log_snr = self.prepare(h, association, p_max, noise)
        d = association.to(p_max.dtype)
        e = torch.cat([complex_to_channels(g).flatten(-2), log_snr[..., None], d[..., None]], -1)
        e = torch.relu(self.embed(e))
        for layer in self.layers:
            e = layer(e)
        v = channels_to_complex(self.out(e).unflatten(-1, (h.shape[-1], 2)))
        return power_head(v, association, p_max, self.config.power_scaling)
