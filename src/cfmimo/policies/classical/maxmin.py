"""Max-min fair power control with affine interference (Miretti et al., VTC 2022; the book's Sect. 7).

Both UatF SINRs have the form SINR_k(p) = p_k / ((T p)_k + u_k) with T >= 0 and u > 0:
  UL (papers' eq. (4)):  T_ki = c_ki / b_k (i != k), T_kk = (c_kk - b_k) / b_k,  u_k = s_k / b_k;
  DL (papers' eq. (7)):  T_ki = d_ki / a_k (i != k), T_kk = (d_kk - a_k) / a_k,  u_k = 1 / a_k.
Constraints are linear, a_j^T p <= P_j for j = 1..J, written A [B, J, K] and budget [B, J]:
  per-UE caps (UL): A = I;  sum power (the papers' DL): A = 1^T;  per-AP (the book's DL): A = power shares.

The problem max_p min_k SINR_k s.t. A p <= P has optimal common SINR 1/lambda*, where (DESIGN 9.10)

    lambda* = max_j rho(T + u a_j^T / P_j),

and the optimal powers are the Perron vector of the maximizing matrix, scaled so its constraint is
tight. Equivalently (DESIGN 6), lambda* is the unique lambda > rho(T) at which

    f(lambda) = max_j a_j^T (lambda I - T)^(-1) u / P_j = 1,

because p(lambda) = (lambda I - T)^(-1) u gives every UE the SINR 1/lambda and decreases in lambda.
``maxmin_closed_form`` finds that root by safeguarded Newton steps on 1/f - 1 (one K x K LU
factorization per step, batched), which needs no eigen-decompositions; the result is checked
against the eigenvalue formula and the other solvers in the tests.
``maxmin_fixed_point`` is the book's Algorithms 7.1/7.3 (normalized fixed point
p <- (Tp + u) / max_j (a_j^T (Tp + u) / P_j)), stopped when max SINR - min SINR < tolerance.

UEs with no useful signal (b_k = 0, e.g. no serving AP) are left out: they get zero power and the
max-min is over the others (``active``); an instance with no active UE gets zero powers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cfmimo.sim.uatf import DownlinkStatistics, UplinkStatistics


@dataclass(frozen=True)
class AffineSINR:
    """SINR_k = p_k / ((T p)_k + u_k) over the active UEs.

    Shapes: T [B, K, K], u [B, K], active [B, K] bool.
    """

    T: torch.Tensor
    u: torch.Tensor
    active: torch.Tensor

    def sinr(self, p: torch.Tensor) -> torch.Tensor:
        """Shapes: p [B, K] -> [B, K] (0 for inactive UEs)."""
        p = p.to(self.T.dtype)
        den = (self.T @ p[..., None]).squeeze(-1) + self.u
        ok = self.active & (den > 0)
        return torch.where(ok, p / torch.where(ok, den, torch.ones_like(den)), torch.zeros_like(p))


def _affine(signal: torch.Tensor, interference: torch.Tensor, noise: torch.Tensor) -> AffineSINR:
    active = signal > 0
    safe = torch.where(active, signal, torch.ones_like(signal))
    t = interference / safe[..., None]
    t = t - torch.diag_embed(torch.where(active, torch.ones_like(signal), torch.zeros_like(signal)))
    t = torch.where(active[..., :, None] & active[..., None, :], t, torch.zeros_like(t)).clamp_min(0)
    u = torch.where(active, noise / safe, torch.zeros_like(signal))
    return AffineSINR(T=t, u=u, active=active)


def uplink_affine(stats: UplinkStatistics) -> AffineSINR:
    """The UL UatF SINR (papers' eq. (4)) in affine form."""
    return _affine(stats.signal, stats.interference, stats.noise)


def downlink_affine(stats: DownlinkStatistics) -> AffineSINR:
    """The DL UatF SINR (papers' eq. (7)) in affine form (unit noise)."""
    return _affine(stats.signal, stats.interference, torch.ones_like(stats.signal))


@dataclass(frozen=True)
class MaxMinSolution:
    """Optimal powers and the common SINR; diagnostics in ``iterations``/``converged``.

    Shapes: power [B, K], sinr [B, K] (recomputed from the powers), min_sinr [B],
    binding [B] (index j of the tight constraint), iterations [] int, converged [B] bool.
    """

    power: torch.Tensor
    sinr: torch.Tensor
    min_sinr: torch.Tensor
    binding: torch.Tensor
    iterations: int
    converged: torch.Tensor


def _check_constraints(problem: AffineSINR, A: torch.Tensor, budget: torch.Tensor) -> None:
    B, K = problem.u.shape
    if A.dim() != 3 or A.shape[0] != B or A.shape[2] != K:
        raise ValueError(f"A must be [B, J, K] with B = {B}, K = {K}; got {tuple(A.shape)}")
    if budget.shape != A.shape[:2]:
        raise ValueError(f"budget must be [B, J] = {tuple(A.shape[:2])}, got {tuple(budget.shape)}")
    if bool((budget <= 0).any()) or bool((A < 0).any()):
        raise ValueError("budget must be positive and A non-negative")
    for name, value in (("problem.T", problem.T), ("problem.u", problem.u), ("A", A), ("budget", budget)):
        if not bool(torch.isfinite(value).all()):
            raise ValueError(f"{name} has non-finite entries (NaN or inf)")
    if bool((problem.T < 0).any()) or bool((problem.u < 0).any()):
        raise ValueError("problem.T and problem.u must be non-negative")


def maxmin_closed_form(
    problem: AffineSINR,
    A: torch.Tensor,
    budget: torch.Tensor,
    *,
    rtol: float = 1e-12,
    max_iter: int = 200,
    warm_start: int = 4,
) -> MaxMinSolution:
    """Exact max-min powers: the root of f(lambda) = 1 (module docstring), batched, in float64.

    ``warm_start`` fixed-point steps give a tight bracket before the safeguarded Newton steps.

    Shapes:
        A [B, J, K] >= 0, budget [B, J] > 0 -> MaxMinSolution (outputs in the input dtype).
    """
    _check_constraints(problem, A, budget)
    out_dtype = problem.u.dtype
    t, u, act = problem.T.double(), problem.u.double(), problem.active
    a = A.double() / budget.double()[..., None]  # [B, J, K]: a_j / P_j
    K = u.shape[1]
    eye = torch.eye(K, dtype=torch.float64, device=u.device)
    # Inactive UEs: an identity row keeps (lambda I - T) invertible and gives them p = 0.
    inactive_eye = torch.diag_embed((~act).double())

    def evaluate(lam: torch.Tensor, idx: torch.Tensor | None = None):
        # idx: the instances still iterating (None: all); converged ones are not recomputed
        ts, us, acts, a_s, ie = (
            (t, u, act, a, inactive_eye)
            if idx is None
            else (t[idx], u[idx], act[idx], a[idx], inactive_eye[idx])
        )
        m = lam[:, None, None] * eye - ts + ie * (1 - lam[:, None, None])
        lu, piv, info = torch.linalg.lu_factor_ex(m)
        p = torch.linalg.lu_solve(lu, piv, us[..., None]).squeeze(-1)
        valid = (info == 0) & torch.where(acts, p > 0, True).all(-1) & torch.isfinite(p).all(-1)
        load = (a_s @ p[..., None]).squeeze(-1)  # [b, J]
        f, j = load.max(dim=-1)
        dp = torch.linalg.lu_solve(lu, piv, p[..., None]).squeeze(-1)  # -(d p / d lambda)
        df = -(a_s[torch.arange(len(lam), device=lam.device), j] * dp).sum(
            -1
        )  # f' along the active constraint
        return valid & (f > 0), f, df, p, j

    any_active = act.any(-1)
    # Bracket from a few steps of the book's fixed point: for any p > 0 with max_j a_j^T p / P_j = 1,
    # min_k SINR_k(p) <= 1/lambda*, so lambda* <= max_k (T p + u)_k / p_k (a tight, valid upper
    # bound), and lambda* >= min_k (T p + u)_k / p_k (Krause's concave Perron-Frobenius bounds).
    p0 = act.double()
    for _ in range(warm_start):
        p0 = p0 / (a @ p0[..., None]).squeeze(-1).amax(-1, keepdim=True).clamp_min(1e-300)
        p0 = torch.where(act, (t @ p0[..., None]).squeeze(-1) + u, torch.zeros_like(p0))
    p0 = p0 / (a @ p0[..., None]).squeeze(-1).amax(-1, keepdim=True).clamp_min(1e-300)
    ratio = ((t @ p0[..., None]).squeeze(-1) + u) / torch.where(act, p0, torch.ones_like(p0))
    hi = torch.where(act, ratio, torch.zeros_like(ratio)).amax(-1) * (1 + 1e-12) + 1e-300
    lo = torch.where(act, ratio, torch.full_like(ratio, torch.inf)).amin(-1) * (1 - 1e-12)
    lo = torch.where(any_active, lo, torch.zeros_like(lo))
    lam = hi.clone()
    best = hi.clone()  # the last valid iterate (hi is valid by construction)
    converged = ~any_active
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 - the count is reported
        # Only the instances still iterating are evaluated (the worst instance of a batch no
        # longer makes every instance pay for its Newton steps); the others keep their state.
        idx = (~converged).nonzero().squeeze(1)
        lam_s, hi_s, lo_s = lam[idx], hi[idx], lo[idx]
        valid, f, df, _, _ = evaluate(lam_s, idx)
        best[idx] = torch.where(valid, lam_s, best[idx])
        h = torch.where(valid, 1.0 / f - 1.0, -torch.ones_like(f))  # increasing in lambda; root at lambda*
        hi_s = torch.where(valid & (h >= 0), torch.minimum(hi_s, lam_s), hi_s)
        lo_s = torch.where(~valid | (h < 0), torch.maximum(lo_s, lam_s), lo_s)
        dh = torch.where(valid, -df / f**2, torch.ones_like(f))  # d(1/f)/d lambda
        step = h / dh
        # Converged: the bracket closed, h = 0 to rtol, or a Newton step below rtol * lambda.
        # The last one matters when lambda* is close to rho(T) (interference-limited instances):
        # lambda I - T is then ill-conditioned, h stalls at its rounding floor (~cond * eps >
        # rtol) while Newton, converging from one side, stops moving; without this test the
        # step would leave the bracket's open side and ~30 bisections would follow.
        newton_done = valid & (step.abs() <= rtol * lam_s)
        done = ((hi_s - lo_s) <= rtol * hi_s) | (valid & (h.abs() <= rtol)) | newton_done
        hi[idx], lo[idx], converged[idx] = hi_s, lo_s, done
        if bool(converged.all()):
            break
        newton = lam_s - step
        inside = valid & (newton > lo_s) & (newton < hi_s) & torch.isfinite(newton)
        lam[idx] = torch.where(done, lam_s, torch.where(inside, newton, 0.5 * (lo_s + hi_s)))
    # Any valid lambda gives p(lambda) with equal SINRs 1/lambda; scaling by 1/f makes the binding
    # constraint tight. At the root (within rtol) this is the optimum.
    valid, f, _, p, j = evaluate(best)
    p = torch.where(valid[:, None], p / f.clamp_min(1e-300)[:, None], torch.zeros_like(p))
    p = torch.where(act, p, torch.zeros_like(p)).to(out_dtype)
    sinr = problem.sinr(p)
    min_sinr = torch.where(act, sinr, torch.full_like(sinr, torch.inf)).amin(-1)
    min_sinr = torch.where(any_active, min_sinr, torch.zeros_like(min_sinr))
    return MaxMinSolution(p, sinr, min_sinr, j, it, converged & (valid | ~any_active))


def maxmin_fixed_point(
    problem: AffineSINR,
    A: torch.Tensor,
    budget: torch.Tensor,
    *,
    tolerance: float = 0.01,
    max_iter: int = 100_000,
    start: torch.Tensor | None = None,
) -> MaxMinSolution:
    """The book's fixed-point algorithm (Algorithms 7.1/7.3), batched.

    p <- q / max_j (a_j^T q / P_j) with q = T p + u, starting from the budget-scaled all-ones
    vector, or from ``start`` [B, K] used as given (unscaled, like the book's codes: full power
    p_max in Algorithm 7.1, rho_max / K in Algorithm 7.3; see ``MaxMinFixedPoint(start="book")``);
    stops when max_k SINR_k - min_k SINR_k < ``tolerance`` (the book uses 0.01). The SINR spread
    is checked before each update, so a start that already meets the tolerance is returned as is.
    Converges geometrically to the same optimum as ``maxmin_closed_form``; at a loose tolerance
    the result depends on the start.

    Shapes:
        A [B, J, K], budget [B, J], start [B, K] or None -> MaxMinSolution.
    """
    _check_constraints(problem, A, budget)
    act = problem.active
    a = A.to(problem.u.dtype) / budget.to(problem.u.dtype)[..., None]
    if start is None:
        p = act.to(problem.u.dtype)
        p = p / (a @ p[..., None]).squeeze(-1).amax(-1, keepdim=True).clamp_min(1e-300)
    else:
        if start.shape != problem.u.shape:
            raise ValueError(f"start must be [B, K] = {tuple(problem.u.shape)}, got {tuple(start.shape)}")
        p = torch.where(act, start.to(problem.u.dtype), torch.zeros_like(problem.u))
    done = ~act.any(-1)
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 - the count is reported
        sinr = problem.sinr(p)
        spread = torch.where(act, sinr, -torch.inf).amax(-1) - torch.where(act, sinr, torch.inf).amin(-1)
        done = done | (spread < tolerance)
        if bool(done.all()):
            break
        q = torch.where(act, (problem.T @ p[..., None]).squeeze(-1) + problem.u, torch.zeros_like(p))
        q = q / (a @ q[..., None]).squeeze(-1).amax(-1, keepdim=True).clamp_min(1e-300)
        p = torch.where(done[:, None], p, q)
    sinr = problem.sinr(p)
    binding = (a @ p[..., None]).squeeze(-1).argmax(-1)
    min_sinr = torch.where(act, sinr, torch.inf).amin(-1)
    min_sinr = torch.where(act.any(-1), min_sinr, torch.zeros_like(min_sinr))
    return MaxMinSolution(p, sinr, min_sinr, binding, it, done)


def maxmin_eigenvalue(problem: AffineSINR, A: torch.Tensor, budget: torch.Tensor) -> torch.Tensor:
    """Reference: lambda* = max_j rho(T + u a_j^T / P_j) by J dense eigenvalue problems each.

    Slow (J K x K non-symmetric eigen-decompositions per instance); for tests and checks.
    Shapes: -> optimal common SINR [B] (= 1 / lambda*).
    """
    _check_constraints(problem, A, budget)
    t, u = problem.T.double(), problem.u.double()
    a = A.double() / budget.double()[..., None]
    m = t[:, None] + u[:, None, :, None] * a[:, :, None, :]  # [B, J, K, K]
    rho = torch.linalg.eigvals(m).real.amax(-1)  # Perron root is real and the largest
    return 1.0 / rho.amax(-1)
