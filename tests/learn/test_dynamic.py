"""Dynamic supervision (elu-cosformer Algorithm 1): the cache regenerates the stored networks, a
tiny run lowers the loss, runs are deterministic, and the policy respects the per-AP limit."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cfmimo.config import preset
from cfmimo.data.generation import run_generation
from cfmimo.data.spec import DatasetSpec
from cfmimo.data.storage import load_dataset
from cfmimo.learn.config import DynamicConfig, TrainConfig
from cfmimo.learn.dynamic import NetworkCache, channel_state, cluster_labels, mask_ranking_loss
from cfmimo.sim.network import sample_channel_state, sample_networks


@pytest.fixture(scope="module")
def tiny_unlabelled(tmp_path_factory) -> Path:
    spec = DatasetSpec(
        scenario=preset("elu-cosformer", realizations=8),
        sizes=[(3, 16), (5, 16)],
        samples=48,
        shard_size=48,
        seed=4,
        labels=False,
    )
    folder = tmp_path_factory.mktemp("elu")
    run_generation(spec, folder, scheduler="sync")
    return folder


def _config(folder: Path, out: Path, **dynamic) -> TrainConfig:
    return TrainConfig.from_dict(
        {
            "model": {"name": "elu_cosformer", "d_mod": 32, "ff": 64},
            "data": {"train": str(folder), "val_fraction": 0.25, "sigma_ue_m": 1.0, "sigma_ap_m": 1.0},
            "optim": {"lr": 3e-3},
            "trainer": {
                "epochs": 4,
                "batch_size": 12,
                "accelerator": "cpu",
                "log_every_n_steps": 1,
                "progress_bar": False,
                "out_dir": str(out),
            },
            "dynamic": {"scaler_samples": 12, **dynamic},
        }
    )


def test_cache_regenerates_the_stored_networks_and_channels(tiny_unlabelled) -> None:
    content = load_dataset(tiny_unlabelled)
    spec = DatasetSpec.model_validate(content.manifest["spec"])
    cache = NetworkCache(spec, content.groups)
    index = torch.tensor([7, 2, 30])
    net, r_sqrt = cache.networks(5, 16, index)
    stored = content.groups[(5, 16)]
    torch.testing.assert_close(net.gain_db, stored["gain_db"][index].to(net.gain_db.dtype), rtol=0, atol=1e-4)
    assert torch.equal(net.pilot, stored["pilot"][index].long())
    # the channels equal those of sampling the same sample indices afresh
    fresh = sample_networks(spec.group_scenario(5, 16), 1, seed=spec.group_seed(5, 16), first_index=2)
    state = channel_state(net, r_sqrt)
    torch.testing.assert_close(state.h[1], sample_channel_state(fresh).h[0], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="not all in group"):
        cache.networks(5, 16, torch.tensor([999]))
    with pytest.raises(ValueError, match="no cached group"):
        cache.networks(7, 16, index)


def _as_float64(inst):
    """The same PowerInstance with every floating tensor cast to float64 (statistics and budgets)."""
    from dataclasses import fields, replace

    def cast(obj):
        changes = {}
        for f in fields(obj):
            value = getattr(obj, f.name)
            if isinstance(value, torch.Tensor) and value.is_floating_point():
                changes[f.name] = value.double()
        return replace(obj, **changes)

    return replace(
        inst,
        uplink=cast(inst.uplink),
        downlink=cast(inst.downlink),
        ul_budget=inst.ul_budget.double(),
        dl_weights=inst.dl_weights.double(),
        dl_budget=inst.dl_budget.double(),
    )


def test_labels_are_the_closed_form_for_the_given_clusters(tiny_unlabelled) -> None:
    from cfmimo.policies.classical.power import MaxMinClosedForm
    from cfmimo.problems.maxmin_power import MaxMinPower

    content = load_dataset(tiny_unlabelled)
    cache = NetworkCache(DatasetSpec.model_validate(content.manifest["spec"]), content.groups)
    net, r_sqrt = cache.networks(5, 16, torch.arange(4))
    state = channel_state(net, r_sqrt)
    serving = net.gain_db > net.gain_db.amax(1, keepdim=True) - 15  # a few APs per UE
    inst, p_ul, p_dl = cluster_labels(net, state, serving, DynamicConfig())
    assert torch.equal(inst.network.serving, serving)
    # The labels are float32 (AVX2 and AVX-512 sum in different orders: their SE spread is ~1e-5).
    # Exactness is checked in float64: the same statistics, cast, give the closed form whose SEs
    # are equal to rounding; the float32 labels must be that optimum to float32 accuracy (a label
    # of other clusters or another policy is off by far more than 1e-3).
    inst64 = _as_float64(inst)
    opt64 = MaxMinClosedForm()(inst64)
    decision = type("A", (), {"p_ul": opt64.p_ul, "p_dl": opt64.p_dl, "serving": None})()
    m = MaxMinPower().metrics(inst64, decision)
    for link in ("se_ul", "se_dl"):
        spread = (m[link].amax(-1) - m[link].amin(-1)) / m[link].amax(-1)
        assert float(spread.max()) < 1e-7, link  # max-min optimum: equal SEs (float64: 3e-9 seen)
    for got, want in ((p_ul, opt64.p_ul), (p_dl, opt64.p_dl)):
        scale = want.abs().amax(-1, keepdim=True)
        assert float(((got.double() - want).abs() / scale).max()) < 1e-3


def test_tiny_dynamic_run_lowers_the_loss_and_is_deterministic(tiny_unlabelled, tmp_path) -> None:
    from cfmimo.learn.trainer import load_trained, train

    first = train(_config(tiny_unlabelled, tmp_path / "a"))
    losses = [e["val_loss"] for e in first.history]
    assert losses[-1] < losses[0]
    second = train(_config(tiny_unlabelled, tmp_path / "b"))
    assert [e["val_loss"] for e in second.history] == losses  # same seed, same numbers
    trained = load_trained(first.best_checkpoint)
    assert type(trained.model).__name__ == "EluCosFormerCluster"
    assert trained.config.dynamic is not None and trained.config.dynamic.lam == pytest.approx(1e-2)


def test_mask_head_gets_a_gradient_only_from_a_mask_objective(tiny_unlabelled, tmp_path) -> None:
    from cfmimo.learn.dynamic import DynamicSupervisionModule, load_dynamic_data

    for kind, expect in (("gain_rank", True), ("mr_ste", True), ("none", False)):
        config = _config(tiny_unlabelled, tmp_path / kind, mask_gradient=kind)
        data = load_dynamic_data(config)
        module = DynamicSupervisionModule(
            config.to_dict(), data["scaler"].to_dict(), [[3, 16], [5, 16]], 0, "test"
        ).attach(data["cache"])
        g = data["train"][(5, 16)]
        batch = {k: v[:6] for k, v in g.items()}
        batch["K"] = torch.full((6,), 5)
        batch["L"] = torch.full((6,), 16)
        module.train()
        module.step(batch)["loss"].backward()
        grad = module.model.mask_head.weight.grad
        assert (grad is not None and bool(grad.abs().sum() > 0)) == expect


def test_mask_ranking_loss_by_hand() -> None:
    z = torch.tensor([[[0.0, 1.0, 2.0]]])  # [B=1, L=1, K=3]
    g = torch.tensor([[[10.0, 0.0, 5.0]]])  # UE 0 strongest, then 2, then 1; tau_p = 2 keeps {0, 2}
    sp = torch.nn.functional.softplus
    z64 = z.double()  # the reference in float64; the loss itself is computed in float32
    bce = (sp(-z64[0, 0, 0]) + sp(z64[0, 0, 1]) + sp(-z64[0, 0, 2])) / 3
    zc = torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64)  # z - mean z
    gc = torch.tensor([5.0, -5.0, 0.0], dtype=torch.float64) / 10  # (g - mean g) / 10 dB
    reg = ((zc - gc) ** 2).mean()
    # ~10 float32 operations on O(1) values: within a few 1e-7; 2e-5 leaves a wide margin
    assert mask_ranking_loss(z, g, tau_p=2).item() == pytest.approx((bce + reg).item(), rel=2e-5)


def test_mask_ranking_loss_learns_each_aps_order() -> None:
    """Minimizing it over free logits orders every AP's UEs by gain and puts the tau_p strongest on
    top, also when K <= tau_p (where every BCE target is 1 and only the regression carries the order)."""
    torch.manual_seed(0)
    for K, tau_p in ((8, 10), (12, 4)):
        g = 10 * torch.randn(3, 5, K, dtype=torch.float64)
        z = torch.zeros_like(g, requires_grad=True)
        opt = torch.optim.Adam([z], lr=0.1)
        for _ in range(300):
            opt.zero_grad()
            mask_ranking_loss(z, g, tau_p).backward()
            opt.step()
        assert torch.equal(z.detach().argsort(-1), g.argsort(-1))
        kept = z.detach().topk(min(tau_p, K), -1).indices.sort(-1).values
        assert torch.equal(kept, g.topk(min(tau_p, K), -1).indices.sort(-1).values)
        if K <= tau_p:
            assert bool((torch.sigmoid(z) > 0.3).all())  # every UE passes ξ: all APs serve all
