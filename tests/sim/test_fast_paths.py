"""Fast statistics paths against the reference implementations (float64, <= 1e-10 relative).

Random instances cover full cell-free, the book's DCC (mixed cluster sizes: per-UE direct and
Woodbury forms in one batch), Q strongest, single-AP clusters, UEs without serving AP, K > tau_p
(pilot contamination) and L = 1.
"""

import pytest
import torch

from cfmimo.sim.combining import mmse_combiners
from cfmimo.sim.network import network_statistics, sample_channel_state, sample_networks

REL = 1e-10


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item()


def _instance(small_factory, clustering, *, K=6, L=4, N=2, drop_ue=False, seed=3):
    sc = small_factory(K=K, L=L, N=N, realizations=5, clustering=clustering)
    net = sample_networks(sc, 3, seed=seed, dtype=torch.float64)
    st = sample_channel_state(net)
    if drop_ue:  # UE 1 of setup 0 loses every serving AP (e.g. after a per-AP UE limit)
        serving = net.serving.clone()
        serving[0, :, 1] = False
        net = type(net)(**{**net.__dict__, "serving": serving})
    return net, st


CASES = {
    "all": ({"kind": "all"}, {}),
    "dcc": ({"kind": "dcc"}, {}),
    "q2": ({"kind": "q_strongest", "q": 2}, {}),
    "single_ap": ({"kind": "q_strongest", "q": 1}, {}),
    "unserved": ({"kind": "dcc"}, {"drop_ue": True}),
    "unserved_all_aps": ({"kind": "all"}, {"drop_ue": True}),
    "k_above_tau_p_large_k": ({"kind": "q_strongest", "q": 2}, {"K": 11}),
    "one_ap": ({"kind": "all"}, {"L": 1, "drop_ue": True}),
    "one_ap_all": ({"kind": "all"}, {"L": 1}),
    "all_k_above_ln": ({"kind": "all"}, {"K": 11}),
    "all_k_above_ln_unserved": ({"kind": "all"}, {"K": 11, "drop_ue": True}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_fast_mmse_combiners_match_reference(case, small_factory):
    clustering, kw = CASES[case]
    net, st = _instance(small_factory, clustering, **kw)
    p = torch.rand(*net.pilot.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 99 + 1
    fast = mmse_combiners(st.h_hat, st.error_cov, net.serving, p)
    ref = mmse_combiners(st.h_hat, st.error_cov, net.serving, p, method="reference")
    assert _rel(fast, ref) <= REL
    assert bool((fast[ref == 0] == 0).all())  # zero outside every serving set


@pytest.mark.parametrize("case", sorted(CASES))
def test_fast_statistics_match_reference(case, small_factory):
    clustering, kw = CASES[case]
    net, st = _instance(small_factory, clustering, **kw)
    for norm in ("per_realization", "average"):
        fast = network_statistics(net, st, "mmse", dl_normalization=norm)
        ref = network_statistics(net, st, "mmse", dl_normalization=norm, method="reference")
        for a, b in zip(fast, ref, strict=True):
            for field in a.__dataclass_fields__:
                assert _rel(getattr(a, field), getattr(b, field)) <= REL, (case, norm, field)


def test_unserved_ue_has_zero_combiner_and_statistics(small_factory):
    net, st = _instance(small_factory, {"kind": "dcc"}, drop_ue=True)
    v = mmse_combiners(st.h_hat, st.error_cov, net.serving, torch.full(net.pilot.shape, 100.0).double())
    assert v[0, :, :, 1].abs().max().item() == 0.0
    ul, dl = network_statistics(net, st, "mmse")
    assert ul.signal[0, 1].item() == 0.0 and ul.noise[0, 1].item() == 0.0
    assert dl.signal[0, 1].item() == 0.0


def test_method_is_validated(small_net, small_state):
    with pytest.raises(ValueError, match="method"):
        network_statistics(small_net, small_state, "mmse", method="slow")


def test_memory_limit_chunks_without_changing_results(small_net, small_state):
    from cfmimo.sim.memory import estimate_statistics_bytes

    full = network_statistics(small_net, small_state, "mmse")
    B, L, K = small_net.serving.shape
    N, T = small_state.h.shape[-1], small_state.h.shape[1]
    one = estimate_statistics_bytes(
        K, L, N, T, B, torch.complex128, cluster_aps=L - 1, chunk=1, include_state=False
    )
    tight = network_statistics(small_net, small_state, "mmse", memory_limit_bytes=one + 1)  # chunk = 1
    for a, b in zip(full, tight, strict=True):
        for field in a.__dataclass_fields__:
            assert _rel(getattr(a, field), getattr(b, field)) <= 1e-12


def test_memory_limit_too_small_names_the_sizes(small_net, small_state):
    with pytest.raises(ValueError, match=r"K=6, L=4, N=2, realizations=8, batch=3.*GiB"):
        network_statistics(small_net, small_state, "mmse", memory_limit_bytes=1000)
