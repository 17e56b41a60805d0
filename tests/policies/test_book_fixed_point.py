"""``MaxMinFixedPoint(start="book")`` reproduces the book's Algorithms 7.1 (UL) and 7.3 (DL) exactly:
start point, update, normalization and stopping rule, against a line-by-line loop transcription
of the book's algorithms (Demir, Björnson, Sanguinetti 2021, Section 7.1; its MATLAB functions
``functionUplinkSE_maxmin`` / ``functionDownlinkSE_maxmin``), one setup at a time, in float64."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cfmimo.config import preset
from cfmimo.policies.classical.power import MaxMinClosedForm, MaxMinFixedPoint
from cfmimo.problems.maxmin_power import MaxMinPower


def book_algorithm_7_1(bk, ck, sigma2, pmax, tolerance=0.01):
    """UL max-min (Algorithm 7.1). SINR_k = eta_k b_k / (sum_i c_ki eta_i + sigma2_k), ck[i, k] = c_ki.

    Returns (eta, iterations)."""
    iterations = 0
    eta = pmax * np.ones(len(bk))  # full power
    denominator = ck.T @ eta + sigma2
    sinr = eta * bk / denominator
    while sinr.max() - sinr.min() > tolerance:  # Line 2
        iterations += 1
        eta = denominator / bk  # Line 3
        eta = eta * pmax / eta.max()  # Line 4: per-UE caps
        denominator = ck.T @ eta + sigma2
        sinr = eta * bk / denominator
    return eta, iterations


def book_algorithm_7_3(bk, ck, wk, rhomax, tolerance=0.01):
    """DL max-min with per-AP limits (Algorithm 7.3). SINR_k = eta_k b_k / (sum_i c_ki eta_i + 1),
    wk[l, k] = E{||w_kl||^2}; the constraint is wk @ eta <= rhomax at every AP.

    Returns (eta, iterations)."""
    K = len(bk)
    iterations = 0
    eta = rhomax / K * np.ones(K)
    denominator = ck.T @ eta + 1.0
    sinr = eta * bk / denominator
    while sinr.max() - sinr.min() > tolerance:  # Line 2
        iterations += 1
        eta = denominator / bk  # Line 3
        eta = eta * rhomax / (wk @ eta).max()  # Line 4
        denominator = ck.T @ eta + 1.0
        sinr = eta * bk / denominator
    return eta, iterations


def _book_arrays(stats_signal, stats_interference):
    """(b_k, c[i, k]) of the book's (7.1)/(7.12) from cfmimo's statistics: cfmimo's interference
    d_ki = E{|h_k^H w_i|^2} includes i = k; the book's c_kk excludes the signal part b_k."""
    b = stats_signal.numpy()
    c = stats_interference.numpy() - np.diag(b)  # [k, i]
    return b, c.T  # the book's ck(i, k)


@pytest.fixture(scope="module")
def per_ap_instances():
    # the book's DL: per-AP limits with precoders normalized on average (Section 6.2)
    sc = preset("tree-transformer", K=12, realizations=30, dl_normalization="average")
    return MaxMinPower(dl_constraint="per_ap").sample(sc, 6, seed=11, dtype=torch.float64)


def test_book_start_reproduces_algorithms_7_1_and_7_3(per_ap_instances):
    inst = per_ap_instances
    alloc = MaxMinFixedPoint(start="book")(inst)
    rhomax = float(inst.network.scenario.dl_power_per_ap_mw)
    pmax = float(inst.network.scenario.ul_power_mw)
    iterations_ul, iterations_dl = [], []
    for b in range(inst.batch):
        bk, ck = _book_arrays(inst.uplink.signal[b], inst.uplink.interference[b])
        eta, it_ul = book_algorithm_7_1(bk, ck, inst.uplink.noise[b].numpy(), pmax)
        np.testing.assert_allclose(alloc.p_ul[b].numpy(), eta, rtol=1e-12)
        bk, ck = _book_arrays(inst.downlink.signal[b], inst.downlink.interference[b])
        wk = inst.downlink.ap_power_share[b].numpy()  # [L, K]
        eta, it_dl = book_algorithm_7_3(bk, ck, wk, rhomax)
        np.testing.assert_allclose(alloc.p_dl[b].numpy(), eta, rtol=1e-12)
        iterations_ul.append(it_ul)
        iterations_dl.append(it_dl)
    # the batched loop runs until the slowest setup stops (the count is the last check's index)
    assert alloc.info["iterations_ul"] == max(iterations_ul) + 1
    assert alloc.info["iterations_dl"] == max(iterations_dl) + 1
    assert max(iterations_dl) > 0  # the comparison covered real iterations, not just the start


def test_default_start_differs_from_the_book_only_in_dl(per_ap_instances):
    inst = per_ap_instances
    book, scaled = MaxMinFixedPoint(start="book")(inst), MaxMinFixedPoint()(inst)
    torch.testing.assert_close(scaled.p_ul, book.p_ul, rtol=0, atol=0)  # both start at full UL power
    assert float((scaled.p_dl - book.p_dl).abs().max()) > 1e-6 * float(book.p_dl.abs().max())
    # both converge to the optimum when the tolerance is tight
    opt = MaxMinClosedForm()(inst)
    tight = MaxMinFixedPoint(tolerance=1e-10, start="book")(inst)
    torch.testing.assert_close(tight.p_dl, opt.p_dl, rtol=1e-6, atol=0)


def test_book_start_with_the_papers_sum_constraint_is_tight():
    sc = preset("tree-transformer", K=6, realizations=20)
    inst = MaxMinPower(dl_constraint="sum").sample(sc, 2, seed=3, dtype=torch.float64)
    alloc = MaxMinFixedPoint(start="book")(inst)
    torch.testing.assert_close(alloc.p_dl.sum(-1), inst.dl_budget[:, 0], rtol=1e-12, atol=0)


def test_unknown_start_is_a_clear_error(per_ap_instances):
    with pytest.raises(ValueError, match="start must be 'scaled' or 'book'"):
        MaxMinFixedPoint(start="zero")(per_ap_instances)
