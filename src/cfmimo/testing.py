"""Contract checks shipped with the package, for anyone writing a policy (classical or neural).

``assert_policy(problem, policy, instance)`` checks that a policy
  * returns every decision field the problem needs, with the instance's batch size, dtype and device;
  * returns feasible decisions (violation <= tol), unless ``feasible=False``;
  * decides each instance on its own: running on a sub-batch gives the same decisions (batch =
    per-sample), so batch composition never changes results;
  * is equivariant to UE order, when the instance supports ``permute_ues``: permuting the UEs
    permutes the decisions (skip with ``permutation=False`` for order-dependent models, e.g. a
    binary tree over UEs, and test the invariance they do have instead).
"""

from __future__ import annotations

import torch

from cfmimo.problems.base import Allocation, Policy, Problem

_UE_AXIS = {"p_ul": 1, "p_dl": 1, "serving": 2, "link_power": 2, "precoders": 2}


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
    ref = next(iter(instance.uplink.__dict__.values())) if hasattr(instance, "uplink") else None
    for name, value in alloc.decisions().items():
        assert value.shape[0] == batch, f"{name}: batch {value.shape[0]} != {batch}"
        if ref is not None and value.is_floating_point():
            assert value.dtype == ref.dtype, f"{name}: dtype {value.dtype} != instance dtype {ref.dtype}"
            assert value.device == ref.device, f"{name}: device {value.device} != {ref.device}"
        assert torch.isfinite(value.double() if not value.is_complex() else value.abs()).all(), (
            f"{name}: not finite"
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
    if permutation and hasattr(instance, "permute_ues"):
        K = alloc.decisions()["p_ul"].shape[1] if alloc.p_ul is not None else instance.network.pilot.shape[1]
        perm = torch.randperm(K, generator=torch.Generator().manual_seed(seed))
        permuted = policy(instance.permute_ues(perm))
        for name, value in permuted.decisions().items():
            want = alloc.decisions()[name].index_select(_UE_AXIS[name], perm.to(value.device))
            assert _close(value, want, rtol, atol), f"{name}: not permuted with the UEs"
    return alloc
