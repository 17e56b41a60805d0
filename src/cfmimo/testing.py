"""Contract checks shipped with the package, for anyone writing a policy (classical or neural).

``assert_policy(problem, policy, instance)`` checks that a policy
  * returns every decision field the problem needs, with the instance's batch size, dtype and device;
  * returns feasible decisions (violation <= tol), unless ``feasible=False``;
  * decides each instance on its own: running on a sub-batch gives the same decisions (batch =
    per-sample), so batch composition never changes results;
  * is equivariant to UE order, when the instance supports ``permute_ues``: permuting the UEs
    permutes the decisions (skip with ``permutation=False`` for order-dependent models, e.g. a
    binary tree over UEs, and test the invariance they do have instead);
  * is equivariant to AP order, when the instance supports ``permute_aps`` (decisions with an AP axis
    are permuted, per-UE decisions unchanged);
  * is equivariant to the antenna order of every AP, when the instance supports
    ``permute_antennas(perm [L, N])`` (precoders permuted per AP, other decisions unchanged);
  * respects the association, when the instance has ``association`` [B, L, K]: decisions on links
    (``precoders``, ``link_power``, ``serving``) are exactly zero / False on unserved links;
  * decides each sample alone as in the batch (the first sample on its own, besides the sub-batch).
Complex decisions must also have exactly the instance's complex dtype (e.g. complex128 for float64
instances) when the instance holds a complex tensor (``h``).
The dtype/device reference is the instance's first floating tensor field (any family): real decisions
must have its real dtype, complex ones the matching complex dtype.
"""

from __future__ import annotations

import torch

from cfmimo.problems.base import Allocation, Policy, Problem

_UE_AXIS = {"p_ul": 1, "p_dl": 1, "serving": 2, "link_power": 2, "precoders": 2}
_AP_AXIS = {"serving": 1, "link_power": 1, "precoders": 1}
_LINK_FIELDS = ("serving", "link_power", "precoders")  # [B, L, K, ...] decisions


def _reference(instance) -> torch.Tensor | None:
    """The instance's first floating (real or complex) tensor, searched through dataclass fields."""
    if hasattr(instance, "uplink"):
        return next(iter(instance.uplink.__dict__.values()))
    for value in getattr(instance, "__dict__", {}).values():
        if isinstance(value, torch.Tensor) and (value.is_floating_point() or value.is_complex()):
            return value
    return None


def _real_of(dtype: torch.dtype) -> torch.dtype:
    return torch.empty((), dtype=dtype).real.dtype


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float, atol: float) -> bool:
    if a.dtype == torch.bool:
        return bool(torch.equal(a, b))
    return bool(torch.allclose(a, b, rtol=rtol, atol=atol))


def assert_policy(
    problem: Problem,
    policy: Policy,
    instance,
    *,
    feasible: bool = True,
    permutation: bool = True,
    batch_consistency: bool = True,
    tol: float = 1e-6,
    rtol: float = 1e-5,
    atol: float = 1e-8,
    seed: int = 0,
) -> Allocation:
    """Run the checks in the module docstring; raise AssertionError naming the first that fails."""
    alloc = policy(instance)
    assert isinstance(alloc, Allocation), f"policy returned {type(alloc).__name__}, not an Allocation"
    problem.check(instance, alloc)
    batch = instance.batch
    ref = _reference(instance)
    for name, value in alloc.decisions().items():
        assert value.shape[0] == batch, f"{name}: batch {value.shape[0]} != {batch}"
        if ref is not None and (value.is_floating_point() or value.is_complex()):
            want = _real_of(ref.dtype)
            got = _real_of(value.dtype)
            assert got == want, f"{name}: dtype {value.dtype} != instance (real) dtype {want}"
            assert value.device == ref.device, f"{name}: device {value.device} != {ref.device}"
        assert torch.isfinite(value.double() if not value.is_complex() else value.abs()).all(), (
            f"{name}: not finite"
        )
        h = getattr(instance, "h", None)
        if value.is_complex() and isinstance(h, torch.Tensor) and h.is_complex():
            assert value.dtype == h.dtype, f"{name}: dtype {value.dtype} != instance dtype {h.dtype}"
    association = getattr(instance, "association", None)
    if isinstance(association, torch.Tensor):
        for name in _LINK_FIELDS:
            value = getattr(alloc, name)
            if value is None:
                continue
            off = value[~association.to(value.device)]
            assert not off.any(), (
                f"{name}: nonzero on {int(off.reshape(len(off), -1).any(-1).sum())} unserved links"
            )
    if feasible:
        worst = problem.violation(instance, alloc).max().item()
        assert worst <= tol, f"infeasible decision: largest relative violation {worst:.3g} > {tol}"
    if batch_consistency and batch > 1 and hasattr(instance, "take"):
        half = slice(batch // 2, batch)
        part = policy(instance.take(half))
        for name, value in part.decisions().items():
            assert _close(value, alloc.decisions()[name][half], rtol, atol), (
                f"{name}: sub-batch result differs"
            )
    if batch_consistency and batch > 1 and hasattr(instance, "take"):
        alone = policy(instance.take(slice(0, 1)))
        for name, value in alone.decisions().items():
            assert _close(value, alloc.decisions()[name][:1], rtol, atol), f"{name}: sample alone differs"
    if permutation and hasattr(instance, "permute_ues"):
        name0, first = next(iter(alloc.decisions().items()))
        K = first.shape[_UE_AXIS[name0]]
        perm = torch.randperm(K, generator=torch.Generator().manual_seed(seed))
        permuted = policy(instance.permute_ues(perm))
        for name, value in permuted.decisions().items():
            want = alloc.decisions()[name].index_select(_UE_AXIS[name], perm.to(value.device))
            assert _close(value, want, rtol, atol), f"{name}: not permuted with the UEs"
    with_ap_axis = [(n, v) for n, v in alloc.decisions().items() if n in _AP_AXIS]
    if permutation and hasattr(instance, "permute_aps") and with_ap_axis:
        name0, first = with_ap_axis[0]
        L = first.shape[_AP_AXIS[name0]]
        perm = torch.randperm(L, generator=torch.Generator().manual_seed(seed + 1))
        permuted = policy(instance.permute_aps(perm))
        for name, value in permuted.decisions().items():
            want = alloc.decisions()[name]
            if name in _AP_AXIS:
                want = want.index_select(_AP_AXIS[name], perm.to(value.device))
            assert _close(value, want, rtol, atol), f"{name}: not permuted with the APs"
    precoders = alloc.decisions().get("precoders")
    if permutation and hasattr(instance, "permute_antennas") and precoders is not None:
        L, N = precoders.shape[1], precoders.shape[3]
        g = torch.Generator().manual_seed(seed + 2)
        perm = torch.stack([torch.randperm(N, generator=g) for _ in range(L)])  # [L, N], one per AP
        permuted = policy(instance.permute_antennas(perm))
        for name, value in permuted.decisions().items():
            want = alloc.decisions()[name]
            if name == "precoders":
                index = perm.to(want.device)[None, :, None, :].expand_as(want)
                want = torch.gather(want, -1, index)
            assert _close(value, want, rtol, atol), f"{name}: not permuted with each AP's antennas"
    return alloc
