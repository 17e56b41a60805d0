"""The ee-gnn paper's GNN with nested SINRnet processors (ee-gnn-sinrnet.md, Sect. IV, eqs. (10)-(13)).

Gain-graph contract (next to the position contract of ``cfmimo.models`` and the precoder contract of
``cfmimo.models.gnn.base``):

    model(gains, serving) -> (a, ell)

Shapes: gains [B, L, K, K] real >= 0 (noise-normalized MRT gains, ``gains[b, l, k, j]`` = h_{l,kj}, the
``EEInstance`` layout); serving [B, L, K] bool -> a [B, L, K] in [0, 1) and ell [B, L, K] > 0 on served
links (both exactly 0 on unserved links), as fractions of the AP's per-link cap: the support of the
uniform power p_lk ~ U(a cap_l, (a + ell) cap_l) of eq. (5) (the policy multiplies by the cap, so the
model needs no cap input).

Architecture:

* Node = AP l with the K x K matrix H_l of its gains as node feature. Per entry (k, j) the raw input
  is [x_kj, 1{k = j}, s_lk, s_lj]: x the normalized log gain (13), the diagonal flag (the SINR
  categories of (11) need it), and the serving flags of the row and column UE (the threshold option:
  a gain-threshold clustering gives the serving mask).
* SINRnet (11): ``sinr_depth`` layers ``SINRnetLayer(dims=(-3, -2))`` over the matrix, each the
  concat over 4 categories (the entry, its column = other rows, its row = other columns, the rest)
  of the mean of ReLU(W_c F + b_c); the raw input is concatenated to every layer's input
  (re-injected per layer).
* GNN (10), ``rounds`` times: the message phi(x_j) is computed once per sender (no receiver input:
  one broadcast per AP over the fronthaul), aggregated by the mean over the *other* APs that serve
  someone, and gamma(x_l || mean) updates the node; phi and gamma are SINRnets.
* Heads on the diagonal entries (UE k's own link): a = sigmoid(.) (>= 0, starts near 0) and
  ell = softplus(.) + 1e-6 (> 0, starts near 1: the prior covers the whole box [0, cap] as in
  Sect. III-B).
* Input normalization (13): x = (log g - (mu - eps)) / (sigma - eps') with mu, sigma the mean and
  std of the log gains of a training set (``fit_input_stats``), stored as buffers (so in checkpoints);
  eps, eps' are ``ModelConfig.norm_eps_mean`` / ``norm_eps_std`` (0, 0 = standardization).

Equivariant to UE permutations (rows and columns permuted together) and AP permutations.
Deviation: the paper uses two GNNs alpha_delta and beta_theta for a and ell (12); here one trunk with
two heads (half the cost; the heads are separate).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cfmimo.models import ModelConfig, register_model, with_defaults
from cfmimo.models.gnn.baselines import SINRnetLayer
from cfmimo.models.gnn.layers import others_aggregate

__all__ = ["EEGNN", "SINRnet", "check_gain_inputs"]

RAW = 4  # raw channels per matrix entry: log gain, diagonal flag, row and column serving flags
_LOG_FLOOR = 1e-30  # gains of exactly 0 (never in sampled data) map to a finite log


def check_gain_inputs(gains: object, serving: object) -> None:
    """TypeError/ValueError naming ``gains`` or ``serving`` for anything outside the contract."""
    if not isinstance(gains, Tensor) or gains.is_complex() or not gains.is_floating_point():
        raise TypeError(
            f"gains must be a real floating tensor [B, L, K, K], got {getattr(gains, 'dtype', gains)}"
        )
    if gains.dim() != 4 or gains.shape[-1] != gains.shape[-2]:
        raise ValueError(f"gains must have shape [B, L, K, K], got {tuple(gains.shape)}")
    if not isinstance(serving, Tensor) or serving.dtype != torch.bool:
        raise TypeError(f"serving must be a bool tensor [B, L, K], got {getattr(serving, 'dtype', serving)}")
    if tuple(serving.shape) != tuple(gains.shape[:3]):
        raise ValueError(f"serving must have shape {tuple(gains.shape[:3])}, got {tuple(serving.shape)}")


class SINRnet(nn.Module):
    """``depth`` SINRnet layers (11) over per-AP matrices with the raw input re-injected per layer.

    Shapes: x [B, L, K, K, c_in], raw [B, L, K, K, RAW] -> [B, L, K, K, 4 width]."""

    def __init__(self, c_in: int, width: int, depth: int) -> None:
        super().__init__()
        chans = [c_in] + [4 * width] * depth
        self.layers = nn.ModuleList(SINRnetLayer(c + RAW, width, dims=(-3, -2)) for c in chans[:-1])

    def forward(self, x: Tensor, raw: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(torch.cat([x, raw], dim=-1))
        return x


@register_model("ee_gnn")
class EEGNN(nn.Module):
    """GNN (10) with SINRnet phi and gamma (module docstring). Defaults: d_mod = 16 per category,
    sinr_depth = 2, rounds = 2."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        config = with_defaults(config, d_mod=16)
        self.config = config
        w, c = config.d_mod, 4 * config.d_mod
        self.phi = nn.ModuleList()
        self.gamma = nn.ModuleList()
        x_in = RAW
        for _ in range(config.rounds):
            self.phi.append(SINRnet(x_in, w, config.sinr_depth))
            self.gamma.append(SINRnet(x_in + c, w, config.sinr_depth))
            x_in = c
        self.head_a = nn.Linear(c, 1)
        self.head_ell = nn.Linear(c, 1)
        with torch.no_grad():  # prior: a ~ 0.007, ell ~ 1 (the whole box)
            self.head_a.bias.fill_(-5.0)
            self.head_ell.bias.fill_(0.5413)
        self.register_buffer("log_gain_mean", torch.tensor(0.0))
        self.register_buffer("log_gain_std", torch.tensor(1.0))

    @torch.no_grad()
    def fit_input_stats(self, gains: Tensor, serving: Tensor) -> tuple[float, float]:
        """Set (mu, sigma) of eq. (13) to the mean and std of log gains over these samples (all
        entries of the served APs' matrices); returns them."""
        check_gain_inputs(gains, serving)
        logs = torch.log(gains.double().clamp_min(_LOG_FLOOR))
        ap = serving.any(-1)  # [B, L]
        values = logs[ap] if bool(ap.any()) else logs.reshape(-1)
        mu, sigma = float(values.mean()), float(values.std()) if values.numel() > 1 else 1.0
        if not sigma - self.config.norm_eps_std > 0:
            raise ValueError(
                f"norm_eps_std = {self.config.norm_eps_std} must be below the log-gain std {sigma:.4g}"
            )
        self.log_gain_mean.fill_(mu)
        self.log_gain_std.fill_(max(sigma, 1e-6))
        return mu, sigma

    def raw_input(self, gains: Tensor, serving: Tensor) -> Tensor:
        """Per-entry raw features [B, L, K, K, RAW] (module docstring)."""
        dtype = self.log_gain_mean.dtype
        mu = self.log_gain_mean - self.config.norm_eps_mean
        sigma = self.log_gain_std - self.config.norm_eps_std
        x = (torch.log(gains.to(dtype).clamp_min(_LOG_FLOOR)) - mu) / sigma
        K = gains.shape[-1]
        diag = torch.eye(K, dtype=dtype, device=gains.device).expand_as(x)
        s = serving.to(dtype)
        return torch.stack([x, diag, s[..., :, None].expand_as(x), s[..., None, :].expand_as(x)], dim=-1)

    def forward(self, gains: Tensor, serving: Tensor) -> tuple[Tensor, Tensor]:
        check_gain_inputs(gains, serving)
        raw = self.raw_input(gains, serving)
        dtype = raw.dtype
        ap = serving.any(-1).to(dtype)[:, :, None, None, None]  # APs that serve someone send messages
        x = raw
        for phi, gamma in zip(self.phi, self.gamma, strict=True):
            message = phi(x, raw)  # sender-only: one broadcast per AP
            incoming = others_aggregate(message, ap, dim=1, how="mean")  # mean over the other APs
            x = gamma(torch.cat([x, incoming], dim=-1), raw)
        own = torch.diagonal(x, dim1=2, dim2=3).transpose(-1, -2)  # [B, L, K, C]: UE k's own link
        s = serving.to(dtype)
        a = torch.sigmoid(self.head_a(own)[..., 0]) * s
        ell = (nn.functional.softplus(self.head_ell(own)[..., 0]) + 1e-6) * s
        return a, ell
