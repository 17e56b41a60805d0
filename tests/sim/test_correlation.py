import math

import numpy as np
import pytest
import torch
from scipy.integrate import dblquad

from cfmimo.sim.correlation import correlation_matrices, local_scattering


def _book_entry(lag, phi, theta, s_az, s_el):
    """The book's integral2 of functionRlocalscattering for one lag, by scipy."""

    def f(e, d, part):
        v = np.exp(1j * np.pi * lag * np.sin(phi + d) * np.cos(theta + e))
        v *= np.exp(-(d**2) / (2 * s_az**2) - e**2 / (2 * s_el**2)) / (2 * np.pi * s_az * s_el)
        return v.real if part == 0 else v.imag

    lim = (-20 * s_az, 20 * s_az, -20 * s_el, 20 * s_el)
    return (
        dblquad(lambda e, d: f(e, d, 0), *lim, epsabs=1e-12)[0]
        + 1j * dblquad(lambda e, d: f(e, d, 1), *lim, epsabs=1e-12)[0]
    )


@pytest.mark.parametrize(("N", "phi", "theta"), [(4, 0.7, 0.3), (4, -2.5, 0.02), (8, 1.2, 0.6)])
def test_local_scattering_matches_numerical_integration(N, phi, theta):
    s = math.radians(15)
    r = local_scattering(
        N, torch.tensor(phi, dtype=torch.float64), torch.tensor(theta, dtype=torch.float64), s, s
    )
    for lag in (1, N - 1):
        assert abs(r[0, lag].item() - _book_entry(lag, phi, theta, s, s)) < 1e-8
    assert torch.allclose(r, r.mH)  # Hermitian Toeplitz
    assert torch.diagonal(r).real.sum().item() == pytest.approx(N)
    assert torch.linalg.eigvalsh(r).min().item() > -1e-10


def test_zero_spread_is_rank_one():
    r = local_scattering(
        4, torch.tensor(0.4, dtype=torch.float64), torch.tensor(0.1, dtype=torch.float64), 0, 0
    )
    ev = torch.linalg.eigvalsh(r)
    assert ev[-1].item() == pytest.approx(4.0) and ev[:-1].abs().max().item() < 1e-10


def test_correlation_includes_gain_and_iid_is_scaled_identity():
    gain_db = torch.tensor([[[10.0, -3.0]]], dtype=torch.float64)
    ang = torch.zeros_like(gain_db)
    iid = correlation_matrices(gain_db, ang, ang, 3, "iid")
    assert torch.allclose(iid[0, 0, 0], 10 * torch.eye(3, dtype=torch.complex128))
    ls = correlation_matrices(gain_db, ang + 0.3, ang + 0.2, 3, "local_scattering")
    traces = torch.diagonal(ls, dim1=-2, dim2=-1).real.sum(-1)
    assert traces[0, 0].tolist() == pytest.approx([30.0, 3 * 10 ** (-0.3)])
    with pytest.raises(ValueError, match="spatial_correlation"):
        correlation_matrices(gain_db, ang, ang, 3, "rice")
