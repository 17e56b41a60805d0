"""Use-and-then-forget (UatF) statistics and spectral efficiencies (book Sections 5.2 and 6.2).

UL, for combiners v_k designed once (at full UL power by default, book Section 7.1):
    b_k = |E{v_k^H D_k h_k}|^2,   c_ki = E{|v_k^H D_k h_i|^2},   s_k = E{||D_k v_k||^2}
    SINR_k = p_k b_k / (sum_i p_i c_ki - p_k b_k + s_k)          (the papers' eq. (4))
DL, for precoders w_k proportional to D_k v_k:
    a_k = |E{h_k^H D_k w_k}|^2,   d_ki = E{|h_k^H D_i w_i|^2}   (row k: receiver, column i: precoder)
    SINR_k = rho_k a_k / (sum_i rho_i d_ki - rho_k a_k + 1)      (the papers' eq. (7)/(8))
Orientation: ``UplinkStatistics.interference[b, k, i]`` is c_ki (combiner of k, signal of i);
``DownlinkStatistics.interference[b, k, i]`` is d_ki (receiver k, precoder i); with the same
vectors, d = c^T up to the precoder normalization.

DL normalizations (DESIGN.md 9.9): ``per_realization`` w_k = D_k v_k / ||D_k v_k|| (tree-transformer,
elu-cosformer papers; total power sum_k rho_k), ``average`` w_k = D_k v_k / sqrt(E{||D_k v_k||^2})
(the book, per-AP powers sum_k rho_k E{||w_kl||^2}). Either way ``ap_power_share[b, l, k]`` =
E{||w_kl||^2}, which sums to 1 over l.
Gains are normalized by the noise power (beta = gain / sigma^2 with sigma^2 in mW), so powers are
in mW, beta * p is an SNR and the noise variance is 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class UplinkStatistics:
    """UL UatF statistics. Shapes: signal [B, K], interference [B, K, K], noise [B, K]."""

    signal: torch.Tensor
    interference: torch.Tensor
    noise: torch.Tensor


@dataclass(frozen=True)
class DownlinkStatistics:
    """DL UatF statistics. Shapes: signal [B, K], interference [B, K, K], ap_power_share [B, L, K]."""

    signal: torch.Tensor
    interference: torch.Tensor
    ap_power_share: torch.Tensor


#: Dataset keys of the stored UatF statistics (``cfmimo.data.storage``), in the order of
#: ``stored_statistics``: [n, K], [n, K, K], [n, K]; [n, K], [n, K, K], [n, L, K].
STORED_STATISTIC_KEYS = (
    "ul_signal",
    "ul_interference",
    "ul_noise",
    "dl_signal",
    "dl_interference",
    "dl_ap_power_share",
)


def stored_statistics(
    group: dict[str, torch.Tensor], dtype: torch.dtype = torch.float64
) -> tuple[UplinkStatistics, DownlinkStatistics]:
    """The UL and DL statistics of a dataset group or batch (keys ``STORED_STATISTIC_KEYS``), cast
    to ``dtype`` (the datasets store float32; SINRs of tiny and large terms want float64)."""
    missing = [k for k in STORED_STATISTIC_KEYS if k not in group]
    if missing:
        raise ValueError(f"the stored UatF statistics {missing} are missing (keys: {sorted(group)})")
    ul, ul_i, ul_n, dl, dl_i, share = (group[k].to(dtype) for k in STORED_STATISTIC_KEYS)
    return UplinkStatistics(ul, ul_i, ul_n), DownlinkStatistics(dl, dl_i, share)


def _safe_div(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """num/den with 0 where den == 0 (UEs with no serving AP), gradient-safe."""
    ok = den > 0
    return torch.where(ok, num / torch.where(ok, den, torch.ones_like(den)), torch.zeros_like(num))


class MomentAccumulator:
    """Sums over realizations of the quantities the UatF statistics need, chunk by chunk.

    ``add`` takes the cross terms M[b, t, k, i] = v_k^H D_k h_i and the per-AP combiner energies
    ||D_kl v_kl||^2 of a chunk of realizations; ``finalize`` returns the statistics.
    """

    def __init__(self) -> None:
        self.count = 0
        self._sums: dict[str, torch.Tensor] = {}

    def _acc(self, name: str, value: torch.Tensor) -> None:
        self._sums[name] = self._sums[name] + value if name in self._sums else value

    def add(self, cross: torch.Tensor, energy_per_ap: torch.Tensor) -> None:
        """Shapes: cross [B, t, K, K] complex, energy_per_ap [B, t, L, K] real."""
        energy = energy_per_ap.sum(dim=2)  # [B, t, K]
        inv_norm = _safe_div(torch.ones_like(energy), energy.sqrt())  # 1/||D_k v_k|| (0 if v_k = 0)
        power = cross.real**2 + cross.imag**2  # |M|^2
        diag = torch.diagonal(cross, dim1=-2, dim2=-1)  # [B, t, K]
        self.count += cross.shape[1]
        self._acc("diag", diag.sum(1))
        self._acc("power", power.sum(1))
        self._acc("energy", energy.sum(1))
        self._acc("energy_per_ap", energy_per_ap.sum(1))
        self._acc("diag_w", (diag * inv_norm).sum(1))
        self._acc("power_w", (power * (inv_norm**2)[..., None]).sum(1))
        self._acc("share_w", (energy_per_ap * (inv_norm**2)[:, :, None, :]).sum(1))

    def finalize(self, dl_normalization: str) -> tuple[UplinkStatistics, DownlinkStatistics]:
        t = self.count
        s = {k: v / t for k, v in self._sums.items()}
        ul = UplinkStatistics(signal=s["diag"].abs() ** 2, interference=s["power"], noise=s["energy"])
        if dl_normalization == "per_realization":
            dl = DownlinkStatistics(
                signal=s["diag_w"].abs() ** 2,
                interference=s["power_w"].transpose(-1, -2),
                ap_power_share=s["share_w"],
            )
        elif dl_normalization == "average":
            scale = _safe_div(torch.ones_like(s["energy"]), s["energy"])  # 1/E{||D_k v_k||^2}
            dl = DownlinkStatistics(
                signal=ul.signal * scale,
                interference=(s["power"] * scale[..., None]).transpose(-1, -2),
                ap_power_share=s["energy_per_ap"] * scale[:, None, :],
            )
        else:
            raise ValueError(
                f"dl_normalization must be 'per_realization' or 'average', got {dl_normalization!r}"
            )
        return ul, dl


def cross_terms_rows(
    v_rows: torch.Tensor, h_rows_conj: torch.Tensor, aps: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``cross_terms`` in row layout (UE k's stacked vector over APs and antennas is a row).

    Takes the *conjugated* channels (``combining._rows(h, conj=True)``), so that the product
    sum_a v_k[a] conj(h_i[a]) = conj(v_k^H h_i) needs no conjugated copy inside the matmul.

    Shapes:
        v_rows, h_rows_conj [B, T, K, L*N]
        -> (cross [B, T, K, K] complex, energy_per_ap [B, T, L, K] real).
    """
    b, t, K, LN = v_rows.shape
    cross_c = torch.bmm(v_rows.reshape(-1, K, LN), h_rows_conj.reshape(-1, K, LN).mT)
    cross = cross_c.view(b, t, K, K).conj().resolve_conj()  # [B, T, K(k), K(i)] = v_k^H h_i
    energy = (v_rows.real**2 + v_rows.imag**2).view(b, t, K, aps, LN // aps).sum(-1)  # [B, T, K, L]
    return cross, energy.transpose(2, 3)


def cross_terms(v: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """M[b, t, k, i] = v_k^H D_k h_i (v already zero outside D_k) and ||v_kl||^2.

    Shapes:
        v, h [B, T, L, K, N] -> (cross [B, T, K, K] complex, energy_per_ap [B, T, L, K] real).
    """
    cross = torch.einsum("btlkn,btlin->btki", v.conj(), h)
    energy = (v.real**2 + v.imag**2).sum(-1)
    return cross, energy


def uatf_statistics(
    v: torch.Tensor, h: torch.Tensor, dl_normalization: str = "per_realization"
) -> tuple[UplinkStatistics, DownlinkStatistics]:
    """UL and DL UatF statistics by Monte Carlo over the T realizations given.

    Shapes:
        v (masked combiners), h (true channels) [B, T, L, K, N] -> (UplinkStatistics, DownlinkStatistics).
    """
    if v.shape != h.shape:
        raise ValueError(f"combiners v {tuple(v.shape)} and channels h {tuple(h.shape)} must match")
    acc = MomentAccumulator()
    acc.add(*cross_terms(v, h))
    return acc.finalize(dl_normalization)


def uplink_sinr(stats: UplinkStatistics, ul_power: torch.Tensor) -> torch.Tensor:
    """UatF UL SINR for any power vector (the papers' eq. (4)); differentiable in the powers.

    Shapes:
        ul_power [B, K] -> [B, K].
    """
    p = ul_power.to(stats.signal.dtype)
    signal = p * stats.signal
    total = (stats.interference @ p[..., None]).squeeze(-1)
    return _safe_div(signal, total - signal + stats.noise)


def downlink_sinr(stats: DownlinkStatistics, dl_power: torch.Tensor) -> torch.Tensor:
    """UatF DL SINR for any power vector (the papers' eq. (7)); noise variance 1.

    Shapes:
        dl_power [B, K] -> [B, K].
    """
    rho = dl_power.to(stats.signal.dtype)
    signal = rho * stats.signal
    total = (stats.interference @ rho[..., None]).squeeze(-1)
    return _safe_div(signal, total - signal + 1.0)


def spectral_efficiency(sinr: torch.Tensor, prelog: float | torch.Tensor) -> torch.Tensor:
    """SE = prelog * log2(1 + SINR) in bit/s/Hz (prelog tau_u/tau_c or tau_d/tau_c; a tensor
    broadcasts, e.g. one prelog per sample [B, 1])."""
    return prelog * torch.log2(1.0 + sinr)


def per_ap_power(stats: DownlinkStatistics, dl_power: torch.Tensor) -> torch.Tensor:
    """Average transmit power of each AP, sum_k rho_k E{||w_kl||^2}.

    Shapes:
        dl_power [B, K] -> [B, L].
    """
    return (stats.ap_power_share * dl_power.to(stats.ap_power_share.dtype)[:, None, :]).sum(-1)


def instantaneous_estimate_sinr(
    v: torch.Tensor, h_hat: torch.Tensor, error_cov: torch.Tensor, ul_power: torch.Tensor
) -> torch.Tensor:
    """Per-realization SINR of the book's Theorem 5.1 (centralized, instantaneous estimates):

        SINR_k = p_k |v_k^H D_k hhat_k|^2 / (sum_{i != k} p_i |v_k^H D_k hhat_i|^2
                  + v_k^H D_k (sum_i p_i C_i + I) D_k v_k)

    SE_k = prelog * E{log2(1 + SINR_k)}. For MMSE combiners this is the largest achievable SINR.

    Shapes:
        v, h_hat [B, T, L, K, N], error_cov [B, L, K, N, N], ul_power [B, K] -> [B, T, K].
    """
    cdtype = h_hat.dtype
    p = ul_power.to(h_hat.real.dtype)
    cross = torch.einsum("btlkn,btlin->btki", v.conj(), h_hat)  # [B, T, K, K]
    power = cross.real**2 + cross.imag**2
    signal = p[:, None, :] * torch.diagonal(power, dim1=-2, dim2=-1)
    interference = (power * p[:, None, None, :]).sum(-1) - signal
    eye = torch.eye(h_hat.shape[-1], dtype=cdtype, device=h_hat.device)
    z = torch.einsum("bk,blknm->blnm", p.to(cdtype), error_cov) + eye  # [B, L, N, N]
    quad = torch.einsum("btlkn,blnm,btlkm->btk", v.conj(), z, v).real
    return _safe_div(signal, interference + quad)


def equal_downlink_power(
    stats: DownlinkStatistics, normalization: str, power_per_ap_mw: float
) -> torch.Tensor:
    """Equal DL powers for all UEs under the constraint that goes with the precoder normalization.

    ``per_realization`` (the papers' sum constraint): rho_k = L * P / K.
    ``average`` (the book's per-AP limits): the largest common rho with sum_k rho E{||w_kl||^2} <= P
    at every AP, i.e. rho = min_l P / sum_k E{||w_kl||^2}.

    Shapes:
        -> [B, K].
    """
    batch, L, K = stats.ap_power_share.shape
    if normalization == "per_realization":
        return torch.full(
            (batch, K), L * power_per_ap_mw / K, dtype=stats.signal.dtype, device=stats.signal.device
        )
    if normalization != "average":
        raise ValueError(f"normalization must be 'per_realization' or 'average', got {normalization!r}")
    load = stats.ap_power_share.sum(-1).amax(-1, keepdim=True)  # [B, 1]: the most loaded AP per unit rho
    return (power_per_ap_mw / load.clamp_min(torch.finfo(load.dtype).tiny)).expand(batch, K).clone()
