"""A permutation-equivariant reference model ("deepsets"): per-UE MLP on [UE embedding, mean AP
embedding, mean UE embedding]. Small and fast; used as a sanity baseline and in tests of the
training framework. Equivariant to UE order and invariant to AP order by construction.
"""

from __future__ import annotations

import torch
from torch import nn

from cfmimo.models import ModelConfig, masked_mean, register_model


@register_model("deepsets")
class DeepSetsPower(nn.Module):
    """Shapes: ue [B, K, 2], ap [B, L, 2], masks [B, K] / [B, L] -> [B, K, 2] in (0, 1)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        d = config.d_enc
        self.ap_encoder = nn.Sequential(nn.Linear(2, d), nn.ReLU(), nn.Linear(d, d))
        self.ue_encoder = nn.Sequential(nn.Linear(2, d), nn.ReLU(), nn.Linear(d, d))
        self.decoder = nn.Sequential(nn.Linear(3 * d, config.d_mod), nn.ReLU(), nn.Linear(config.d_mod, 2))

    def forward(
        self,
        ue: torch.Tensor,
        ap: torch.Tensor,
        ue_mask: torch.Tensor | None = None,
        ap_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        e_ue = self.ue_encoder(ue)  # [B, K, d]
        context = torch.cat([masked_mean(self.ap_encoder(ap), ap_mask, 1), masked_mean(e_ue, ue_mask, 1)], -1)
        z = torch.cat([e_ue, context[:, None, :].expand(-1, ue.shape[1], -1)], -1)  # [B, K, 3d]
        return torch.sigmoid(self.decoder(z))
