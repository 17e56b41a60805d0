"""Benchmark: one dynamic-supervision training step (issue #6), split into its parts. Prints JSON.

For a batch of B setups of the elu-cosformer scenario (L = 16): channel realizations + MMSE
estimates from the cached large-scale state, UatF statistics of the MMSE combiners/precoders for
the model's clusters, closed-form max-min labels, and the model's forward + backward with loss (32)
and the relaxed-MR mask gradient. Medians over repeats, on the current device's threads.

Usage: python benchmarks/dynamic_supervision.py [--batch 64] [--realizations 20 50 100] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from cfmimo import __version__
from cfmimo.config import preset
from cfmimo.data.spec import DatasetSpec
from cfmimo.data.transforms import PositionFrame, PowerScaler
from cfmimo.learn.config import TrainConfig
from cfmimo.learn.dynamic import DynamicSupervisionModule, NetworkCache, channel_state, cluster_labels
from cfmimo.models.cluster_models import output_clusters
from cfmimo.policies.neural import model_features
from cfmimo.sim.network import sample_networks


def _median_s(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--realizations", type=int, nargs="+", default=[20, 50, 100])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    results = []
    for K in (5, 10):
        spec = DatasetSpec(
            scenario=preset("elu-cosformer"), sizes=[(K, 16)], samples=args.batch, labels=False
        )
        net0 = sample_networks(spec.group_scenario(K, 16), args.batch, seed=spec.group_seed(K, 16))
        groups = {
            (K, 16): {
                "ue_positions": net0.ue_positions,
                "ap_positions": net0.ap_positions,
                "sample_index": torch.arange(args.batch),
            }
        }
        cache = NetworkCache(spec, groups)
        frame = PositionFrame.fit(groups)
        ue, ap_ = model_features(net0.ue_positions, net0.ap_positions, frame)
        batch = {
            "ue_features": ue,
            "ap_features": ap_,
            "sample_index": torch.arange(args.batch),
            "K": torch.full((args.batch,), K),
            "L": torch.full((args.batch,), 16),
        }
        for t in args.realizations:
            config = TrainConfig.from_dict(
                {
                    "model": {"name": "elu_cosformer"},
                    "data": {"train": "unused"},
                    "dynamic": {"realizations": t},
                }
            )
            scaler = PowerScaler(ul_min=0.0, ul_max=100.0, dl_min=0.0, dl_max=3200.0)
            module = DynamicSupervisionModule(config.to_dict(), scaler.to_dict(), [[K, 16]], 0, __version__)
            module.attach(cache).train()
            net, r_sqrt = cache.networks(K, 16, batch["sample_index"])
            serving = output_clusters(module(batch), 10, 0.3)
            state = channel_state(net, r_sqrt, t)
            row = {"K": K, "L": 16, "batch": args.batch, "realizations": t}
            row["channels_s"] = _median_s(lambda: channel_state(net, r_sqrt, t), args.repeats)  # noqa: B023
            row["labels_s"] = _median_s(
                lambda: cluster_labels(net, state, serving, config.dynamic), args.repeats  # noqa: B023
            )
            row["step_s"] = _median_s(lambda: module.step(batch)["loss"].backward(), args.repeats)  # noqa: B023
            row["setups_per_s"] = args.batch / row["step_s"]
            results.append(row)
    print(
        json.dumps(
            {
                "benchmark": "dynamic_supervision",
                "cfmimo": __version__,
                "threads": torch.get_num_threads(),
                "results": results,
            }
        )
    )


if __name__ == "__main__":
    main()
