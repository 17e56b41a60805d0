"""Benchmark: max-min power control speed (issue #3). Prints one JSON object.

* ``closed_form``: UL + DL closed form (``MaxMinClosedForm``) on batches of 1024 instances at
  K = 40 and K = 10 (tree-transformer preset, L = 16; instance statistics from 20 realizations,
  which does not change the solver's work), instances per second;
* ``cvxpy_bisection``: the CVXPY + Clarabel bisection reference (UL + DL) on the first few of the
  same instances, seconds per instance, and the closed form's speed-up over it;
* ``book_fixed_point_numpy``: the book's Algorithm 7.1 (UL) / 7.3 (DL) fixed point transcribed
  line by line in NumPy (one instance at a time, stop when max SINR - min SINR < 0.01, the book's
  tolerance) on the first ``--book-instances`` of the same instances: microseconds per UL + DL
  instance, the closed form's speed-up over it, and the min-SINR gap (the peer stops early);
* ``q8_dcc_pipeline``: "Q = 8 strongest APs + closed form" at K = 40, L = 16 including everything
  (layout, channels, estimation, MMSE combiners, UatF statistics with 100 realizations, powers),
  seconds per setup (the elu-cosformer paper reports 31.6 s for DCC + closed form).

Usage: python benchmarks/maxmin_throughput.py [--batch 1024] [--cvx-instances 4] [--book-instances 256]
       [--skip-cvx]
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import torch

from cfmimo import __version__
from cfmimo.config import preset
from cfmimo.policies.classical.convex import maxmin_bisection_cvxpy
from cfmimo.policies.classical.maxmin import downlink_affine, uplink_affine
from cfmimo.policies.classical.power import MaxMinClosedForm
from cfmimo.problems.maxmin_power import MaxMinPower


def book_fixed_point_numpy(signal, interference, noise, weights, budget, tolerance=0.01, max_iter=100_000):
    """The book's Algorithm 7.1 (UL, per-UE caps) / 7.3 (DL) transcribed line by line in NumPy.

    One instance: SINR_k = p_k b_k / (sum_i p_i c_ki - p_k b_k + s_k) with constraints
    weights @ p <= budget. Start from the budget-scaled all-ones vector, then repeat
    p <- (interference + noise) / b, scaled so the tightest constraint holds with equality,
    until max SINR - min SINR < tolerance (the book: 0.01). Returns (p, min SINR, iterations).
    """
    import numpy as np

    p = np.ones_like(signal)
    p = p / np.max(weights @ p / budget)
    for it in range(1, max_iter + 1):
        interf = interference @ p - p * signal + noise  # sum_{i != k} p_i c_ki + s_k
        sinr = p * signal / interf
        if sinr.max() - sinr.min() < tolerance:
            return p, sinr.min(), it
        p = interf / signal  # the power each UE needs for SINR 1 given the others
        p = p / np.max(weights @ p / budget)
    return p, sinr.min(), max_iter


def time_book_peer(inst, count: int) -> dict:
    """Seconds per instance (UL + DL) of the NumPy book fixed point, and its SINRs."""
    import numpy as np

    ul, dl = inst.uplink, inst.downlink
    K = ul.signal.shape[1]
    eye = np.eye(K)
    arrays = {
        "ul": [x.double().numpy() for x in (ul.signal, ul.interference, ul.noise, inst.ul_budget)],
        "dl": [x.double().numpy() for x in (dl.signal, dl.interference, inst.dl_weights, inst.dl_budget)],
    }
    s_ul, c_ul, n_ul, b_ul = arrays["ul"]
    s_dl, c_dl, w_dl, b_dl = arrays["dl"]
    sinr_ul, sinr_dl, its = [], [], []
    start = time.perf_counter()
    for b in range(count):
        _, g_ul, i_ul = book_fixed_point_numpy(s_ul[b], c_ul[b], n_ul[b], eye, b_ul[b])
        _, g_dl, i_dl = book_fixed_point_numpy(s_dl[b], c_dl[b], np.ones(K), w_dl[b], b_dl[b])
        sinr_ul.append(g_ul)
        sinr_dl.append(g_dl)
        its.append((i_ul, i_dl))
    per = (time.perf_counter() - start) / count
    return {"seconds_per_instance": per, "sinr_ul": sinr_ul, "sinr_dl": sinr_dl, "iterations": its}


def instances(K: int, batch: int, realizations: int, **overrides):
    sc = preset("tree-transformer", K=K, realizations=realizations, **overrides)
    problem = MaxMinPower()
    parts = [problem.sample(sc, min(64, batch - s), seed=0, first_index=s) for s in range(0, batch, 64)]
    return parts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--cvx-instances", type=int, default=4)
    ap.add_argument("--book-instances", type=int, default=256, help="instances for the NumPy book peer")
    ap.add_argument("--skip-cvx", action="store_true", help="skip the CVXPY bisection and the Q=8 pipeline")
    ap.add_argument("--pipeline-setups", type=int, default=32)
    args = ap.parse_args()
    policy = MaxMinClosedForm()
    out: dict = {
        "benchmark": "maxmin_throughput",
        "cfmimo": __version__,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "closed_form": {},
        "cvxpy_bisection": {},
    }
    for K in (40, 10):
        parts = instances(K, args.batch, 20)
        # one batch of 1024 instances: concatenate the statistics of the parts
        from dataclasses import replace

        from cfmimo.sim.uatf import DownlinkStatistics, UplinkStatistics

        cat = lambda xs: torch.cat(xs)  # noqa: E731
        ul = UplinkStatistics(
            *(cat([getattr(p.uplink, f) for p in parts]) for f in ("signal", "interference", "noise"))
        )
        dl = DownlinkStatistics(
            *(
                cat([getattr(p.downlink, f) for p in parts])
                for f in ("signal", "interference", "ap_power_share")
            )
        )
        inst = replace(
            parts[0],
            uplink=ul,
            downlink=dl,
            ul_budget=cat([p.ul_budget for p in parts]),
            dl_weights=cat([p.dl_weights for p in parts]),
            dl_budget=cat([p.dl_budget for p in parts]),
        )
        policy(inst)  # warm-up
        start = time.perf_counter()
        repeats = 3
        for _ in range(repeats):
            alloc = policy(inst)
        per_batch = (time.perf_counter() - start) / repeats
        out["closed_form"][f"K={K}"] = {
            "batch": args.batch,
            "instances_per_s": args.batch / per_batch,
            "us_per_instance": 1e6 * per_batch / args.batch,
            "ms_per_batch": 1e3 * per_batch,
            "iterations_ul": alloc.info["iterations_ul"],
            "iterations_dl": alloc.info["iterations_dl"],
        }
        # the book's fixed point (NumPy, one instance at a time, tolerance 0.01), same instances
        peer = time_book_peer(inst, min(args.book_instances, args.batch))
        n_peer = len(peer["sinr_ul"])
        gap = max(
            max(
                abs(g - alloc.info["sinr_ul"][i].item()) / alloc.info["sinr_ul"][i].item()
                for i, g in enumerate(peer["sinr_ul"])
            ),
            max(
                abs(g - alloc.info["sinr_dl"][i].item()) / alloc.info["sinr_dl"][i].item()
                for i, g in enumerate(peer["sinr_dl"])
            ),
        )
        out.setdefault("book_fixed_point_numpy", {})[f"K={K}"] = {
            "instances": n_peer,
            "tolerance_sinr_spread": 0.01,
            "us_per_instance": 1e6 * peer["seconds_per_instance"],
            "closed_form_speedup": peer["seconds_per_instance"] * args.batch / per_batch,
            "max_iterations_ul_dl": [
                max(i[0] for i in peer["iterations"]),
                max(i[1] for i in peer["iterations"]),
            ],
            "max_relative_min_sinr_gap_to_closed_form": gap,
        }
        if args.skip_cvx:
            continue
        n = args.cvx_instances
        sub_ul = uplink_affine(
            replace(ul, signal=ul.signal[:n], interference=ul.interference[:n], noise=ul.noise[:n])
        )
        sub_dl = downlink_affine(
            replace(
                dl,
                signal=dl.signal[:n],
                interference=dl.interference[:n],
                ap_power_share=dl.ap_power_share[:n],
            )
        )
        eye = torch.eye(K).expand(n, K, K)
        start = time.perf_counter()
        g_ul = maxmin_bisection_cvxpy(sub_ul, eye, inst.ul_budget[:n])
        g_dl = maxmin_bisection_cvxpy(sub_dl, inst.dl_weights[:n], inst.dl_budget[:n])
        cvx = (time.perf_counter() - start) / n
        rel = (
            torch.cat(
                [
                    (g_ul - alloc.info["sinr_ul"][:n].double()).abs() / g_ul,
                    (g_dl - alloc.info["sinr_dl"][:n].double()).abs() / g_dl,
                ]
            )
            .max()
            .item()
        )
        out["cvxpy_bisection"][f"K={K}"] = {
            "instances": n,
            "seconds_per_instance": cvx,
            "speedup_closed_form": cvx * args.batch / per_batch,
            "max_relative_sinr_difference": rel,
        }
    # Q = 8 strongest + closed form, everything included, K = 40
    if args.skip_cvx:
        out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(out, indent=2))
        return
    sc = preset("tree-transformer", K=40, clustering={"kind": "q_strongest", "q": 8})
    problem = MaxMinPower()
    n, b = args.pipeline_setups, 16
    start = time.perf_counter()
    for first in range(0, n, b):
        policy(problem.sample(sc, min(b, n - first), seed=1, first_index=first))
    out["q8_dcc_pipeline"] = {
        "K": 40,
        "L": 16,
        "realizations": sc.realizations,
        "setups": n,
        "seconds_per_setup": (time.perf_counter() - start) / n,
        "paper_seconds": 31.6,
    }
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
