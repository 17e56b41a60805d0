"""What a model costs to run: FLOPs and peak memory of one forward pass (CPU), counted with torch's
own tools, for the papers' efficiency tables (elu-cosformer Table IV, egat Table V). ``count_flops`` /
``peak_bytes`` take any inputs; ``forward_flops`` / ``forward_peak_bytes`` are the position-model
shortcuts (batch 1 on random positions)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch

from cfmimo.policies.neural import model_features


def count_flops(model: torch.nn.Module, *inputs: object, **kwargs: object) -> int:
    """FLOPs of one call ``model(*inputs, **kwargs)`` counted by ``FlopCounterMode`` (2 per
    multiply-add; matmuls, convolutions and attention kernels, not element-wise ops), with attention
    through the math SDPA backend and the fused Transformer fast path off (both otherwise hide their
    matmuls from the counter). Any inputs: position features, channel graphs
    (``model.graph_inputs(instance)``), ... Divide by the batch size for a per-sample count."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    if not callable(model):
        raise TypeError(f"model must be callable, got {type(model).__name__}")
    if isinstance(model, torch.nn.Module):
        model.eval()
    fast = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        counter = FlopCounterMode(display=False)
        with torch.inference_mode(), sdpa_kernel(SDPBackend.MATH), counter:
            model(*inputs, **kwargs)
    finally:
        torch.backends.mha.set_fastpath_enabled(fast)
    return int(counter.get_total_flops())


def position_inputs(
    model: torch.nn.Module, K: int, L: int, *, seed: int = 0
) -> tuple[tuple[torch.Tensor, ...], dict[str, torch.Tensor]]:
    """(args, kwargs) of one random batch-1 setup for a position model: ``model_features`` of UE
    positions [1, K, 2] and AP positions [1, L, 2] in the unit square, and for a gain-aware model
    (``uses_gains``) random gains ``gain_db`` [1, L, K] in [-20, 40] dB (normalized inside)."""
    ue, ap, extra = random_setup(model, K, L, seed=seed)
    return model_features(ue, ap), extra


def random_setup(
    model: torch.nn.Module, K: int, L: int, *, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """The raw batch-1 setup of :func:`position_inputs` (before ``model_features``): UE positions
    [1, K, 2], AP positions [1, L, 2] and, for a gain-aware model, ``gain_db`` [1, L, K]."""
    g = torch.Generator().manual_seed(seed)
    ue, ap = torch.rand(1, K, 2, generator=g), torch.rand(1, L, 2, generator=g)
    extra = {}
    if getattr(model, "uses_gains", False):
        extra["gain_db"] = -60.0 * torch.rand(1, L, K, generator=g) + 40.0
    return ue, ap, extra


def forward_flops(model: torch.nn.Module, K: int, L: int) -> int:
    """FLOPs of one forward pass (batch 1) of a position model on a random setup
    (:func:`count_flops` on :func:`position_inputs`)."""
    args, kwargs = position_inputs(model, K, L)
    return count_flops(model, *args, **kwargs)


def forward_peak_bytes(model: torch.nn.Module, K: int, L: int) -> int:
    """Peak memory of one forward pass (batch 1) of a position model on a random setup
    (:func:`peak_bytes` on :func:`position_inputs`)."""
    args, kwargs = position_inputs(model, K, L)
    return peak_bytes(model, *args, **kwargs)


def peak_bytes(model: torch.nn.Module, *inputs: object, **kwargs: object) -> int:
    """Peak memory allocated by one CPU call ``model(*inputs, **kwargs)`` on top of what was live before
    it: the maximum of the CPU allocator's "Total Allocated" over the ``[memory]`` events of
    ``torch.profiler`` (profile_memory=True), minus its value before the first allocation."""
    from torch.profiler import ProfilerActivity, profile

    if isinstance(model, torch.nn.Module):
        model.eval()
    with torch.inference_mode():
        model(*inputs, **kwargs)  # warm-up
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            model(*inputs, **kwargs)
    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp) / "trace.json"
        prof.export_chrome_trace(str(trace))
        events = json.loads(trace.read_text())["traceEvents"]
    mem = [e["args"] for e in events if e.get("name") == "[memory]" and e["args"].get("Device Type") == 0]
    if not mem:
        return 0
    base = mem[0]["Total Allocated"] - mem[0]["Bytes"]
    return int(max(m["Total Allocated"] for m in mem) - base)
