import torch

from cfmimo.config import Clustering
from cfmimo.sim.clustering import (
    book_dcc,
    limit_ues_per_ap,
    q_strongest,
    serving_mask,
    unserved_ues,
    within_radius,
)
from cfmimo.sim.pilots import assign_pilots


def _reference_pilots(gain_db, tau_p):
    """Book Algorithm 4.1, one setup, readable loop."""
    _L, K = gain_db.shape
    beta = 10 ** (gain_db / 10)
    pilot = []
    for k in range(K):
        master = int(gain_db[:, k].argmax())
        if k < tau_p:
            pilot.append(k)
        else:
            load = [sum(beta[master, i].item() for i in range(k) if pilot[i] == t) for t in range(tau_p)]
            pilot.append(min(range(tau_p), key=lambda t: load[t]))
    return pilot


def test_orthogonal_when_k_le_tau_p():
    gain = torch.randn(2, 5, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 10
    pilot, master = assign_pilots(gain, 6)
    assert pilot.tolist() == [[0, 1, 2, 3]] * 2
    assert torch.equal(master, gain.argmax(dim=1))


def test_algorithm_4_1_matches_loop_reference():
    gain = torch.randn(4, 6, 15, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 15 - 80
    pilot, _ = assign_pilots(gain, 4)
    for b in range(4):
        assert pilot[b].tolist() == _reference_pilots(gain[b], 4)


def test_algorithm_4_1_hand_solved():
    # 2 APs, 3 UEs, tau_p = 2: UE 2's master is AP 1, where UE 0 (pilot 0) is weak and UE 1
    # (pilot 1) strong, so UE 2 takes pilot 0.
    gain = torch.tensor([[[0.0, -40.0, -50.0], [-30.0, -5.0, -1.0]]], dtype=torch.float64)
    pilot, master = assign_pilots(gain, 2)
    assert pilot.tolist() == [[0, 1, 0]] and master.tolist() == [[0, 1, 1]]


def test_book_dcc_hand_solved():
    # 2 APs, 3 UEs; pilots [0, 1, 0]. AP 0 serves the strongest of {UE0, UE2} on pilot 0 (UE0) and
    # UE1 on pilot 1; AP 1: strongest of {UE0, UE2} is UE2, plus UE1. Masters add nothing new.
    gain = torch.tensor([[[0.0, -40.0, -50.0], [-30.0, -5.0, -1.0]]])
    pilot = torch.tensor([[0, 1, 0]])
    master = torch.tensor([[0, 1, 1]])
    d = book_dcc(gain, pilot, master, 2)
    assert d.int().tolist() == [[[1, 1, 0], [0, 1, 1]]]


def test_book_dcc_unused_pilots_do_not_clear_links():
    gain = torch.tensor([[[0.0, -9.0], [-1.0, -2.0]]])
    d = book_dcc(gain, torch.tensor([[0, 1]]), torch.tensor([[0, 1]]), 5)
    assert d.all()


def test_q_strongest_and_radius():
    gain = torch.tensor([[[-1.0, -9.0], [-3.0, -2.0], [-2.0, -5.0]]])
    assert q_strongest(gain, 2).int().tolist() == [[[1, 0], [0, 1], [1, 1]]]  # UE0: APs 0,2; UE1: APs 1,2
    assert q_strongest(gain, 5).all()
    d2d = torch.tensor([[[100.0, 300.0], [300.1, 10.0]]])
    assert within_radius(d2d, 300.0).int().tolist() == [[[1, 1], [0, 1]]]


def test_limit_ues_per_ap_on_10k_random_masks():
    g = torch.Generator().manual_seed(2)
    mask = torch.rand(10_000, 6, 25, generator=g) < 0.6
    score = torch.randn(10_000, 6, 25, generator=g)
    out = limit_ues_per_ap(mask, score, 10)
    assert int(out.sum(-1).max()) <= 10
    assert not bool((out & ~mask).any())  # a subset of the input
    # the kept UEs are the best-scored among those served
    kept_min = torch.where(out, score, torch.inf).min(-1).values
    dropped_max = torch.where(mask & ~out, score, -torch.inf).max(-1).values
    assert bool((kept_min >= dropped_max).all())
    assert torch.equal(out.sum(-1), mask.sum(-1).clamp(max=10))


def test_serving_mask_dispatch_and_unserved():
    gain = torch.randn(2, 6, 20, generator=torch.Generator().manual_seed(3)) * 10
    pilot, master = assign_pilots(gain, 4)
    d2d = torch.rand(2, 6, 20) * 500
    c = Clustering(kind="all", max_ues_per_ap=4)
    d = serving_mask(c, gain, d2d, pilot, master, 4)
    assert int(d.sum(-1).max()) == 4
    assert unserved_ues(d).any()  # 6 APs x 4 = 24 links cannot cover 20 UEs' best picks always
    assert serving_mask(
        Clustering(kind="gain_threshold", threshold_db=0.0), gain, d2d, pilot, master, 4
    ).equal(gain >= 0)


def test_pilots_for_clusters_separate_ues_sharing_an_ap() -> None:
    """With at most tau_p UEs per AP and few UEs, no AP serves two UEs on one pilot."""
    from cfmimo.sim.clustering import limit_ues_per_ap
    from cfmimo.sim.pilots import assign_pilots_for_clusters

    g = torch.Generator().manual_seed(5)
    gain = 60 * torch.rand(64, 8, 12, generator=g, dtype=torch.float64)  # [B, L, K]
    serving = limit_ues_per_ap(gain > 52, gain, 3)
    serving |= torch.nn.functional.one_hot(gain.argmax(1), 8).transpose(1, 2).bool()  # all served
    pilot = assign_pilots_for_clusters(gain, serving, 6)
    assert pilot.shape == (64, 12) and int(pilot.min()) >= 0 and int(pilot.max()) < 6
    same = pilot[:, :, None] == pilot[:, None, :]  # [B, K, K]
    shared_ap = torch.einsum("blk,bli->bki", serving.double(), serving.double()) > 0
    off_diag = ~torch.eye(12, dtype=torch.bool)
    clashes = (same & shared_ap & off_diag).sum(dim=(1, 2))  # [B]
    # greedy colouring always finds a free pilot when every UE shares APs with < tau_p others
    degree = (shared_ap & off_diag).sum(-1).amax(-1)  # [B]
    easy = degree < 6
    assert int(easy.sum()) >= 5
    assert int(clashes[easy].sum()) == 0
    # where it cannot, a clash-free assignment may not exist; clashes stay rare
    assert float(clashes.double().mean()) < 2.0
    # K <= tau_p: every UE gets its own pilot
    small = assign_pilots_for_clusters(gain[:, :, :6], serving[:, :, :6], 6)
    assert bool((small.sort(-1).values == torch.arange(6)).all())


def test_pilots_for_clusters_permutation_of_identical_inputs_is_deterministic() -> None:
    from cfmimo.sim.pilots import assign_pilots_for_clusters

    gain = torch.zeros(2, 3, 5, dtype=torch.float64)
    serving = torch.ones(2, 3, 5, dtype=torch.bool)
    p = assign_pilots_for_clusters(gain, serving, 2)
    assert p.tolist() == [[0, 1, 0, 1, 0], [0, 1, 0, 1, 0]]
    try:
        assign_pilots_for_clusters(gain, serving[:, :, :4], 2)
    except ValueError as err:
        assert "serving" in str(err)
    else:
        raise AssertionError("shape mismatch must raise")
