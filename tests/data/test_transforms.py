"""Transforms: position noise (eqs. (10), (29)-(30)), min-max scaling (eqs. (11), (31)), the power
scaler and the rescaler (eqs. (12)-(13), (19)-(21))."""

from __future__ import annotations

import json

import pytest
import torch

from cfmimo.data.loaders import collate_same_size, pad_collate
from cfmimo.data.transforms import (
    PowerScaler,
    PrepareBatch,
    add_position_noise,
    minmax_positions,
    position_range,
    rescale_predictions,
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def labels(n: int = 64, K: int = 6, dtype: torch.dtype = torch.float64, seed: int = 0):
    """Max-min-like labels: UL in [0.5, 100] mW; DL that sums to a per-sample budget."""
    g = gen(seed)
    p_ul = 0.5 + 99.5 * torch.rand(n, K, generator=g, dtype=dtype)
    w = 0.05 + torch.rand(n, K, generator=g, dtype=dtype)
    budget = 200.0 * (1 + 15 * torch.rand(n, generator=g, dtype=dtype))
    p_dl = w / w.sum(1, keepdim=True) * budget.unsqueeze(1)
    return p_ul, p_dl, budget


# ---------------------------------------------------------------- scaler and rescaler


def test_scaler_fit_hand_solved_and_mask_ignores_padding():
    p_ul = torch.tensor([[1.0, 2.0, 1e9], [3.0, 4.0, 1e9]])
    p_dl = torch.tensor([[10.0, 20.0, -5.0], [30.0, 5.0, -5.0]])
    mask = torch.tensor([[True, True, False], [True, True, False]])
    s = PowerScaler().fit(p_ul, p_dl, mask)
    assert (s.ul_min, s.ul_max, s.dl_min, s.dl_max) == (1.0, 4.0, 5.0, 30.0)
    ul, dl = s.normalize(p_ul, p_dl, mask)
    torch.testing.assert_close(ul, torch.tensor([[0.0, 1 / 3, 0.0], [2 / 3, 1.0, 0.0]]), atol=1e-7, rtol=0)
    torch.testing.assert_close(dl, torch.tensor([[0.2, 0.6, 0.0], [1.0, 0.0, 0.0]]), atol=1e-7, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_normalize_then_rescale_is_identity_for_ul_and_dl_labels(dtype):
    p_ul, p_dl, budget = labels(dtype=dtype)
    s = PowerScaler().fit(p_ul, p_dl)
    ul_n, dl_n = s.normalize(p_ul, p_dl)
    assert ul_n.dtype == dtype and float(ul_n.min()) == 0.0 and abs(float(ul_n.max()) - 1) < 1e-6
    tol = dict(rtol=2e-6, atol=0) if dtype == torch.float32 else dict(rtol=1e-12, atol=0)
    torch.testing.assert_close(s.denormalize(ul_n, dl_n)[0], p_ul, **tol)
    torch.testing.assert_close(s.denormalize(ul_n, dl_n)[1], p_dl, **tol)
    out_ul, out_dl = rescale_predictions(ul_n, dl_n, s, budget.to(dtype))
    assert out_ul.dtype == dtype and out_dl.dtype == dtype
    torch.testing.assert_close(out_ul, p_ul, **tol)
    # DL labels already sum to the budget, so the rescaler returns them too.
    torch.testing.assert_close(out_dl, p_dl, **tol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dl_budget_holds_exactly_with_and_without_padding(dtype):
    p_ul, p_dl, _ = labels(dtype=dtype)
    s = PowerScaler().fit(p_ul, p_dl)
    g = gen(3)
    B, K = 50, 12
    ul_t, dl_t = torch.rand(B, K, generator=g, dtype=dtype), torch.rand(B, K, generator=g, dtype=dtype)
    budget = 100 + 3000 * torch.rand(B, generator=g, dtype=dtype)
    _, p = rescale_predictions(ul_t, dl_t, s, budget)
    torch.testing.assert_close(p.double().sum(1), budget.double(), rtol=1e-6, atol=0)
    # proportional to the de-normalized predictions (eq. (13))
    check = s.denormalize(ul_t, dl_t)[1].double()
    ratio = p.double() / check
    torch.testing.assert_close(ratio, ratio[:, :1].expand_as(ratio), rtol=1e-5, atol=0)
    # padding: each sample has K_b real UEs; padded entries get 0 and do not count
    Kb = torch.randint(1, K + 1, (B,), generator=g)
    mask = torch.arange(K) < Kb.unsqueeze(1)
    dl_t_padded = torch.where(mask, dl_t, torch.full_like(dl_t, 0.9))
    _, pm = rescale_predictions(ul_t, dl_t_padded, s, budget, mask=mask)
    assert (pm[~mask] == 0).all()
    torch.testing.assert_close(pm.double().sum(1), budget.double(), rtol=1e-6, atol=0)
    for b in range(B):  # same as rescaling the unpadded sample alone
        k = int(Kb[b])
        _, alone = rescale_predictions(ul_t[b : b + 1, :k], dl_t[b : b + 1, :k], s, budget[b : b + 1])
        torch.testing.assert_close(pm[b, :k], alone[0])
    # a float budget
    _, pf = rescale_predictions(ul_t, dl_t, s, 3200.0)
    torch.testing.assert_close(
        pf.double().sum(1), torch.full((B,), 3200.0, dtype=torch.float64), rtol=1e-6, atol=0
    )


def test_ul_never_exceeds_cap_and_dl_falls_back_to_equal_split():
    s = PowerScaler(ul_min=0.0, ul_max=100.0, dl_min=0.0, dl_max=500.0)
    ul_t = torch.tensor([[-1.0, 0.0, 0.5, 1.0, 1.0 + 1e-3, 7.0]])
    mask = torch.tensor([[True, True, True, True, True, False]])
    p_ul, p_dl = rescale_predictions(ul_t, torch.zeros_like(ul_t), s, 1000.0, mask=mask)
    assert float(p_ul.max()) <= 100.0 and float(p_ul.min()) >= 0.0
    torch.testing.assert_close(p_ul, torch.tensor([[0.0, 0.0, 50.0, 100.0, 100.0, 0.0]]))
    # all DL predictions at P_DL,min = 0: the budget is split equally over the real UEs
    torch.testing.assert_close(p_dl, torch.tensor([[200.0, 200.0, 200.0, 200.0, 200.0, 0.0]]))


def test_scaler_round_trip_through_json():
    p_ul, p_dl, _ = labels()
    s = PowerScaler(eps=1e-6).fit(p_ul, p_dl)
    d = json.loads(json.dumps(s.to_dict()))
    assert set(d) == {"ul_min", "ul_max", "dl_min", "dl_max", "eps"}
    assert all(type(v) is float for v in s.to_dict().values())
    r = PowerScaler.from_dict(d)
    assert r == s
    for a, b in zip(r.normalize(p_ul, p_dl), s.normalize(p_ul, p_dl), strict=True):
        assert torch.equal(a, b)


def test_scaler_and_rescaler_errors_name_the_argument():
    s = PowerScaler()
    x = torch.rand(2, 3)
    with pytest.raises(ValueError, match="not fitted"):
        s.normalize(x, x)
    with pytest.raises(ValueError, match="not fitted"):
        s.to_dict()
    with pytest.raises(ValueError, match=r"p_ul.*NaN"):
        s.fit(torch.tensor([1.0, float("nan")]), torch.ones(2))
    with pytest.raises(ValueError, match=r"p_dl.*non-negative"):
        s.fit(torch.ones(2), torch.tensor([1.0, -2.0]))
    with pytest.raises(ValueError, match="p_dl must have the shape"):
        s.fit(torch.ones(2), torch.ones(3))
    with pytest.raises(ValueError, match=r"no .*entries"):
        s.fit(torch.ones(2), torch.ones(2), torch.zeros(2, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask"):
        s.fit(torch.ones(2), torch.ones(2), torch.ones(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="missing \\['eps'\\]"):
        PowerScaler.from_dict({"ul_min": 0.0, "ul_max": 1.0, "dl_min": 0.0, "dl_max": 1.0})
    with pytest.raises(ValueError, match="ul_max"):
        PowerScaler.from_dict({"ul_min": 2.0, "ul_max": 1.0, "dl_min": 0.0, "dl_max": 1.0, "eps": 1e-8})
    with pytest.raises(ValueError, match="dl_min"):
        PowerScaler.from_dict(
            {"ul_min": 0.0, "ul_max": 1.0, "dl_min": float("nan"), "dl_max": 1.0, "eps": 1e-8}
        )
    fitted = PowerScaler(ul_min=0.0, ul_max=1.0, dl_min=0.0, dl_max=1.0)
    with pytest.raises(ValueError, match="p_dl_tilde"):
        rescale_predictions(x, torch.rand(3), fitted, 1.0)
    with pytest.raises(ValueError, match="dl_total_power"):
        rescale_predictions(x, x, fitted, -1.0)
    with pytest.raises(ValueError, match="dl_total_power"):
        rescale_predictions(x, x, fitted, torch.ones(3))
    with pytest.raises(ValueError, match="at least one real UE"):
        rescale_predictions(x, x, fitted, 1.0, mask=torch.tensor([[True] * 3, [False] * 3]))


# ---------------------------------------------------------------- positions


@pytest.mark.parametrize("sigma", [1.0, 5.0])
def test_position_noise_has_the_requested_std(sigma):
    pos = 100 * torch.rand(400, 50, 2, generator=gen(1), dtype=torch.float64)
    noisy = add_position_noise(pos, sigma, generator=gen(2))
    delta = (noisy - pos).reshape(-1, 2)  # 20000 draws per coordinate
    n = delta.shape[0]
    # std of the std estimate is sigma / sqrt(2n) = 0.5 %: 4 % is > 5 standard errors
    torch.testing.assert_close(delta.std(0), torch.full((2,), sigma, dtype=torch.float64), rtol=0.04, atol=0)
    assert (delta.mean(0).abs() < 5 * sigma / n**0.5).all()
    corr = torch.corrcoef(delta.T)[0, 1]
    assert abs(float(corr)) < 5 / n**0.5  # x and y independent


def test_position_noise_zero_sigma_mask_determinism_and_dtype():
    pos = torch.rand(3, 5, 2, generator=gen(0))
    assert add_position_noise(pos, 0.0, generator=gen(1)) is pos
    mask = torch.tensor([[True] * 5, [True, True, False, False, False], [True] * 4 + [False]])
    noisy = add_position_noise(pos, 2.0, generator=gen(4), mask=mask)
    assert torch.equal(noisy[~mask], pos[~mask]) and (noisy[mask] != pos[mask]).all()
    assert torch.equal(noisy, add_position_noise(pos, 2.0, generator=gen(4), mask=mask))
    assert not torch.equal(noisy, add_position_noise(pos, 2.0, generator=gen(5), mask=mask))
    noisy64 = add_position_noise(pos.double(), 2.0, generator=gen(4), mask=mask)
    assert noisy64.dtype == torch.float64  # same draws in both precisions
    torch.testing.assert_close(noisy64.float(), noisy)
    with pytest.raises(ValueError, match="sigma_m"):
        add_position_noise(pos, -1.0, generator=gen(0))
    with pytest.raises(ValueError, match="positions"):
        add_position_noise(pos[..., 0], 1.0, generator=gen(0))
    with pytest.raises(ValueError, match="mask"):
        add_position_noise(pos, 1.0, generator=gen(0), mask=mask[:, :3])
    with pytest.raises(TypeError, match="generator"):
        add_position_noise(pos, 1.0, generator=0)  # type: ignore[arg-type]


def test_minmax_hand_solved():
    pos = torch.tensor([[[0.0, 0.0], [2.0, 4.0], [1.0, 1.0]]], dtype=torch.float64)
    expected = torch.tensor([[[0.0, 0.0], [1.0, 1.0], [0.5, 0.25]]], dtype=torch.float64)
    torch.testing.assert_close(minmax_positions(pos), expected, rtol=1e-8, atol=0)
    lo, hi = position_range(pos)
    assert lo.tolist() == [[[0.0, 0.0]]] and hi.tolist() == [[[2.0, 4.0]]]
    # one point (e.g. L = 1) maps to 0, no NaN
    assert torch.equal(minmax_positions(torch.full((2, 1, 2), 3.0)), torch.zeros(2, 1, 2))


def test_minmax_range_per_sample_and_axis_and_invariances():
    pos = 1000 * torch.rand(8, 20, 2, generator=gen(7), dtype=torch.float64)
    out = minmax_positions(pos)
    assert out.shape == pos.shape and out.dtype == torch.float64
    assert (out >= 0).all() and (out <= 1).all()
    torch.testing.assert_close(out.amin(1), torch.zeros(8, 2, dtype=torch.float64), rtol=0, atol=0)
    torch.testing.assert_close(out.amax(1), torch.ones(8, 2, dtype=torch.float64), rtol=0, atol=1e-9)
    shift = torch.tensor([-350.0, 1234.5], dtype=torch.float64)
    scale = torch.tensor([0.37, 12.0], dtype=torch.float64)  # positive, per axis
    torch.testing.assert_close(minmax_positions(pos * scale + shift), out, rtol=0, atol=1e-9)
    f32 = minmax_positions(pos.float())
    assert f32.dtype == torch.float32
    torch.testing.assert_close(f32, out.float(), rtol=0, atol=1e-5)


def test_minmax_ignores_padded_points():
    g = gen(9)
    real = [5, 2, 7]
    pos = 1e6 * (torch.rand(3, 7, 2, generator=g, dtype=torch.float64) - 0.5)  # garbage everywhere
    mask = torch.arange(7) < torch.tensor(real).unsqueeze(1)
    out = minmax_positions(pos, mask)
    assert (out[~mask] == 0).all()
    for b, k in enumerate(real):
        torch.testing.assert_close(out[b, :k], minmax_positions(pos[b : b + 1, :k])[0], rtol=0, atol=0)
    lo, _ = position_range(pos, mask)
    torch.testing.assert_close(lo[1, 0], pos[1, :2].amin(0))
    with pytest.raises(ValueError, match="eps"):
        minmax_positions(pos, mask, eps=0.0)
    with pytest.raises(ValueError, match="mask"):
        minmax_positions(pos, mask.float())


# ---------------------------------------------------------------- PrepareBatch


def item(K: int, L: int, index: int, seed: int = 0) -> dict:
    g = gen(1000 * K + 10 * L + index + seed)
    return {
        "ap_positions": 500 * torch.rand(L, 2, generator=g),
        "ue_positions": 500 * torch.rand(K, 2, generator=g),
        "p_ul": 100 * torch.rand(K, generator=g),
        "p_dl": 100 * torch.rand(K, generator=g),
        "sample_index": torch.tensor(index),
        "K": K,
        "L": L,
    }


def test_prepare_batch_noise_depends_only_on_the_sample():
    a, b, c = item(4, 3, 0), item(4, 3, 1), item(6, 5, 0)
    s = PowerScaler().fit(torch.cat([a["p_ul"], b["p_ul"]]), torch.cat([a["p_dl"], b["p_dl"]]))
    prep = PrepareBatch(scaler=s, sigma_ue_m=5.0, sigma_ap_m=1.0, seed=3)
    ab = prep(collate_same_size([a, b]))
    ba = prep(collate_same_size([b, a]))
    mixed = prep(pad_collate([c, a]))  # a padded to K = 6, L = 5
    for key, n in (("ue_features", 4), ("ap_features", 3)):
        torch.testing.assert_close(ab[key][0], ba[key][1], rtol=0, atol=0)
        torch.testing.assert_close(ab[key][0], mixed[key][1, :n], rtol=1e-6, atol=1e-7)
        assert (mixed[key][1, n:] == 0).all()
    clean = PrepareBatch(scaler=s)(collate_same_size([a, b]))
    assert not torch.allclose(clean["ue_features"], ab["ue_features"])  # noise was added
    torch.testing.assert_close(clean["ue_features"][0], minmax_positions(a["ue_positions"][None])[0])
    # fixed noise without an epoch (as if stored), fresh noise per epoch
    assert torch.equal(
        prep(collate_same_size([a]))["ue_features"], prep(collate_same_size([a]))["ue_features"]
    )
    e0 = prep(collate_same_size([a]), epoch=0)["ue_features"]
    e1 = prep(collate_same_size([a]), epoch=1)["ue_features"]
    assert not torch.equal(e0, e1)
    # labels normalized into [0, 1] by the training scaler; raw keys untouched
    assert float(ab["p_ul_norm"].min()) == 0.0 and abs(float(ab["p_ul_norm"].max()) - 1) < 1e-6
    assert torch.equal(ab["ue_positions"], collate_same_size([a, b])["ue_positions"])
    assert (mixed["p_ul_norm"][1, 4:] == 0).all()


def test_prepare_batch_joint_frame_and_validation():
    a = item(3, 2, 0)
    out = PrepareBatch(joint_frame=True)(collate_same_size([a]))
    both = torch.cat([a["ue_positions"], a["ap_positions"]])[None]
    torch.testing.assert_close(out["ue_features"][0], minmax_positions(both)[0, :3])
    torch.testing.assert_close(out["ap_features"][0], minmax_positions(both)[0, 3:])
    with pytest.raises(ValueError, match="sigma_ue_m"):
        PrepareBatch(sigma_ue_m=-1.0)
    with pytest.raises(ValueError, match="not fitted"):
        PrepareBatch(scaler=PowerScaler())
    with pytest.raises(ValueError, match="epoch"):
        PrepareBatch()(collate_same_size([a]), epoch=-1)
    with pytest.raises(ValueError, match="sample_index"):
        PrepareBatch()({k: v for k, v in collate_same_size([a]).items() if k != "sample_index"})
