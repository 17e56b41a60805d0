"""Spatial correlation matrices R_lk = beta_lk * R~_lk at the APs (book Section 2.5 / 5.3).

``local_scattering`` is the book's 3-D local scattering model for a uniform linear array
(its function ``functionRlocalscattering``): with azimuth phi, elevation theta and Gaussian
deviations delta ~ N(0, asd_az^2), eps ~ N(0, asd_el^2),

    R~[m, n] = E{ exp(j 2 pi d (n - m) sin(phi + delta) cos(theta + eps)) },   tr R~ = N,

d the antenna spacing in wavelengths. The book integrates numerically (integral2); we use a
tensor-product trapezoid rule on the truncated Gaussians (accurate to < 1e-8, see
``_gaussian_rule``), batched over all links. ``iid`` gives R~ = I.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def _gaussian_rule(std: float, max_frequency: float, width: float = 6.5) -> tuple[np.ndarray, np.ndarray]:
    """Trapezoid nodes/weights on [-width*std, width*std] for E{f(X)}, X ~ N(0, std^2).

    For a Gaussian-weighted integrand whose phase changes at most ``max_frequency`` rad per rad,
    the trapezoid rule converges geometrically once the node spacing h satisfies
    2 pi / h > max_frequency + 7/std (Poisson summation); that sets the node count. Measured
    against a 401-node reference: < 1e-8 for N = 4 at 15 deg (DESIGN: verify shortcuts).
    """
    if std == 0:
        return np.zeros(1), np.ones(1)
    count = math.ceil(width * std * (max_frequency + 7.0 / std) / math.pi) + 1
    count += 1 - count % 2  # odd: the centre node sits on the mean
    x = np.linspace(-width * std, width * std, count)
    w = np.exp(-0.5 * (x / std) ** 2)
    return x, w / w.sum()


def local_scattering(
    antennas: int,
    azimuth: torch.Tensor,
    elevation: torch.Tensor,
    asd_azimuth: float,
    asd_elevation: float,
    spacing: float = 0.5,
    chunk: int | None = None,
) -> torch.Tensor:
    """Normalized correlation matrices of the 3-D local scattering model (angles in rad).

    ``chunk``: links per step (default: about 2^16 quadrature values per array, so a step's
    working set stays in the CPU cache; the result does not depend on it).

    Shapes:
        azimuth, elevation: [...] -> [..., N, N] complex (complex128 for float64 angles, else complex64).
    """
    if azimuth.shape != elevation.shape:
        raise ValueError(f"azimuth {tuple(azimuth.shape)} and elevation {tuple(elevation.shape)} differ")
    cdtype = torch.complex128 if azimuth.dtype == torch.float64 else torch.complex64
    dev = azimuth.device
    omega = 2 * math.pi * spacing * max(antennas - 1, 1)  # largest phase rate, rad per rad
    xa, wa = (torch.as_tensor(a, device=dev) for a in _gaussian_rule(asd_azimuth, omega))
    xe, we = (torch.as_tensor(a, device=dev) for a in _gaussian_rule(asd_elevation, omega))
    weight = (wa[:, None] * we[None, :]).reshape(-1)  # [Q]
    if chunk is None:
        # CPU: passes over [chunk, Q] arrays are memory-bound once they leave the cache
        # (8192 links took 1.7-1.9x as long as 128-256 links per step); GPU: one big step.
        chunk = 1 << 20 if dev.type != "cpu" else max(1, (1 << 16) // weight.numel())
    phi_all = azimuth.double().reshape(-1)
    theta_all = elevation.double().reshape(-1)
    count = phi_all.numel()
    re = torch.empty(count, antennas, dtype=torch.float64, device=dev)  # E{cos(lag * x)}
    im = torch.empty(count, antennas, dtype=torch.float64, device=dev)  # E{sin(lag * x)}
    re[:, 0], im[:, 0] = 1.0, 0.0
    sin_xa, cos_xa = torch.sin(xa), torch.cos(xa)
    sin_xe, cos_xe = torch.sin(xe), torch.cos(xe)
    for start in range(0, count, chunk):  # bounds memory at [chunk, Q] per step
        sl = slice(start, start + chunk)
        phi, theta = phi_all[sl, None], theta_all[sl, None]
        # sin(phi + xa), cos(theta + xe) by the angle-sum identities: [c, Qa] and [c, Qe]
        s_az = torch.sin(phi) * cos_xa + torch.cos(phi) * sin_xa
        c_el = torch.cos(theta) * cos_xe - torch.sin(theta) * sin_xe
        x = ((2 * math.pi * spacing) * s_az)[:, :, None] * c_el[:, None, :]  # [c, Qa, Qe]
        x = x.reshape(x.shape[0], -1)  # [c, Q]
        # cos/sin(lag x) by the Chebyshev recurrence in real arithmetic (one cos and one sin per
        # node; no complex powers or stacked [c, N, Q] tensor), each lag reduced by one matvec;
        # lag 0 (cos = 1, sin = 0) is never materialized
        c_cur, s_cur = torch.cos(x), torch.sin(x)
        two_c1 = 2 * c_cur
        c_prev = s_prev = None
        for lag in range(1, antennas):
            re[sl, lag] = c_cur @ weight
            im[sl, lag] = s_cur @ weight
            if lag + 1 < antennas:
                # cos((k+1)x) = 2cos x cos kx - cos((k-1)x); sin((k+1)x) = 2cos x sin kx - sin((k-1)x)
                c_next = two_c1 * c_cur
                s_next = two_c1 * s_cur
                if c_prev is None:
                    c_next -= 1.0
                else:
                    c_next -= c_prev
                    s_next -= s_prev
                c_prev, c_cur, s_prev, s_cur = c_cur, c_next, s_cur, s_next
    first_row = torch.complex(re, im).reshape(*azimuth.shape, antennas)
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
