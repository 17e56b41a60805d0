"""Batched HPD solver in torch (cfmimo.sim.hpd_solve) against LAPACK, and its use in _direct_rows.

Exactness in float64 (<= 1e-10 relative to torch.linalg.solve), complex64 within a float32
tolerance, non-HPD matrices flagged and re-solved by LAPACK without disturbing the others.
"""

import pytest
import torch

import cfmimo.sim.hpd_solve as hs
from cfmimo.sim.combining import _direct_rows, _rows, _z_matrix
from cfmimo.sim.hpd_solve import hpd_solve, solve_augmented_
from cfmimo.sim.network import sample_channel_state, sample_networks

REL = 1e-10


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item()


def _hpd(batch: int, n: int, *, seed: int, dtype=torch.complex128, spread: float = 1.0) -> torch.Tensor:
    """S = sum of p_i h_i h_i^H + I like the statistics' matrices (p spread over `spread` decades)."""
    g = torch.Generator().manual_seed(seed)
    k = n + 3
    h = torch.randn(batch, n, k, dtype=dtype, generator=g)
    p = 10 ** (spread * torch.rand(batch, 1, k, generator=g, dtype=torch.float64))
    return (h * p.to(dtype)) @ h.mH + torch.eye(n, dtype=dtype)


@pytest.mark.parametrize("n", [1, 3, 4, 5, 8, 9, 12, 16, 17, 24, 32, 33, 40])
def test_float64_matches_lapack(n):
    a = _hpd(37, n, seed=n, spread=3.0)
    g = torch.Generator().manual_seed(100 + n)
    for r in (1, 3):
        b = torch.randn(37, n, r, dtype=torch.complex128, generator=g)
        ref = torch.linalg.solve(a, b)
        for chunk in (5, 512):  # chunk boundaries inside and outside the batch
            assert _rel(hpd_solve(a, b, chunk=chunk), ref) <= REL, (n, r, chunk)


def test_identity_padded_and_real_systems():
    # what _direct_rows builds for a smaller cluster: [[S_M, 0], [0, I]] with a zero rhs on the pad
    s = _hpd(20, 8, seed=1, spread=2.0)
    a = torch.zeros(20, 32, 32, dtype=torch.complex128)
    a[:, :8, :8] = s
    a[:, 8:, 8:] = torch.eye(24, dtype=a.dtype)
    b = torch.zeros(20, 32, 1, dtype=a.dtype)
    b[:, :8] = torch.randn(20, 8, 1, dtype=a.dtype, generator=torch.Generator().manual_seed(2))
    x = hpd_solve(a, b)
    assert _rel(x, torch.linalg.solve(a, b)) <= REL
    assert x[:, 8:].abs().max().item() == 0.0  # exactly zero on the padding
    ar = _hpd(10, 12, seed=3, dtype=torch.float64)
    br = torch.randn(10, 12, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    assert _rel(hpd_solve(ar, br), torch.linalg.solve(ar, br)) <= REL
    # leading batch dims are kept
    a4, b4 = a.view(4, 5, 32, 32), b.view(4, 5, 32, 1)
    assert _rel(hpd_solve(a4, b4), torch.linalg.solve(a4, b4)) <= REL


def test_complex64_within_float32_tolerance():
    a = _hpd(64, 32, seed=5)  # condition number ~1e2-1e3
    b = torch.randn(64, 32, 1, dtype=torch.complex128, generator=torch.Generator().manual_seed(6))
    exact = torch.linalg.solve(a, b)
    x32 = hpd_solve(a.to(torch.complex64), b.to(torch.complex64))
    lapack32 = torch.linalg.solve(a.to(torch.complex64), b.to(torch.complex64))
    err, err_lapack = _rel(x32.to(torch.complex128), exact), _rel(lapack32.to(torch.complex128), exact)
    assert err <= 1e-3
    assert err <= 20 * err_lapack + 1e-5  # float32 accuracy of the same order as LAPACK's


def test_non_hpd_matrices_are_flagged_and_solved_by_lapack():
    a = _hpd(6, 8, seed=7)
    b = torch.randn(6, 8, 1, dtype=torch.complex128, generator=torch.Generator().manual_seed(8))
    a[1] = -a[1]  # negative definite: every pivot negative
    a[2, 3, 3] = -50.0  # indefinite (a negative diagonal entry)
    a[3, 0, 0] = 0.0  # zero first pivot, yet nonsingular: needs pivoting
    a[4, 2, 5] = float("nan")  # not finite
    x = hpd_solve(a, b)
    ref = torch.linalg.solve_ex(a, b)[0]
    for i in (0, 1, 2, 3, 5):
        assert _rel(x[i], ref[i]) <= REL, i
    assert torch.isnan(x[4]).any()  # LAPACK's answer for a NaN matrix is NaN too
    aug = torch.cat([a, b], dim=-1)
    ok = solve_augmented_(aug, 8)
    assert ok.tolist() == [True, False, False, False, False, True]


def test_bad_arguments_raise():
    a = _hpd(2, 4, seed=9)
    with pytest.raises(ValueError, match="a must be"):
        hpd_solve(a[..., :3], a[..., :1])
    with pytest.raises(ValueError, match="b must be"):
        hpd_solve(a, a[:1, :, :1])
    with pytest.raises(ValueError, match="chunk"):
        hpd_solve(a, a[..., :1], chunk=0)
    with pytest.raises(ValueError, match="contiguous"):
        solve_augmented_(torch.cat([a, a[..., :1]], -1).mT.contiguous().mT, 4)


def _direct_instance(small_factory):
    sc = small_factory(K=9, L=5, N=2, realizations=6, clustering={"kind": "q_strongest", "q": 3})
    net = sample_networks(sc, 2, seed=11, dtype=torch.float64)
    st = sample_channel_state(net)
    serving = net.serving.clone()
    serving[0, :, 1] = False  # an unserved UE
    serving[1, :, 4] = False
    serving[1, 2, 4] = True  # a single-AP cluster (padded)
    p = (
        torch.rand(*net.pilot.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(12)) * 99
        + 1
    )
    return _rows(st.h_hat), _z_matrix(st.error_cov, p), serving, p


def test_direct_rows_torch_solver_matches_lapack(small_factory, monkeypatch):
    hr, z, serving, p = _direct_instance(small_factory)
    ref = _direct_rows(hr, z, serving, p, solver="lapack")
    assert ref.abs().max().item() > 0
    for chunk in (1, 7, 512):
        assert _rel(_direct_rows(hr, z, serving, p, solver="torch", chunk=chunk), ref) <= REL, chunk
        assert _rel(_direct_rows(hr, z, serving, p, solver="lapack", chunk=chunk), ref) <= REL, chunk
    threads = torch.get_num_threads()
    try:  # chunks spread over two threads: same result
        torch.set_num_threads(2)
        assert _rel(_direct_rows(hr, z, serving, p, solver="torch"), ref) <= REL
        assert _rel(_direct_rows(hr, z, serving, p, solver="lapack"), ref) <= REL
        # the workers run in the caller's mode (it is thread-local): under inference mode too
        with torch.inference_mode():
            assert _rel(_direct_rows(hr, z, serving, p, solver="lapack"), ref) <= REL
            assert _rel(_direct_rows(hr, z, serving, p, solver="torch"), ref) <= REL
    finally:
        torch.set_num_threads(threads)
    # systems the torch solver flags are re-solved by LAPACK (forced here: S itself is HPD)
    real = hs.solve_augmented_

    def flag_every_other(m, n, work=None):
        ok = real(m, n, work=work)
        ok[::2] = False
        return ok

    monkeypatch.setattr(hs, "solve_augmented_", flag_every_other)
    assert _rel(_direct_rows(hr, z, serving, p, solver="torch", chunk=7), ref) <= REL
    with pytest.raises(ValueError, match="solver"):
        _direct_rows(hr, z, serving, p, solver="cholesky")
