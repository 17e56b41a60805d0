"""Transforms applied when a batch is loaded (never baked into the stored files).

The two position-based allocators normalize their inputs and outputs the same way:

* **Noise injection** (tree-transformer eq. (10): σ = 5 m on UE positions; elu-cosformer eqs.
  (29)-(30): σ_e = 1 m on UE and AP positions): ũ_k = u_k + δ_k, δ_k ~ N(0, σ² I₂).
* **Min-max scaling** (tree-transformer eq. (11), elu-cosformer eq. (31)):
  ξ_norm = (ξ − min ξ) / (max ξ − min ξ + ε). Positions: per sample, x and y separately, across
  the points of one set (all APs, or all UEs). Powers: globally across all training samples and
  UEs (``PowerScaler``), so one fitted scaler is stored with a model and used at every K.
* **Rescaler** (tree-transformer eqs. (12)-(13), elu-cosformer eqs. (19)-(21)): UL
  p = Δ_UL p̃ + P_UL,min; DL de-normalized the same way, then scaled so Σ_k p_k = Σ_l P_l^DL.

Everything is batched torch; outputs follow the input's dtype and device. Randomness comes only
from an explicit ``torch.Generator`` (or, in ``PrepareBatch``, from per-sample named streams).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from cfmimo.rng import stream

__all__ = [
    "PowerScaler",
    "PrepareBatch",
    "add_position_noise",
    "minmax_positions",
    "position_range",
    "rescale_predictions",
]


# --------------------------------------------------------------------------------------------
# validation helpers


def _check_positions(positions: Any, name: str = "positions") -> torch.Tensor:
    if not isinstance(positions, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor [B, P, 2], got {type(positions).__name__}")
    if positions.dim() != 3 or positions.shape[-1] != 2:
        raise ValueError(f"{name} must have shape [B, P, 2], got {tuple(positions.shape)}")
    if not positions.is_floating_point():
        raise ValueError(f"{name} must be a floating tensor, got {positions.dtype}")
    return positions


def _check_mask(mask: Any, shape: tuple[int, ...], name: str = "mask") -> torch.Tensor | None:
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        got = mask.dtype if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(
            f"{name} must be a bool tensor of shape {list(shape)} (True = real entry), got {got}"
        )
    if tuple(mask.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {list(shape)}, got {tuple(mask.shape)}")
    return mask


def _check_nonneg_float(value: Any, name: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise ValueError(f"{name} must be a finite number {'> 0' if positive else '>= 0'}, got {value!r}")
    return value


# --------------------------------------------------------------------------------------------
# positions


def add_position_noise(
    positions: torch.Tensor,
    sigma_m: float,
    *,
    generator: torch.Generator,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Gaussian localization error on 2-D positions (tree-transformer eq. (10), elu-cosformer
    eqs. (29)-(30)): every coordinate of every real point gets independent N(0, sigma_m²) noise.

    The noise is drawn in float32 on the generator's device and then cast and moved to the
    input's dtype and device, so float32 and float64 runs see the same noise (as ``cfmimo.rng``).
    ``sigma_m = 0`` returns ``positions`` itself and draws nothing. The draw has the shape of
    ``positions``, so its values depend on the padded size; for noise that depends only on the
    sample, see ``PrepareBatch``.

    Shapes:
        positions [B, P, 2] (metres); mask [B, P] bool (True = real point; padded points are
        returned unchanged); returns [B, P, 2].
    """
    positions = _check_positions(positions)
    sigma = _check_nonneg_float(sigma_m, "sigma_m")
    mask = _check_mask(mask, tuple(positions.shape[:2]))
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    if sigma == 0.0:
        return positions
    noise = torch.randn(positions.shape, generator=generator, dtype=torch.float32, device=generator.device)
    noise = noise.to(dtype=positions.dtype, device=positions.device) * sigma
    if mask is not None:
        noise = noise * mask.unsqueeze(-1)
    return positions + noise


def position_range(
    positions: torch.Tensor, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample minimum and maximum of x and y over the real points (the min/max of eq. (11)).

    A sample without real points gets lo = hi = 0.

    Shapes:
        positions [B, P, 2]; mask [B, P] bool; returns (lo, hi), each [B, 1, 2].
    """
    positions = _check_positions(positions)
    mask = _check_mask(mask, tuple(positions.shape[:2]))
    if positions.shape[1] == 0:
        zero = positions.new_zeros(positions.shape[0], 1, 2)
        return zero, zero.clone()
    if mask is None:
        return positions.amin(dim=1, keepdim=True), positions.amax(dim=1, keepdim=True)
    m = mask.unsqueeze(-1)  # [B, P, 1]
    lo = positions.masked_fill(~m, math.inf).amin(dim=1, keepdim=True)
    hi = positions.masked_fill(~m, -math.inf).amax(dim=1, keepdim=True)
    empty = ~mask.any(dim=1).view(-1, 1, 1)  # [B, 1, 1]
    return lo.masked_fill(empty, 0.0), hi.masked_fill(empty, 0.0)


def minmax_positions(
    positions: torch.Tensor, mask: torch.Tensor | None = None, eps: float = 1e-8
) -> torch.Tensor:
    """Min-max scaling of positions (tree-transformer eq. (11), elu-cosformer eq. (31)):
    per sample, x and y separately, across the real points of the set,

        ξ_norm = (ξ − min ξ) / (max ξ − min ξ + ε).

    Outputs lie in [0, 1) (max = 1 − ε/(range + ε)); a set with one point (e.g. L = 1) maps to 0.
    Padded points are excluded from min/max and returned as 0. ``position_range`` gives the
    min/max used.

    Shapes:
        positions [B, P, 2]; mask [B, P] bool (True = real); returns [B, P, 2].
    """
    eps = _check_nonneg_float(eps, "eps", positive=True)
    lo, hi = position_range(positions, mask)
    out = (positions - lo) / (hi - lo + eps)
    if mask is not None:
        out = out.masked_fill(~mask.unsqueeze(-1), 0.0)
    return out


# --------------------------------------------------------------------------------------------
# powers


_SCALER_FIELDS = ("ul_min", "ul_max", "dl_min", "dl_max", "eps")


@dataclass
class PowerScaler:
    """Global min-max normalization of UL and DL powers (eq. (11) applied to the labels, "UL and
    DL powers are normalized globally across all samples"), fitted once on the training labels.

    ``normalize`` maps p to (p − min)/(max − min + ε); ``denormalize`` is its exact inverse,
    p = (Δ + ε) p̃ + min, i.e. eq. (12) with Δ = max − min (the ε term is below ε·p̃ mW).
    ``to_dict``/``from_dict`` store the statistics as plain floats (JSON-safe) next to a model,
    so inference at any K uses the training scaling.

    Shapes:
        powers [...] (any shape, typically [n, K] or [B, K]), mW; mask of the same shape.
    """

    ul_min: float | None = None
    ul_max: float | None = None
    dl_min: float | None = None
    dl_max: float | None = None
    eps: float = 1e-8

    def __post_init__(self) -> None:
        _check_nonneg_float(self.eps, "eps", positive=True)
        values = (self.ul_min, self.ul_max, self.dl_min, self.dl_max)
        if all(v is None for v in values):
            return
        if any(v is None for v in values):
            raise ValueError("PowerScaler needs all of ul_min, ul_max, dl_min, dl_max, or none of them")
        for name in ("ul_min", "ul_max", "dl_min", "dl_max"):
            setattr(self, name, _check_nonneg_float(getattr(self, name), name))
        if self.ul_max < self.ul_min:
            raise ValueError(f"ul_max ({self.ul_max}) must be >= ul_min ({self.ul_min})")
        if self.dl_max < self.dl_min:
            raise ValueError(f"dl_max ({self.dl_max}) must be >= dl_min ({self.dl_min})")

    @property
    def fitted(self) -> bool:
        return self.ul_min is not None

    def _require_fitted(self) -> None:
        if not self.fitted:
            raise ValueError(
                "PowerScaler is not fitted: call fit(p_ul, p_dl) or build it with from_dict(...)"
            )

    # -- fitting ------------------------------------------------------------------------------

    def fit(self, p_ul: torch.Tensor, p_dl: torch.Tensor, mask: torch.Tensor | None = None) -> PowerScaler:
        """Set min and max of UL and DL powers over all samples and (real) UEs; returns self.

        Shapes:
            p_ul, p_dl [...] with the same shape (e.g. [n, K]); mask [...] bool, True = real UE.
        """
        ul = self._fit_values(p_ul, "p_ul", mask)
        if p_ul.shape != getattr(p_dl, "shape", None):
            raise ValueError(
                f"p_dl must have the shape of p_ul {tuple(p_ul.shape)}, got {getattr(p_dl, 'shape', p_dl)}"
            )
        dl = self._fit_values(p_dl, "p_dl", mask)
        self.ul_min, self.ul_max = float(ul.min()), float(ul.max())
        self.dl_min, self.dl_max = float(dl.min()), float(dl.max())
        return self

    @staticmethod
    def _fit_values(p: Any, name: str, mask: torch.Tensor | None) -> torch.Tensor:
        if not isinstance(p, torch.Tensor) or not p.is_floating_point():
            raise ValueError(f"{name} must be a floating torch.Tensor of powers (mW)")
        mask = _check_mask(mask, tuple(p.shape))
        values = (p if mask is None else p[mask]).detach().to(torch.float64)
        if values.numel() == 0:
            raise ValueError(f"{name} has no (unmasked) entries to fit on")
        if not torch.isfinite(values).all():
            raise ValueError(f"{name} contains NaN or infinite values")
        if (values < 0).any():
            raise ValueError(f"{name} must be non-negative (powers in mW), min is {float(values.min())}")
        return values

    # -- mapping ------------------------------------------------------------------------------

    def _scale(self, link: str) -> tuple[float, float]:
        lo, hi = (self.ul_min, self.ul_max) if link == "ul" else (self.dl_min, self.dl_max)
        return lo, hi - lo + self.eps  # type: ignore[operator]

    def normalize(
        self, p_ul: torch.Tensor, p_dl: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Powers (mW) -> normalized powers, eq. (11); masked (padded) entries become 0.

        Shapes:
            p_ul, p_dl [...]; mask [...] bool; returns two tensors of the same shapes.
        """
        self._require_fitted()
        out = []
        for link, p in (("ul", p_ul), ("dl", p_dl)):
            lo, span = self._scale(link)
            x = (p - lo) / span
            m = _check_mask(mask, tuple(p.shape))
            out.append(x if m is None else x.masked_fill(~m, 0.0))
        return out[0], out[1]

    def denormalize(
        self, p_ul_tilde: torch.Tensor, p_dl_tilde: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalized powers -> mW, p = (Δ + ε) p̃ + min (eq. (12) and the inner step of (13));
        the exact inverse of ``normalize``. No clamping (see ``rescale_predictions``).

        Shapes:
            p_ul_tilde, p_dl_tilde [...]; mask [...] bool; returns two tensors of the same shapes.
        """
        self._require_fitted()
        out = []
        for link, x in (("ul", p_ul_tilde), ("dl", p_dl_tilde)):
            lo, span = self._scale(link)
            p = x * span + lo
            m = _check_mask(mask, tuple(x.shape))
            out.append(p if m is None else p.masked_fill(~m, 0.0))
        return out[0], out[1]

    # -- serialization ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, float]:
        """The fitted statistics as plain floats (JSON-safe)."""
        self._require_fitted()
        return {name: float(getattr(self, name)) for name in _SCALER_FIELDS}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PowerScaler:
        """Rebuild a fitted scaler from ``to_dict()`` output; ValueError on missing/extra keys or
        invalid values."""
        if not isinstance(data, Mapping):
            raise TypeError(f"data must be a mapping from to_dict(), got {type(data).__name__}")
        missing = [k for k in _SCALER_FIELDS if k not in data]
        extra = sorted(set(data) - set(_SCALER_FIELDS))
        if missing or extra:
            raise ValueError(
                f"PowerScaler.from_dict: data must have exactly the keys {list(_SCALER_FIELDS)}; "
                f"missing {missing}, unexpected {extra}"
            )
        return cls(**{k: data[k] for k in _SCALER_FIELDS})


def rescale_predictions(
    p_ul_tilde: torch.Tensor,
    p_dl_tilde: torch.Tensor,
    scaler: PowerScaler,
    dl_total_power: torch.Tensor | float,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The rescaler (tree-transformer eqs. (12)-(13), elu-cosformer eqs. (19)-(21)).

    UL, eq. (12): p_k = Δ_UL p̃_k + P_UL,min, clamped to the scaler's [P_UL,min, P_UL,max], so a
    prediction never exceeds the largest training power (itself <= the UE cap).
    DL, eq. (13): p̌_k = Δ_DL p̃_k + P_DL,min (clamped to [P_DL,min, P_DL,max]), then
    p_k = p̌_k Σ_l P_l^DL / Σ_k p̌_k, so Σ_k p_k equals the total budget exactly (the papers' sum
    constraint; not a per-AP constraint). If Σ_k p̌_k = 0 the budget is split equally. The DL
    renormalization runs in float64 and is cast back. Padded UEs get 0 and are excluded from
    the sums.

    Shapes:
        p_ul_tilde, p_dl_tilde [B, K] (normalized, e.g. sigmoid outputs); dl_total_power [B] or a
        float (mW, Σ_l P_l^DL); mask [B, K] bool (True = real UE, >= 1 per sample);
        returns (p_ul [B, K], p_dl [B, K]) in mW.
    """
    if not isinstance(scaler, PowerScaler):
        raise TypeError(f"scaler must be a PowerScaler, got {type(scaler).__name__}")
    scaler._require_fitted()
    for name, x in (("p_ul_tilde", p_ul_tilde), ("p_dl_tilde", p_dl_tilde)):
        if not isinstance(x, torch.Tensor) or x.dim() != 2 or not x.is_floating_point():
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{name} must be a floating tensor [B, K], got {got}")
    if p_ul_tilde.shape != p_dl_tilde.shape:
        raise ValueError(
            f"p_ul_tilde and p_dl_tilde must have the same shape [B, K], got "
            f"{tuple(p_ul_tilde.shape)} and {tuple(p_dl_tilde.shape)}"
        )
    B, K = p_ul_tilde.shape
    mask = _check_mask(mask, (B, K))
    if mask is not None and not mask.any(dim=1).all():
        raise ValueError("mask must mark at least one real UE in every sample")
    if isinstance(dl_total_power, torch.Tensor):
        budget = dl_total_power.to(device=p_dl_tilde.device, dtype=torch.float64)
        if budget.shape != (B,):
            raise ValueError(
                f"dl_total_power must be a float or a tensor [B] = [{B}], got {tuple(budget.shape)}"
            )
        if not (torch.isfinite(budget).all() and (budget > 0).all()):
            raise ValueError("dl_total_power must be finite and > 0 (mW)")
    else:
        value = _check_nonneg_float(dl_total_power, "dl_total_power", positive=True)
        budget = torch.full((B,), value, dtype=torch.float64, device=p_dl_tilde.device)

    p_ul, p_check = scaler.denormalize(p_ul_tilde, p_dl_tilde)
    p_ul = p_ul.clamp(scaler.ul_min, scaler.ul_max)
    p_check = p_check.clamp(scaler.dl_min, scaler.dl_max).to(torch.float64)
    real = torch.ones_like(p_check, dtype=torch.bool) if mask is None else mask
    p_check = p_check.masked_fill(~real, 0.0)
    total = p_check.sum(dim=1, keepdim=True)  # [B, 1]
    zero = total <= 0
    if zero.any():  # all predictions at P_DL,min = 0: equal split
        p_check = torch.where(zero, real.to(torch.float64), p_check)
        total = p_check.sum(dim=1, keepdim=True)
    p_dl = (p_check * (budget.unsqueeze(1) / total)).to(p_dl_tilde.dtype)
    if mask is not None:
        p_ul = p_ul.masked_fill(~mask, 0.0)
    return p_ul, p_dl


@dataclass(frozen=True)
class PositionFrame:
    """A fixed coordinate frame for model inputs: x' = (x - x_min)/(x_max - x_min), likewise y.

    Fitted once on the training data (a global min-max per axis over every UE and AP of every
    sample, our reading of tree-transformer eq. (11) "across all APs or UEs"), then used for
    every sample, UEs and APs alike, so distances and angles between nodes keep their meaning
    (per-sample scaling of UEs and APs in separate frames would erase where the UEs are relative
    to the APs). Stored next to the model (``to_dict``), like the power scaler.

    Shapes: apply(positions [B, P, 2], mask [B, P] | None) -> [B, P, 2] (0 at padded points).
    """

    x_min: float
    x_max: float
    y_min: float
    y_max: float

    def __post_init__(self) -> None:
        for name in ("x_min", "x_max", "y_min", "y_max"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"PositionFrame.{name} must be finite, got {getattr(self, name)!r}")
        if self.x_max <= self.x_min or self.y_max <= self.y_min:
            raise ValueError(f"PositionFrame needs x_max > x_min and y_max > y_min, got {self}")

    @classmethod
    def fit(cls, groups: Mapping[Any, Mapping[str, torch.Tensor]]) -> PositionFrame:
        pts = torch.cat(
            [g[k].reshape(-1, 2).double() for g in groups.values() for k in ("ue_positions", "ap_positions")]
        )
        lo, hi = pts.min(0).values, pts.max(0).values
        return cls(float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1]))

    def apply(self, positions: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        pos = _check_positions(positions)
        lo = torch.tensor([self.x_min, self.y_min], dtype=pos.dtype, device=pos.device)
        span = torch.tensor(
            [self.x_max - self.x_min, self.y_max - self.y_min], dtype=pos.dtype, device=pos.device
        )
        out = (pos - lo) / span
        return out if mask is None else out * mask[..., None].to(out.dtype)

    def to_dict(self) -> dict[str, float]:
        return {"x_min": self.x_min, "x_max": self.x_max, "y_min": self.y_min, "y_max": self.y_max}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PositionFrame:
        try:
            return cls(**{k: float(data[k]) for k in ("x_min", "x_max", "y_min", "y_max")})
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"PositionFrame.from_dict: bad data {data!r}: {err}") from None


# --------------------------------------------------------------------------------------------
# a batch transform for the position-based allocators


@dataclass(frozen=True)
class PrepareBatch:
    """Noise (eqs. (10), (29)-(30)) -> min-max positions (eqs. (11), (31)) -> normalized powers.

    Adds to a collated batch (``cfmimo.data.loaders``), leaving every existing key unchanged:
    "ue_features" [B, K, 2] and "ap_features" [B, L, 2] (noisy, min-max scaled positions; 0 at
    padded points) and, when ``scaler`` is given and the batch has labels, "p_ul_norm" and
    "p_dl_norm" [B, K] (0 at padded UEs). Masks "ue_mask"/"ap_mask" are used when present.

    The noise of a sample depends only on (seed, K, L, sample_index) and, if ``epoch`` is given,
    the epoch: never on batch composition, padding or worker count. ``epoch=None`` (default)
    draws the same noise for a sample every time, as if it were part of the dataset (the
    papers' setting); pass the epoch for fresh noise each epoch. ``joint_frame=True`` scales APs
    and UEs with one common min/max instead of each set on its own (the papers: "across all APs
    or UEs").

    Shapes:
        batch: "ue_positions" [B, K, 2], "ap_positions" [B, L, 2], "sample_index" [B], "K", "L" [B]
        (long), optional "p_ul"/"p_dl" [B, K], "ue_mask" [B, K], "ap_mask" [B, L].
    """

    scaler: PowerScaler | None = None
    sigma_ue_m: float = 0.0
    sigma_ap_m: float = 0.0
    seed: int = 0
    joint_frame: bool = False
    eps: float = 1e-8
    frame: PositionFrame | None = None  # a fixed fitted frame instead of per-sample min-max

    def __post_init__(self) -> None:
        _check_nonneg_float(self.sigma_ue_m, "sigma_ue_m")
        _check_nonneg_float(self.sigma_ap_m, "sigma_ap_m")
        _check_nonneg_float(self.eps, "eps", positive=True)
        if self.scaler is not None:
            if not isinstance(self.scaler, PowerScaler):
                raise TypeError(f"scaler must be a PowerScaler or None, got {type(self.scaler).__name__}")
            self.scaler._require_fitted()

    def _noisy(
        self, batch: Mapping[str, torch.Tensor], which: str, sigma: float, epoch: int | None
    ) -> torch.Tensor:
        pos = _check_positions(batch[f"{which}_positions"], f'batch["{which}_positions"]')
        if sigma == 0.0:
            return pos
        counts = batch["K"] if which == "ue" else batch["L"]
        out = pos.clone()
        for b in range(pos.shape[0]):  # one stream per sample: independent of batch and padding
            K, L, n = int(batch["K"][b]), int(batch["L"][b]), int(counts[b])
            name = f"position_noise/{which}/K={K}/L={L}" + ("" if epoch is None else f"/epoch={epoch}")
            g = stream(self.seed, name, int(batch["sample_index"][b]))
            out[b : b + 1, :n] = add_position_noise(pos[b : b + 1, :n], sigma, generator=g)
        return out

    def __call__(
        self, batch: Mapping[str, torch.Tensor], *, epoch: int | None = None
    ) -> dict[str, torch.Tensor]:
        if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0):
            raise ValueError(f"epoch must be None or an int >= 0, got {epoch!r}")
        missing = [k for k in ("ue_positions", "ap_positions", "sample_index", "K", "L") if k not in batch]
        if missing:
            raise ValueError(f"batch is missing keys {missing}")
        out = dict(batch)
        ue = self._noisy(batch, "ue", self.sigma_ue_m, epoch)
        ap = self._noisy(batch, "ap", self.sigma_ap_m, epoch)
        ue_mask, ap_mask = batch.get("ue_mask"), batch.get("ap_mask")
        if self.frame is not None:
            out["ue_features"] = self.frame.apply(ue, ue_mask)
            out["ap_features"] = self.frame.apply(ap, ap_mask)
        elif self.joint_frame:
            K = ue.shape[1]
            both_mask = None
            if ue_mask is not None or ap_mask is not None:
                um = (
                    ue_mask
                    if ue_mask is not None
                    else torch.ones(ue.shape[:2], dtype=torch.bool, device=ue.device)
                )
                am = (
                    ap_mask
                    if ap_mask is not None
                    else torch.ones(ap.shape[:2], dtype=torch.bool, device=ap.device)
                )
                both_mask = torch.cat([um, am], dim=1)  # [B, K + L]
            both = minmax_positions(torch.cat([ue, ap], dim=1), both_mask, self.eps)  # [B, K + L, 2]
            out["ue_features"], out["ap_features"] = both[:, :K], both[:, K:]
        else:
            out["ue_features"] = minmax_positions(ue, ue_mask, self.eps)
            out["ap_features"] = minmax_positions(ap, ap_mask, self.eps)
        if self.scaler is not None and "p_ul" in batch and "p_dl" in batch:
            out["p_ul_norm"], out["p_dl_norm"] = self.scaler.normalize(batch["p_ul"], batch["p_dl"], ue_mask)
        return out
