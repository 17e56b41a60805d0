"""Shared pieces of the paper reproductions: data, predictions on stored test sets, SEs from the
stored UatF statistics, latency, and the output folder (results.json, CSV tables, PNG figures,
report.md), written atomically.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import os
import statistics
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cfmimo.config import atomic_write_text
from cfmimo.data.generation import run_generation
from cfmimo.data.spec import DatasetSpec
from cfmimo.data.storage import DatasetContent, load_dataset
from cfmimo.data.transforms import PositionFrame, PowerScaler
from cfmimo.policies.neural import model_features, predict_powers
from cfmimo.sim.uatf import downlink_sinr, spectral_efficiency, stored_statistics, uplink_sinr


@contextlib.contextmanager
def reproduction_environment(threads: int | None) -> Iterator[None]:
    """For a reproduction's ``run``: Lightning's info logs off (one "GPU available" banner per
    training run otherwise) and torch pinned to ``threads`` intra-op threads (None: unchanged),
    restored on exit."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning.pytorch.utilities.rank_zero"):
        logging.getLogger(name).setLevel(logging.WARNING)
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def ensure_dataset(
    spec: DatasetSpec, folder: Path, *, scheduler: str = "local", workers: int | None = None, progress=None
) -> DatasetContent:
    """Generate what is missing (resumable; refuses a different spec) and load the dataset."""
    run_generation(spec, folder, scheduler=scheduler, workers=workers, progress=progress)
    return load_dataset(folder)


@torch.inference_mode()
def predict_group(
    model: nn.Module,
    scaler: PowerScaler,
    group: dict[str, torch.Tensor],
    *,
    dl_power_per_ap_mw: float,
    ul_power_mw: float,
    frame: PositionFrame | None = None,
    sigma_ue_m: float = 0.0,
    sigma_ap_m: float = 0.0,
    seed: int = 0,
    batch: int = 256,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted UL/DL powers (mW) for every sample of one (K, L) group of a stored dataset.

    Position noise is per sample (streams keyed by the sample index), so predictions do not depend
    on ``batch``. Shapes: group arrays [n, ...] -> (p_ul [n, K], p_dl [n, K]).
    """
    n, L = group["ap_positions"].shape[:2]
    outs_ul, outs_dl = [], []
    for start in range(0, n, batch):
        sl = slice(start, start + batch)
        p_ul, p_dl, _ = predict_powers(
            model,
            scaler,
            group["ue_positions"][sl],
            group["ap_positions"][sl],
            L * dl_power_per_ap_mw,
            tuple(int(i) for i in group["sample_index"][sl]),
            frame=frame,
            sigma_ue_m=sigma_ue_m,
            sigma_ap_m=sigma_ap_m,
            seed=seed,
            gain_db=group["gain_db"][sl] if "gain_db" in group else None,
        )
        outs_ul.append(p_ul.clamp(max=ul_power_mw))
        outs_dl.append(p_dl)
    return torch.cat(outs_ul), torch.cat(outs_dl)


def stored_se(
    group: dict[str, torch.Tensor], p_ul: torch.Tensor, p_dl: torch.Tensor, prelog_ul: float, prelog_dl: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """UatF SEs of any powers from a group's stored statistics (exact). Shapes: -> [n, K] each."""
    ul, dl = stored_statistics(group)
    return (
        spectral_efficiency(uplink_sinr(ul, p_ul.double()), prelog_ul),
        spectral_efficiency(downlink_sinr(dl, p_dl.double()), prelog_dl),
    )


@torch.inference_mode()
def latency_ms(
    model: nn.Module,
    K: int | None = None,
    L: int | None = None,
    *,
    repeats: int = 20,
    warmup: int = 3,
    seed: int = 0,
    inputs: tuple[Any, ...] | None = None,
) -> float:
    """Median wall time (ms) of one inference: by default a position model on one random setup with
    K UEs and L APs (batch 1; features, model, no rescale); with ``inputs``, ``model(*inputs)`` on
    whatever the model takes (e.g. a channel graph ``model.graph_inputs(instance)``; K, L unused)."""
    model.eval()
    if inputs is None:
        if K is None or L is None:
            raise ValueError("latency_ms needs K and L (position models) or inputs=")
        from cfmimo.experiments.model_cost import random_setup

        # the features are computed inside the timing, as a deployed model would
        ue, ap, extra = random_setup(model, K, L, seed=seed)  # gain_db for gain-aware models
        call = lambda: model(*model_features(ue, ap), **extra)  # noqa: E731
    else:
        call = lambda: model(*inputs)  # noqa: E731
    times = []
    for i in range(warmup + repeats):
        start = time.perf_counter()
        call()
        if i >= warmup:
            times.append(1e3 * (time.perf_counter() - start))
    return statistics.median(times)


def onnxruntime_latency_ms(
    model: nn.Module, K: int, L: int, *, repeats: int = 20, warmup: int = 3, seed: int = 0
) -> float | None:
    """``latency_ms`` with the forward pass in onnxruntime (the model exported to a temporary file,
    run by ``export.OnnxRuntimeModel`` with as many intra-op threads as torch uses); None without
    onnxruntime or for a model that cannot be exported with a dynamic K."""
    import tempfile

    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return None
    from cfmimo.export import OnnxRuntimeModel, export_onnx

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        try:
            export_onnx(model, path, check=False)
        except ValueError:
            return None
        return latency_ms(
            OnnxRuntimeModel(path, threads=torch.get_num_threads()),
            K,
            L,
            repeats=repeats,
            warmup=warmup,
            seed=seed,
        )


def quantiles(x: torch.Tensor, points: int = 101) -> list[float]:
    """Empirical quantiles at 0, 1/(points-1), ..., 1 (for CDF tables)."""
    q = torch.linspace(0, 1, points, dtype=torch.float64)
    return torch.quantile(x.double().flatten(), q).tolist()


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    for row in rows:
        w.writerow([f"{v:.6g}" if isinstance(v, float) else v for v in row])
    atomic_write_text(path, buf.getvalue())


def write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data, indent=2))


def save_figure(fig, path: Path) -> None:
    """Save a matplotlib figure atomically as PNG."""
    import matplotlib.pyplot as plt

    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=130, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)


def claim(claim_id: str, description: str, paper_value: Any, ours: Any, holds: bool | None) -> dict[str, Any]:
    return {
        "id": claim_id,
        "description": description,
        "paper_value": paper_value,
        "ours": ours,
        "holds": None if holds is None else bool(holds),
    }


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
