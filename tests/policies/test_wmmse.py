import math

import pytest
import torch

from cfmimo.policies.classical.precoders import RZFPrecoder
from cfmimo.policies.classical.wmmse import WMMSE, wmmse
from cfmimo.problems.base import Allocation
from cfmimo.problems.sumrate_precoding import SumRatePrecoding, permute_precoder_antennas, precoding_instance
from cfmimo.sim.instantaneous import weighted_sum_rate

PROBLEM = SumRatePrecoding()


def _cn(shape, g):
    re = torch.randn(shape, generator=g, dtype=torch.float64)
    return torch.complex(re, torch.randn(shape, generator=g, dtype=torch.float64)) / math.sqrt(2)


def _instance(B=3, L=3, K=4, N=3, seed=0, p=1.0, snr=10.0, weights=True, serve=0.6):
    """Random gains over ~20 dB, a random association (every UE served), per-AP budgets around p."""
    g = torch.Generator().manual_seed(seed)
    gain = snr * 10 ** (-2 * torch.rand(B, L, K, 1, generator=g, dtype=torch.float64))
    h = _cn((B, L, K, N), g) * gain.sqrt()
    assoc = torch.rand(B, L, K, generator=g) < serve
    assoc[:, 0] |= ~assoc.any(1)  # every UE served by someone
    p_max = p * (0.5 + torch.rand(B, L, generator=g, dtype=torch.float64))
    w = 0.5 + torch.rand(B, K, generator=g, dtype=torch.float64) if weights else None
    return precoding_instance(h, assoc, p_max, 1.0, w)


def _run(inst, **kw):
    r = wmmse(
        inst.h, inst.association, inst.p_max, inst.noise, inst.weights, RZFPrecoder()(inst).precoders, **kw
    )
    return r


def test_objective_never_decreases_budgets_hold_unserved_zero():
    inst = _instance(B=4, L=3, K=5, N=2, seed=1)
    alloc = WMMSE(random_starts=3, max_iterations=300)(inst)
    hist = alloc.info["history"]  # [B, S, T + 1]
    steps = hist[..., 1:] - hist[..., :-1]
    assert steps.min().item() >= -1e-10 * hist.abs().max().item()
    assert (hist[..., -1] > hist[..., 0]).all()  # every start improved
    assert PROBLEM.violation(inst, alloc).max().item() <= 1e-12
    v = alloc.precoders
    assert torch.equal(
        v[~inst.association], torch.zeros_like(v[~inst.association])
    )  # v_km = 0 where d_km = 0
    two = WMMSE(random_starts=0, max_iterations=40, sweeps=2)(inst).info["history"]  # 2 AP sweeps per step
    assert (two[..., 1:] - two[..., :-1]).min().item() >= -1e-10 * two.abs().max().item()
    best = alloc.info["objective_starts"].amax(-1)
    assert torch.allclose(PROBLEM.objective(inst, alloc), best, rtol=1e-12)
    assert torch.allclose(alloc.info["objective"], best, rtol=1e-12)


def _kkt_residual(inst, v):
    """Largest relative KKT residual of (1): for each AP, grad_l = nu_l v_l on served links, nu_l >= 0,
    nu_l = 0 unless the AP is at its budget (autograd gradient of the weighted sum rate)."""
    v = v.detach().clone().requires_grad_(True)
    f = weighted_sum_rate(inst.h, v, inst.association, inst.weights, inst.noise[:, None]).sum()
    (grad,) = torch.autograd.grad(f, v)
    grad = grad * inst.association[..., None]
    worst = 0.0
    scale = grad.abs().amax().item()
    for b in range(inst.batch):
        for l in range(inst.L):
            gl, vl = grad[b, l].detach(), v[b, l].detach()
            if not inst.association[b, l].any():
                continue
            power = vl.abs().square().sum().item()
            at_budget = power >= inst.p_max[b, l].item() * (1 - 1e-9)
            nu = (
                (torch.vdot(vl.flatten(), gl.flatten()).real / max(power, 1e-300)).item()
                if at_budget
                else 0.0
            )
            assert nu >= -1e-9 * scale
            worst = max(worst, (gl - nu * vl).abs().amax().item() / scale)
    return worst


@pytest.mark.parametrize(("K", "N"), [(3, 4), (5, 2)])  # Gram (K <= N) and N x N (K > N) code paths
def test_kkt_residual_small_at_convergence(K, N):
    inst = _instance(B=2, L=3, K=K, N=N, seed=2)
    r = _run(inst, max_iterations=5000, tol=1e-13)
    assert r.converged.all()
    assert _kkt_residual(inst, r.precoders) < 1e-4
    # a start far from convergence has a large residual (the check can fail)
    early = _run(inst, max_iterations=1)
    assert _kkt_residual(inst, early.precoders) > 1e-3


def test_single_ue_closed_form():
    """K = 1: no interference, so |sum_l h_l^H v_l| <= sum_l ||h_l|| sqrt(P_l) (Cauchy-Schwarz per AP),
    reached by co-phased per-AP MRT at full power: SNR* = (sum_{l served} sqrt(P_l) ||h_l||)^2 / sigma^2
    (= P (sum_served ||h_l||)^2 / sigma^2 for equal budgets)."""
    g = torch.Generator().manual_seed(4)
    h = _cn((2, 4, 1, 3), g)
    assoc = torch.tensor([[True, False, True, True], [True, True, False, False]])[..., None]
    p_max = torch.tensor([[1.0, 2.0, 0.5, 3.0], [2.0, 2.0, 2.0, 2.0]], dtype=torch.float64)
    inst = precoding_instance(h, assoc, p_max, torch.tensor([0.5, 2.0], dtype=torch.float64))
    alloc = WMMSE(random_starts=2)(inst)
    norms = h.abs().square().sum(-1).sqrt()[..., 0]  # [B, L]
    snr = ((p_max.sqrt() * norms * assoc[..., 0]).sum(-1)) ** 2 / inst.noise
    assert torch.allclose(PROBLEM.objective(inst, alloc), torch.log2(1 + snr), rtol=1e-9)
    assert torch.allclose(snr[1], 2.0 * norms[1, :2].sum() ** 2 / 2.0)  # the P (sum ||h||)^2 form


def _water_filling(gains, budget):
    """max sum log2(1 + g_i p_i) s.t. sum p_i <= P: p_i = (nu - 1/g_i)^+ (loop over active-set sizes)."""
    inv = sorted(1 / x for x in gains)
    for m in range(len(inv), 0, -1):
        nu = (budget + sum(inv[:m])) / m
        if nu > inv[m - 1]:
            return sum(math.log2(nu / x) for x in inv[:m])
    raise AssertionError("unreachable")


def test_orthogonal_channels_give_per_ap_water_filling():
    """N = K, h_lk = c_lk e_k (UE k seen on antenna k by every AP) and one serving AP per UE: the
    streams can be mutually orthogonal, so each AP water-fills its budget over the UEs it serves."""
    L, K = 2, 5
    g = torch.Generator().manual_seed(5)
    c = _cn((1, L, K), g) * torch.tensor([0.3, 1.0, 3.0, 10.0, 30.0], dtype=torch.float64)
    h = torch.diag_embed(c)  # [1, L, K, N = K]
    serving_ap = torch.tensor([0, 0, 0, 1, 1])
    assoc = torch.nn.functional.one_hot(serving_ap, L).T.bool()[None]  # [1, L, K]
    p_max = torch.tensor([[4.0, 0.5]], dtype=torch.float64)
    inst = precoding_instance(h, assoc, p_max)
    alloc = WMMSE(random_starts=0, tol=1e-11, max_iterations=3000)(inst)  # switching a UE off is slow
    want = sum(
        _water_filling(
            [abs(c[0, l, k].item()) ** 2 for k in range(K) if serving_ap[k] == l], p_max[0, l].item()
        )
        for l in range(L)
    )
    assert PROBLEM.objective(inst, alloc).item() == pytest.approx(want, rel=1e-7)
    # and the weakest UE of AP 0 is switched off by water-filling (a non-trivial case)
    assert alloc.precoders[0, 0, 0].abs().max().item() < 1e-6


def _projected_gradient(inst, starts=8, iterations=300, seed=0):
    """Multi-start projected gradient ascent with Armijo backtracking (a reference independent of WMMSE)."""
    assert inst.batch == 1
    g = torch.Generator().manual_seed(seed)
    mask = inst.association[0][..., None]  # [L, K, 1]
    p = inst.p_max[0][:, None, None]  # [L, 1, 1]

    def project(v):
        v = v * mask
        power = v.abs().square().sum(dim=(-2, -1), keepdim=True)
        return v * torch.clamp(p / power.clamp_min(1e-300), max=1.0).sqrt()

    def f(v):
        return weighted_sum_rate(
            inst.h[0].expand_as(v), v, inst.association[0], inst.weights[0], inst.noise[0]
        )

    v = project(_cn((starts, inst.L, inst.K, inst.N), g))
    steps = 2.0 ** -torch.arange(0, 30, dtype=torch.float64)  # candidate step sizes, largest first
    for _ in range(iterations):
        v = v.detach().requires_grad_(True)
        fv = f(v)
        (grad,) = torch.autograd.grad(fv.sum(), v)
        cand = project(v.detach()[:, None] + steps[None, :, None, None, None] * grad[:, None])  # [S, T, ...]
        gain = f(cand) - fv.detach()[:, None]  # [S, T]
        ok = gain >= 1e-4 * (grad[:, None].conj() * (cand - v.detach()[:, None])).real.sum(dim=(-3, -2, -1))
        first = torch.argmax(ok.to(torch.int8), dim=1)  # largest accepted step
        take = ok.any(1)
        v = torch.where(take[:, None, None, None], cand[torch.arange(starts), first], v.detach())
    return f(v).max().item()


def test_tiny_cases_match_multistart_projected_gradient():
    for seed, (L, K, N) in enumerate([(2, 2, 2), (2, 2, 2), (2, 2, 2), (2, 3, 1)]):
        inst = _instance(B=1, L=L, K=K, N=N, seed=10 + seed, serve=0.7)
        ours = PROBLEM.objective(inst, WMMSE(random_starts=4)(inst)).item()
        ref = _projected_gradient(inst, seed=seed)
        assert abs(ours - ref) <= 0.01 * ref, (seed, ours, ref)


def test_batched_equals_per_instance_loop():
    inst = _instance(B=4, L=3, K=4, N=3, seed=6)
    policy = WMMSE(random_starts=2, max_iterations=60)
    batched = policy(inst)
    for b in range(inst.batch):
        one = policy(inst.take(slice(b, b + 1)))
        assert torch.allclose(one.precoders, batched.precoders[b : b + 1], rtol=1e-9, atol=1e-12)
        assert torch.equal(one.info["iterations"], batched.info["iterations"][b : b + 1])


def test_ap_serving_nobody_sends_zero_and_ue_permutation():
    inst = _instance(B=2, L=3, K=4, N=2, seed=7)
    a = inst.association.clone()
    a[:, 2] = False  # AP 2 serves nobody
    a[:, 0] = True
    inst = precoding_instance(inst.h, a, inst.p_max, inst.noise, inst.weights)
    policy = WMMSE(random_starts=0, max_iterations=100)
    alloc = policy(inst)
    assert torch.equal(alloc.precoders[:, 2], torch.zeros_like(alloc.precoders[:, 2]))
    assert torch.isfinite(alloc.precoders.abs()).all()
    perm = torch.tensor([2, 0, 3, 1])
    permuted = policy(inst.permute_ues(perm))  # the RZF start is UE-equivariant, so is the trajectory
    assert torch.allclose(permuted.precoders, alloc.precoders[:, :, perm], rtol=1e-8, atol=1e-10)


def test_float32_runs_and_matches_float64():
    inst = _instance(B=2, L=2, K=3, N=4, seed=8, weights=False)
    inst32 = precoding_instance(inst.h.to(torch.complex64), inst.association, inst.p_max.float())
    policy = WMMSE(random_starts=0, max_iterations=50)
    f64 = PROBLEM.objective(inst, policy(inst))
    a32 = policy(inst32)
    assert a32.precoders.dtype == torch.complex64 and PROBLEM.violation(inst32, a32).max().item() <= 1e-5
    assert torch.allclose(PROBLEM.objective(inst32, a32).double(), f64, rtol=1e-3)


def test_bad_parameters():
    with pytest.raises(ValueError, match="random_starts"):
        WMMSE(random_starts=-1)
    with pytest.raises(ValueError, match="start"):
        WMMSE(random_starts=0, rzf_start=False)
    with pytest.raises(ValueError, match="max_iterations"):
        WMMSE(max_iterations=-1)
    inst = _instance(B=1)
    with pytest.raises(ValueError, match="tol"):
        _run(inst, tol=float("nan"))
    assert isinstance(WMMSE(max_iterations=0)(inst), Allocation)


def test_antenna_permutation_equivariance_per_ap():
    """Permuting each AP's antennas (independently) permutes WMMSE's precoders the same way (the RZF
    start and every update use h only through per-AP inner products). The AP sweep order makes the
    trajectory, not the fixed point, depend on AP order, so AP permutations are not exact."""
    inst = _instance(B=3, L=3, K=4, N=3, seed=9)
    policy = WMMSE(random_starts=0, max_iterations=60)
    v = policy(inst).precoders
    g = torch.Generator().manual_seed(0)
    perm = torch.stack([torch.randperm(3, generator=g) for _ in range(3)])
    got = policy(inst.permute_antennas(perm)).precoders
    assert torch.allclose(got, permute_precoder_antennas(v, perm), rtol=1e-9, atol=1e-12)
