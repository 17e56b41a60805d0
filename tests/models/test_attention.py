"""Attention kernels: linear-time cosFormer / Performer / sliding window vs their O(S²) references, exact padding,
numerically safe normalizers, the encoder layer's equations."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from cfmimo.models.attention import (
    COSFORMER_EPS,
    KERNEL_ACTIVATIONS,
    EncoderLayer,
    MultiheadAttention,
    _safe_denominator,
    cosformer_attention,
    longformer_attention,
    orthogonal_random_features,
    performer_attention,
    reference_attention,
    softmax_attention,
)

LENGTHS = (1, 3, 5, 8)


def _qkv(lengths=LENGTHS, heads=2, d=4, e=3, scale=1.0, seed=0, dtype=torch.float64):
    """q, k, v [B, H, S, *] with garbage (1e3-scale) in the padded tokens, and the mask [B, S]."""
    g = torch.Generator().manual_seed(seed)
    b, s = len(lengths), max(lengths)
    mask = torch.arange(s)[None, :] < torch.tensor(lengths)[:, None]  # [B, S]
    q, k = (scale * torch.randn(b, heads, s, d, generator=g, dtype=dtype) for _ in range(2))
    v = torch.randn(b, heads, s, e, generator=g, dtype=dtype)
    pad = ~mask[:, None, :, None]
    q, k, v = (x.masked_fill(pad, 1e3) for x in (q, k, v))
    return q, k, v, mask


def _projection(features=64, d=4, seed=0, dtype=torch.float64):
    return orthogonal_random_features(features, d, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.mark.parametrize("activation", sorted(KERNEL_ACTIVATIONS))
def test_cosformer_linear_equals_quadratic_reference(activation):
    q, k, v, mask = _qkv(scale=0.7)
    out = cosformer_attention(q, k, v, mask, activation=activation)
    ref = reference_attention(q, k, v, mask, kind="cosformer", activation=activation)
    torch.testing.assert_close(out, ref, rtol=1e-8, atol=1e-10)
    assert torch.all(out[~mask[:, None, :].expand(-1, q.shape[1], -1)] == 0)  # padded queries


@pytest.mark.parametrize("activation", ["relu", "elu"])
def test_cosformer_reweighting_uses_true_length(activation):
    # Hand-built weights cos(π (i - j) / (2M)), i, j = 1..M, for one unpadded sample of M = 5.
    q, k, v, _ = _qkv(lengths=(5,), heads=1)
    i = torch.arange(1, 6, dtype=torch.float64)
    w = torch.cos(math.pi * (i[:, None] - i[None, :]) / 10)
    phi = KERNEL_ACTIVATIONS[activation]
    s = phi(q[0, 0]) @ phi(k[0, 0]).T * w
    expected = s @ v[0, 0] / s.sum(-1, keepdim=True)
    torch.testing.assert_close(cosformer_attention(q, k, v, activation=activation)[0, 0], expected)


@pytest.mark.parametrize("kind", ["softmax", "cosformer", "performer"])
def test_padded_keys_do_not_leak(kind):
    # Each real query of a padded batch equals the same sample run alone (padding is 1e3 garbage).
    q, k, v, mask = _qkv()
    proj = _projection()
    fn = {
        "softmax": softmax_attention,
        "cosformer": lambda *a: cosformer_attention(*a, activation="elu"),
        "performer": lambda *a: performer_attention(*a, projection=proj),
    }[kind]
    out = fn(q, k, v, mask)
    for b, n in enumerate(LENGTHS):
        alone = fn(q[b : b + 1, :, :n], k[b : b + 1, :, :n], v[b : b + 1, :, :n], None)
        torch.testing.assert_close(out[b : b + 1, :, :n], alone, rtol=1e-10, atol=1e-12)


def test_performer_linear_equals_explicit_feature_reference():
    q, k, v, mask = _qkv(scale=0.8)
    proj = _projection(features=48)  # not a multiple of d: a partial last block
    out = performer_attention(q, k, v, mask, projection=proj)
    ref = reference_attention(q, k, v, mask, kind="performer", projection=proj)
    torch.testing.assert_close(out, ref, rtol=1e-9, atol=1e-12)


def test_performer_approximates_softmax_with_many_features():
    q, k, v, _ = _qkv(lengths=(30, 30), d=16, e=8, scale=0.5)
    exact = softmax_attention(q, k, v)
    errors = [
        (performer_attention(q, k, v, projection=_projection(f, 16, seed=1)) - exact).abs().mean().item()
        for f in (32, 4096)
    ]
    assert errors[1] < 0.02 and errors[1] < errors[0]


def test_orthogonal_random_features_blocks_and_seed():
    proj = _projection(features=40, d=16, seed=3)
    assert proj.shape == (40, 16)
    for start in (0, 16, 32):
        blk = proj[start : start + 16]
        gram = blk @ blk.T
        torch.testing.assert_close(gram - torch.diag(gram.diag()), torch.zeros_like(gram), atol=1e-10, rtol=0)
    torch.testing.assert_close(proj, _projection(features=40, d=16, seed=3), rtol=0, atol=0)
    assert not torch.equal(proj, _projection(features=40, d=16, seed=4))


def test_softmax_matches_reference_and_survives_empty_rows():
    q, k, v, mask = _qkv()
    mask[0] = False  # a sample without real tokens: finite, ignored
    out = softmax_attention(q, k, v, mask)
    ref = reference_attention(q, k, v, mask, kind="softmax")
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[1:], ref[1:])


def test_safe_denominator_is_sign_preserving():
    den = torch.tensor([-2.0, -1e-9, 0.0, 1e-9, 3.0], dtype=torch.float64)
    expected = torch.tensor([-2.0, -COSFORMER_EPS, COSFORMER_EPS, COSFORMER_EPS, 3.0], dtype=torch.float64)
    torch.testing.assert_close(_safe_denominator(den, COSFORMER_EPS), expected, rtol=0, atol=0)


@pytest.mark.parametrize("activation", ["elu", "gelu", "leaky_relu", "relu"])
def test_cosformer_outputs_and_gradients_stay_finite(activation):
    # Large, signed inputs drive ELU/GELU normalizers through zero; relu can zero whole queries.
    torch.manual_seed(0)
    q, k, v, mask = _qkv(lengths=(1, 2, 7, 16), scale=30.0, dtype=torch.float32)
    q = torch.cat([q, -q.abs()], 0).requires_grad_()  # all-negative queries: relu den = 0 exactly
    k, v, mask = torch.cat([k, k]), torch.cat([v, v]), torch.cat([mask, mask])
    out = cosformer_attention(q, k, v, mask, activation=activation)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(q.grad).all()


def test_unknown_names_raise():
    with pytest.raises(ValueError, match="activation"):
        MultiheadAttention(8, 2, kind="cosformer", activation="tanh")
    with pytest.raises(ValueError, match="kind"):
        MultiheadAttention(8, 2, kind="linformer")
    with pytest.raises(ValueError, match="divisible"):
        MultiheadAttention(10, 4)


@pytest.mark.parametrize("kind", ["softmax", "cosformer", "performer"])
def test_multihead_module_matches_reference(kind):
    torch.manual_seed(0)
    attn = MultiheadAttention(8, 2, kind=kind, activation="elu", features=32, seed=5).double()
    x = torch.randn(4, 8, 8, dtype=torch.float64)
    mask = torch.arange(8)[None, :] < torch.tensor(LENGTHS)[:, None]
    q, k, v = attn.qkv(x).view(4, 8, 3, 2, 4).permute(2, 0, 3, 1, 4).unbind(0)
    proj = getattr(attn, "projection", None)
    a = reference_attention(q, k, v, mask, kind=kind, activation="elu", projection=proj)
    expected = attn.out(a.transpose(1, 2).reshape(4, 8, 8))
    real = mask.unsqueeze(-1).expand_as(x)
    torch.testing.assert_close(attn(x, mask)[real], expected[real])


def test_performer_projection_is_a_fixed_buffer():
    attn = MultiheadAttention(16, 4, kind="performer", features=256, seed=7)
    assert "projection" in attn.state_dict() and attn.projection.shape == (256, 4)
    assert all(p is not attn.projection for p in attn.parameters())
    before = attn.projection.clone()
    attn.train()(torch.randn(2, 5, 16)).sum().backward()
    torch.testing.assert_close(attn.projection, before, rtol=0, atol=0)
    same = MultiheadAttention(16, 4, kind="performer", features=256, seed=7)
    torch.testing.assert_close(same.projection, before, rtol=0, atol=0)


@pytest.mark.parametrize("norm_first", [True, False])
def test_encoder_layer_equations(norm_first):
    torch.manual_seed(0)
    layer = EncoderLayer(8, 2, 16, kind="cosformer", norm_first=norm_first).double().eval()
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    attn, ffn, ln1, ln2 = layer.attn, layer.ffn, layer.norm1, layer.norm2
    if norm_first:  # elu-cosformer eqs. (12)-(14)
        z1 = x + attn(ln1(x))
        expected = z1 + ffn(ln2(z1))
    else:
        z1 = ln1(x + attn(x))
        expected = ln2(z1 + ffn(z1))
    torch.testing.assert_close(layer(x), expected)
    assert isinstance(ffn[1], nn.ReLU) and ffn[0].out_features == 16


# Longformer-style sliding-window attention.


@pytest.mark.parametrize("window", [1, 2, 3, 7, 50])
def test_longformer_sliding_window_equals_banded_reference(window):
    q, k, v, mask = _qkv(scale=0.9)
    out = longformer_attention(q, k, v, mask, window=window)
    ref = reference_attention(q, k, v, mask, kind="longformer", window=window)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)
    assert torch.all(out[~mask[:, None, :].expand(-1, q.shape[1], -1)] == 0)  # padded queries
    # Interleaved padding: the window counts ranks among the real tokens, not positions.
    g = torch.Generator().manual_seed(1)
    scattered = torch.rand(mask.shape, generator=g) < 0.6
    out = longformer_attention(q, k, v, scattered, window=window)
    ref = reference_attention(q, k, v, scattered, kind="longformer", window=window)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)


def test_longformer_window_covering_the_sequence_is_full_softmax():
    q, k, v, mask = _qkv(scale=0.9)
    real = mask[:, None, :].expand(-1, q.shape[1], -1)  # [B, H, S]
    for window in (max(LENGTHS) - 1, max(LENGTHS), 100):
        out = longformer_attention(q, k, v, mask, window=window)
        torch.testing.assert_close(out[real], softmax_attention(q, k, v, mask)[real], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(longformer_attention(q, k, v, window=8), softmax_attention(q, k, v))


def test_longformer_hand_solved_uniform_window():
    # Zero queries: every score is 0, so each real token averages the real values within w ranks.
    v = torch.arange(5, dtype=torch.float64).reshape(1, 1, 5, 1) ** 2  # values 0, 1, 4, 9, 16
    q = k = torch.zeros(1, 1, 5, 2, dtype=torch.float64)
    mask = torch.tensor([[True, True, True, True, False]])  # 16 is padding
    out = longformer_attention(q, k, v, mask, window=1)[0, 0, :, 0]
    expected = torch.tensor(
        [(0 + 1) / 2, (0 + 1 + 4) / 3, (1 + 4 + 9) / 3, (4 + 9) / 2, 0.0], dtype=torch.float64
    )
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-15)


def test_longformer_padded_keys_do_not_leak():
    q, k, v, mask = _qkv()
    out = longformer_attention(q, k, v, mask, window=2)
    for b, n in enumerate(LENGTHS):
        alone = longformer_attention(q[b : b + 1, :, :n], k[b : b + 1, :, :n], v[b : b + 1, :, :n], window=2)
        torch.testing.assert_close(out[b : b + 1, :, :n], alone, rtol=1e-10, atol=1e-12)


def test_longformer_module_matches_reference_and_checks_window():
    torch.manual_seed(0)
    attn = MultiheadAttention(8, 2, kind="longformer", window=2).double()
    x = torch.randn(4, 8, 8, dtype=torch.float64)
    mask = torch.arange(8)[None, :] < torch.tensor(LENGTHS)[:, None]
    q, k, v = attn.qkv(x).view(4, 8, 3, 2, 4).permute(2, 0, 3, 1, 4).unbind(0)
    a = reference_attention(q, k, v, mask, kind="longformer", window=2)
    expected = attn.out(a.transpose(1, 2).reshape(4, 8, 8))
    real = mask.unsqueeze(-1).expand_as(x)
    torch.testing.assert_close(attn(x, mask)[real], expected[real])
    assert EncoderLayer(8, 2, 16, kind="longformer", window=3).attn.window == 3
    for bad in (0, -1, 2.5):
        with pytest.raises(ValueError, match="window"):
            MultiheadAttention(8, 2, kind="longformer", window=bad)
    with pytest.raises(ValueError, match="window"):
        reference_attention(q, k, v, mask, kind="longformer")


def test_longformer_training_dropout_and_gradients_stay_finite():
    torch.manual_seed(0)
    attn = MultiheadAttention(8, 2, kind="longformer", window=1, dropout=0.5).train()
    x = torch.randn(4, 8, 8, requires_grad=True)
    mask = torch.arange(8)[None, :] < torch.tensor((0, 1, 5, 8))[:, None]  # incl. an empty sample
    out = attn(x, mask)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(x.grad).all()
    assert not torch.equal(attn(x, mask), attn(x, mask))  # dropout is active in training
    attn.eval()
    torch.testing.assert_close(attn(x, mask), attn(x, mask), rtol=0, atol=0)
