"""Tree-Transformer (Sect. III-B): parameter count, the binary tree against hand-written merges,
padding, AP/UE order behaviour, ONNX export with a dynamic number of UEs."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from cfmimo.models import ModelConfig, build_model, count_parameters
from cfmimo.models.tree_transformer import compact_real_first


def _model(name="tree_transformer", dtype=torch.float64, seed=0, **fields):
    torch.manual_seed(seed)
    return build_model(ModelConfig(name=name, **fields)).to(dtype).eval()


def _positions(b, n, seed, dtype=torch.float64):
    return torch.rand(b, n, 2, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def test_parameter_counts_table_ii():
    assert count_parameters(_model()) == 584_354  # Table II, "our model"
    lean = _model("tree_transformer_lean")
    assert lean.config.ff == 256 and count_parameters(lean) == 122_018
    assert _model("tree_transformer_lean", ff=512).config.ff == 512  # an explicit field wins


def _hand_root(merge, z):
    """The paper's tree written out by hand for K = 1..8 leaves z [K, d] (0-based names)."""

    def m(a, b):
        return merge(torch.cat([a, b]))

    o = torch.zeros_like(z[0])
    k = z.shape[0]
    if k == 1:
        return z[0]
    if k == 2:
        return m(z[0], z[1])
    if k == 3:
        return m(m(z[0], z[1]), m(z[2], o))
    if k == 4:
        return m(m(z[0], z[1]), m(z[2], z[3]))
    if k == 5:  # levels: 5 -> (12, 34, 5o) -> (1234, 5o o) -> root
        return m(m(m(z[0], z[1]), m(z[2], z[3])), m(m(z[4], o), o))
    if k == 6:
        return m(m(m(z[0], z[1]), m(z[2], z[3])), m(m(z[4], z[5]), o))
    if k == 7:
        return m(m(m(z[0], z[1]), m(z[2], z[3])), m(m(z[4], z[5]), m(z[6], o)))
    return m(m(m(z[0], z[1]), m(z[2], z[3])), m(m(z[4], z[5]), m(z[6], z[7])))


def _recursive_root(merge, nodes):
    """The paper's rule as a recursion: pad an odd level with a zero vector, merge pairs, repeat."""
    if len(nodes) == 1:
        return nodes[0]
    if len(nodes) % 2:
        nodes = [*nodes, torch.zeros_like(nodes[0])]
    return _recursive_root(merge, [merge(torch.cat(nodes[i : i + 2])) for i in range(0, len(nodes), 2)])


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 6, 7, 8, 13])
def test_tree_matches_hand_written_merges(k):
    model = _model()
    tree = model.tree
    z = torch.randn(1, k, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(k))
    root = tree(z, torch.ones(1, k, dtype=torch.bool))[0]
    leaves = list(tree.project(z[0]))
    torch.testing.assert_close(root, _recursive_root(tree.merge, leaves))
    if k <= 8:
        torch.testing.assert_close(root, _hand_root(tree.merge, torch.stack(leaves)))


def test_tree_padded_batch_equals_each_tree():
    tree = _model().tree
    lengths = [1, 2, 3, 4, 5, 7, 8, 9, 16, 17]
    z = torch.randn(len(lengths), 17, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    mask = torch.arange(17)[None, :] < torch.tensor(lengths)[:, None]
    roots = tree(z.masked_fill(~mask[..., None], 1e3), mask)
    for b, n in enumerate(lengths):
        torch.testing.assert_close(roots[b], tree(z[b : b + 1, :n], torch.ones(1, n, dtype=torch.bool))[0])


def test_compaction_moves_real_ues_first_stably():
    x = torch.arange(6.0).view(1, 6, 1).repeat(2, 1, 1)
    mask = torch.tensor([[False, True, False, True, True, False], [True] * 6])
    xc, mc = compact_real_first(x, mask)
    assert (
        xc[0, :, 0].tolist() == [1.0, 3.0, 4.0, 0.0, 2.0, 5.0] and mc[0].tolist() == [True] * 3 + [False] * 3
    )
    assert torch.equal(xc[1], x[1]) and mc[1].all()


def test_interleaved_padding_equals_unpadded():
    model = _model()
    ue, ap = _positions(1, 4, 0), _positions(1, 6, 1)
    mask = torch.tensor([[False, True, True, False, True, False, True]])
    padded = torch.full((1, 7, 2), 0.5, dtype=torch.float64)
    padded[mask] = ue[0]
    torch.testing.assert_close(model(padded, ap, mask)[mask], model(ue, ap)[0])


def test_ap_permutation_invariance_and_ap_padding():
    model = _model()
    ue, ap = _positions(2, 5, 0), _positions(2, 9, 1)
    out = model(ue, ap)
    torch.testing.assert_close(model(ue, ap[:, torch.randperm(9)]), out)
    ap_padded = torch.cat([ap, torch.full((2, 3, 2), 7.0, dtype=torch.float64)], 1)
    ap_mask = torch.arange(12)[None, :].expand(2, -1) < 9
    torch.testing.assert_close(model(ue, ap_padded, ap_mask=ap_mask), out)


def test_ue_order_enters_only_through_the_root():
    # The tree is order-dependent: permuting the UEs changes the root, hence every output. What
    # holds: UE k's output is dec([z_k ; z'_root]), so with the root of the original order the
    # permuted outputs are exactly the original outputs permuted (no other cross-UE path).
    model = _model()
    ue, ap = _positions(2, 7, 0), _positions(2, 16, 1)
    perm = torch.tensor([3, 0, 6, 1, 5, 2, 4])
    z, root = model.encode(ue, ap)
    z_perm, root_perm = model.encode(ue[:, perm], ap)
    torch.testing.assert_close(z_perm, z[:, perm])
    assert (root_perm - root).abs().max() > 1e-4
    torch.testing.assert_close(model.decode(z_perm, root), model(ue, ap)[:, perm])
    torch.testing.assert_close(model.decode(z_perm, root_perm), model(ue[:, perm], ap))


def test_single_token_attention_leaves_query_key_projections_without_gradient():
    model = _model(dtype=torch.float64).train()  # float64: "zero up to round-off" means ~1e-16
    model(_positions(4, 6, 0), _positions(4, 16, 1)).sum().backward()
    d = 64
    for layer in model.root_encoder.layers:
        g = layer.self_attn.in_proj_weight.grad
        # W_q, W_k: zero up to round-off (softmax over one key is 1); W_v alive
        assert g[: 2 * d].abs().max() < 1e-12 * g[2 * d :].abs().max()


def _export_legacy(model, path, with_masks=False):
    ue, ap = _positions(2, 5, 0, torch.float32), _positions(2, 16, 1, torch.float32)
    args = (
        (ue, ap, torch.ones(2, 5, dtype=torch.bool), torch.ones(2, 16, dtype=torch.bool))
        if with_masks
        else (ue, ap)
    )
    names = ["ue", "ap", "ue_mask", "ap_mask"][: len(args)]
    axes = {
        "ue": {0: "B", 1: "K"},
        "ap": {0: "B", 1: "L"},
        "ue_mask": {0: "B", 1: "K"},
        "ap_mask": {0: "B", 1: "L"},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            args,
            str(path),
            dynamo=False,
            input_names=names,
            output_names=["p"],
            dynamic_axes={n: axes[n] for n in names} | {"p": {0: "B", 1: "K"}},
        )


def _check_onnx(model, path, sizes, with_masks=False):
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for k, l in sizes:
        ue, ap = _positions(3, k, k, torch.float32), _positions(3, l, 100 + k, torch.float32)
        feeds = {"ue": ue.numpy(), "ap": ap.numpy()}
        expected = model(ue, ap).detach().numpy()
        if with_masks:
            ue_mask = torch.arange(k)[None, :] < torch.tensor([k, max(k - 1, 1), 1])[:, None]
            ap_mask = torch.ones(3, l, dtype=torch.bool)
            feeds |= {"ue_mask": ue_mask.numpy(), "ap_mask": ap_mask.numpy()}
            expected = model(ue, ap, ue_mask, ap_mask).detach().numpy()
            real = ue_mask.numpy()
            np.testing.assert_allclose(session.run(None, feeds)[0][real], expected[real], atol=1e-5, rtol=0)
        else:
            np.testing.assert_allclose(session.run(None, feeds)[0], expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("with_masks", [False, True])
def test_onnx_export_dynamic_ue_count(tmp_path, with_masks):
    pytest.importorskip("onnx")
    model = _model(dtype=torch.float32)
    _export_legacy(model, tmp_path / "tree.onnx", with_masks)
    _check_onnx(model, tmp_path / "tree.onnx", [(3, 16), (17, 16), (1, 4), (40, 25)], with_masks)


@pytest.mark.slow
def test_onnx_dynamo_export_dynamic_ue_count(tmp_path):
    pytest.importorskip("onnxscript")
    model = _model(dtype=torch.float32)
    ue, ap = _positions(2, 5, 0, torch.float32), _positions(2, 16, 1, torch.float32)
    dims = torch.export.Dim("B", min=1), torch.export.Dim("K", min=1, max=2**16), torch.export.Dim("L", min=1)
    torch.onnx.export(
        model,
        (ue, ap),
        str(tmp_path / "tree.onnx"),
        dynamo=True,
        input_names=["ue", "ap"],
        output_names=["p"],
        dynamic_shapes=({0: dims[0], 1: dims[1]}, {0: dims[0], 1: dims[2]}),
    )
    _check_onnx(model, tmp_path / "tree.onnx", [(3, 16), (17, 16), (1, 4)])


# ---- inference fast path (issue #15): folded weights, no masks, one-token attention
@pytest.mark.parametrize("name", ["tree_transformer", "tree_transformer_lean"])
def test_fast_path_equals_masked_path_float64(name):
    model = _model(name, seed=3)
    with torch.no_grad():
        for K in (1, 2, 3, 5, 8, 13, 40, 129):
            for L in (1, 16):
                ue, ap = _positions(2, K, K), _positions(2, L, 100 + L)
                fast = model(ue, ap)  # eval + no_grad: the fast path
                slow = model.decode(*model.encode(ue, ap))
                assert (fast - slow).abs().max().item() <= 1e-10, (K, L)
        # the single-token encoder shortcut against nn.TransformerEncoder itself
        root = torch.randn(3, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        f = model._folded_weights()
        x = root
        for layer, (w_sa, b_sa) in zip(model.root_encoder.layers, f.attention, strict=True):
            x = layer.norm1(x + torch.addmm(b_sa, x, w_sa))
            x = layer.norm2(x + layer.linear2(layer.activation(layer.linear1(x))))
        want = model.root_encoder(root.unsqueeze(1)).squeeze(1)
        assert (x - want).abs().max().item() <= 1e-10


def test_fast_path_is_taken_only_in_inference_and_follows_weight_changes():
    model = _model(seed=4)
    ue, ap = _positions(1, 9, 1), _positions(1, 16, 2)
    calls = []
    original = model.forward_fast
    model.forward_fast = lambda *a: calls.append(1) or original(*a)
    with torch.no_grad():
        model(ue, ap)
        model(ue, ap, torch.ones(1, 9, dtype=torch.bool))  # masks given: the masked path
    model(ue, ap)  # autograd on: the masked path (the folded weights carry no gradient)
    assert len(calls) == 1
    with torch.no_grad():
        before = model(ue, ap)
        model.tree.merge.weight.mul_(0.5)  # in place: the cache must notice
        after = model(ue, ap)
        assert (after - before).abs().max().item() > 1e-6
        torch.testing.assert_close(after, model.decode(*model.encode(ue, ap)), rtol=0, atol=1e-12)
        model.load_state_dict(_model(seed=5).state_dict())
        torch.testing.assert_close(model(ue, ap), model.decode(*model.encode(ue, ap)), rtol=0, atol=1e-12)
