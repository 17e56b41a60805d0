import pytest
import torch

from cfmimo.sim.memory import (
    available_memory_bytes,
    check_memory,
    estimate_statistics_bytes,
    statistics_chunk,
)


def test_estimate_counts_the_channel_state_exactly_and_grows_with_every_size():
    base = dict(K=10, L=16, N=4, realizations=100, batch=64)
    state = 2 * 64 * 100 * 16 * 10 * 4 * 8 + 4 * 64 * 16 * 10 * 16 * 8  # h, h_hat + R, A, B, C
    with_state = estimate_statistics_bytes(**base)
    assert with_state - estimate_statistics_bytes(**base, include_state=False) == state
    for name in base:
        assert estimate_statistics_bytes(**{**base, name: 2 * base[name]}) > with_state, name
    assert estimate_statistics_bytes(**base, dtype=torch.float64) == 2 * with_state


def test_chunk_fits_the_limit_and_is_the_largest_that_does():
    kw = dict(K=40, L=16, N=4, realizations=100, batch=16, cluster_aps=8)
    limit = 300 * 2**20
    c = statistics_chunk(**kw, limit_bytes=limit)
    est = lambda chunk: estimate_statistics_bytes(**kw, chunk=chunk, include_state=False)  # noqa: E731
    assert 1 <= c < 100 and est(c) <= limit < est(c + 1)


def test_check_memory_raises_with_sizes():
    check_memory(10, 11)
    with pytest.raises(ValueError, match=r"K=1000.*needs an estimated"):
        check_memory(2**40, 2**30, "statistics (K=1000)")
    with pytest.raises(ValueError, match="K must be a positive integer"):
        estimate_statistics_bytes(0, 1, 1, 1)
    assert available_memory_bytes() > 2**26


def test_sampling_networks_checks_memory_before_allocating(monkeypatch):
    """A batch that cannot fit is a ValueError naming the sizes and the estimate, raised before any
    tensor is allocated; an address-space limit (ulimit -v) counts as the available memory."""
    import pytest

    from cfmimo.config import preset
    from cfmimo.sim import memory
    from cfmimo.sim.network import sample_networks

    monkeypatch.setattr(memory, "_address_space_left", lambda: 1 << 30)
    assert memory.available_memory_bytes() <= 1 << 30
    with pytest.raises(ValueError, match=r"K = 200000 UEs.*GiB"):
        sample_networks(preset("tree-transformer", K=200_000), 1, seed=0)
    net = sample_networks(preset("tree-transformer", K=4, realizations=5), 2, seed=0)  # small: fine
    assert net.beta.shape == (2, 16, 4)


def test_perfect_csi_sampling_budgets_its_one_realization(monkeypatch):
    """The instantaneous-CSI problems draw one realization per setup: a pool that fits with one
    realization but not with the scenario's 100 is accepted by sample_perfect_csi and refused for
    the statistics path (the AAGNN K = 16 pool of 12,800 setups was refused before)."""
    from cfmimo.config import preset
    from cfmimo.sim import memory
    from cfmimo.sim.memory import check_scenario_memory
    from cfmimo.sim.network import sample_networks, sample_perfect_csi

    sc = preset("aagnn", K=4, realizations=100)
    batch = 64
    one = check_scenario_memory(sc.K, sc.L, sc.N, 1, batch, limit_bytes=1 << 40)
    hundred = check_scenario_memory(sc.K, sc.L, sc.N, 100, batch, limit_bytes=1 << 40)
    limit = (one + hundred) // 2
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: limit)
    with pytest.raises(ValueError, match="100 realizations"):
        sample_networks(sc, batch, seed=0)
    _, h = sample_perfect_csi(sc, batch, seed=0)
    assert h.shape == (batch, sc.L, sc.K, sc.N) and bool(torch.isfinite(h.real).all())
