"""ONNX export of position -> power models with a dynamic number of users, checked for parity.

The graph takes ``ue`` [B, K, 2] and ``ap`` [B, L, 2] (normalized positions, as the model's
``forward``; gain-aware models also ``gain_db`` [B, L, K], raw dB, normalized inside) and returns ``p`` [B, K, 2] (normalized UL/DL powers); B and K are dynamic, and L too
for models that pool over APs (the token baselines have a fixed L). The legacy TorchScript-based
exporter is used (``dynamo=False``): the Tree-Transformer switches to a fixed-depth tree while
exporting, so one graph serves every K up to 65 536. The rescaler (eqs. (12)-(13)) stays outside
the graph, with the scaler statistics stored in the checkpoint.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn


class _GainInputs(nn.Module):
    """A gain-aware model (``cfmimo.models.gain_aware``) with positional inputs (ue, ap, gain_db),
    for export: the gain normalization stays inside the graph (its buffers)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, ue: torch.Tensor, ap: torch.Tensor, gain_db: torch.Tensor) -> torch.Tensor:
        return self.model(ue, ap, gain_db=gain_db)


def _fixed_aps(model: nn.Module) -> int | None:
    config = getattr(model, "config", None)
    return getattr(config, "num_aps", None) if type(model).__module__.endswith("token_models") else None


def export_onnx(model: nn.Module, path: str | os.PathLike, *, check: bool = True, tol: float = 1e-5) -> dict:
    """Export ``model`` to ONNX at ``path`` (atomic) and, with ``check``, compare onnxruntime with
    PyTorch on random inputs of several sizes. Returns {"path", "dynamic", "parity": {size: max|diff|}}.
    """
    path = Path(path)
    model = model.eval()
    fixed_l = _fixed_aps(model)
    gains = bool(getattr(model, "uses_gains", False))
    g = torch.Generator().manual_seed(0)

    def sample(B: int, K: int, L: int) -> tuple[torch.Tensor, ...]:
        ue, ap = torch.rand(B, K, 2, generator=g), torch.rand(B, L, 2, generator=g)
        return (ue, ap, 40.0 - 60.0 * torch.rand(B, L, K, generator=g)) if gains else (ue, ap)

    names = ["ue", "ap", "gain_db"] if gains else ["ue", "ap"]
    graph = _GainInputs(model) if gains else model
    inputs = sample(2, 5, fixed_l or 7)
    axes = {"ue": {0: "B", 1: "K"}, "ap": {0: "B"} if fixed_l else {0: "B", 1: "L"}, "p": {0: "B", 1: "K"}}
    if gains:
        axes["gain_db"] = {0: "B", 1: "L", 2: "K"}
    tmp = path.with_name(f".{path.name}.tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                graph,
                inputs,
                str(tmp),
                dynamo=False,
                input_names=names,
                output_names=["p"],
                dynamic_axes=axes,
            )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    result = {"path": str(path), "dynamic": {k: list(v.values()) for k, v in axes.items()}, "parity": {}}
    if check:
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        for K, L in ((1, fixed_l or 1), (3, fixed_l or 16), (17, fixed_l or 16), (40, fixed_l or 25)):
            x = sample(3, K, L)
            with torch.inference_mode():
                want = graph(*x).numpy()
            got = session.run(None, {n: t.numpy() for n, t in zip(names, x, strict=True)})[0]
            diff = float(np.abs(got - want).max())
            result["parity"][f"K={K},L={L}"] = diff
            if diff > tol:
                raise RuntimeError(f"ONNX parity failed at K={K}, L={L}: max |diff| = {diff:.3g} > {tol}")
    return result
