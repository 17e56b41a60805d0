"""Channel realizations and MMSE channel estimation with pilot contamination (book Section 4.2).

Conventions (DESIGN.md 9.6; gains normalized by noise, so the noise variance is 1):
    h_lk = R_lk^(1/2) (randn + j randn)/sqrt(2)
    y_lt = sqrt(eta) tau_p sum_{i: t_i = t} h_li + sqrt(tau_p) n_lt,          n_lt ~ CN(0, I_N)
    Psi_lt = eta tau_p sum_{i: t_i = t} R_li + I_N                          (book eq. (4.6))
    hhat_lk = sqrt(eta) R_lk Psi_{l t_k}^(-1) y_{l t_k}                      (book eq. (4.5))
    B_lk = eta tau_p R_lk Psi^(-1) R_lk,   C_lk = R_lk - B_lk                (book eqs. (4.7)-(4.8))
Every AP estimates every UE. The same formulas are the book's ``functionChannelEstimates``, so
given realizations and pilot noise (interop) reproduce its estimates exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from cfmimo.rng import complex_normal, per_sample
from cfmimo.sim.pilots import pilot_one_hot


def hermitian_sqrt(r: torch.Tensor) -> torch.Tensor:
    """Principal square root of Hermitian PSD matrices (= MATLAB's sqrtm for these).

    Shapes:
        r: [..., N, N] -> [..., N, N].
    """
    vals, vecs = torch.linalg.eigh(r)
    return (vecs * vals.clamp_min(0).sqrt().to(vecs.dtype)[..., None, :]) @ vecs.mH


def sample_channels(
    r: torch.Tensor,
    realizations: int,
    *,
    seed: int,
    indices: Sequence[int],
    r_sqrt: torch.Tensor | None = None,
) -> torch.Tensor:
    """Correlated Rayleigh fading realizations, one random stream per setup.

    Shapes:
        r: [B, L, K, N, N] -> h [B, T, L, K, N].
    """
    batch, L, K, N, _ = r.shape
    if len(indices) != batch:
        raise ValueError(f"indices has {len(indices)} entries for a batch of {batch}")
    z = per_sample(
        lambda g: complex_normal((realizations, L, K, N), g, r.dtype),
        seed,
        "channels",
        indices,
        device=r.device,
    )  # [B, T, L, K, N]
    root = hermitian_sqrt(r) if r_sqrt is None else r_sqrt
    return torch.einsum("blknm,btlkm->btlkn", root, z)


def sample_pilot_noise(
    batch_shape: tuple[int, int, int],
    tau_p: int,
    antennas: int,
    *,
    seed: int,
    indices: Sequence[int],
    dtype: torch.dtype = torch.complex64,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """CN(0, I) receiver noise during pilots, one stream per setup.

    Shapes:
        batch_shape = (B, T, L) -> [B, T, L, tau_p, N].
    """
    _, T, L = batch_shape
    return per_sample(
        lambda g: complex_normal((T, L, tau_p, antennas), g, dtype),
        seed,
        "pilot_noise",
        indices,
        device=device,
    )


def pilot_covariance(r: torch.Tensor, pilot: torch.Tensor, tau_p: int, pilot_power: float) -> torch.Tensor:
    """Psi_lt = eta tau_p sum_{i on pilot t} R_li + I (book eq. (4.6)).

    Shapes:
        r: [B, L, K, N, N], pilot: [B, K] -> [B, L, tau_p, N, N].
    """
    onehot = pilot_one_hot(pilot, tau_p, r.real.dtype).to(r.dtype)  # [B, K, tau_p]
    eye = torch.eye(r.shape[-1], dtype=r.dtype, device=r.device)
    return pilot_power * tau_p * torch.einsum("blknm,bkt->bltnm", r, onehot) + eye


def estimator_statistics(
    r: torch.Tensor, pilot: torch.Tensor, tau_p: int, pilot_power: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Estimator matrices and estimate/error covariances.

    Returns (A, B, C) with A_lk = sqrt(eta) R_lk Psi^(-1) (so hhat = A y), B the estimate
    covariance and C the error covariance.

    Shapes:
        r: [B, L, K, N, N], pilot: [B, K] -> three [B, L, K, N, N].
    """
    psi = pilot_covariance(r, pilot, tau_p, pilot_power)  # [B, L, tau_p, N, N]
    idx = pilot[:, None, :, None, None].expand(-1, r.shape[1], -1, *r.shape[-2:])
    psi_k = torch.gather(psi, 2, idx)  # [B, L, K, N, N]: Psi of each UE's pilot
    r_psi_inv = torch.linalg.solve(psi_k, r).mH  # R Psi^-1 (R, Psi Hermitian)
    b = pilot_power * tau_p * r_psi_inv @ r
    b = 0.5 * (b + b.mH)  # exact Hermitian symmetry against rounding
    return pilot_power**0.5 * r_psi_inv, b, r - b


def received_pilots(
    h: torch.Tensor, pilot_noise: torch.Tensor, pilot: torch.Tensor, tau_p: int, pilot_power: float
) -> torch.Tensor:
    """y_lt = sqrt(eta) tau_p sum_{i on t} h_li + sqrt(tau_p) n_lt.

    Shapes:
        h: [B, T, L, K, N], pilot_noise: [B, T, L, tau_p, N], pilot: [B, K] -> [B, T, L, tau_p, N].
    """
    onehot = pilot_one_hot(pilot, tau_p, h.real.dtype).to(h.dtype)  # [B, K, tau_p]
    summed = torch.einsum("btlkn,bkp->btlpn", h, onehot)
    return pilot_power**0.5 * tau_p * summed + tau_p**0.5 * pilot_noise


def mmse_estimates(
    h: torch.Tensor,
    pilot_noise: torch.Tensor,
    estimator: torch.Tensor,
    pilot: torch.Tensor,
    tau_p: int,
    pilot_power: float,
) -> torch.Tensor:
    """hhat_lk = A_lk y_{l t_k} for given realizations and pilot noise.

    Shapes:
        h: [B, T, L, K, N], pilot_noise: [B, T, L, tau_p, N], estimator A: [B, L, K, N, N],
        pilot: [B, K] -> [B, T, L, K, N].
    """
    y = received_pilots(h, pilot_noise, pilot, tau_p, pilot_power)
    idx = pilot[:, None, None, :, None].expand(-1, *y.shape[1:3], -1, y.shape[-1])
    y_k = torch.gather(y, 3, idx)  # [B, T, L, K, N]: the pilot signal each UE is estimated from
    return torch.einsum("blknm,btlkm->btlkn", estimator, y_k)


# ----------------------------------------------------------------------------- per-AP orthogonal pilots
def orthogonal_estimator_statistics(
    r: torch.Tensor, tau_p: int, pilot_power: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Estimator matrices without co-pilot interference (elu-cosformer paper, eq. (2)).

    The paper writes hhat_lk = R_lk Q_lk^(-1) (h_lk + n_lk / sqrt(tau_p rho)) with
    Q_lk = R_lk + sigma^2/(tau_p rho) I (its "1/(tau_p rho)" in front of n is read as the scaling
    that makes Q the covariance of the bracket, i.e. the book's y = sqrt(rho) tau_p h + sqrt(tau_p) n
    divided by sqrt(rho) tau_p). With gains normalized by the noise (sigma^2 = 1, eta = rho):
        Psi_lk = eta tau_p R_lk + I = eta tau_p Q_lk,     A_lk = sqrt(eta) R_lk Psi_lk^(-1),
        B_lk = Phi_lk = R_lk Q_lk^(-1) R_lk = eta tau_p R_lk Psi_lk^(-1) R_lk,   C_lk = R_lk - B_lk,
    i.e. the book's estimator (``estimator_statistics``) with every UE alone on its pilot.

    Shapes:
        r: [B, L, K, N, N] -> three [B, L, K, N, N].
    """
    eye = torch.eye(r.shape[-1], dtype=r.dtype, device=r.device)
    psi = pilot_power * tau_p * r + eye  # [B, L, K, N, N]
    r_psi_inv = torch.linalg.solve(psi, r).mH  # R Psi^-1 (R, Psi Hermitian)
    b = pilot_power * tau_p * r_psi_inv @ r
    b = 0.5 * (b + b.mH)  # exact Hermitian symmetry against rounding
    return pilot_power**0.5 * r_psi_inv, b, r - b


def orthogonal_estimates(
    h: torch.Tensor, pilot_noise: torch.Tensor, estimator: torch.Tensor, tau_p: int, pilot_power: float
) -> torch.Tensor:
    """hhat_lk = A_lk (sqrt(eta) tau_p h_lk + sqrt(tau_p) n_lk), each link with its own noise n_lk.

    ``pilot_noise`` holds at least K columns (UE k uses column k, so the links of one AP see
    independent noise, as on orthogonal pilots); with K <= tau_p this is the book's noise tensor
    and the book's Algorithm 4.1 pilots (UE k on pilot k) give the same received signals.

    Shapes:
        h: [B, T, L, K, N], pilot_noise: [B, T, L, W >= K, N], estimator A: [B, L, K, N, N]
        -> [B, T, L, K, N].
    """
    K = h.shape[3]
    if pilot_noise.shape[3] < K:
        raise ValueError(
            f"pilot_noise has {pilot_noise.shape[3]} columns; pilot_model 'per_ap_orthogonal' needs "
            f"one per UE (K = {K}): shape [B, T, L, max(tau_p, K), N]"
        )
    y = pilot_power**0.5 * tau_p * h + tau_p**0.5 * pilot_noise[:, :, :, :K]
    return torch.einsum("blknm,btlkm->btlkn", estimator, y)


def check_pilot_cap(serving: torch.Tensor, tau_p: int) -> None:
    """ValueError unless every AP serves at most tau_p UEs (per_ap_orthogonal's validity condition).

    Shapes:
        serving: [B, L, K] bool.
    """
    load = serving.to(torch.int64).sum(dim=2)  # [B, L]
    over = load > tau_p
    if bool(over.any()):
        b, l = (int(i) for i in over.nonzero()[0])
        raise ValueError(
            f"pilot_model 'per_ap_orthogonal' needs at most tau_p = {tau_p} UEs per AP, but AP {l} of "
            f"setup {b} serves {int(load[b, l])} ({int(over.sum())} APs over the cap): cap the clustering "
            f"(clustering.max_ues_per_ap = tau_p) or use pilot_model 'book'"
        )
