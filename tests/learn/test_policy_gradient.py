"""REINFORCE + primal-dual pieces of EGAT's Algorithm 2 (egat-fronthaul.md (29)-(38))."""

from __future__ import annotations

import itertools

import pytest
import torch

from cfmimo.learn.policy_gradient import (
    bernoulli_log_prob,
    dual_step,
    fronthaul_pg_loss,
    lagrangian,
    leave_one_out_baseline,
    reinforce_surrogate,
    sample_associations,
)
from cfmimo.problems.fronthaul_wsr import fronthaul_instance


def test_log_prob_matches_eq_31():
    logits = torch.tensor([[[0.3, -1.2], [2.0, 0.0]]], dtype=torch.float64)
    x = torch.tensor([[[True, False], [True, True]]])
    pi = torch.sigmoid(logits)
    want = (
        torch.log(pi[0, 0, 0]) + torch.log(1 - pi[0, 0, 1]) + torch.log(pi[0, 1, 0]) + torch.log(pi[0, 1, 1])
    )
    assert float(bernoulli_log_prob(logits, x)[0]) == pytest.approx(float(want), rel=1e-12)


def test_samples_follow_the_probabilities():
    logits = torch.tensor([[[-1.0, 0.0, 2.0]]], dtype=torch.float64)
    x = sample_associations(logits, 40000, generator=torch.Generator().manual_seed(0))
    freq = x.double().mean(0)[0, 0]
    pi = torch.sigmoid(logits)[0, 0]
    assert torch.allclose(freq, pi, atol=4 * (0.25 / 40000) ** 0.5)


@pytest.mark.parametrize("baseline", ["none", "loo"])
def test_reinforce_is_unbiased_by_enumeration(baseline):
    """grad E[Q(X)] by enumerating all 2^4 associations vs the estimator over many instances."""
    g = torch.Generator().manual_seed(1)
    theta = torch.tensor([[[0.4, -0.7], [1.1, -0.2]]], dtype=torch.float64)  # [1, L=2, K=2]
    table = torch.randn(16, generator=g, dtype=torch.float64) * 3 + 5  # Q(X), nonzero mean
    weights = torch.tensor([8, 4, 2, 1], dtype=torch.float64)

    def reward(x: torch.Tensor) -> torch.Tensor:  # [..., 1, 2, 2] -> [..., 1]
        idx = (x.flatten(-2).double() * weights).sum(-1).long()  # [..., 1]
        return table[idx]

    # exact gradient: sum_X Q(X) grad P(X | theta)
    t = theta.clone().requires_grad_()
    allx = torch.tensor(list(itertools.product([0, 1], repeat=4)), dtype=torch.bool).reshape(16, 1, 2, 2)
    expected = (reward(allx)[:, 0] * bernoulli_log_prob(t, allx).exp()[:, 0]).sum()
    (exact,) = torch.autograd.grad(expected, t)
    # estimator: M instances with the same logits, S = 2 samples each
    M, S = 50000, 2
    tm = theta.expand(M, 2, 2).clone().requires_grad_()
    x = sample_associations(tm, S, generator=g)  # [S, M, 2, 2]
    q = reward(x.unsqueeze(-3))[..., 0]  # [S, M]
    surrogate = reinforce_surrogate(bernoulli_log_prob(tm, x), q, baseline=baseline)
    (grad,) = torch.autograd.grad(surrogate, tm)
    estimate = grad.sum(0)  # d mean_{s,m} / d theta_m summed over m: the mean over m of the estimator
    # per-instance estimates (score of a Bernoulli: x - pi) for the standard error
    qc = q - leave_one_out_baseline(q) if baseline == "loo" else q
    per = (qc[..., None, None] * (x.double() - torch.sigmoid(theta))).mean(0)  # [M, 2, 2]
    se = per.std(0) / M**0.5
    assert torch.allclose(per.mean(0), estimate[None].squeeze(0), rtol=1e-9, atol=1e-12)
    assert bool(((estimate - exact[0]).abs() <= 4 * se).all()), (estimate, exact, se)
    if baseline == "loo":  # the baseline pays off: smaller standard errors than without it
        plain = (q[..., None, None] * (x.double() - torch.sigmoid(theta))).mean(0).std(0) / M**0.5
        assert bool((se < 0.7 * plain).all())


def test_a_baseline_with_the_sample_itself_is_biased():
    """Sanity check that the enumeration test has power: b = mean over all S (own sample included)
    scales the expected gradient by (S - 1) / S."""
    theta = torch.tensor([[[0.5]]], dtype=torch.float64)
    M, S = 100000, 2
    tm = theta.expand(M, 1, 1).clone().requires_grad_()
    x = sample_associations(tm, S, generator=torch.Generator().manual_seed(3))
    q = torch.where(x[..., 0, 0], 3.0, 1.0).double()  # E[Q] = 1 + 2 pi, d/dtheta = 2 pi (1 - pi)
    biased = ((q - q.mean(0, keepdim=True)) * bernoulli_log_prob(tm, x)).mean()
    (grad,) = torch.autograd.grad(biased, tm)
    pi = float(torch.sigmoid(theta))
    est = float(grad.sum())
    assert est == pytest.approx(0.5 * 2 * pi * (1 - pi), rel=0.05)  # half the true gradient at S = 2


def test_dual_step_stays_nonnegative_and_grows_under_violation():
    C = torch.full((3, 2), 10.0)
    over = torch.tensor([[12.0, 5.0]]).expand(4, 3, 2)  # [S, B, L]: AP 0 overloaded by 20 %, AP 1 under
    mu = torch.zeros(2)
    for n in range(1, 6):
        mu = dual_step(mu, over, C, 0.5)
        assert bool((mu >= 0).all())
        assert float(mu[0]) == pytest.approx(0.5 * 0.2 * n) and float(mu[1]) == 0.0
    # per-instance multipliers [B, L] and one multiplier for all APs
    load = torch.tensor([[15.0, 10.0], [5.0, 5.0], [10.0, 30.0]]).expand(2, 3, 2)
    per = dual_step(torch.zeros(3, 2), load, C, 1.0)
    assert torch.allclose(per, torch.tensor([[0.5, 0.0], [0.0, 0.0], [0.0, 2.0]]))
    one = dual_step(torch.tensor(1.0), load, C, 1.0)
    assert float(one) == pytest.approx(1.0 + (0.5 + 0 - 0.5 - 0.5 + 0 + 2.0) / 6)
    with pytest.raises(ValueError, match="mu"):
        dual_step(torch.zeros(5), load, C, 1.0)
    with pytest.raises(ValueError, match="step"):
        dual_step(torch.zeros(2), load, C, -1.0)


def test_lagrangian_and_loss_signs():
    # L = 1, K = 1, N = 1, pi ~ 1: X = 1 surely; beams normalized to full power P = 3.
    h = torch.full((1, 1, 1, 1), 2.0, dtype=torch.complex128)
    inst = fronthaul_instance(h, power=3.0, capacity=1.0, bandwidth_hz=1.0)
    beams = torch.full((1, 1, 1, 1), 0.1 + 0.1j, dtype=torch.complex128)
    logits = torch.full((1, 1, 1), 40.0, dtype=torch.float64)
    mu = torch.tensor([0.25], dtype=torch.float64)
    loss, st = fronthaul_pg_loss(
        inst, beams, logits, mu, samples=2, generator=torch.Generator().manual_seed(0)
    )
    r = torch.log2(torch.tensor(1.0 + 4 * 3.0, dtype=torch.float64))  # SINR = |h|^2 P / noise = 12
    want = float(r - 0.25 * (r / 1.0 - 1))
    assert float(st["lagrangian"][0, 0]) == pytest.approx(want, rel=1e-12)
    assert float(lagrangian(st["wsr"], st["load"], inst.capacity, mu)[0, 0]) == pytest.approx(want)
    # REINFORCE with LOO: both samples equal -> zero weight; the loss is -L2
    assert float(loss) == pytest.approx(-want, rel=1e-9)
    assert not bool(st["feasible"][0, 0])  # load r = 3.7 bit/s > C = 1


def test_descent_on_the_loss_raises_the_lagrangian():
    """A tiny run with free beams and logits (no GNN): Adam on the loss (33) increases E[L2]."""
    g = torch.Generator().manual_seed(4)
    B, L, K, N = 4, 3, 3, 2
    h = torch.randn(B, L, K, N, generator=g, dtype=torch.complex128)
    inst = fronthaul_instance(h, power=10.0, capacity=4.0, bandwidth_hz=1.0)
    beams = torch.randn(B, L, K, N, generator=g, dtype=torch.complex128).requires_grad_()
    logits = torch.zeros(B, L, K, dtype=torch.float64, requires_grad=True)
    mu = torch.full((L,), 0.5, dtype=torch.float64)
    opt = torch.optim.Adam([beams, logits], lr=0.05)
    history = []
    for _ in range(150):
        loss, st = fronthaul_pg_loss(inst, beams, logits, mu, samples=4, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(float(st["lagrangian"].mean()))
    first, last = sum(history[:15]) / 15, sum(history[-15:]) / 15
    assert last > first + 0.5, (first, last)
    assert torch.isfinite(beams.grad).all() and torch.isfinite(logits.grad).all()
