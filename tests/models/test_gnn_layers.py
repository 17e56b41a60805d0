"""Shared GNN layers (cfmimo.models.gnn.layers and the AAGNN layers) against loop references, float64."""

from __future__ import annotations

import itertools

import pytest
import torch

from cfmimo.models.gnn.aagnn import AttentionLayer, EGATLayer, WoALayer
from cfmimo.models.gnn.layers import (
    EdgeAttentionScore,
    attend,
    masked_aggregate,
    masked_softmax,
    others_aggregate,
    power_head,
)

B, L, K, N, C = 2, 3, 4, 3, 4


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(B, L, K, N, C, dtype=torch.float64, generator=g)
    d = (torch.rand(B, L, K, generator=g) < 0.5).double()
    d[0, 1] = 0.0  # AP 1 of instance 0 serves nobody
    d[1, :, 2] = 0.0  # UE 2 of instance 1 is served by nobody
    d[1, :, 3] = 1.0  # UE 3 of instance 1 is served by every AP (its unserved-AP set is empty)
    return x, d


def _agg(values, weights, how):
    """agg over a list of (value, weight) in plain Python: sum, or mean over weight-1 entries."""
    s = sum(w * v for v, w in zip(values, weights, strict=True))
    c = sum(weights)
    return s if how == "sum" else (s / c if c > 0 else s * 0)


@pytest.mark.parametrize("how", ["sum", "mean"])
def test_masked_and_others_aggregate_match_loops_with_empty_sets(how):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, 3, dtype=torch.float64, generator=g)
    w = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]], dtype=torch.float64)  # 2nd: empty
    got = masked_aggregate(x, w[..., None], dim=1, how=how)
    others = others_aggregate(x, w[..., None], dim=1, how=how)
    for b in range(2):
        want = _agg(list(x[b]), list(w[b]), how)
        torch.testing.assert_close(
            got[b], torch.as_tensor(want, dtype=torch.float64).expand(3), rtol=0, atol=1e-12
        )
        for i in range(4):
            sel = [w[b, j] if j != i else 0.0 for j in range(4)]
            want_i = _agg(list(x[b]), sel, how)
            torch.testing.assert_close(
                others[b, i], torch.as_tensor(want_i, dtype=torch.float64).expand(3), rtol=0, atol=1e-12
            )
    assert torch.equal(got[1], torch.zeros(3, dtype=torch.float64))


def test_masked_softmax_empty_set_is_zero_with_finite_gradients():
    scores = torch.randn(2, 5, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[True, False, True, True, False], [False] * 5])
    w = masked_softmax(scores, mask, dim=-1)
    torch.testing.assert_close(w[0].sum(), torch.tensor(1.0, dtype=torch.float64))
    assert torch.equal(w[0, ~mask[0]], torch.zeros(2, dtype=torch.float64))
    assert torch.equal(w[1], torch.zeros(5, dtype=torch.float64))
    (w * torch.arange(5.0, dtype=torch.float64)).sum().backward()
    assert torch.isfinite(scores.grad).all()
    want = torch.softmax(scores.detach()[0, mask[0]], 0)
    torch.testing.assert_close(w[0, mask[0]], want)


def test_edge_attention_multi_head_equals_gat_formula():
    torch.manual_seed(0)
    score = EdgeAttentionScore(3, 4, heads=2).double()
    x, y = torch.randn(5, 3, dtype=torch.float64), torch.randn(6, 4, dtype=torch.float64)
    logits = score(x, y)  # [5, 6, 2]
    a_t, a_j = score.target.weight, score.neighbour.weight  # [H, D]
    for t, j, h in itertools.product(range(5), range(6), range(2)):
        raw = a_t[h] @ x[t] + a_j[h] @ y[j]
        want = raw if raw > 0 else 0.2 * raw
        torch.testing.assert_close(logits[t, j, h], want)
    mask = torch.rand(5, 6, generator=torch.Generator().manual_seed(2)) < 0.5
    mask[0] = False
    w = masked_softmax(logits, mask[..., None], dim=-2)
    out = attend(w, torch.randn(6, 8, dtype=torch.float64))
    assert torch.equal(out[0], torch.zeros(8, dtype=torch.float64))  # no neighbours: zero message


@pytest.mark.parametrize("how", ["sum", "mean"])
def test_woa_layer_equals_equations_14_15(data, how):
    x, d = data
    torch.manual_seed(0)
    layer = WoALayer(C, 5, how).double()
    W = layer.weight.detach()  # [O1~ O1^ O2~ O2^ P~ P^ Q~ Q^]
    got = layer(x, d)
    for b, m, k, n in itertools.product(range(B), range(L), range(K), range(N)):
        dk = float(d[b, m, k])
        terms = [dk * x[b, m, k, n], (1 - dk) * x[b, m, k, n]]
        for wt in (dk, 1 - dk):  # sum_{c != n}
            terms.append(_agg([x[b, m, k, c] for c in range(N) if c != n], [wt] * (N - 1), how))
        for sel in (d[b, :, k], 1 - d[b, :, k]):  # sum_{b' != m} sum_c
            vals = [x[b, bb, k, c] for bb in range(L) if bb != m for c in range(N)]
            wts = [float(sel[bb]) for bb in range(L) if bb != m for c in range(N)]
            terms.append(_agg(vals, wts, how))
        for sel in (d[b, m, :], 1 - d[b, m, :]):  # sum_{a != k}
            terms.append(
                _agg(
                    [x[b, m, a, n] for a in range(K) if a != k],
                    [float(sel[a]) for a in range(K) if a != k],
                    how,
                )
            )
        want = sum(t @ W[i] for i, t in enumerate(terms))
        torch.testing.assert_close(got[b, m, k, n], want, rtol=0, atol=1e-12)


def test_aagnn_layer_equals_equation_20(data):
    x, d = data
    torch.manual_seed(0)
    layer = AttentionLayer(C, 4, "sum", alpha=0.3, beta=-0.7).double()
    g = torch.randn(B, L, K, N, dtype=torch.complex128, generator=torch.Generator().manual_seed(3))
    got = torch.view_as_complex(layer(x, d, g).unflatten(-1, (-1, 2)).contiguous())  # [B, L, K, N, 2]
    W = layer.weight.detach()
    alpha, beta = layer.alpha.detach(), layer.beta.detach()

    def cplx(v):  # real [.., 4] -> complex [.., 2] (channel pairs)
        return torch.view_as_complex(v.unflatten(-1, (-1, 2)).contiguous())

    def t_of(b, m, k):  # eq. (18a): [N, 2] complex
        out = []
        for n in range(N):
            dk = float(d[b, m, k])
            terms = [dk * x[b, m, k, n], (1 - dk) * x[b, m, k, n]]
            for wt in (dk, 1 - dk):
                terms.append(wt * sum(x[b, m, k, c] for c in range(N) if c != n))
            for sel in (d[b, :, k], 1 - d[b, :, k]):
                terms.append(sum(float(sel[bb]) * x[b, bb, k].sum(0) for bb in range(L) if bb != m))
            out.append(cplx(sum(t @ W[i] for i, t in enumerate(terms))))
        return torch.stack(out)

    def z_of(b, m, a):  # eq. (18b)
        da = float(d[b, m, a])
        return cplx(da * x[b, m, a] @ W[6] + (1 - da) * x[b, m, a] @ W[7])

    for b, m, k in itertools.product(range(B), range(L), range(K)):
        h = g[b, m, k]  # [N]
        t = t_of(b, m, k)
        want = (alpha * (h.conj() @ t)) * t  # (alpha h^H t) t, per complex channel
        for a in range(K):
            if a != k:
                z = z_of(b, m, a)
                want = want + (beta * (h.conj() @ z)) * z
        torch.testing.assert_close(got[b, m, k], want, rtol=1e-10, atol=1e-10)


def test_egat_layer_attention_sums_to_one_over_each_neighbour_set(data):
    """With O = P = 0 the EGAT layer output is two convex combinations of Q x over the served and
    the unserved UEs of the antenna vertex (ref. [15] attention), zero for empty sets."""
    x, d = data
    torch.manual_seed(0)
    layer = EGATLayer(C, 4, "sum").double()
    with torch.no_grad():
        layer.weight.zero_()
        layer.q_served.weight.copy_(torch.eye(4, C, dtype=torch.float64))
        layer.q_unserved.weight.zero_()
    x1 = torch.ones_like(x)  # every neighbour value is e_1..e_4 -> output = sum of the weights
    out = layer(x1, d)
    served = d > 0.5
    for b, m, k in itertools.product(range(B), range(L), range(K)):
        has = bool(served[b, m, [a for a in range(K) if a != k]].any())
        torch.testing.assert_close(out[b, m, k], torch.full((N, 4), 1.0 if has else 0.0, dtype=torch.float64))


def test_power_head_exact_and_clip_with_empty_ap_and_finite_gradients(data):
    _, d = data
    association = d > 0.5
    g = torch.Generator().manual_seed(4)
    v = torch.randn(B, L, K, N, dtype=torch.complex128, generator=g).requires_grad_(True)
    p = torch.tensor([[1.0, 2.0, 3.0], [0.5, 1.5, 4.0]], dtype=torch.float64)
    out = power_head(v, association, p, "exact")
    power = out.abs().square().sum((-2, -1))
    serving = association.any(-1)
    torch.testing.assert_close(power[serving], p[serving], rtol=1e-12, atol=0)
    assert torch.equal(power[~serving], torch.zeros_like(power[~serving]))
    assert torch.equal(out[~association], torch.zeros_like(out[~association]))
    # direction kept on the served links
    ratio = out[association] / v.detach()[association]
    torch.testing.assert_close(ratio.imag, torch.zeros_like(ratio.imag), rtol=0, atol=1e-12)
    out.abs().sum().backward()
    assert torch.isfinite(v.grad).all()
    small = power_head(v.detach() * 1e-3, association, p, "clip")  # under budget: unchanged
    torch.testing.assert_close(small, v.detach() * 1e-3 * association[..., None])
    big = power_head(v.detach() * 1e3, association, p, "clip")  # over budget: at the budget
    torch.testing.assert_close(big.abs().square().sum((-2, -1))[serving], p[serving], rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match="exact"):
        power_head(v, association, p, "bogus")
