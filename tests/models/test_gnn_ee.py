"""The ee-gnn GNN with nested SINRnets (cfmimo.models.gnn.ee): contract, equivariance, masking."""

from __future__ import annotations

import pytest
import torch

from cfmimo.models import ModelConfig, build_model
from cfmimo.models.gnn.ee import EEGNN


def _gains(B: int, L: int, K: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    g = torch.exp(3.0 * torch.randn(B, L, K, K, generator=gen, dtype=torch.float64))
    serving = torch.rand(B, L, K, generator=gen) < 0.8
    return g, serving


def _model(**kw) -> EEGNN:
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="ee_gnn", d_mod=8, **kw)).double()
    g, s = _gains(8, 4, 5, seed=9)
    model.fit_input_stats(g, s)
    return model


def test_outputs_respect_the_contract() -> None:
    model = _model()
    g, s = _gains(3, 4, 5)
    a, ell = model(g, s)
    assert a.shape == ell.shape == (3, 4, 5)
    assert bool((a[s] >= 0).all() and (a[s] < 1).all() and (ell[s] > 0).all())
    assert bool((a[~s] == 0).all() and (ell[~s] == 0).all())


@pytest.mark.parametrize("rounds", [1, 2])
def test_ue_permutation_equivariance(rounds: int) -> None:
    model = _model(rounds=rounds)
    g, s = _gains(2, 4, 6, seed=1)
    perm = torch.randperm(6, generator=torch.Generator().manual_seed(3))
    a, ell = model(g, s)
    a_p, ell_p = model(g[:, :, perm][:, :, :, perm], s[:, :, perm])
    torch.testing.assert_close(a_p, a[:, :, perm], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ell_p, ell[:, :, perm], rtol=1e-12, atol=1e-12)


def test_ap_permutation_equivariance() -> None:
    model = _model()
    g, s = _gains(2, 5, 4, seed=2)
    perm = torch.randperm(5, generator=torch.Generator().manual_seed(4))
    a, ell = model(g, s)
    a_p, ell_p = model(g[:, perm], s[:, perm])
    torch.testing.assert_close(a_p, a[:, perm], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ell_p, ell[:, perm], rtol=1e-12, atol=1e-12)


def test_messages_couple_aps_and_batch_is_per_sample() -> None:
    model = _model()
    g, s = _gains(4, 3, 4, seed=5)
    a, ell = model(g, s)
    for b in range(4):
        a1, ell1 = model(g[b : b + 1], s[b : b + 1])
        torch.testing.assert_close(a1[0], a[b], rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(ell1[0], ell[b], rtol=1e-12, atol=1e-14)
    # AP 0's output depends on AP 1's gains (message passing is real)
    g2 = g.clone()
    g2[:, 1] *= 10.0
    assert not torch.allclose(model(g2, s)[0][:, 0], a[:, 0])


def test_all_masked_ap_has_finite_outputs_and_gradients() -> None:
    model = _model()
    g, s = _gains(2, 4, 5, seed=6)
    s[:, 2] = False  # AP 2 serves nobody
    s[0, :, 1] = False  # UE 1 of sample 0 is served by nobody
    a, ell = model(g, s)
    assert bool(torch.isfinite(a).all() and torch.isfinite(ell).all())
    assert bool((a[:, 2] == 0).all() and (ell[:, 2] == 0).all())
    (a.sum() + ell.sum()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and bool(torch.isfinite(p.grad).all()), name


def test_input_statistics_follow_eq_13_and_live_in_the_state_dict() -> None:
    model = build_model(ModelConfig(name="ee_gnn", norm_eps_mean=1.0, norm_eps_std=0.5)).double()
    g, s = _gains(4, 3, 4, seed=7)
    mu, sigma = model.fit_input_stats(g, s)
    logs = torch.log(g)[s.any(-1)]
    assert mu == pytest.approx(float(logs.mean()), rel=1e-12)
    assert sigma == pytest.approx(float(logs.std()), rel=1e-12)
    raw = model.raw_input(g, s)
    torch.testing.assert_close(raw[..., 0], (torch.log(g) - (mu - 1.0)) / (sigma - 0.5))
    state = model.state_dict()
    assert float(state["log_gain_mean"]) == pytest.approx(mu)
    with pytest.raises(ValueError, match="norm_eps_std"):
        build_model(ModelConfig(name="ee_gnn", norm_eps_std=100.0)).fit_input_stats(g.float(), s)


def test_bad_inputs_name_the_argument() -> None:
    model = _model()
    g, s = _gains(1, 2, 3)
    with pytest.raises(ValueError, match="gains"):
        model(g[..., :2], s)
    with pytest.raises(TypeError, match="serving"):
        model(g, s.double())
    with pytest.raises(ValueError, match="serving"):
        model(g, s[:, :1])
