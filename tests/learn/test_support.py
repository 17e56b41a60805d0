"""Tests of cfmimo.learn.support (ee-gnn eqs. (5)-(8)): the toy support test of issue 13, the pieces."""

from __future__ import annotations

import pytest
import torch

from cfmimo.learn.support import KappaRule, SupportConfig, sample_powers, support_loss, support_penalty

F64 = torch.float64


def _toy(p: torch.Tensor) -> torch.Tensor:
    """f(p) = 0.6 exp(-((p - .25)/.08)^2) + exp(-((p - .75)/.08)^2): local max 0.25, global 0.75."""
    return 0.6 * torch.exp(-(((p - 0.25) / 0.08) ** 2)) + torch.exp(-(((p - 0.75) / 0.08) ** 2))


def test_plain_ascent_from_0_2_ends_at_the_local_maximum():
    p = torch.tensor([0.2], dtype=F64, requires_grad=True)
    opt = torch.optim.Adam([p], lr=1e-2)
    for _ in range(1000):
        opt.zero_grad()
        (-_toy(p).sum()).backward()
        opt.step()
    assert p.item() == pytest.approx(0.25, abs=1e-3)


def test_support_regularization_finds_the_global_maximum():
    # Issue 13: loss (7) with rule (8), S = 16, Adam 1e-2, h = 50, dkappa = 1e-2, 6000 steps, support
    # [0, 1] at the start. Two runs side by side (batch of 2, one kappa each): rule (8) and kappa = 0.
    cfg = SupportConfig.build(h=50, delta_kappa=1e-2, samples=16, per_sample=True)
    rule = KappaRule(cfg, num_samples=2)
    index, use_rule = torch.arange(2), torch.tensor([1.0, 0.0], dtype=F64)
    a = torch.zeros(2, 1, dtype=F64, requires_grad=True)
    ell = torch.ones(2, 1, dtype=F64, requires_grad=True)
    opt = torch.optim.Adam([a, ell], lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    kappa = torch.zeros(2, dtype=F64)
    for _ in range(6000):
        loss, parts = support_loss(lambda p: _toy(p)[:, 0], a, ell, 1.0, kappa, cfg.samples, generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            ell.clamp_(min=0.0)  # a width is >= 0 (a model's head ensures it)
        kappa = rule.update(parts["psi"], index) * use_rule
    width = ell.detach()[:, 0]
    mid = (a.detach() + ell.detach() / 2)[:, 0]
    assert width[0] < 0.05 and abs(mid[0].item() - 0.75) < 0.02
    assert width[1] > 0.5


def test_sample_powers_and_penalty():
    a = torch.tensor([[0.0, 0.5], [0.2, 0.9]], dtype=F64)
    ell = torch.tensor([[1.0, 1.0], [0.0, 0.4]], dtype=F64)
    u = torch.tensor([[[0.5, 0.9], [0.3, 0.5]]], dtype=F64)
    p = sample_powers(a, ell, 1.0, 1, u=u)
    torch.testing.assert_close(p, torch.tensor([[[0.5, 1.0], [0.2, 1.0]]], dtype=F64))  # clipped at the cap
    cap = torch.tensor([[2.0, 4.0]], dtype=F64)  # per-link caps, broadcast over the batch
    p2 = sample_powers(a - 1.0, ell, cap, 1, u=u)
    torch.testing.assert_close(p2, torch.tensor([[[0.0, 0.4], [0.0, 0.1]]], dtype=F64))  # clipped at 0
    torch.testing.assert_close(support_penalty(ell, cap), torch.tensor([0.75, 0.1], dtype=F64))
    # Uniform on [a, a + l]: the mean of many draws is a + l/2, and gradients reach a and l.
    a3 = torch.full((1, 3), 0.2, dtype=F64, requires_grad=True)
    l3 = torch.full((1, 3), 0.4, dtype=F64, requires_grad=True)
    draws = sample_powers(a3, l3, 1.0, 20000, generator=torch.Generator().manual_seed(1))
    assert draws.mean().item() == pytest.approx(0.4, abs=3e-3)
    assert draws.min() >= 0.2 and draws.max() <= 0.6
    draws.mean().backward()
    assert a3.grad.sum().item() == pytest.approx(1.0) and l3.grad.sum().item() == pytest.approx(0.5, abs=1e-2)


def test_support_loss_is_eq_7():
    a = torch.tensor([[0.1, 0.2]], dtype=F64)
    ell = torch.tensor([[0.3, 0.1]], dtype=F64)
    gen = torch.Generator().manual_seed(3)
    loss, parts = support_loss(
        lambda p: p.sum(-1), a, ell, 1.0, torch.tensor(2.0, dtype=F64), 4, generator=gen
    )
    u = torch.rand((4, 1, 2), generator=torch.Generator().manual_seed(3), dtype=F64)
    expected = (a + ell * u).sum(-1).mean(0)
    torch.testing.assert_close(parts["expected_objective"], expected)
    torch.testing.assert_close(loss, -(expected - 2.0 * 0.4).mean())


def test_kappa_rule_eq_8():
    rule = KappaRule(SupportConfig(h=2, delta_kappa=0.1))
    seq = [1.0, 1.0, 1.0, 0.5, 0.5, 0.9]
    got = [rule.update(torch.tensor([x])).item() for x in seq]
    # i <= h: 0; then +0.1 when mean(previous 2) <= psi, else max(0, kappa - 0.05).
    assert got == pytest.approx([0.0, 0.0, 0.1, 0.05, 0.0, 0.1])
    # The global kappa uses the batch mean of psi; per-sample kappas have their own histories.
    per = KappaRule(SupportConfig(h=1, delta_kappa=0.2, per_sample=True), num_samples=3)
    per.update(torch.tensor([1.0, 1.0]), torch.tensor([0, 2]))
    out = per.update(torch.tensor([2.0, 0.5]), torch.tensor([0, 2]))
    torch.testing.assert_close(out, torch.tensor([0.2, 0.0], dtype=F64))
    assert per.kappa[1].item() == 0.0


def test_bad_config_names_the_field():
    with pytest.raises(ValueError, match="h"):
        SupportConfig.build(h=0)
    with pytest.raises(ValueError, match="delta_kappa"):
        SupportConfig.build(delta_kappa=0.0)
    with pytest.raises(ValueError, match="samples"):
        SupportConfig.build(samples=0)
    with pytest.raises(ValueError, match="samples"):
        sample_powers(torch.zeros(1, 2), torch.ones(1, 2), 1.0, 0)
    with pytest.raises(ValueError, match="cap"):
        support_penalty(torch.ones(1, 2), 0.0)
    with pytest.raises(ValueError, match="index"):
        KappaRule(SupportConfig(per_sample=True), 4).update(torch.ones(2))
