"""A short unsupervised learning curve of one AAGNN-paper precoder, beside the MRT / RZF / WMMSE
sum rates of the same validation set (the measurements of docs/learning.md, "What stalls and why").

Prints one JSON object:
  {"tag", "model" (ModelConfig fields), "K", "snr_db", "params", "lr", "steps", "seconds",
   "ref_ratio" {mrt, rzf, wmmse} (ratio of means vs WMMSE), "wmmse" (bit/s/Hz),
   "curve": [[step, validation sum rate, ratio vs WMMSE], ...]}

Training: Adam (``--lr``, the paper's 5e-3 by default), batch 64, -mean sum rate, seeded shuffles of
``--train`` samples; a wall-clock cap ``--seconds`` stops it early. WMMSE: best of the RZF start and 2
random starts, <= 300 iterations. Data: aagnn preset, N = ``--N`` (16), M = 4, seed streams "diag/train|val".

    python benchmarks/aagnn_learning_curve.py --model aagnn --widths 2,32,32,32,32,2 \\
        --options '{"attention_norm": "cosine"}' --K 4 --snr 5 --steps 300
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from cfmimo.config import preset
from cfmimo.models import ModelConfig, build_model, count_parameters
from cfmimo.policies.classical.precoders import MRTPrecoder, RZFPrecoder
from cfmimo.policies.classical.wmmse import WMMSE
from cfmimo.policies.neural import PrecoderPolicy
from cfmimo.problems.sumrate_precoding import SumRatePrecoding
from cfmimo.rng import stream_seed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="aagnn")
    p.add_argument("--widths", default=None, help="comma-separated, e.g. 2,16,16,2")
    p.add_argument("--options", default="{}", help="more ModelConfig fields as JSON")
    p.add_argument("--K", type=int, default=4)
    p.add_argument("--N", type=int, default=16, help="antennas per AP")
    p.add_argument("--snr", type=float, default=5.0, help="cell-edge SNR (dB)")
    p.add_argument("--train", type=int, default=256)
    p.add_argument("--val", type=int, default=64)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--every", type=int, default=50)
    p.add_argument("--lr", type=float, default=5e-3)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seconds", type=float, default=170.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--tag", default="")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    problem = SumRatePrecoding()
    scenario = preset("aagnn", K=a.K, N=a.N, L=4, cell_edge_snr_db=a.snr)
    train = problem.sample(scenario, a.train, seed=stream_seed(0, "diag/train"))
    val = problem.sample(scenario, a.val, seed=stream_seed(0, "diag/val"))
    with torch.no_grad():
        refs = {
            name: float(problem.objective(val, policy(val)).mean())
            for name, policy in (
                ("mrt", MRTPrecoder()),
                ("rzf", RZFPrecoder()),
                ("wmmse", WMMSE(random_starts=2, max_iterations=300)),
            )
        }
    fields = {"name": a.model, **json.loads(a.options)}
    if a.widths:
        fields["widths"] = [int(x) for x in a.widths.split(",")]
    torch.manual_seed(0)
    model = build_model(ModelConfig(**fields))
    model.fit_input_scale(train.h, train.association, train.p_max, train.noise)
    policy = PrecoderPolicy(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=a.lr)
    shuffle = torch.Generator().manual_seed(1)

    def validate() -> float:
        with torch.no_grad():
            return float(problem.objective(val, policy(val)).mean())

    curve = [(0, validate())]
    start, step = time.perf_counter(), 0
    while step < a.steps and time.perf_counter() - start < a.seconds:
        order = torch.randperm(a.train, generator=shuffle)
        for i in range(0, a.train, a.batch):
            batch = train.take(order[i : i + a.batch])
            loss = -problem.objective(batch, policy(batch)).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            if step % a.every == 0:
                curve.append((step, validate()))
            if step >= a.steps or time.perf_counter() - start > a.seconds:
                break
    seconds = time.perf_counter() - start
    if curve[-1][0] != step:
        curve.append((step, validate()))
    w = refs["wmmse"]
    out = {
        "tag": a.tag,
        "model": model.config.model_dump(mode="json", exclude_defaults=True),
        "K": a.K,
        "N": a.N,
        "snr_db": a.snr,
        "params": count_parameters(model),
        "lr": a.lr,
        "steps": step,
        "seconds": round(seconds, 1),
        "ref_ratio": {k: round(v / w, 3) for k, v in refs.items()},
        "wmmse": round(w, 2),
        "curve": [(s, round(v, 2), round(v / w, 3)) for s, v in curve],
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
