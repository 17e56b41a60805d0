"""Weighted MMSE (Shi, Razaviyayn, Luo, He 2011) for weighted sum-rate precoding with per-AP budgets and
a UE-AP association: the reference of the three GNN precoding papers (AAGNN, EGAT, and the fronthaul
paper's WSR), written once.

Problem (``SumRatePrecoding``): max_V sum_k alpha_k log2(1 + gamma_k) s.t. sum_k ||v_lk||^2 <= P_l, with
gamma_k from AAGNN eq. (2): only served links carry signal (g_ki = sum_l d_li h_lk^H v_li), and every
link of a served stream interferes at every UE. WMMSE solves the equivalent (Shi et al., Thm. 1)

    min_{u, w, V}  sum_k alpha_k (w_k e_k - log w_k),
    e_k = |u_k|^2 (sum_i |g_ki|^2 + sigma^2) - 2 Re(u_k^* g_kk) + 1

by block coordinate descent:

1. receivers  u_k = g_kk / (sum_i |g_ki|^2 + sigma^2)                         (MMSE)
2. weights    w_k = 1 / e_k = 1 + gamma_k
3. precoders, one AP block at a time (Gauss-Seidel over APs, the others fixed). With
   a_k = alpha_k w_k |u_k|^2, A_l = sum_k a_k h_lk h_lk^H (N x N, the same for every stream) and
   c_li = alpha_i w_i u_i h_li - sum_k a_k h_lk (g_ki - h_lk^H v_li)  (the other APs' part of A v_i),
   AP l's served streams are v_li = (A_l + mu_l I)^{-1} c_li, unserved v_li = 0. The multiplier mu_l
   of the AP's budget is 0 if the (pseudo-inverse) solution fits, otherwise the root of the decreasing
   p_l(mu) = sum_i ||v_li(mu)||^2 = P_l, found from one eigendecomposition A_l = U diag(lambda) U^H by a
   batched multisection in log(mu) that returns the feasible end of its bracket.
   An AP serving nobody has c_l = 0 and sends zero.

Every block step minimizes the WMMSE cost exactly, so the weighted sum rate never decreases (Shi et al.,
Thm. 3) and limit points are KKT points of the sum-rate problem. Per-AP blocks are exact because the
per-AP constraints are separable; this replaces Shi et al.'s per-BS bisection, which assumes each BS
owns its precoders (no joint transmission).

Batched over instances and starts: a batch of B instances with S + 1 starts (the per-AP-scaled RZF
start and S random ones) runs as one [B (S+1), ...] tensor problem; a start stops being updated once its
relative objective gain per iteration is below ``tol``, so a start's trajectory never depends on the
rest of the batch (batched = per-instance loop). The policy returns the best start per instance.
Random starts are drawn once from ``seed`` for the instance shape and shared by every instance, so
results do not depend on batch composition; they are not UE/AP-permutation equivariant (a policy with
``random_starts=0`` is UE-equivariant; the AP sweep order makes the path, not the fixed-point
conditions, order dependent).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from cfmimo.policies.classical.precoders import RZFPrecoder
from cfmimo.problems.base import Allocation
from cfmimo.problems.sumrate_precoding import PrecodingInstance
from cfmimo.sim.instantaneous import normalize_per_ap

__all__ = ["WMMSE", "WMMSEResult", "wmmse", "wmmse_starts"]


@dataclass(frozen=True)
class WMMSEResult:
    """Outcome of :func:`wmmse` for P problems (instances x starts, flattened).

    Shapes:
        precoders complex [P, L, K, N]; objective [P] (weighted sum rate, bit/s/Hz); iterations [P] long
        (iterations until convergence, or the cap); converged [P] bool; history [P, T + 1] (objective
        of the start and after each of the T iterations run; constant once a problem has converged).
    """

    precoders: Tensor
    objective: Tensor
    iterations: Tensor
    converged: Tensor
    history: Tensor


def _abs2(x: Tensor) -> Tensor:
    return x.real.square() + x.imag.square()


def _gains(h: Tensor, v: Tensor) -> Tensor:
    """g_ki = sum_l h_lk^H v_li (v already zero on unserved links). Shapes: [P, L, K, N] -> [P, K, K]."""
    P, L, K, N = h.shape
    hf = h.conj().permute(0, 2, 1, 3).reshape(P, K, L * N)  # [P, K, L*N]
    vf = v.permute(0, 2, 1, 3).reshape(P, K, L * N)  # [P, K(i), L*N]
    return hf @ vf.mT  # [P, K, K(i)]  (bmm: einsum with these shapes is far slower on CPU)


def _objective(g: Tensor, noise: Tensor, alpha: Tensor) -> Tensor:
    """sum_k alpha_k log2(1 + gamma_k) from the gains. Shapes: g [P, K, K]; noise [P]; alpha [P, K] -> [P]."""
    power = _abs2(g)  # [P, K, K]
    signal = torch.diagonal(power, dim1=-2, dim2=-1)  # [P, K]
    interference = power.sum(-1) - signal + noise[:, None]  # [P, K]
    return (alpha * torch.log2(1.0 + signal / interference)).sum(-1)


def _ap_power(s: Tensor, lam: Tensor, mu: Tensor) -> Tensor:
    """p(mu) = sum_n s_n / (lambda_n + mu)^2. Shapes: s, lam [P, N]; mu [P, G] -> [P, G]."""
    return (s[:, None, :] / (lam[:, None, :] + mu[:, :, None]).square()).sum(-1)


def _multiplier(s: Tensor, lam: Tensor, budget: Tensor, rounds: int, points: int, newton: int = 3) -> Tensor:
    """The multiplier of one AP budget: 0 if the pseudo-inverse solution fits (p(0) <= P), else the root of
    p(mu) = sum_n s_n / (lam_n + mu)^2 = P: multisection in log(mu), then Newton steps inside the bracket.

    ``s`` holds the (weighted) squared coefficients of c in the eigenbasis with null-space components
    already zeroed, ``lam`` the eigenvalues (0 on the null space).

    Shapes: s, lam [P, N]; budget [P] -> mu [P].
    """
    positive = lam > 0
    p0 = torch.where(positive, s / torch.where(positive, lam, 1.0).square(), 0.0).sum(-1)  # [P]
    need = p0 > budget
    hi = (s.sum(-1) / budget).sqrt().clamp_min(torch.finfo(s.dtype).tiny)  # p(hi) <= sum s / hi^2 = P
    log_hi = hi.log()
    log_lo = log_hi - 12 * math.log(10.0)  # bracket [1e-12 hi, hi] in log(mu)
    t = torch.linspace(0.0, 1.0, points, dtype=s.dtype, device=s.device)  # [G]
    for _ in range(rounds):
        log_grid = log_lo[:, None] + (log_hi - log_lo)[:, None] * t  # [P, G], grid[:, -1] = hi
        fits = _ap_power(s, lam, log_grid.exp()) <= budget[:, None]  # [P, G], monotone in mu
        # first feasible grid point (the last one, hi, fits up to rounding)
        j = (points - fits.sum(-1)).clamp_max(points - 1)
        log_hi = log_grid.gather(-1, j[:, None]).squeeze(-1)
        below = log_grid.gather(-1, (j - 1).clamp_min(0)[:, None]).squeeze(-1)
        log_lo = torch.where(j > 0, below, log_lo - 3 * math.log(10.0))  # mu* below the bracket: extend
    # Newton on q(mu) = p(mu)^(-1/2) (close to linear in mu), kept inside the final bracket, for a
    # multiplier accurate to rounding; the caller then scales the block to exactly P.
    lo, hi = log_lo.exp(), log_hi.exp()
    mu = hi
    for _ in range(newton):
        r = 1.0 / (lam + mu[:, None])  # [P, D]
        p = (s * r.square()).sum(-1)  # [P]
        dp = -2.0 * (s * r.pow(3)).sum(-1)  # [P]
        q, dq = p.rsqrt(), -0.5 * p.pow(-1.5) * dp
        step = (q - budget.rsqrt()) / torch.where(dq > 0, dq, 1.0)
        mu = torch.where((dq > 0) & (p > 0), mu - step, mu).clamp(lo, hi)
    hi = mu
    return torch.where(need, hi, torch.zeros_like(hi))


def _ap_block(
    h_l: Tensor,
    v_l: Tensor,
    d_l: Tensor,
    g: Tensor,
    a: Tensor,
    beta: Tensor,
    budget: Tensor,
    rounds: int,
    points: int,
) -> Tensor:
    """AP l's exact precoder update with the other APs fixed (module docstring, step 3).

    Shapes: h_l, v_l [P, K, N]; d_l [P, K]; g [P, K, K]; a [P, K]; beta [P, K] complex; budget [P]
    -> v_l [P, K, N].
    """
    q = h_l.conj() @ v_l.mT  # [P, K, K(i)]: AP l's share of g
    rest = g - q  # [P, K(k), K(i)]: the other APs' part
    K, N = h_l.shape[-2:]
    tiny = torch.finfo(a.dtype).tiny
    if K <= N:
        # Rank-K structure: A_l = B B^H with B = [sqrt(a_k) h_lk] (N x K) and c_i = B x_i, so
        # (A_l + mu I)^+ c_i = B (G + mu I)^+ x_i with the K x K Gram G = B^H B = Q diag(sigma) Q^H and
        # ||v_i||^2 = sum_j sigma_j |(Q^H x_i)_j|^2 / (sigma_j + mu)^2: a K x K instead of N x N eigenproblem.
        ra = a.sqrt()  # [P, K]
        bt = ra[..., None] * h_l  # [P, K, N]: row k = (sqrt(a_k) h_lk)^T = column k of B
        diag = torch.where(ra > 0, beta / ra.clamp_min(tiny), 0.0)  # [P, K]: beta_i / sqrt(a_i)
        x = torch.diag_embed(diag) - rest.mT * ra[:, None, :]  # [P, K(i), K(k)]
        x = x * d_l[..., None]  # unserved streams stay zero
        lam, Q = torch.linalg.eigh(bt.conj() @ bt.mT)  # G [P, K, K]: lam [P, K] ascending
        basis, back = Q.conj(), lambda z: z @ Q.mT @ bt  # v rows = (B Q z_i)^T
        weight = lam  # ||B Q e_j||^2 = sigma_j
    else:
        ah = a[..., None] * h_l  # [P, K, N]: a_k h_lk
        x = (beta[..., None] * h_l - rest.mT @ ah) * d_l[..., None]  # [P, K(i), N]: c_i, unserved zero
        lam, U = torch.linalg.eigh(ah.mT @ h_l.conj())  # A_l = sum_k a_k h_lk h_lk^H [P, N, N]
        basis, back = U.conj(), lambda z: z @ U.mT  # v rows = (U z_i)^T
        weight = torch.ones_like(lam)
    eps = 100 * torch.finfo(lam.dtype).eps * lam[:, -1:].clamp_min(tiny)
    null = lam <= eps  # numerical null space: x has no component there in exact arithmetic
    lam = torch.where(null, torch.zeros_like(lam), lam)
    y = (x @ basis).masked_fill(null[:, None, :], 0.0)  # [P, K(i), D]: row i = (Q^H x_i)^T
    mu = _multiplier(weight * _abs2(y).sum(1), lam, budget, rounds, points)  # [P]
    denom = lam + mu[:, None]  # [P, D]
    coef = torch.where(null | (denom <= 0), 0.0, 1.0 / torch.where(denom > 0, denom, 1.0))  # [P, D]
    v_new = back(y * coef[:, None, :])  # [P, K(i), N]
    power = _abs2(v_new).sum(dim=(-2, -1))  # [P]
    # mu > 0: the budget binds (complementary slackness), so scale to exactly P_l (this also removes the
    # multiplier's rounding); mu = 0: only guard against exceeding the budget by rounding
    tight = (mu > 0) | (power > budget)
    scale = torch.where(tight & (power > 0), (budget / power.clamp_min(tiny)).sqrt(), 1.0)
    return v_new * scale[:, None, None]


def wmmse(
    h: Tensor,
    association: Tensor,
    p_max: Tensor,
    noise: Tensor,
    weights: Tensor,
    start: Tensor,
    *,
    max_iterations: int = 500,
    tol: float = 1e-6,
    rounds: int = 3,
    points: int = 32,
    sweeps: int = 1,
) -> WMMSEResult:
    """Run WMMSE from ``start`` on P problems at once (module docstring).

    Args:
        h, association, p_max, noise, weights: as in :class:`PrecodingInstance`, with P problems.
        start: initial precoders (masked and clipped to the budgets here).
        max_iterations: iteration cap; tol: a problem converges when its objective gains less than
            ``tol * max(|objective|, 1e-12)`` in one iteration, after which it is frozen.
        rounds, points: multisection of each multiplier: ``points`` per round, ``rounds`` rounds
            (the log-bracket of width log(1e12) shrinks by (points - 1)^rounds, to ~1e-3 by default),
            followed by 3 Newton steps (quadratic convergence) and an exact scaling to the budget.
        sweeps: Gauss-Seidel sweeps over the APs per iteration (u, w fixed); 1 is Shi et al.'s scheme
            with the precoder step split into AP blocks.

    Shapes:
        h, start complex [P, L, K, N]; association bool [P, L, K]; p_max [P, L]; noise [P];
        weights [P, K] -> WMMSEResult.
    """
    if max_iterations < 0:
        raise ValueError(f"max_iterations must be >= 0, got {max_iterations}")
    if not tol >= 0:
        raise ValueError(f"tol must be >= 0, got {tol}")
    P, L = h.shape[:2]
    d = association.to(h.real.dtype)  # [P, L, K]
    # masked start, clipped so no AP exceeds its budget (a feasible start keeps the history meaningful)
    v = start * d[..., None]
    power = _abs2(v).sum(dim=(-2, -1))  # [P, L]
    v = v * torch.where(power > p_max, (p_max / power.clamp_min(1e-300)).sqrt(), 1.0)[..., None, None].to(
        v.dtype
    )
    g = _gains(h, v)
    obj = _objective(g, noise, weights)
    history = [obj]
    active = torch.ones(P, dtype=torch.bool, device=h.device)
    iterations = torch.zeros(P, dtype=torch.long, device=h.device)
    for _ in range(max_iterations):
        if not bool(active.any()):
            break
        # steps 1-2: MMSE receivers and weights (gamma from the current gains)
        pw = _abs2(g)  # [P, K, K]
        signal = torch.diagonal(pw, dim1=-2, dim2=-1)  # [P, K]
        total = pw.sum(-1) + noise[:, None]  # [P, K]
        u = torch.diagonal(g, dim1=-2, dim2=-1) / total  # [P, K]
        w = total / (total - signal)  # 1 / e_k = 1 + gamma_k, [P, K]
        a = weights * w * _abs2(u)  # [P, K]
        beta = (weights * w) * u  # [P, K]
        # step 3: Gauss-Seidel over AP blocks (each step batched over problems, streams and antennas)
        v_new, g_new = v, g
        for _ in range(sweeps):
            blocks = []
            for l in range(L):
                v_l = _ap_block(h[:, l], v_new[:, l], d[:, l], g_new, a, beta, p_max[:, l], rounds, points)
                g_new = g_new + h[:, l].conj() @ (v_l - v_new[:, l]).mT
                blocks.append(v_l)
            v_new = torch.stack(blocks, dim=1)  # [P, L, K, N]
        g_new = _gains(h, v_new)  # recomputed (no drift from the incremental updates)
        obj_new = _objective(g_new, noise, weights)
        # freeze converged problems so a trajectory never depends on the rest of the batch
        keep = active[:, None, None]
        v = torch.where(keep[..., None], v_new, v)
        g = torch.where(keep, g_new, g)
        gain = obj_new - obj
        obj = torch.where(active, obj_new, obj)
        iterations = iterations + active.long()
        active = active & (gain > tol * obj_new.abs().clamp_min(1e-12))
        history.append(obj)
    return WMMSEResult(v, obj, iterations, ~active, torch.stack(history, dim=-1))


def wmmse_starts(
    instance: PrecodingInstance, random_starts: int, *, seed: int, rzf_start: bool = True
) -> Tensor:
    """Initial precoders: the per-AP-scaled RZF start and ``random_starts`` random ones (CN(0, 1) entries,
    masked, every AP at full power). The random draws come from ``seed`` for the instance shape and
    are shared by all instances (batch composition never changes them).

    Shapes: -> complex [B, S, L, K, N] with S = rzf_start + random_starts.
    """
    starts = []
    if rzf_start:
        starts.append(RZFPrecoder("per_ap")(instance).precoders)
    if random_starts > 0:
        B, L, K, N = instance.h.shape
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(random_starts, L, K, N, 2, generator=g, dtype=torch.float64) / math.sqrt(2.0)
        z = torch.view_as_complex(z).to(dtype=instance.h.dtype, device=instance.h.device)  # [S, L, K, N]
        for s in range(random_starts):
            v = z[s].expand(B, L, K, N)
            starts.append(normalize_per_ap(v, instance.association, instance.p_max, mode="per_ap"))
    if not starts:
        raise ValueError("WMMSE needs at least one start: rzf_start=True or random_starts > 0")
    return torch.stack(starts, dim=1)


@dataclass(frozen=True)
class WMMSE:
    """WMMSE policy: best of {RZF start, ``random_starts`` random starts}, each run to convergence.

    ``info``: ``objective_starts`` [B, S], ``iterations`` [B, S], ``converged`` [B, S],
    ``history`` [B, S, T + 1] (objective per iteration), ``best_start`` [B] (0 = RZF when used),
    ``start_names``.
    """

    random_starts: int = 4
    rzf_start: bool = True
    max_iterations: int = 500
    tol: float = 1e-6
    seed: int = 0
    rounds: int = 3
    points: int = 32
    sweeps: int = 1

    def __post_init__(self) -> None:
        if self.random_starts < 0:
            raise ValueError(f"random_starts must be >= 0, got {self.random_starts}")
        if not self.rzf_start and self.random_starts == 0:
            raise ValueError("WMMSE needs at least one start: rzf_start=True or random_starts > 0")
        if self.max_iterations < 0:
            raise ValueError(f"max_iterations must be >= 0, got {self.max_iterations}")
        if self.rounds < 1 or self.points < 3:
            raise ValueError(f"rounds must be >= 1 and points >= 3, got {self.rounds}, {self.points}")

    def __call__(self, instance: PrecodingInstance) -> Allocation:
        B, L, K, N = instance.h.shape
        v0 = wmmse_starts(instance, self.random_starts, seed=self.seed, rzf_start=self.rzf_start)
        S = v0.shape[1]

        def rep(x: Tensor) -> Tensor:  # [B, ...] -> [B * S, ...], start index fastest
            return x.repeat_interleave(S, dim=0)

        res = wmmse(
            rep(instance.h),
            rep(instance.association),
            rep(instance.p_max),
            rep(instance.noise),
            rep(instance.weights),
            v0.reshape(B * S, L, K, N),
            max_iterations=self.max_iterations,
            tol=self.tol,
            rounds=self.rounds,
            points=self.points,
            sweeps=self.sweeps,
        )
        obj = res.objective.reshape(B, S)
        best = obj.argmax(-1)  # [B]
        v = res.precoders.reshape(B, S, L, K, N)[torch.arange(B, device=best.device), best]
        names = (["rzf"] if self.rzf_start else []) + [f"random{s}" for s in range(self.random_starts)]
        info = {
            "objective": obj.gather(-1, best[:, None]).squeeze(-1),
            "objective_starts": obj,
            "iterations": res.iterations.reshape(B, S),
            "converged": res.converged.reshape(B, S),
            "history": res.history.reshape(B, S, -1),
            "best_start": best,
            "start_names": names,
        }
        return Allocation(precoders=v, info=info)
