"""Support regularization of the ee-gnn / SINRnet recipe (ee-gnn-sinrnet.md, Sect. III, eqs. (4)-(8)),
as reusable pieces that need no model.

A model outputs, per link, a lower end ``a >= 0`` and a width ``l > 0`` of a uniform distribution of
the power; training maximizes the expected objective over that distribution minus a penalty on the
support width, and an adaptive coefficient ``kappa`` shrinks the support until the power is
practically deterministic:

* eq. (5), reparametrization: p = a + l * u with u ~ U(0, 1) (fixed distribution, so gradients reach
  a and l), clipped to the box [0, cap] (:func:`sample_powers`);
* eq. (6), penalty: psi = 1^T (b - a) = sum of widths, here on cap-normalized widths l / cap, so
  psi is comparable across caps and network sizes (:func:`support_penalty`);
* eq. (7), loss: L = E_u J(a + l u) - kappa psi, estimated with S Monte Carlo samples; we return
  its negative for minimization (:func:`support_loss`);
* eq. (8), kappa rule: kappa = 0 for the first h iterations; then kappa += dkappa if the average of
  the previous h values of psi is <= the current psi (the support does not shrink), else
  kappa = max(0, kappa - dkappa / 2) (:class:`KappaRule`). One global kappa by default (the paper);
  per-sample kappas (indexed by dataset sample) as an option.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = ["KappaRule", "SupportConfig", "sample_powers", "support_loss", "support_penalty"]


class SupportConfig(BaseModel):
    """Hyper-parameters of loss (7) and rule (8).

    ``h``: iterations with kappa = 0 and the length of the psi average (>= 1); ``delta_kappa``: the
    step of rule (8) (> 0; the issue's 1e-3 for the GNN recipe); ``samples``: S Monte Carlo samples
    per loss (>= 1); ``per_sample``: one kappa per dataset sample instead of one global kappa.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    h: Annotated[int, Field(ge=1)] = 50
    delta_kappa: Annotated[float, Field(gt=0)] = 1e-3
    samples: Annotated[int, Field(ge=1)] = 16
    per_sample: bool = False

    @classmethod
    def build(cls, **values) -> SupportConfig:
        """Validate, raising ValueError naming each bad field (``h: ...``)."""
        try:
            return cls(**values)
        except ValidationError as err:
            msgs = [f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in err.errors()]
            raise ValueError("invalid support config: " + "; ".join(msgs)) from None


def _check(a: torch.Tensor, ell: torch.Tensor, cap: torch.Tensor | float) -> torch.Tensor | float:
    if not isinstance(a, torch.Tensor) or not isinstance(ell, torch.Tensor):
        raise TypeError("a and ell must be tensors")
    if a.shape != ell.shape:
        raise ValueError(f"a and ell must have the same shape, got {tuple(a.shape)} and {tuple(ell.shape)}")
    if isinstance(cap, int | float):  # cheap path (called every training step)
        if not cap > 0:
            raise ValueError(f"cap must be > 0, got {cap}")
        return float(cap)
    cap_t = torch.as_tensor(cap, dtype=a.dtype, device=a.device)
    try:
        torch.broadcast_shapes(cap_t.shape, a.shape)
    except RuntimeError as err:
        raise ValueError(f"cap {tuple(cap_t.shape)} does not broadcast to a {tuple(a.shape)}") from err
    if not bool((cap_t > 0).all()):
        raise ValueError("cap must be > 0")
    return cap_t


def sample_powers(
    a: torch.Tensor,
    ell: torch.Tensor,
    cap: torch.Tensor | float,
    samples: int,
    *,
    generator: torch.Generator | None = None,
    u: torch.Tensor | None = None,
) -> torch.Tensor:
    """Eq. (5): S reparametrized draws p = clip(a + l * u, 0, cap), u ~ U(0, 1) i.i.d.

    ``u`` may be given (e.g. for common random numbers); otherwise drawn from ``generator`` on the
    CPU and moved, so the draws do not depend on the device.

    Shapes: a, ell [B, ...]; cap broadcastable to them -> [S, B, ...].
    """
    if samples < 1:
        raise ValueError(f"samples (S) must be >= 1, got {samples}")
    cap_t = _check(a, ell, cap)
    if u is None:
        u = torch.rand((samples, *a.shape), generator=generator, dtype=a.dtype).to(a.device)
    elif u.shape != (samples, *a.shape):
        raise ValueError(f"u must have shape {(samples, *a.shape)}, got {tuple(u.shape)}")
    if isinstance(cap_t, float):
        return (a + ell * u).clamp(0.0, cap_t)
    return torch.minimum((a + ell * u).clamp_min(0.0), cap_t)


def support_penalty(ell: torch.Tensor, cap: torch.Tensor | float) -> torch.Tensor:
    """Eq. (6) on cap-normalized widths: psi = sum over everything but the batch of l / cap.

    Shapes: ell [B, ...]; cap broadcastable -> [B].
    """
    cap_t = _check(ell, ell, cap)
    return (ell / cap_t).flatten(1).sum(-1)


def support_loss(
    objective: Callable[[torch.Tensor], torch.Tensor],
    a: torch.Tensor,
    ell: torch.Tensor,
    cap: torch.Tensor | float,
    kappa: torch.Tensor | float,
    samples: int,
    *,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Negative of loss (7), averaged over the batch, for minimization.

    ``objective`` maps powers [S * B, ...] to [S * B] (e.g. ``lambda p: problem.objective(inst_S,
    Allocation(link_power=p))`` with the instance repeated S times); kappa is a scalar (global) or
    [B] (per sample).

    Returns (loss, {"expected_objective" [B], "psi" [B], "powers" [S, B, ...]}).
    """
    p = sample_powers(a, ell, cap, samples, generator=generator)  # [S, B, ...]
    values = objective(p.flatten(0, 1)).view(samples, a.shape[0])  # [S, B]
    expected = values.mean(0)  # Monte Carlo estimate of E_u J, [B]
    psi = support_penalty(ell, cap)
    k = torch.as_tensor(kappa, dtype=a.dtype, device=a.device)
    loss = -(expected - k * psi).mean()
    return loss, {"expected_objective": expected.detach(), "psi": psi.detach(), "powers": p.detach()}


class KappaRule:
    """Adaptive kappa of eq. (8), global (one value) or per dataset sample.

    ``update(psi, index)`` records the support widths of the current iteration and returns the kappa
    to use next (scalar tensor, or [m] for the samples ``index`` [m] when ``per_sample``). Each kappa
    has its own iteration count and psi history (the last h values).
    """

    def __init__(self, config: SupportConfig, num_samples: int = 1) -> None:
        if config.per_sample and num_samples < 1:
            raise ValueError(f"num_samples must be >= 1 for per-sample kappa, got {num_samples}")
        self.config = config
        n = num_samples if config.per_sample else 1
        self.kappa = torch.zeros(n, dtype=torch.float64)
        self.history = torch.zeros(n, config.h, dtype=torch.float64)  # ring buffers of psi
        self.count = torch.zeros(n, dtype=torch.long)

    def update(self, psi: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        """Shapes: psi [m] (the batch's widths; averaged for the global kappa), index [m] long."""
        h, dk = self.config.h, self.config.delta_kappa
        psi = psi.detach().double().cpu().reshape(-1)
        if not self.config.per_sample:
            psi, idx = psi.mean().reshape(1), torch.zeros(1, dtype=torch.long)
        else:
            if index is None:
                raise ValueError("index is required for per-sample kappa")
            idx = index.cpu().long().reshape(-1)
            if idx.shape != psi.shape:
                raise ValueError(f"index {tuple(idx.shape)} must match psi {tuple(psi.shape)}")
        count = self.count[idx]
        mean_prev = self.history[idx].sum(-1) / h
        k = self.kappa[idx]
        grow = mean_prev <= psi  # the support did not shrink over the last h iterations
        new = torch.where(grow, k + dk, (k - dk / 2).clamp_min(0.0))
        self.kappa[idx] = torch.where(count >= h, new, torch.zeros_like(k))  # kappa = 0 while i <= h
        self.history[idx, count % h] = psi
        self.count[idx] = count + 1
        out = self.kappa[idx]
        return out[0] if not self.config.per_sample else out
