"""Classical policies for the fronthaul-constrained WSR (egat-fronthaul.md Sect. III and V-A).

* :class:`AOSCA` — Algorithm 1 (alternating optimization + SCA on the quadratic transform (10)),
  subproblems (12) and (16) in CVXPY solved by Clarabel, one compiled parametrized problem per size.
* :class:`FCZF` — full-connection ZF with a common per-AP scaling, backed off until the sum rate fits
  the smallest fronthaul (every AP carries every UE's data).
* :class:`PCWMMSE` — the shared weighted WMMSE with per-AP power (``policies.classical.wmmse``) on all
  links, then the weakest links of overloaded APs are disconnected until (3b) holds.

AO-SCA as implemented (fixes of issue 14 to the paper's text, all in the scaled variables
``u_lk = v_lk / sqrt(P_l)``, so ``||U_l||_F <= 1``, with channels ``h'_lk = sqrt(P_l) h_lk``):

* smoothed indicator (14) with the norm normalized by the AP's budget,
  ``I~(v_lk) = ln(||u_lk|| / delta + 1) / ln(1/delta + 1)``, delta = 0.01, the same function in (12)
  (the paper keeps the exact indicator there, which makes (12) blind to the beams) and in (16);
* rates in nats inside the algorithm: (3b) reads ``sum_k x_lk ln(1 + gamma_k) <= C_l ln2 / BW``;
* start: MRT on every link at full per-AP power (37), gamma = 0 (feasible for (12) and (16));
* step 4 (12): ``max_gamma sum_k w_k ln(1 + gamma_k) - w_k gamma_k / (1 + SINR_k)`` (that is L1 at
  lambda* (7), up to a constant) s.t. ``sum_k I~_lk z1(gamma_k; gamma^_k) <= c_l``, gamma >= 0;
* step 5: y by (13); step 6 (16): the concave quadratic f of (10) in V, with (16b) linearized
  by (15) (a weighted sum of ``||u_lk||``, second-order cones) and ``||U_l||_F^2 <= 1``.
  With y optimal, f(V, gamma, y*) = L1(V, gamma, lambda*), and each step keeps the previous iterate
  feasible (z1, z2 are tight concave upper bounds), so f never decreases (tested);
* x read off the beams: ``x_lk = 1`` iff ``||v_lk|| >= threshold * sqrt(P_l)`` (default 0.1: the link
  carries at least 1 % of its AP's budget); unserved beams are zeroed. The smoothed indicator counts a
  beam at ``||u|| = 0.1`` as 0.52 of a link, so smaller thresholds keep links that (16b) barely charged
  for: on 12 egat setups at 60 Mbit/s the reweighted variant's repaired WSR is 13.9 / 14.0 / 15.0 / 15.1
  bit/s/Hz for thresholds 1e-3 / 1e-2 / 0.1 / 0.2 (the literal variant: 13.1 / 13.1 / 12.8 / 12.6);
* scored with the actual SINRs (2), and projected by the problem's repair (Sect. V-A) when (3b) fails.

Taken literally (``variant="literal"``), (12)/(16) meet the fronthaul limit by lowering gamma below
the actual SINR: the linearized indicator never forces a beam to zero, so every link stays on and
the actual loads exceed C (measured in docs/problems.md). ``variant="reweighted"`` freezes the rates
at the previous iterate's actual ``ln(1 + SINR_k)`` (gamma = SINR, step 4 skipped): (16b) becomes a
reweighted-l1 penalty on the beam norms (Dai & Yu 2014, "Sparse beamforming and user-centric
clustering for downlink cloud radio access network"), weights ``r_k / (||u^_lk|| + delta)``, which
drives weak links to zero. Its subproblem can be infeasible at the start (full MRT overloads every
AP), so (16b) gets a slack ``s_l >= 0`` priced at ``penalty * sum_k w_k`` per nat, and the new
beams are a damped step from the old ones; f is not monotone for this variant.

Instances are solved one at a time (a Python loop by design: CVXPY is the reference, not a fast path).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import numpy as np
import torch

from cfmimo.problems.base import Allocation
from cfmimo.problems.fronthaul_wsr import FronthaulInstance, FronthaulWSR, loads
from cfmimo.sim.instantaneous import normalize_per_ap, received_gains, rzf, zf

__all__ = [
    "AOSCA",
    "FCZF",
    "PCWMMSE",
    "ao_sca_instance",
    "beam_step",
    "drop_weakest",
    "fczf_backoff",
    "gamma_step",
]

_PROBLEM = FronthaulWSR()


# ------------------------------------------------------------------------------------------- FC-ZF
def fczf_backoff(inst: FronthaulInstance, *, iterations: int = 60) -> tuple[torch.Tensor, torch.Tensor]:
    """FC-ZF precoders and their back-off factors (batched).

    ZF over all L*N antennas (``sim.instantaneous.zf``), one common scaling per instance so the most
    loaded AP meets (3c) (``normalize_per_ap(mode="common")``, keeps the nulls), then a common factor
    ``c in (0, 1]`` on every beam, the largest with ``BW sum_k log2(1 + SINR_k(c)) <= min_l C_l``:
    every AP serves every UE, so each AP's load is the sum rate. SINR_k(c) = c^2 a_k / (c^2 b_k + xi_k^2)
    increases with c (b_k ~ 0 for ZF), so bisection finds it; the lower end is kept (feasible).

    Shapes:
        inst with h [B, L, K, N] -> precoders [B, L, K, N], factors [B].
    """
    x = torch.ones(inst.h.shape[:-1], dtype=torch.bool, device=inst.h.device)
    v = normalize_per_ap(zf(inst.h, x), x, inst.power, mode="common")  # [B, L, K, N]
    # a margin of a few ulps, so the loads that the problem recomputes stay within C after rounding
    cap = inst.capacity.amin(-1) * (1 - 16 * torch.finfo(inst.capacity.dtype).eps)  # [B]

    g = received_gains(inst.h, v, x)  # [B, K, K], computed once: scaling by c scales g by c
    power = g.real.square() + g.imag.square()
    a = torch.diagonal(power, dim1=-2, dim2=-1)  # [B, K] signal
    b = power.sum(-1) - a  # [B, K] residual interference (~0 for ZF)

    def sum_rate(c: torch.Tensor) -> torch.Tensor:
        c2 = c.square().unsqueeze(-1)  # [B, 1]
        return inst.bandwidth_hz * torch.log2(1 + c2 * a / (c2 * b + inst.noise)).sum(-1)  # [B]

    one = torch.ones_like(cap)
    lo, hi = torch.zeros_like(cap), one.clone()
    fits = sum_rate(one) <= cap
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        ok = sum_rate(mid) <= cap
        lo, hi = torch.where(ok, mid, lo), torch.where(ok, hi, mid)
    c = torch.where(fits, one, lo)
    return v * c[:, None, None, None].to(v.dtype), c


@dataclass(frozen=True)
class FCZF:
    """FC-ZF baseline (Sect. V-A; Nayebi et al. 2017): every AP serves every UE, ZF, power back-off."""

    iterations: int = 60

    def __call__(self, inst: FronthaulInstance) -> Allocation:
        v, c = fczf_backoff(inst, iterations=self.iterations)
        x = torch.ones(inst.h.shape[:-1], dtype=torch.bool, device=inst.h.device)
        return Allocation(precoders=v, serving=x, info={"backoff": c})


# ------------------------------------------------------------------------------------------- AO-SCA
def _cvxpy():
    try:
        import cvxpy as cp
    except ImportError as err:  # pragma: no cover - depends on the installation
        raise RuntimeError("AO-SCA needs cvxpy and clarabel: pip install 'cfmimo[opt]'") from err
    return cp


@lru_cache(maxsize=16)
def _gamma_problem(L: int, K: int):
    """Step 4, problem (12): max sum_k w_k ln(1+g_k) - a_k g_k  s.t.  A g <= r, g >= 0 (DPP)."""
    cp = _cvxpy()
    g = cp.Variable(K, nonneg=True)
    w = cp.Parameter(K, nonneg=True)
    a = cp.Parameter(K, nonneg=True)
    A = cp.Parameter((L, K), nonneg=True)
    r = cp.Parameter(L)
    prob = cp.Problem(cp.Maximize(w @ cp.log(1 + g) - a @ g), [A @ g <= r])
    return prob, g, {"w": w, "a": a, "A": A, "r": r}


@lru_cache(maxsize=16)
def _beam_problem(L: int, K: int, N: int, slack: bool):
    """Step 6, problem (16) in U = [L*N, K] (scaled beams), DPP.

    max -||G U||_F^2 + Re sum(D o U) [- price * sum(s)]
    s.t. sum_k A_lk ||u_lk|| <= r_l [+ s_l],  ||U_l||_F^2 <= 1.
    """
    cp = _cvxpy()
    U = cp.Variable((L * N, K), complex=True)
    G = cp.Parameter((K, L * N), complex=True)
    D = cp.Parameter((L * N, K), complex=True)
    A = cp.Parameter((L, K), nonneg=True)
    r = cp.Parameter(L)
    params = {"G": G, "D": D, "A": A, "r": r}
    obj = -cp.sum_squares(G @ U) + cp.real(cp.sum(cp.multiply(D, U)))
    s = None
    if slack:
        s = cp.Variable(L, nonneg=True)
        price = cp.Parameter(nonneg=True)
        params["price"] = price
        obj = obj - price * cp.sum(s)
    cons = []
    for b in range(L):
        block = U[b * N : (b + 1) * N, :]
        rhs = r[b] + s[b] if slack else r[b]
        cons.append(A[b, :] @ cp.norm(block, 2, axis=0) <= rhs)
        cons.append(cp.sum_squares(block) <= 1)
    return cp.Problem(cp.Maximize(obj), cons), U, params


def _solve(prob) -> bool:
    cp = _cvxpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            prob.solve(solver=cp.CLARABEL)
        except cp.SolverError:
            return False
    return prob.status in ("optimal", "optimal_inaccurate")


def _received(H: np.ndarray, U: np.ndarray, noise: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """signal s_k = h_k^H u_k, total T_k = sum_j |h_k^H u_j|^2 + xi_k^2 and SINR_k (2). H, U [LN, K]."""
    g = H.conj().T @ U  # [K(receiver), K(stream)]
    s = np.diag(g).copy()
    total = (np.abs(g) ** 2).sum(1) + noise
    sig = np.abs(s) ** 2
    return s, total, sig / np.maximum(total - sig, 1e-300)


def _f(w, gamma, y, s, total) -> float:
    """f(V, gamma, y) of (10), nats."""
    return float(
        np.sum(
            w * np.log1p(gamma)
            - w * gamma
            - np.abs(y) ** 2 * total
            + 2 * np.sqrt(w * (1 + gamma)) * np.real(np.conj(y) * s)
        )
    )


def _norms(U: np.ndarray, L: int, N: int) -> np.ndarray:
    """||u_lk|| [L, K] of U [L*N, K]."""
    return np.linalg.norm(U.reshape(L, N, -1), axis=1)


def gamma_step(
    weights: np.ndarray,
    sinr_k: np.ndarray,
    indicator: np.ndarray,
    gamma_hat: np.ndarray,
    capacity_nats: np.ndarray,
) -> np.ndarray | None:
    """Step 4, problem (12) (CVXPY + Clarabel, compiled once per (L, K)).

    max_gamma sum_k w_k ln(1 + gamma_k) - w_k gamma_k / (1 + SINR_k)
    s.t.      sum_k I~_lk [ln(1 + gamma^_k) + (gamma_k - gamma^_k) / (1 + gamma^_k)] <= c_l,  gamma >= 0.

    Shapes: weights, sinr_k, gamma_hat [K]; indicator [L, K]; capacity_nats [L] -> [K] (None if unsolved).
    """
    L, K = indicator.shape
    prob, g, par = _gamma_problem(L, K)
    par["w"].value = weights
    par["a"].value = weights / (1.0 + sinr_k)
    par["A"].value = indicator / (1.0 + gamma_hat)[None, :]
    par["r"].value = capacity_nats - (
        indicator * (np.log1p(gamma_hat) - gamma_hat / (1 + gamma_hat))[None, :]
    ).sum(1)
    if not _solve(prob):
        return None
    return np.maximum(np.asarray(g.value, dtype=float), 0.0)


def beam_step(
    H: np.ndarray,
    weights: np.ndarray,
    gamma: np.ndarray,
    y: np.ndarray,
    u_hat_norms: np.ndarray,
    capacity_nats: np.ndarray,
    *,
    delta: float,
    price: float | None = None,
) -> np.ndarray | None:
    """Step 6, problem (16) in the scaled beams U (CVXPY + Clarabel, compiled once per size).

    max_U  -sum_k |y_k|^2 sum_j |h'_k^H u_j|^2 + 2 sum_k sqrt(w_k (1 + gamma_k)) Re(conj(y_k) h'_k^H u_k)
    s.t.   sum_k ln(1 + gamma_k) / ln(1/delta + 1) * z2(u_lk; u^_lk) <= c_l [+ s_l],  ||U_l||_F^2 <= 1,

    z2 of (15) with the norm over delta: ln(||u^||/delta + 1) + (||u|| - ||u^||) / (||u^|| + delta).
    ``price``: when given, (16b) gets a slack s_l >= 0 priced at ``price`` per nat (reweighted variant).

    Shapes: H [L*N, K] (column k stacks h'_lk = sqrt(P_l) h_lk); weights, gamma, y [K];
    u_hat_norms [L, K]; capacity_nats [L] -> U [L*N, K] (None if unsolved).
    """
    L, K = u_hat_norms.shape
    N = H.shape[0] // L
    prob, U, par = _beam_problem(L, K, N, price is not None)
    rho = np.log1p(gamma) / math.log(1.0 / delta + 1.0)  # [K]
    un = u_hat_norms
    par["G"].value = np.abs(y)[:, None] * H.conj().T  # [K, LN]: diag(|y|) H^H
    par["D"].value = H.conj() * (2 * np.sqrt(weights * (1 + gamma)) * np.conj(y))[None, :]
    par["A"].value = rho[None, :] / (un + delta)
    par["r"].value = capacity_nats - (rho[None, :] * (np.log(un / delta + 1) - un / (un + delta))).sum(1)
    if price is not None:
        par["price"].value = price
    if not _solve(prob):
        return None
    return np.asarray(U.value)


def ao_sca_instance(
    h: np.ndarray,
    weights: np.ndarray,
    noise: np.ndarray,
    power: np.ndarray,
    capacity_nats: np.ndarray,
    *,
    variant: Literal["literal", "reweighted"] = "literal",
    delta: float = 0.01,
    max_iter: int = 50,
    tol: float = 1e-3,
    penalty: float = 1.0,
    damping: float = 0.5,
) -> dict[str, Any]:
    """Algorithm 1 on one instance (numpy, complex128). Returns the beams and the history.

    Args:
        h: [L, K, N] channels; weights, noise: [K]; power: [L]; capacity_nats: [L], C_l ln2 / BW.
        variant, delta, max_iter, tol, penalty, damping: see :class:`AOSCA`.

    Returns:
        {"v" [L, K, N] (unscaled beams), "gamma" [K], "f" [iterations + 1] (f of (10) per iteration,
        the start first), "wsr_nats" (actual sum_k w_k ln(1+SINR_k) per iteration), "iterations",
        "converged", "failed" (a subproblem did not solve; the last good iterate is kept)}.
    """
    L, K, N = h.shape
    sq = np.sqrt(power)
    H = (h * sq[:, None, None]).transpose(0, 2, 1).reshape(L * N, K)  # [LN, K]: h'_k stacked
    # MRT on every link, each AP at its full budget (37) -> ||U_l||_F = 1
    U = h.transpose(0, 2, 1).copy()  # [L, N, K]
    U = U / np.maximum(np.linalg.norm(U, axis=(1, 2), keepdims=True), 1e-300)
    U = U.reshape(L * N, K)
    gamma = np.zeros(K)
    s, total, sinr_k = _received(H, U, noise)
    y = np.sqrt(weights * (1 + gamma)) * s / total  # (13)
    f_hist = [_f(weights, gamma, y, s, total)]
    wsr_hist = [float(np.sum(weights * np.log1p(sinr_k)))]
    price = penalty * float(weights.sum()) if variant == "reweighted" else None
    converged = failed = False
    for _ in range(max_iter):
        un = _norms(U, L, N)  # [L, K] ||u^_lk||
        if variant == "literal":
            # step 4: (12) with the smoothed indicator (14) of the previous beams, z1 around gamma^
            ind = np.log(un / delta + 1.0) / math.log(1.0 / delta + 1.0)  # [L, K]
            new_gamma = gamma_step(weights, sinr_k, ind, gamma, capacity_nats)
            if new_gamma is None:
                failed = True
                break
            gamma = new_gamma
        else:
            gamma = sinr_k.copy()  # rates frozen at the previous iterate (gamma = SINR maximizes L1)
        y = np.sqrt(weights * (1 + gamma)) * s / total  # step 5: (13) at the previous beams
        U_new = beam_step(H, weights, gamma, y, un, capacity_nats, delta=delta, price=price)  # step 6
        if U_new is None:
            failed = True
            break
        U = U_new if variant == "literal" else (1 - damping) * U + damping * U_new
        s, total, sinr_k = _received(H, U, noise)
        f_hist.append(_f(weights, gamma, y, s, total))
        wsr_hist.append(float(np.sum(weights * np.log1p(sinr_k))))
        track = f_hist if variant == "literal" else wsr_hist
        if abs(track[-1] - track[-2]) <= tol * max(1.0, abs(track[-1])):
            converged = True
            break
    v = U.reshape(L, N, K).transpose(0, 2, 1) * sq[:, None, None]  # [L, K, N]
    return {
        "v": v,
        "gamma": gamma,
        "f": f_hist,
        "wsr_nats": wsr_hist,
        "iterations": len(f_hist) - 1,
        "converged": converged,
        "failed": failed,
    }


@dataclass(frozen=True)
class AOSCA:
    """AO-SCA (Algorithm 1) with the fixes listed in the module docstring.

    Args:
        variant: ``"literal"`` (the paper's steps 4-6) or ``"reweighted"`` (rates frozen at the previous
            iterate: reweighted-l1, switches links off).
        delta: smoothing constant of (14) on ``||v_lk|| / sqrt(P_l)``.
        max_iter, tol: stop when ``|f_t - f_{t-1}| <= tol * max(1, |f_t|)`` (literal; the actual WSR in
            nats for the reweighted variant) or after max_iter iterations.
        threshold: x_lk = 1 iff ``||v_lk|| >= threshold * sqrt(P_l)``.
        repair: project onto (3b) with the problem's repair when the actual loads exceed C.
        penalty: reweighted variant only, slack price per nat of (16b) excess, times sum_k w_k.
        damping: reweighted variant only, U_t = (1 - damping) U_{t-1} + damping U*: a full step (1.0)
            overshoots (the frozen rates of the MRT start are far above C, so the first step switches
            every beam off, the next turns them back on); 0.5 settles (docs/problems.md).

    ``info``: "f" (list per instance of f (10) per iteration, nats, the MRT start first), "wsr_iter" (the
    actual WSR per iteration, bit/s/Hz), "iterations", "converged", "failed" [B], "links_on" [B] (links
    above the threshold before repair), "feasible_before_repair" [B], "wsr_before_repair" [B] (bit/s/Hz of the
    thresholded beams, actual SINRs), "seconds" [B].
    """

    variant: Literal["literal", "reweighted"] = "literal"
    delta: float = 0.01
    max_iter: int = 50
    tol: float = 1e-3
    threshold: float = 0.1
    repair: bool = True
    penalty: float = 1.0
    damping: float = 0.5

    def __post_init__(self) -> None:
        if self.variant not in ("literal", "reweighted"):
            raise ValueError(f"variant must be 'literal' or 'reweighted', got {self.variant!r}")
        if not 0 < self.delta < 1:
            raise ValueError(f"delta must be in (0, 1), got {self.delta}")

    def __call__(self, inst: FronthaulInstance) -> Allocation:
        B = inst.batch
        h = inst.h.detach().cpu().to(torch.complex128).numpy()
        w = inst.weights.detach().cpu().double().numpy()
        xi = inst.noise.detach().cpu().double().numpy()
        p = inst.power.detach().cpu().double().numpy()
        c = (inst.capacity.detach().cpu().double() * math.log(2.0) / inst.bandwidth_hz).numpy()
        out, hist = [], []
        seconds = []
        for b in range(B):
            start = time.perf_counter()
            r = ao_sca_instance(
                h[b],
                w[b],
                xi[b],
                p[b],
                c[b],
                variant=self.variant,
                delta=self.delta,
                max_iter=self.max_iter,
                tol=self.tol,
                penalty=self.penalty,
                damping=self.damping,
            )
            seconds.append(time.perf_counter() - start)
            out.append(r["v"])
            hist.append(r)
        v = torch.from_numpy(np.stack(out)).to(device=inst.h.device, dtype=inst.h.dtype)  # [B, L, K, N]
        norm = v.abs().square().sum(-1).sqrt()  # [B, L, K]
        x = norm >= self.threshold * inst.power.sqrt().unsqueeze(-1)
        v = v * x.unsqueeze(-1)
        alloc = Allocation(precoders=v, serving=x)
        violation = _PROBLEM.violation(inst, alloc)
        info = {
            "f": [r["f"] for r in hist],
            "wsr_iter": [[q / math.log(2.0) for q in r["wsr_nats"]] for r in hist],
            "iterations": torch.tensor([r["iterations"] for r in hist]),
            "converged": torch.tensor([r["converged"] for r in hist]),
            "failed": torch.tensor([r["failed"] for r in hist]),
            "links_on": x.flatten(1).sum(-1),
            "feasible_before_repair": violation <= 1e-9,
            "wsr_before_repair": _PROBLEM.objective(inst, alloc),
            "seconds": torch.tensor(seconds),
        }
        alloc = Allocation(precoders=v, serving=x, info=info)
        if self.repair and bool((violation > 1e-9).any()):
            alloc = _PROBLEM.repair(inst, alloc)
        return alloc


# ------------------------------------------------------------------------------------------- PC-WMMSE
def drop_weakest(inst: FronthaulInstance, precoders: torch.Tensor, serving: torch.Tensor) -> torch.Tensor:
    """One PC-WMMSE dropping round: every overloaded AP disconnects its weakest served UE that carries
    load (smallest ||h_lk||), as Sect. V-A describes PC-WMMSE. Returns the new mask.

    Shapes: precoders [B, L, K, N]; serving bool [B, L, K] -> bool [B, L, K].
    """
    rate, load = loads(inst, precoders, serving)
    over = load > inst.capacity  # [B, L]
    carrying = serving & (rate.unsqueeze(-2) > 0)  # an overloaded AP always has such a link
    gain = inst.h.abs().square().sum(-1)  # [B, L, K]
    key = torch.where(carrying, gain, torch.full_like(gain, math.inf))
    hit = (
        torch.zeros_like(serving).scatter(-1, key.argmin(-1, keepdim=True), True) & carrying & over[..., None]
    )
    return serving & ~hit


@dataclass(frozen=True)
class PCWMMSE:
    """PC-WMMSE baseline (Sect. V-A): WMMSE with per-AP power on the full association, then, while an AP
    is overloaded, disconnect its weakest served UE (smallest ||h_lk||).

    The WMMSE is the shared one (:func:`cfmimo.policies.classical.wmmse.wmmse`: per-AP blocks, the WSR
    never decreases), started from RZF on all links (regularization K xi^2 / sum_l P_l) at full per-AP
    power. By default (``reoptimize=False``, the paper's one-line description read literally) links are
    only dropped from the first solution. With ``reoptimize=True`` WMMSE is re-run, warm-started, on the
    reduced association of the instances that lost a link in a round (each run is monotone; a drop itself
    can lower the WSR) — measured worse: re-optimized rates grow back and overload the APs again, so more
    links go (16 egat setups at 60 Mbit/s: WSR 7.55 bit/s/Hz and 1.55 APs per UE without, 3.78 and 0.89
    with re-optimization; WMMSE on all links before dropping: 23.8 bit/s/Hz, infeasible).
    Every round drops at least one link of each instance that is still overloaded, so there are at most
    L*K rounds and the result meets (3b)-(3d) without the problem's repair.

    ``info``: "history" [B, T + 1] (WSR per WMMSE iteration of the first run, before any drop, bit/s/Hz),
    "iterations" [B], "wsr_before_drop" [B], "feasible_before_drop" [B] (the first WMMSE solution meets
    (3b)), "rounds" (dropping rounds), "dropped" [B] (links disconnected).
    """

    max_iterations: int = 200
    tol: float = 1e-6
    reoptimize: bool = False

    def __call__(self, inst: FronthaulInstance) -> Allocation:
        from cfmimo.policies.classical.wmmse import wmmse

        noise = inst.noise[:, 0]
        if not bool((inst.noise == noise[:, None]).all()):
            raise ValueError(
                "PC-WMMSE (the shared WMMSE) needs one noise power per instance: noise equal over K"
            )
        _, L, K, _ = inst.h.shape
        x = torch.ones(inst.h.shape[:-1], dtype=torch.bool, device=inst.h.device)
        lam = (K * noise / inst.power.sum(-1))[:, None]  # [B, 1]
        start = normalize_per_ap(rzf(inst.h, x, lam), x, inst.power, mode="per_ap")

        def run(v0: torch.Tensor, mask: torch.Tensor):
            return wmmse(
                inst.h,
                mask,
                inst.power,
                noise,
                inst.weights,
                v0,
                max_iterations=self.max_iterations,
                tol=self.tol,
            )

        first = run(start, x)
        v = first.precoders * x.unsqueeze(-1)
        before = Allocation(precoders=v, serving=x)
        wsr0 = _PROBLEM.objective(inst, before)
        feasible0 = _PROBLEM.violation(inst, before) <= 1e-9
        rounds = 0
        while bool((loads(inst, v, x)[1] > inst.capacity).any()):
            if rounds >= L * K:  # pragma: no cover - excluded: every round drops a link
                raise RuntimeError("PC-WMMSE dropping did not terminate within L*K rounds")
            rounds += 1
            x_new = drop_weakest(inst, v, x)
            changed = (x_new != x).flatten(1).any(-1)  # [B]
            x = x_new
            v = v * x.unsqueeze(-1)
            if self.reoptimize:
                v = torch.where(changed[:, None, None, None], run(v, x).precoders, v) * x.unsqueeze(-1)
        info = {
            "history": first.history,
            "iterations": first.iterations,
            "wsr_before_drop": wsr0,
            "feasible_before_drop": feasible0,
            "rounds": rounds,
            "dropped": (~x).flatten(1).sum(-1),
        }
        return Allocation(precoders=v, serving=x, info=info)
