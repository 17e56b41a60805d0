"""The precoder-model contract shared by the six AAGNN-paper models.

    model(h, association, p_max, noise) -> precoders

Shapes: h complex [B, L, K, N]; association [B, L, K] bool (True = AP l serves UE k); p_max [B, L]
per-AP budget (same unit as ||v||^2); noise [B] -> precoders complex [B, L, K, N] in the parameters'
complex dtype, exactly zero on unserved links and within (1b) per AP (``power_head``).

Every model keeps one input statistic as a buffer (``input_scale``: the mean log(1 + link SNR) of
the served links of a training set, ``fit_input_scale``), so a checkpoint's state dict restores it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cfmimo.models import ModelConfig
from cfmimo.models.gnn.layers import link_input


def resolve_widths(config: ModelConfig, io: int = 2) -> tuple[int, ...]:
    """Every layer's channels: ``config.widths`` or [io] + [d_mod] * layers + [io]."""
    if config.widths is not None:
        if len(config.widths) < 2:
            raise ValueError(f"widths must list at least input and output channels, got {config.widths}")
        return tuple(config.widths)
    return (io, *([config.d_mod] * config.layers), io)


class PrecoderModel(nn.Module):
    """Base class: input validation, the fitted input scale, the config (module docstring)."""

    config: ModelConfig
    fixed_antennas: int | None = None  # set by fixed-N models

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("input_scale", torch.tensor(1.0))

    @torch.no_grad()
    def fit_input_scale(self, h: Tensor, association: Tensor, p_max: Tensor, noise: Tensor) -> float:
        """Set ``input_scale`` to the mean log(1 + SNR) over the served links of these samples."""
        _, log_snr = link_input(h, p_max, noise)
        served = association.to(log_snr.dtype)
        value = float((log_snr * served).sum() / served.sum().clamp_min(1.0))
        self.input_scale.fill_(max(value, 1e-3))
        return value

    def check_inputs(self, h: Tensor, association: Tensor, p_max: Tensor, noise: Tensor) -> None:
        if not isinstance(h, Tensor) or not h.is_complex() or h.dim() != 4:
            raise TypeError(f"h must be a complex tensor [B, L, K, N], got {getattr(h, 'dtype', type(h))}")
        B, L, K, N = h.shape
        if association.shape != (B, L, K) or association.dtype != torch.bool:
            raise ValueError(
                f"association must be bool [B, L, K] = {[B, L, K]}, got {tuple(association.shape)}"
            )
        if p_max.shape != (B, L):
            raise ValueError(f"p_max must be [B, L] = {[B, L]}, got {tuple(p_max.shape)}")
        if noise.shape != (B,):
            raise ValueError(f"noise must be [B] = {[B]}, got {tuple(noise.shape)}")
        if self.fixed_antennas is not None and N != self.fixed_antennas:
            raise ValueError(
                f"{type(self).__name__} has a fixed number of antennas: got N = {N}, "
                f"trained with N = {self.fixed_antennas}"
            )

    def prepare(self, h: Tensor, association: Tensor, p_max: Tensor, noise: Tensor):
        """Validated inputs in the parameters' dtype: (h, association, p_max, noise, g, log_snr) with
        g the compressed complex link input (``link_input``)."""
        self.check_inputs(h, association, p_max, noise)
        real = self.input_scale.dtype
        cplx = torch.complex64 if real == torch.float32 else torch.complex128
        h, p_max, noise = h.to(cplx), p_max.to(real), noise.to(real)
        g, log_snr = link_input(h, p_max, noise, self.input_scale)
        return h, association, p_max, noise, g, log_snr / self.input_scale
