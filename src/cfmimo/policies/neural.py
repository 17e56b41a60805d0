"""Neural policies: a trained power model plus its feature map and output head, as a Policy.

``PositionPowerPolicy`` turns a position-based power model (``cfmimo.models`` contract) into a
policy for ``MaxMinPower`` instances, so a trained model is scored by the same code as the
classical baselines:

  positions (+ optional Gaussian noise, tree-transformer eq. (10)) -> the model's fitted frame
  (eq. (11); per-sample min-max without one) -> model -> normalized (p~_UL, p~_DL) -> rescaler (eqs. (12)-(13):
  UL de-normalized and clamped to the training range, DL de-normalized and renormalized to the
  total budget) -> for a per-AP DL constraint, a common scaling so the most loaded AP is at its
  limit (the rescaler alone guarantees only the papers' sum constraint).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cfmimo.data.transforms import (
    PositionFrame,
    PowerScaler,
    add_position_noise,
    minmax_positions,
    rescale_predictions,
)
from cfmimo.policies.classical.power import scale_to_budget
from cfmimo.problems.base import Allocation
from cfmimo.problems.maxmin_power import PowerInstance
from cfmimo.rng import stream


def noisy_positions(
    positions: torch.Tensor, sigma_m: float, *, seed: int, name: str, indices: tuple[int, ...]
) -> torch.Tensor:
    """Positions plus N(0, sigma^2) per coordinate, one stream per sample (batch-independent).

    Shapes: positions [B, P, 2] -> [B, P, 2].
    """
    if sigma_m == 0:
        return positions
    return torch.cat(
        [
            add_position_noise(positions[b : b + 1], sigma_m, generator=stream(seed, name, i))
            for b, i in enumerate(indices)
        ]
    )


def model_features(
    ue: torch.Tensor, ap: torch.Tensor, frame: PositionFrame | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The models' inputs (eq. (11)): positions in the trained model's fitted frame, or, without
    one, per-sample min-max scaled per set, x and y separately.

    Shapes: ue [B, K, 2], ap [B, L, 2] -> same shapes.
    """
    if frame is not None:
        return frame.apply(ue), frame.apply(ap)
    return minmax_positions(ue), minmax_positions(ap)


@dataclass
class PositionPowerPolicy:
    """A trained position -> power model as a policy (module docstring)."""

    model: nn.Module
    scaler: PowerScaler
    frame: PositionFrame | None = None
    sigma_ue_m: float = 0.0
    sigma_ap_m: float = 0.0
    seed: int = 0

    @torch.inference_mode()
    def __call__(self, instance: PowerInstance) -> Allocation:
        net = instance.network
        dtype = instance.ul_budget.dtype
        ue = noisy_positions(
            net.ue_positions, self.sigma_ue_m, seed=self.seed, name="eval_noise/ue", indices=net.indices
        )
        ap = noisy_positions(
            net.ap_positions, self.sigma_ap_m, seed=self.seed, name="eval_noise/ap", indices=net.indices
        )
        ue_f, ap_f = model_features(ue.float(), ap.float(), self.frame)
        was_training = self.model.training
        self.model.eval()
        out = self.model(ue_f, ap_f)  # [B, K, 2]
        self.model.train(was_training)
        # eq. (13): renormalize to the total budget sum_l P_l (per setup) ...
        total = instance.dl_budget.sum(-1)  # sum: [B] budget; per_ap: sum of the AP limits
        p_ul, p_dl = rescale_predictions(out[..., 0], out[..., 1], self.scaler, total.float())
        if instance.dl_constraint == "per_ap":  # ... and, for per-AP limits, scale to the most loaded AP
            p_dl = scale_to_budget(p_dl.to(dtype), instance.dl_weights, instance.dl_budget)
        p_ul = torch.minimum(p_ul.to(dtype), instance.ul_budget)
        return Allocation(p_ul=p_ul, p_dl=p_dl.to(dtype), info={"normalized": out})
