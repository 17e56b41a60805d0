"""Spatial correlation matrices R_lk = beta_lk * R~_lk at the APs (book Section 2.5 / 5.3).

``local_scattering`` is the book's 3-D local scattering model for a uniform linear array
(its function ``functionRlocalscattering``): with azimuth phi, elevation theta and Gaussian
deviations delta ~ N(0, asd_az^2), eps ~ N(0, asd_el^2),

    R~[m, n] = E{ exp(j 2 pi d (n - m) sin(phi + delta) cos(theta + eps)) },   tr R~ = N,

d the antenna spacing in wavelengths. The book integrates numerically (integral2); we use a
tensor-product Gauss-Hermite rule, exact to ~1e-10 for the book's spreads and arrays, batched over
all links. ``iid`` gives R~ = I.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch


@lru_cache(maxsize=16)
def _gauss_hermite(order: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes x and weights w with sum_q w_q f(x_q) ~= E{f(X)} for X ~ N(0, 1)."""
    x, w = np.polynomial.hermite.hermgauss(order)
    return x * math.sqrt(2.0), w / math.sqrt(math.pi)


def local_scattering(
    antennas: int,
    azimuth: torch.Tensor,
    elevation: torch.Tensor,
    asd_azimuth: float,
    asd_elevation: float,
    spacing: float = 0.5,
    order: int = 48,
) -> torch.Tensor:
    """Normalized correlation matrices of the 3-D local scattering model (angles in rad).

    Shapes:
        azimuth, elevation: [...] -> [..., N, N] complex (complex128 for float64 angles, else complex64).
    """
    if azimuth.shape != elevation.shape:
        raise ValueError(f"azimuth {tuple(azimuth.shape)} and elevation {tuple(elevation.shape)} differ")
    cdtype = torch.complex128 if azimuth.dtype == torch.float64 else torch.complex64
    dev = azimuth.device

    def rule(std: float) -> tuple[torch.Tensor, torch.Tensor]:
        if std == 0:
            return torch.zeros(1, dtype=torch.float64, device=dev), torch.ones(
                1, dtype=torch.float64, device=dev
            )
        x, w = _gauss_hermite(order)
        return torch.as_tensor(x * std, device=dev), torch.as_tensor(w, device=dev)

    dx, wx = rule(asd_azimuth)  # [Qa]
    de, we = rule(asd_elevation)  # [Qe]
    phi = azimuth.double()[..., None, None] + dx[:, None]  # [..., Qa, 1]
    theta = elevation.double()[..., None, None] + de[None, :]  # [..., 1, Qe]
    u = torch.sin(phi) * torch.cos(theta)  # [..., Qa, Qe]
    weight = wx[:, None] * we[None, :]  # [Qa, Qe]
    lags = torch.arange(antennas, dtype=torch.float64, device=dev)  # n - m >= 0
    phase = 2 * math.pi * spacing * lags[:, None, None] * u[..., None, :, :]  # [..., N, Qa, Qe]
    first_row = (torch.polar(torch.ones_like(phase), phase) * weight).sum(dim=(-2, -1))  # [..., N]
    m = torch.arange(antennas, device=dev)
    lag = m[None, :] - m[:, None]  # [N, N], n - m
    r = first_row[..., lag.abs()]
    r = torch.where(lag >= 0, r, r.conj())  # Hermitian Toeplitz, first row = E{exp(j..(n-m)..)}
    r = r * (antennas / torch.diagonal(r, dim1=-2, dim2=-1).real.sum(-1))[..., None, None]
    return r.to(cdtype)


def correlation_matrices(
    gain_db: torch.Tensor,
    azimuth: torch.Tensor,
    elevation: torch.Tensor,
    antennas: int,
    kind: str,
    asd_azimuth_deg: float = 15.0,
    asd_elevation_deg: float = 15.0,
    spacing: float = 0.5,
) -> torch.Tensor:
    """R_lk = beta_lk R~_lk with beta = 10^(gain_db/10) (gains normalized by noise).

    Shapes:
        gain_db, azimuth, elevation: [B, L, K] -> [B, L, K, N, N] complex.
    """
    beta = torch.pow(10.0, gain_db / 10.0)
    cdtype = torch.complex128 if gain_db.dtype == torch.float64 else torch.complex64
    if kind == "iid":
        eye = torch.eye(antennas, dtype=cdtype, device=gain_db.device)
        return beta[..., None, None].to(cdtype) * eye
    if kind != "local_scattering":
        raise ValueError(f"spatial_correlation must be 'iid' or 'local_scattering', got {kind!r}")
    r = local_scattering(
        antennas, azimuth, elevation, math.radians(asd_azimuth_deg), math.radians(asd_elevation_deg), spacing
    )
    return beta[..., None, None].to(cdtype) * r.to(cdtype)
