"""Joint clustering + power models (elu-cosformer Sect. IV, Table IV) and the eq. (16) mask with
its repair step: parameter counts, the τp limit, serving every UE, padding, order, seeds,
gradients."""

from __future__ import annotations

import pytest
import torch

from cfmimo.models import ModelConfig, build_model, count_parameters
from cfmimo.models.cluster_models import (
    CLUSTER_MODEL_NAMES,
    ClusterPowerOutput,
    cluster_mask,
    output_clusters,
)
from cfmimo.sim.clustering import unserved_ues

L = 16  # num_aps of Table III
TAU_P = 10
LENGTHS = (1, 3, 5, 8)


def _inputs(seed=0, lengths=LENGTHS):
    g = torch.Generator().manual_seed(seed)
    ue = torch.rand(len(lengths), max(lengths), 2, generator=g)
    ap = torch.rand(len(lengths), L, 2, generator=g)
    mask = torch.arange(max(lengths))[None, :] < torch.tensor(lengths)[:, None]
    return ue.masked_fill(~mask[..., None], 5.0), ap, mask  # far-away garbage at padded UEs


def _as_sets(mask):
    """[L, K] bool -> tuple of per-AP sets of served UEs (readable expected values)."""
    return tuple({int(k) for k in row.nonzero().flatten()} for row in mask)


# Models.


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("elu_cosformer", 103_378),
        ("cosformer_cluster", 103_378),
        ("performer_cluster", 103_378),
        ("longformer_cluster", 103_378),
        ("transformer_cluster", 846_866),
    ],
)
def test_parameter_counts_table_iv(name, params):
    assert count_parameters(build_model(ModelConfig(name=name))) == params  # L = 16, d_mod = 64


def test_per_model_defaults_and_explicit_fields():
    elu = build_model(ModelConfig(name="elu_cosformer"))
    assert (elu.config.layers, elu.config.ff, elu.config.dropout, elu.config.activation) == (
        2,
        256,
        0.1,
        "elu1",
    )
    assert all(layer.attn.kind == "cosformer" and layer.attn.activation == "elu1" for layer in elu.layers)
    assert build_model(ModelConfig(name="cosformer_cluster")).layers[0].attn.activation == "relu"
    explicit = build_model(ModelConfig(name="elu_cosformer", activation="relu", dropout=0.0, layers=3))
    assert (explicit.config.activation, explicit.config.dropout, len(explicit.layers)) == ("relu", 0.0, 3)
    longformer = build_model(ModelConfig(name="longformer_cluster", window=7))
    assert {layer.attn.window for layer in longformer.layers} == {7}
    assert build_model(ModelConfig(name="performer_cluster")).layers[1].attn.projection.shape == (256, 16)
    transformer = build_model(ModelConfig(name="transformer_cluster"))
    assert (transformer.config.layers, transformer.config.ff, transformer.config.dropout) == (3, 2048, 0.1)
    again = build_model(elu.config.model_dump())  # the resolved config rebuilds the architecture
    again.load_state_dict(elu.state_dict())
    with pytest.raises(ValueError, match="padded APs"):
        elu(torch.rand(1, 3, 2), torch.rand(1, L, 2), ap_mask=torch.arange(L)[None] < L - 1)


@pytest.mark.parametrize("name", CLUSTER_MODEL_NAMES)
def test_padded_batch_equals_each_sample_alone(name):
    torch.manual_seed(0)
    model = build_model(ModelConfig(name=name)).eval()
    ue, ap, mask = _inputs()
    with torch.no_grad():
        out = model(ue, ap, mask, torch.ones(len(LENGTHS), L, dtype=torch.bool))
        assert isinstance(out, ClusterPowerOutput)
        assert out.mask.shape == (len(LENGTHS), L, max(LENGTHS)) and out.power.shape == (len(LENGTHS), 8, 2)
        assert torch.all(out.mask[~mask[:, None, :].expand_as(out.mask)] == 0)  # padded UEs: score 0
        real_scores = out.mask.transpose(1, 2)[mask]  # [real UEs, L]
        assert torch.all((real_scores > 0) & (real_scores < 1))
        assert torch.all((out.power[mask] > 0) & (out.power[mask] < 1))
        for b, k in enumerate(LENGTHS):
            alone = model(ue[b : b + 1, :k], ap[b : b + 1])
            torch.testing.assert_close(out.mask[b, :, :k], alone.mask[0], atol=1e-5, rtol=0)
            torch.testing.assert_close(out.power[b, :k], alone.power[0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", CLUSTER_MODEL_NAMES)
def test_model_scores_give_masks_within_tau_p(name):
    torch.manual_seed(0)
    model = build_model(ModelConfig(name=name)).eval()
    ue, ap, mask = _inputs(2, lengths=(3, 17, 30))
    with torch.no_grad():
        scores = model(ue, ap, mask).mask
    for tau_p in (1, 3, TAU_P):
        served = cluster_mask(scores, tau_p, ue_mask=mask)
        assert served.sum(-1).max() <= tau_p
        assert not served[~mask[:, None, :].expand_as(served)].any()
        # Unserved only where K > tau_p L, and then exactly K - tau_p L (every AP full, no UE twice).
        expected = [max(0, k - tau_p * L) for k in (3, 17, 30)]
        assert (unserved_ues(served) & mask).sum(-1).tolist() == expected


@pytest.mark.parametrize("name", CLUSTER_MODEL_NAMES)
def test_order_of_the_ues(name):
    # No positional information (performer, transformer): permutation-equivariant. cosFormer and
    # the sliding window depend on ranks through |i - j| only: equivariant under reversal, not
    # under a general permutation.
    torch.manual_seed(0)
    model = build_model(ModelConfig(name=name)).double().eval()
    g = torch.Generator().manual_seed(3)
    ue, ap = (
        torch.rand(2, 12, 2, generator=g, dtype=torch.float64),
        torch.rand(2, L, 2, generator=g, dtype=torch.float64),
    )
    perm = torch.randperm(12, generator=g)
    rev = torch.arange(11, -1, -1)
    with torch.no_grad():
        out = model(ue, ap)
        for order in (rev, perm):
            moved = model(ue[:, order], ap)
            mask_gap = (moved.mask - out.mask[:, :, order]).abs().max().item()
            power_gap = (moved.power - out.power[:, order]).abs().max().item()
            equivariant = order is rev or name in ("performer_cluster", "transformer_cluster")
            if equivariant:
                assert mask_gap < 1e-12 and power_gap < 1e-12
            else:
                assert max(mask_gap, power_gap) > 1e-4


@pytest.mark.parametrize("name", CLUSTER_MODEL_NAMES)
def test_same_seed_same_model_and_outputs(name):
    ue, ap, mask = _inputs(4)
    outs, states = [], []
    for seed in (5, 5, 6):
        torch.manual_seed(seed)
        model = build_model(ModelConfig(name=name)).eval()
        states.append(model.state_dict())
        with torch.no_grad():
            outs.append(model(ue, ap, mask))
    assert all(torch.equal(states[0][key], states[1][key]) for key in states[0])
    assert torch.equal(outs[0].mask, outs[1].mask) and torch.equal(outs[0].power, outs[1].power)
    assert not torch.equal(states[0]["mask_head.weight"], states[2]["mask_head.weight"])
    assert not torch.equal(outs[0].power, outs[2].power)


@pytest.mark.parametrize("name", CLUSTER_MODEL_NAMES)
def test_gradients_reach_every_parameter_and_head(name):
    torch.manual_seed(0)
    model = build_model(ModelConfig(name=name)).train()
    ue, ap, mask = _inputs(1)
    out = model(ue, ap, mask)
    loss = (out.mask**2).sum() + (out.power[mask] ** 2).sum()
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname
    assert {"mask_head.weight", "ul_head.weight", "dl_head.weight"} <= dict(model.named_parameters()).keys()


# The eq. (16) mask and its repair.


def _reference_cluster_mask(s, tau_p, threshold, real):
    """The repair rounds for one sample, with Python sets (readable loop reference).
    s [L, K] float, real [K] bool -> [L, K] bool."""
    n_aps, k = s.shape
    s, ues = s.tolist(), [i for i in range(k) if real[i]]
    served = [set() for _ in range(n_aps)]
    for ap in range(n_aps):  # eq. (16)
        top = sorted(ues, key=lambda u: (-s[ap][u], u))[:tau_p]
        served[ap] = {u for u in top if s[ap][u] > threshold}
    while True:
        aps_of = {u: [ap for ap in range(n_aps) if u in served[ap]] for u in ues}
        spare = [tau_p - len(x) for x in served]
        offered = [set() for _ in range(n_aps)]
        for u in ues:
            if len(aps_of[u]) >= 2:
                offered[min(aps_of[u], key=lambda ap, u=u: (s[ap][u], ap))].add(u)
        capacity = spare if any(x > 0 for x in spare) else [len(x) for x in offered]
        proposals = [[] for _ in range(n_aps)]
        for u in ues:
            options = [ap for ap in range(n_aps) if capacity[ap] > 0]
            if not aps_of[u] and options:
                proposals[max(options, key=lambda ap, u=u: (s[ap][u], -ap))].append(u)
        if not any(proposals):
            break
        for ap in range(n_aps):
            accepted = sorted(proposals[ap], key=lambda u, ap=ap: (-s[ap][u], u))[: capacity[ap]]
            n_drop = max(0, len(accepted) - spare[ap])
            dropped = sorted(offered[ap], key=lambda u, ap=ap: (s[ap][u], u))[:n_drop]
            served[ap] = (served[ap] | set(accepted)) - set(dropped)
    out = torch.zeros(n_aps, k, dtype=torch.bool)
    for ap in range(n_aps):
        out[ap, list(served[ap])] = True
    return out


@pytest.mark.parametrize("k", [5, 20, 40])
def test_cluster_mask_on_random_scores(k):
    g = torch.Generator().manual_seed(k)
    b = 10_000
    # Score levels from mostly above to mostly below the threshold; 1 to K real UEs, padded at
    # the end, with random scores (never selected) at the padded UEs.
    scores = torch.rand(b, L, k, generator=g) ** (0.5 + 3.5 * torch.rand(b, 1, 1, generator=g))
    real = torch.arange(k)[None, :] < torch.randint(1, k + 1, (b,), generator=g)[:, None]  # [B, K]
    plain = cluster_mask(scores, TAU_P, ue_mask=real, ensure_served=False)
    served = cluster_mask(scores, TAU_P, ue_mask=real)
    padded = ~real[:, None, :].expand_as(served)
    assert served.sum(-1).max() <= TAU_P and plain.sum(-1).max() <= TAU_P
    assert not served[padded].any() and not plain[padded].any()
    assert not unserved_ues(served)[real].any()  # K <= tau_p L = 160
    # Eq. (16) as written: the tau_p best real UEs of each AP, then the threshold.
    best = torch.where(real[:, None, :], scores, -1.0).topk(min(TAU_P, k), dim=-1)
    expected = torch.zeros_like(plain).scatter_(-1, best.indices, best.values > 0.3)
    assert torch.equal(plain, expected)
    # The repair touches only samples that eq. (16) leaves with an unserved real UE, and new links
    # go only to UEs that eq. (16) left unserved.
    needs = (unserved_ues(plain) & real).any(-1)  # [B]
    assert torch.equal(served[~needs], plain[~needs])
    assert not (served & ~plain & ~unserved_ues(plain)[:, None, :]).any()
    if k == 40:  # both steps happen: spare capacity left, and every AP full
        full = (plain.sum(-1) == TAU_P).all(-1)
        assert (needs & full).sum() > 100 and (needs & ~full).sum() > 100
    # The readable loop reference on the repaired samples (and a few others).
    picks = torch.cat([needs.nonzero().flatten()[:40], (~needs).nonzero().flatten()[:5]])
    for i in picks.tolist():
        assert torch.equal(served[i], _reference_cluster_mask(scores[i], TAU_P, 0.3, real[i])), i


def test_repair_attaches_to_the_best_ap_with_spare_capacity():
    scores = torch.tensor(
        [
            [0.9, 0.8, 0.1, 0.7, 0.6],  # AP 0: UEs 0, 1 (full); the best AP of UEs 3 and 4
            [0.1, 0.1, 0.1, 0.05, 0.2],  # AP 1: nothing above 0.3 (2 spare)
            [0.1, 0.1, 0.9, 0.25, 0.28],  # AP 2: UE 2 (1 spare)
        ]
    )[None]
    plain = cluster_mask(scores, 2, ensure_served=False)
    assert _as_sets(plain[0]) == ({0, 1}, set(), {2})
    # UEs 3 and 4 both propose to AP 2 (their best with spare capacity, below the threshold): it
    # takes UE 4 (0.28 > 0.25); in the next round UE 3 goes to AP 1, its only AP with room.
    assert _as_sets(cluster_mask(scores, 2)[0]) == ({0, 1}, {3}, {2, 4})
    # A higher threshold changes eq. (16) only.
    assert _as_sets(cluster_mask(scores, 2, threshold=0.85, ensure_served=False)[0]) == ({0}, set(), {2})


def test_repair_frees_a_redundant_link_when_every_ap_is_full():
    # tau_p = 1: both APs pick UE 0; UE 1 takes UE 0's weaker link (AP 1), UE 0 keeps AP 0.
    scores = torch.tensor([[0.9, 0.5], [0.8, 0.6]])[None]
    assert _as_sets(cluster_mask(scores, 1, ensure_served=False)[0]) == ({0}, {0})
    assert _as_sets(cluster_mask(scores, 1)[0]) == ({0}, {1})


def test_more_ues_than_tau_p_times_l_leaves_some_unserved():
    # K = 3 > tau_p L = 2: AP 1 gives UE 0's redundant link to UE 2 (0.7 > 0.6); UE 1 stays
    # unserved (all APs full, no redundant link left), which the caller reports.
    scores = torch.tensor([[0.9, 0.5, 0.4], [0.8, 0.6, 0.7]])[None]
    served = cluster_mask(scores, 1)
    assert _as_sets(served[0]) == ({0}, {2})
    assert unserved_ues(served).tolist() == [[False, True, False]]
    # Same at Table III's size: K = 170 > 160 leaves exactly 10 unserved, every AP full.
    g = torch.Generator().manual_seed(0)
    served = cluster_mask(torch.rand(3, L, 170, generator=g), TAU_P)
    assert served.sum(-1).eq(TAU_P).all() and unserved_ues(served).sum(-1).tolist() == [10, 10, 10]


def test_cluster_mask_input_checks():
    with pytest.raises(ValueError, match="tau_p"):
        cluster_mask(torch.rand(1, 2, 3), 0)
    with pytest.raises(ValueError, match="scores"):
        cluster_mask(torch.rand(2, 3), 1)
    with pytest.raises(ValueError, match="ue_mask"):
        cluster_mask(torch.rand(1, 2, 3), 1, ue_mask=torch.ones(1, 2, dtype=torch.bool))


def test_output_clusters_rank_by_the_logits_where_the_scores_saturate() -> None:
    # logits 20..29 all give float32 scores of exactly 1.0: ranking the scores would keep the
    # tau_p = 3 lowest UE indices (ties), ranking the logits keeps the 3 largest logits (one AP,
    # so the repair step has no spare or redundant link to move)
    logits = torch.arange(20.0, 30.0).reshape(1, 1, 10)  # [B=1, L=1, K=10]
    out = ClusterPowerOutput(mask=torch.sigmoid(logits), power=torch.zeros(1, 10, 2), mask_logits=logits)
    assert bool((out.mask == 1.0).all())
    served = output_clusters(out, tau_p=3, threshold=0.3)
    assert served[0, 0].tolist() == [False] * 7 + [True] * 3
    # without logits: the scores, and the same thresholding rule (score > ξ <=> logit > logit(ξ))
    z = torch.tensor([[[-2.0, -0.8, -0.9, 1.0]]])  # tau_p = 2: the top 2 pass ξ, the AP is full
    with_logits = output_clusters(ClusterPowerOutput(torch.sigmoid(z), torch.zeros(1, 4, 2), z), 2, 0.3)
    scores_only = output_clusters(ClusterPowerOutput(torch.sigmoid(z), torch.zeros(1, 4, 2)), 2, 0.3)
    assert torch.equal(with_logits, scores_only)
    assert with_logits[0, 0].tolist() == [False, True, False, True]
    z[0, 0, 1] = -0.85  # below logit(0.3) = -0.847: dropped by ξ, and the repair re-serves the best unserved
    assert output_clusters(ClusterPowerOutput(torch.sigmoid(z), torch.zeros(1, 4, 2), z), 2, 0.3)[
        0, 0
    ].tolist() == [
        False,
        True,
        False,
        True,
    ]
