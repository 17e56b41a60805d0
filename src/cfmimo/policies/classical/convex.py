"""Convex reference for max-min power control: bisection on the SINR target with an LP
feasibility check in CVXPY, solved by Clarabel (optional extra ``opt``).

For a target gamma, the powers p >= 0 with A p <= P and p_k >= gamma ((T p)_k + u_k) for every
active UE form a polyhedron; max-min SINR is the largest gamma for which it is non-empty. One
instance at a time (a Python loop by design: this is the slow, independent check the fast
solvers are certified against, not a production path).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from cfmimo.policies.classical.maxmin import AffineSINR


def maxmin_bisection_cvxpy(
    problem: AffineSINR, A: torch.Tensor, budget: torch.Tensor, *, rtol: float = 1e-7, max_iter: int = 200
) -> torch.Tensor:
    """Optimal common SINR [B] (float64) by bisection; LP feasibility with Clarabel.

    Shapes: A [B, J, K], budget [B, J] -> [B].
    """
    try:
        import cvxpy as cp
    except ImportError as err:  # pragma: no cover - depends on the installation
        raise RuntimeError(
            "the convex reference needs cvxpy and clarabel: pip install 'cfmimo[opt]'"
        ) from err
    out = []
    for b in range(problem.u.shape[0]):
        act = problem.active[b].cpu().numpy()
        if not act.any():
            out.append(0.0)
            continue
        t = problem.T[b].double().cpu().numpy()[act][:, act]
        u = problem.u[b].double().cpu().numpy()[act]
        a = A[b].double().cpu().numpy()[:, act]
        cap = budget[b].double().cpu().numpy()
        k = int(act.sum())
        # Well-conditioned LP: q = p / pmax in [0, 1] (pmax_k the largest p_k any constraint allows),
        # each SINR row divided by its own scale pmax_k.
        pmax = np.nanmin(cap[:, None] / np.where(a > 0, a, np.nan), axis=0)
        q = cp.Variable(k, nonneg=True)
        gamma = cp.Parameter(nonneg=True)
        t_scaled = t * pmax[None, :] / pmax[:, None]
        lp = cp.Problem(
            cp.Minimize(0),
            [(a * pmax[None, :] / cap[:, None]) @ q <= 1, q - gamma * (t_scaled @ q) >= gamma * (u / pmax)],
        )
        hi = float(np.min(pmax / (np.diag(t) * pmax + u)))  # interference-free bound: gamma* <= hi
        lo = 0.0
        for _ in range(max_iter):
            if hi - lo <= rtol * hi:
                break
            gamma.value = 0.5 * (lo + hi)
            try:
                with warnings.catch_warnings():  # OPTIMAL_INACCURATE is handled below
                    warnings.simplefilter("ignore", UserWarning)
                    lp.solve(solver=cp.CLARABEL)
                feasible = lp.status in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE)
            except cp.error.SolverError:
                feasible = False  # a numerical failure at this target is treated as infeasible
            if feasible:
                lo = float(gamma.value)
            else:
                hi = float(gamma.value)
        out.append(lo)
    return torch.tensor(out, dtype=torch.float64)
