"""What a model costs to run: FLOPs and peak memory of one forward pass (batch 1, CPU), counted
with torch's own tools, for the papers' efficiency tables (e.g. elu-cosformer Table IV)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch

from cfmimo.policies.neural import model_features


def forward_flops(model: torch.nn.Module, K: int, L: int) -> int:
    """FLOPs of one forward pass (batch 1) counted by ``FlopCounterMode`` (2 per multiply-add),
    with attention through the math SDPA backend and the fused Transformer fast path off (both
    otherwise hide their matmuls from the counter)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    model.eval()
    g = torch.Generator().manual_seed(0)
    ue, ap = torch.rand(1, K, 2, generator=g), torch.rand(1, L, 2, generator=g)
    fast = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        counter = FlopCounterMode(display=False)
        with torch.inference_mode(), sdpa_kernel(SDPBackend.MATH), counter:
            model(*model_features(ue, ap))
    finally:
        torch.backends.mha.set_fastpath_enabled(fast)
    return int(counter.get_total_flops())


def forward_peak_bytes(model: torch.nn.Module, K: int, L: int) -> int:
    """Peak memory allocated by one CPU forward pass (batch 1) on top of what was live before it:
    the maximum of the CPU allocator's "Total Allocated" over the ``[memory]`` events of
    ``torch.profiler`` (profile_memory=True), minus its value before the first allocation."""
    from torch.profiler import ProfilerActivity, profile

    model.eval()
    g = torch.Generator().manual_seed(0)
    ue, ap = torch.rand(1, K, 2, generator=g), torch.rand(1, L, 2, generator=g)
    with torch.inference_mode():
        model(*model_features(ue, ap))  # warm-up
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            model(*model_features(ue, ap))
    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp) / "trace.json"
        prof.export_chrome_trace(str(trace))
        events = json.loads(trace.read_text())["traceEvents"]
    mem = [e["args"] for e in events if e.get("name") == "[memory]" and e["args"].get("Device Type") == 0]
    if not mem:
        return 0
    base = mem[0]["Total Allocated"] - mem[0]["Bytes"]
    return int(max(m["Total Allocated"] for m in mem) - base)
