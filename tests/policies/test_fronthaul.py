"""Classical fronthaul-WSR policies: AO-SCA (Algorithm 1) and FC-ZF (egat-fronthaul.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cfmimo.config import preset
from cfmimo.policies.classical.fronthaul import AOSCA, FCZF, PCWMMSE, ao_sca_instance, beam_step, gamma_step
from cfmimo.problems.base import Allocation
from cfmimo.problems.fronthaul_wsr import FronthaulWSR, fronthaul_instance
from cfmimo.testing import assert_policy

cp = pytest.importorskip("cvxpy")

PROBLEM = FronthaulWSR()


@pytest.fixture(scope="module")
def egat3():
    return PROBLEM.sample(preset("egat"), 3, seed=5, dtype=torch.float64)


def _tiny(seed: int, L=2, K=2, N=2):
    rng = np.random.default_rng(seed)
    H = (rng.standard_normal((L * N, K)) + 1j * rng.standard_normal((L * N, K))) * 2.0
    w = rng.uniform(0.5, 1.5, K)
    gamma = rng.uniform(0.2, 3.0, K)
    y = (rng.standard_normal(K) + 1j * rng.standard_normal(K)) * 0.3
    un = rng.uniform(0.05, 0.7, (L, K))
    return H, w, gamma, y, un


# ------------------------------------------------------------------------------------------ FC-ZF
def test_fczf_sum_rate_fits_the_smallest_fronthaul(egat3):
    for cap in (20e6, 60e6, 1e12):
        inst = egat3.with_capacity(cap)
        inst = fronthaul_instance(
            inst.h,
            power=inst.power,
            capacity=inst.capacity * torch.tensor([1.0, 0.5, 1, 1, 1, 1, 1, 1], dtype=torch.float64),
            bandwidth_hz=inst.bandwidth_hz,
            weights=torch.ones(3, 4, dtype=torch.float64),
        )
        alloc = FCZF()(inst)
        m = PROBLEM.metrics(inst, alloc)
        cmin = inst.capacity.amin(-1)
        assert bool((m["sum_rate_bps"] <= cmin * (1 + 1e-12)).all())  # every AP carries the sum rate
        # with unit weights the WSR [bit/s/Hz] is the sum rate over BW: <= min C / BW
        assert bool((m["wsr"] <= cmin / inst.bandwidth_hz * (1 + 1e-12)).all())
        assert float(PROBLEM.violation(inst, alloc).max()) <= 1e-9
        c = alloc.info["backoff"]
        binding = c < 1
        # the back-off is tight where it binds (bisection to 2^-60), and ZF keeps the nulls
        assert torch.allclose(m["sum_rate_bps"][binding], cmin[binding], rtol=1e-9)
        if cap == 1e12:
            assert bool((c == 1).all()) and float(m["ap_power"].amax(-1).sub(1000.0).abs().max()) < 1e-9


# ------------------------------------------------------------------------------------------ subproblems
def _beam_value(H, w, gamma, y, U):
    g = H.conj().T @ U
    quad = np.sum(np.abs(y) ** 2 * (np.abs(g) ** 2).sum(1))
    lin = np.sum(2 * np.sqrt(w * (1 + gamma)) * np.real(np.conj(y) * np.diag(g)))
    return lin - quad


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_step_matches_an_independent_real_formulation(seed):
    """(16) as written in the paper, per AP and UE with real/imaginary parts, no parameters."""
    L, K, N = 2, 2, 2
    H, w, gamma, y, un = _tiny(seed, L, K, N)
    delta = 0.01
    # capacities that the linearization point u^ meets (as in Algorithm 1), one of them tight-ish
    at_hat = (np.log1p(gamma)[None, :] / math.log(1 / delta + 1) * np.log(un / delta + 1)).sum(1)
    cap = at_hat * np.array([1.05, 1.6])
    U = beam_step(H, w, gamma, y, un, cap, delta=delta)
    assert U is not None
    h = H.reshape(L, N, K)  # h[b, :, k] = h'_bk
    vr = [[cp.Variable(N) for _ in range(K)] for _ in range(L)]
    vi = [[cp.Variable(N) for _ in range(K)] for _ in range(L)]
    obj = 0
    for k in range(K):
        for j in range(K):  # h_bk^H v_bj = (hr.vr + hi.vi) + i (hr.vi - hi.vr)
            re = sum(h[b, :, k].real @ vr[b][j] + h[b, :, k].imag @ vi[b][j] for b in range(L))
            im = sum(h[b, :, k].real @ vi[b][j] - h[b, :, k].imag @ vr[b][j] for b in range(L))
            obj -= abs(y[k]) ** 2 * (cp.square(re) + cp.square(im))
            if j == k:
                obj += 2 * math.sqrt(w[k] * (1 + gamma[k])) * (y[k].real * re + y[k].imag * im)
    cons = []
    scale = math.log(1 / delta + 1)
    for b in range(L):
        z2 = 0
        for k in range(K):
            nk = cp.norm(cp.hstack([vr[b][k], vi[b][k]]))
            z2 += (
                math.log1p(gamma[k])
                / scale
                * (math.log(un[b, k] / delta + 1) + (nk - un[b, k]) / (un[b, k] + delta))
            )
        cons.append(z2 <= cap[b])
        cons.append(sum(cp.sum_squares(vr[b][k]) + cp.sum_squares(vi[b][k]) for k in range(K)) <= 1)
    ref = cp.Problem(cp.Maximize(obj), cons)
    ref.solve(solver=cp.CLARABEL)
    assert ref.status == "optimal"
    assert _beam_value(H, w, gamma, y, U) == pytest.approx(ref.value, rel=1e-5, abs=1e-6)
    # and the library's optimizer is feasible for the independent constraints
    for b in range(L):
        nb = np.linalg.norm(U.reshape(L, N, K)[b], axis=0)
        lhs = np.sum(np.log1p(gamma) / scale * (np.log(un[b] / delta + 1) + (nb - un[b]) / (un[b] + delta)))
        assert lhs <= cap[b] + 1e-6 and np.sum(nb**2) <= 1 + 1e-6


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gamma_step_matches_an_independent_formulation(seed):
    """(12) with lambda* from (7) written with the interference terms, constraints one AP at a time."""
    rng = np.random.default_rng(seed)
    L, K = 3, 3
    signal = rng.uniform(0.5, 4, K)
    interference = rng.uniform(0.1, 2, K)
    noise = 1.0
    sinr_k = signal / (interference + noise)
    w = rng.uniform(0.5, 2, K)
    ind = rng.uniform(0.1, 1.0, (L, K))
    g_hat = rng.uniform(0, 2, K)
    cap = rng.uniform(0.8, 2.0, L)
    got = gamma_step(w, sinr_k, ind, g_hat, cap)
    lam = w * (interference + noise) / (signal + interference + noise)  # (7)
    g = cp.Variable(K)
    obj = sum(w[k] * cp.log(1 + g[k]) - lam[k] * (g[k] - sinr_k[k]) for k in range(K))
    cons = [g >= 0]
    for b in range(L):
        z1 = sum(ind[b, k] * (math.log1p(g_hat[k]) + (g[k] - g_hat[k]) / (1 + g_hat[k])) for k in range(K))
        cons.append(z1 <= cap[b])
    ref = cp.Problem(cp.Maximize(obj), cons)
    ref.solve(solver=cp.CLARABEL)
    value = sum(w[k] * math.log1p(got[k]) - lam[k] * (got[k] - sinr_k[k]) for k in range(K))
    assert value == pytest.approx(ref.value, rel=1e-7)  # objectives agree to solver accuracy
    np.testing.assert_allclose(got, g.value, rtol=1e-3)  # exp-cone solutions are flat near the optimum
    for b in range(L):  # and the library's point is feasible for the independent constraints
        z1 = np.sum(ind[b] * (np.log1p(g_hat) + (got - g_hat) / (1 + g_hat)))
        assert z1 <= cap[b] + 1e-7


# ------------------------------------------------------------------------------------------ AO-SCA
def test_ao_sca_objective_is_monotone_and_links_stay_on(egat3):
    inst = egat3
    c = (inst.capacity * math.log(2) / inst.bandwidth_hz).numpy()
    for b in range(inst.batch):
        r = ao_sca_instance(
            inst.h[b].numpy(), inst.weights[b].numpy(), inst.noise[b].numpy(), inst.power[b].numpy(), c[b]
        )
        f = np.array(r["f"])
        assert not r["failed"] and r["iterations"] >= 2
        assert np.all(np.diff(f) >= -1e-6 * np.abs(f[1:])), f
        assert f[-1] > f[0] + 1.0  # it improves on the MRT start by more than a nat
        # the literal algorithm meets (12)/(16) with gamma below the actual SINR: every link stays on
        norms = np.linalg.norm(r["v"], axis=-1) / np.sqrt(inst.power[b].numpy())[:, None]
        assert norms.min() > 1e-3


def test_ao_sca_policy_is_feasible_after_repair_and_reweighted_switches_links_off(egat3):
    inst = egat3.take(slice(0, 2))
    lit = AOSCA(threshold=1e-3)(inst)
    rw = AOSCA(variant="reweighted")(inst)
    for alloc in (lit, rw):
        assert float(PROBLEM.violation(inst, alloc).max()) <= 1e-9
        assert float(alloc.precoders[~alloc.serving].abs().sum()) == 0.0
        assert len(alloc.info["f"]) == 2 and len(alloc.info["wsr_iter"][0]) == alloc.info["iterations"][0] + 1
    # before repair: the literal variant keeps all L*K links (above -60 dB), the reweighted one drops some
    # (above -20 dB, its default threshold)
    assert lit.info["links_on"].tolist() == [32, 32]
    assert bool((rw.info["links_on"] < 32).all())


def test_cli_solve_wsr_json():
    import json

    from typer.testing import CliRunner

    from cfmimo.cli import app

    args = ["solve", "wsr", "--setups", "3", "--policies", "fc_zf", "--capacity-mbps", "40", "--json"]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, out.output
    r = json.loads(out.output)
    fc = r["policies"]["fc_zf"]
    assert r["capacity_bps"] == 40e6 and fc["feasible_without_repair"] == 1.0 and fc["aps_per_ue"] == 8.0
    assert fc["wsr"] <= 4.0 + 1e-9 and fc["wsr_mbps"] == pytest.approx(10 * fc["wsr"])
    bad = CliRunner().invoke(app, ["solve", "wsr", "--setups", "1", "--policies", "nope"])
    assert bad.exit_code != 0 and "nope" in bad.output
    bad = CliRunner().invoke(app, ["solve", "wsr", "--setups", "1", "--capacity-mbps", "-1"])
    assert bad.exit_code != 0 and "capacity" in bad.output


def test_fczf_meets_the_policy_contract_with_ue_and_ap_permutations(egat3):
    inst = egat3.with_capacity(40e6)
    alloc = assert_policy(PROBLEM, FCZF(), inst, rtol=1e-7, atol=1e-9)
    assert alloc.precoders.dtype == torch.complex128
    f32 = PROBLEM.sample(preset("egat"), 3, seed=5)  # float32 instance -> complex64 decisions
    assert_policy(PROBLEM, FCZF(), f32, rtol=1e-3, atol=1e-4)

    def first_ap_only(i):  # serves every UE from AP 0 whatever the order: not AP-equivariant
        x = torch.zeros(i.h.shape[:-1], dtype=torch.bool)
        x[:, 0] = True
        return Allocation(precoders=i.h * x.unsqueeze(-1) * 0.01, serving=x)

    with pytest.raises(AssertionError, match="not permuted with the APs"):
        assert_policy(PROBLEM, first_ap_only, inst, feasible=False)

    def wrong_dtype(i):
        a = FCZF()(i)
        return Allocation(precoders=a.precoders.to(torch.complex64), serving=a.serving)

    with pytest.raises((AssertionError, TypeError, ValueError), match="dtype"):  # the problem's check comes first
        assert_policy(PROBLEM, wrong_dtype, inst, feasible=False, permutation=False)


# ------------------------------------------------------------------------------------------ PC-WMMSE
def test_pc_wmmse_is_monotone_before_dropping_and_feasible_after(egat3):
    inst = egat3.with_capacity(60e6)
    alloc = PCWMMSE(max_iterations=40)(inst)
    hist = alloc.info["history"]  # [B, T + 1] WSR per WMMSE iteration on the full association
    assert bool((hist.diff(dim=-1) >= -1e-9 * hist[:, 1:].abs()).all())
    assert bool((hist[:, -1] > hist[:, 0]).all())  # WMMSE improves on its RZF start
    assert float(PROBLEM.violation(inst, alloc).max()) <= 1e-9
    assert float(alloc.precoders[~alloc.serving].abs().sum()) == 0.0
    assert bool((alloc.info["dropped"] > 0).all())  # 60 Mbit/s binds on full association
    # the WSR of the first WMMSE run is the one scored before dropping
    assert torch.allclose(alloc.info["wsr_before_drop"], hist[:, -1], rtol=1e-9)
    # without a binding fronthaul, nothing is dropped and the result is WMMSE on all links
    free = PCWMMSE(max_iterations=40)(egat3.with_capacity(1e12))
    assert bool(free.serving.all()) and bool(free.info["feasible_before_drop"].all())
    assert torch.allclose(PROBLEM.objective(egat3, free), free.info["history"][:, -1], rtol=1e-9)
    # re-optimizing after each round also ends feasible
    again = PCWMMSE(max_iterations=10, reoptimize=True)(inst.take(slice(0, 1)))
    assert float(PROBLEM.violation(inst.take(slice(0, 1)), again).max()) <= 1e-9
