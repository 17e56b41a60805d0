"""Sample batches of networks from a Scenario and compute their UatF statistics.

A sample's content depends only on (scenario, seed, sample index): every random step draws from
its own named stream per sample (``cfmimo.rng``), so batch size, batch composition and worker count
never change the numbers.

Typical use::

    net = sample_networks(preset("tree-transformer", K=20), batch=8, seed=0)
    state = sample_channel_state(net)                 # realizations, estimates, B and C
    ul, dl = network_statistics(net, state, "mmse")   # UatF statistics (full UL power design)
    se_ul = spectral_efficiency(uplink_sinr(ul, p), net.scenario.prelog_ul)
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from cfmimo.config import Scenario
from cfmimo.rng import sample_indices
from cfmimo.sim.clustering import serving_mask
from cfmimo.sim.combining import _rows, combiners, mmse_combiner_rows
from cfmimo.sim.correlation import correlation_matrices
from cfmimo.sim.estimation import (
    check_pilot_cap,
    estimator_statistics,
    hermitian_sqrt,
    mmse_estimates,
    orthogonal_estimates,
    orthogonal_estimator_statistics,
    sample_channels,
    sample_pilot_noise,
)
from cfmimo.sim.geometry import (
    disc_union_positions,
    grid_positions,
    isd_positions,
    link_angles,
    uniform_positions,
)
from cfmimo.sim.memory import check_scenario_memory, statistics_chunk
from cfmimo.sim.pathloss import pathloss_gain_db, shadowing_db
from cfmimo.sim.pilots import assign_pilots
from cfmimo.sim.uatf import (
    DownlinkStatistics,
    MomentAccumulator,
    UplinkStatistics,
    cross_terms,
    cross_terms_rows,
    instantaneous_estimate_sinr,
)

#: The per-setup tensor fields of a Network (leading dim B), in declaration order.
SETUP_TENSORS = (
    "ap_positions",
    "ue_positions",
    "distance_2d",
    "gain_db",
    "correlation",
    "pilot",
    "master",
    "serving",
)


@dataclass(frozen=True)
class Network:
    """A batch of B network setups (large-scale quantities only).

    Shapes:
        ap_positions [B, L, 2], ue_positions [B, K, 2] (metres); distance_2d, gain_db [B, L, K]
        (gain over noise, dB); correlation R [B, L, K, N, N] complex (beta included); pilot,
        master [B, K] long (0-based); serving [B, L, K] bool.
    """

    scenario: Scenario
    seed: int
    indices: tuple[int, ...]
    ap_positions: torch.Tensor
    ue_positions: torch.Tensor
    distance_2d: torch.Tensor
    gain_db: torch.Tensor
    correlation: torch.Tensor
    pilot: torch.Tensor
    master: torch.Tensor
    serving: torch.Tensor

    @property
    def batch(self) -> int:
        return self.gain_db.shape[0]

    @property
    def beta(self) -> torch.Tensor:
        """Linear gains over noise [B, L, K]."""
        return torch.pow(10.0, self.gain_db / 10.0)


@dataclass(frozen=True)
class ChannelState:
    """Small-scale realizations and their MMSE estimates.

    Shapes:
        h, h_hat [B, T, L, K, N]; estimate_cov (B_lk), error_cov (C_lk) [B, L, K, N, N];
        pilot_noise [B, T, L, tau_p, N] (max(tau_p, K) columns under per_ap_orthogonal; kept so the
        same realizations can be re-estimated under another pilot assignment, ``reestimate``; None
        when unknown, e.g. imported states).
    """

    h: torch.Tensor
    h_hat: torch.Tensor
    estimate_cov: torch.Tensor
    error_cov: torch.Tensor
    pilot_noise: torch.Tensor | None = None


def sample_layout(
    scenario: Scenario, indices: range, seed: int, dtype: torch.dtype, device: torch.device | str | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """AP and UE positions [B, L, 2], [B, K, 2] for the scenario's layouts."""
    side, batch = scenario.area_side_m, len(indices)
    if scenario.ap_deployment == "fixed":
        # one layout per deployment_seed, shared by every sample (issue 15)
        from cfmimo.sim.shadowing_field import site_ap_positions

        ap = site_ap_positions(scenario).to(dtype=dtype, device=device).expand(batch, -1, -1).clone()
    elif scenario.ap_layout == "grid":
        ap = grid_positions(scenario.L, side, batch, dtype=dtype, device=device)
    elif scenario.ap_layout in ("square_isd", "hex_isd"):
        lattice = "square" if scenario.ap_layout == "square_isd" else "hex"
        ap = isd_positions(
            scenario.L, scenario.ap_isd_m, side, batch, lattice=lattice, dtype=dtype, device=device
        )
    else:
        ap = uniform_positions(
            scenario.L, side, seed=seed, name="ap_positions", indices=indices, dtype=dtype, device=device
        )
    if scenario.ue_layout == "disc_union":
        ue = disc_union_positions(
            ap, scenario.ue_disc_radius_m, scenario.K, seed=seed, name="ue_positions", indices=indices
        )
    else:
        ue = uniform_positions(
            scenario.K, side, seed=seed, name="ue_positions", indices=indices, dtype=dtype, device=device
        )
    return ap, ue


#: positions further outside the area than this fraction of its side are warned about; more than
#: one whole side outside (wrong units or origin) is an error
AREA_WARN_FRACTION = 0.25


def check_positions_in_area(scenario: Scenario, **positions: torch.Tensor) -> None:
    """ValueError naming the argument for non-finite or non-floating positions, or positions more
    than one area side outside the scenario's square [0, side]^2; a warning (with the numbers) for
    positions more than ``AREA_WARN_FRACTION`` of a side (plus the UE disc radius) outside it."""
    import warnings

    side = scenario.area_side_m
    slack = AREA_WARN_FRACTION * side + (scenario.ue_disc_radius_m or 0.0)
    for name, pos in positions.items():
        if not pos.is_floating_point():
            raise ValueError(f"{name} positions must be a floating tensor (metres), got {pos.dtype}")
        finite = torch.isfinite(pos)
        if not bool(finite.all()):
            raise ValueError(
                f"{name} positions have {int((~finite).sum())} non-finite coordinates (NaN or inf)"
            )
        if pos.numel() == 0:
            continue
        lo, hi = float(pos.amin()), float(pos.amax())
        where = (
            f"{name} positions span [{lo:.1f}, {hi:.1f}] m; the scenario's area is [0, {side:g}] m per axis"
        )
        if lo < -side or hi > 2 * side:
            raise ValueError(f"{where}: more than one area side outside it (metres? origin at a corner?)")
        if lo < -slack or hi > side + slack:
            warnings.warn(f"{where}: far outside it", UserWarning, stacklevel=3)


def networks_from_positions(
    scenario: Scenario, ap: torch.Tensor, ue: torch.Tensor, *, seed: int, indices: range
) -> Network:
    """Large-scale fading, correlation, pilots and clusters for given positions.

    Shadowing is drawn from the streams of ``(seed, indices)``, so positions from any source
    (files, other simulators) get the same treatment as sampled ones.

    Shapes:
        ap [B, L, 2], ue [B, K, 2] -> Network.
    """
    if ap.dim() != 3 or ap.shape[-1] != 2 or ue.dim() != 3 or ue.shape[-1] != 2 or ap.shape[0] != ue.shape[0]:
        raise ValueError(
            f"positions must be ap [B, L, 2] and ue [B, K, 2]; got {tuple(ap.shape)}, {tuple(ue.shape)}"
        )
    check_positions_in_area(scenario, ap=ap, ue=ue)
    if len(indices) != ap.shape[0]:
        raise ValueError(f"indices has {len(indices)} entries for {ap.shape[0]} setups")
    side = scenario.area_side_m
    d2d, azimuth, elevation = link_angles(ap, ue, side, scenario.wrap_around, scenario.height_difference_m)
    gain_db = (
        pathloss_gain_db(d2d, scenario)
        + shadowing_db(ap, ue, d2d, scenario, seed=seed, indices=indices)
        - scenario.noise_dbm
    )
    r = correlation_matrices(
        gain_db,
        azimuth,
        elevation,
        scenario.N,
        scenario.spatial_correlation,
        scenario.asd_azimuth_deg,
        scenario.asd_elevation_deg,
        scenario.antenna_spacing_wavelengths,
    )
    pilot, master = assign_pilots(gain_db, scenario.tau_p)
    serving = serving_mask(scenario.clustering, gain_db, d2d, pilot, master, scenario.tau_p)
    return Network(scenario, seed, tuple(indices), ap, ue, d2d, gain_db, r, pilot, master, serving)


def sample_networks(
    scenario: Scenario,
    batch: int,
    *,
    seed: int,
    first_index: int = 0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    realizations: int | None = None,
) -> Network:
    """Draw ``batch`` setups with global sample indices first_index, ..., first_index + batch - 1.

    ``realizations``: how many small-scale realizations the caller will draw per setup, for the
    memory check before anything is allocated (default ``scenario.realizations``; the perfect-CSI
    problems draw one)."""
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    t = scenario.realizations if realizations is None else realizations
    # before any allocation: a batch that cannot fit is an error naming the sizes, not an OOM kill
    check_scenario_memory(scenario.K, scenario.L, scenario.N, t, batch, dtype)
    indices = sample_indices(first_index, batch)
    ap, ue = sample_layout(scenario, indices, seed, dtype, device)
    return networks_from_positions(scenario, ap, ue, seed=seed, indices=indices)


def estimate(net: Network, h: torch.Tensor, pilot_noise: torch.Tensor) -> ChannelState:
    """MMSE estimates for given realizations and pilot noise (interop: compare one to one).

    Shapes:
        h [B, T, L, K, N], pilot_noise [B, T, L, tau_p, N] -> ChannelState (max(tau_p, K)
        columns under pilot_model "per_ap_orthogonal", see ``noise_columns``).
    """
    sc = net.scenario
    if sc.pilot_model == "per_ap_orthogonal":
        # eq. (2) of the elu-cosformer paper for every link; independent of pilots and clusters
        # (the cap on UEs per AP is checked where a clustering meets the estimates)
        a, b, c = orthogonal_estimator_statistics(net.correlation, sc.tau_p, sc.pilot_power_mw)
        h_hat = orthogonal_estimates(h, pilot_noise, a, sc.tau_p, sc.pilot_power_mw)
        return ChannelState(h=h, h_hat=h_hat, estimate_cov=b, error_cov=c, pilot_noise=pilot_noise)
    a, b, c = estimator_statistics(net.correlation, net.pilot, sc.tau_p, sc.pilot_power_mw)
    h_hat = mmse_estimates(h, pilot_noise, a, net.pilot, sc.tau_p, sc.pilot_power_mw)
    return ChannelState(h=h, h_hat=h_hat, estimate_cov=b, error_cov=c, pilot_noise=pilot_noise)


def reestimate(net: Network, state: ChannelState, pilot: torch.Tensor) -> tuple[Network, ChannelState]:
    """The same realizations and pilot noise estimated under another pilot assignment.

    Shapes:
        pilot [B, K] long -> (network with that pilot, its ChannelState).
    """
    if state.pilot_noise is None:
        raise ValueError("state.pilot_noise is None: this channel state cannot be re-estimated")
    if pilot.shape != net.pilot.shape:
        raise ValueError(f"pilot must be [B, K] = {tuple(net.pilot.shape)}, got {tuple(pilot.shape)}")
    net = replace(net, pilot=pilot.to(device=net.pilot.device, dtype=torch.long))
    return net, estimate(net, state.h, state.pilot_noise)


def noise_columns(scenario: Scenario) -> int:
    """Pilot-noise columns drawn per AP: tau_p (book), max(tau_p, K) under per_ap_orthogonal (one per
    UE; for K <= tau_p the book's tensor, so both pilot models see the same noise)."""
    if scenario.pilot_model == "per_ap_orthogonal":
        return max(scenario.tau_p, scenario.K)
    return scenario.tau_p


def check_clusters_for_pilots(net: Network) -> None:
    """ValueError naming ``pilot_model`` when per_ap_orthogonal meets a clustering over the cap."""
    if net.scenario.pilot_model == "per_ap_orthogonal":
        check_pilot_cap(net.serving, net.scenario.tau_p)


def sample_perfect_csi(
    scenario: Scenario,
    batch: int,
    *,
    seed: int,
    first_index: int = 0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> tuple[Network, torch.Tensor]:
    """``batch`` setups and one perfect-CSI channel realization each, h = R^{1/2} z (no estimation):
    the instantaneous-CSI problems (sum-rate precoding, fronthaul WSR, energy efficiency) all start here.
    The realization comes from each setup's own "channels" stream, so a sample does not depend on its batch.

    Shapes: -> (Network, h complex [B, L, K, N]).
    """
    net = sample_networks(
        scenario, batch, seed=seed, first_index=first_index, dtype=dtype, device=device, realizations=1
    )
    root = None
    if scenario.spatial_correlation == "iid":  # R = beta I: its square root needs no eigendecomposition
        r = net.correlation  # [B, L, K, N, N], beta included
        eye = torch.eye(scenario.N, dtype=r.dtype, device=r.device)
        root = net.beta.sqrt().to(r.dtype)[..., None, None] * eye  # [B, L, K, N, N]
    h = sample_channels(net.correlation, 1, seed=seed, indices=net.indices, r_sqrt=root)[:, 0]  # [B, L, K, N]
    return net, h


def sample_channel_state(
    net: Network, realizations: int | None = None, r_sqrt: torch.Tensor | None = None
) -> ChannelState:
    """Draw T realizations (scenario.realizations by default) and estimate them.

    Realizations come from the streams of the network's own (seed, index), so they are fixed by the
    sample, whatever the batch. ``r_sqrt`` [B, L, K, N, N]: R^(1/2) if already known (a cache).
    """
    t = realizations or net.scenario.realizations
    root = hermitian_sqrt(net.correlation) if r_sqrt is None else r_sqrt
    h = sample_channels(net.correlation, t, seed=net.seed, indices=net.indices, r_sqrt=root)
    noise = sample_pilot_noise(
        (net.batch, t, net.correlation.shape[1]),
        noise_columns(net.scenario),
        net.correlation.shape[-1],
        seed=net.seed,
        indices=net.indices,
        dtype=h.dtype,
        device=h.device,
    )
    return estimate(net, h, noise)


def network_statistics(
    net: Network,
    state: ChannelState,
    combiner: str = "mmse",
    *,
    design_power: torch.Tensor | None = None,
    dl_normalization: str | None = None,
    chunk: int | None = None,
    method: str = "fast",
    memory_limit_bytes: int | None = None,
) -> tuple[UplinkStatistics, DownlinkStatistics]:
    """UL and DL UatF statistics with combiners designed at ``design_power`` (full UL power by default).

    The DL precoders are the normalized UL combiners (scenario.dl_normalization unless given).
    ``chunk`` bounds the realizations processed at once (memory); results do not depend on it.
    ``method``: "fast" (default; MMSE in row layout with per-UE direct solves, see
    ``combining.mmse_combiner_rows``) or "reference" (the original implementation, for tests and
    benchmarks); both agree to float64 rounding. With ``chunk=None`` the fast MMSE path picks
    the largest chunk whose estimated working set (``cfmimo.sim.memory``) fits
    ``memory_limit_bytes`` (default: half the available memory) and raises ValueError, naming
    the sizes and the estimate, when even one realization at a time does not fit.

    Shapes:
        design_power [B, K] (mW) -> (UplinkStatistics, DownlinkStatistics).
    """
    sc = net.scenario
    check_clusters_for_pilots(net)
    if design_power is None:
        design_power = torch.full(
            net.pilot.shape, sc.ul_power_mw, dtype=net.gain_db.dtype, device=net.gain_db.device
        )
    t = state.h.shape[1]
    if method not in ("fast", "reference"):
        raise ValueError(f"method must be 'fast' or 'reference', got {method!r}")
    if chunk is None and combiner == "mmse" and method == "fast":
        batch, L, K = net.serving.shape
        same = bool((net.serving.all(dim=2) | ~net.serving.any(dim=2)).all())
        chunk = statistics_chunk(
            K,
            L,
            state.h.shape[-1],
            t,
            batch,
            state.h.dtype,
            cluster_aps=None if same else int(net.serving.sum(1).max()),
            limit_bytes=memory_limit_bytes,
        )
    if chunk is None:
        # The per-UE combiner path holds [B, t, K, K, K] Gram matrices (plus temporaries): bound
        # them to ~512 MiB so K = 40 batches stay within a laptop's memory. Results do not depend on it.
        batch, K, L = net.batch, net.pilot.shape[1], net.serving.shape[1]
        per_realization = batch * (K**3 + L * K * K) * state.h.element_size() * 4
        chunk = max(1, min(t, (512 * 2**20) // per_realization))
    acc = MomentAccumulator()
    for start in range(0, t, chunk):
        sl = slice(start, start + chunk)
        if combiner == "mmse" and method == "fast":
            hr_hat = _rows(state.h_hat[:, sl])  # [B, t, K, L*N]
            v = mmse_combiner_rows(hr_hat, state.error_cov, net.serving, design_power)
            acc.add(*cross_terms_rows(v, _rows(state.h[:, sl], conj=True), net.serving.shape[1]))
            continue
        if combiner == "mmse":
            v = combiners(
                combiner, state.h_hat[:, sl], state.error_cov, net.serving, design_power, method=method
            )
        else:
            v = combiners(combiner, state.h_hat[:, sl], state.error_cov, net.serving, design_power)
        acc.add(*cross_terms(v, state.h[:, sl]))
    return acc.finalize(dl_normalization or sc.dl_normalization)


def instantaneous_estimate_se(
    net: Network,
    state: ChannelState,
    combiner: str = "mmse",
    *,
    ul_power: torch.Tensor | None = None,
    design_power: torch.Tensor | None = None,
) -> torch.Tensor:
    """UL SE with the book's Theorem 5.1 (centralized, instantaneous estimates):
    SE_k = (tau_u/tau_c) E{log2(1 + SINR_k)}, SINR as in ``uatf.instantaneous_estimate_sinr``.

    Combiners are designed at ``design_power`` and data sent at ``ul_power`` (both full UL power
    by default). Shapes: ul_power, design_power [B, K] -> [B, K].
    """
    sc = net.scenario
    check_clusters_for_pilots(net)
    full = torch.full(net.pilot.shape, sc.ul_power_mw, dtype=net.gain_db.dtype, device=net.gain_db.device)
    p = full if ul_power is None else ul_power
    v = combiners(
        combiner, state.h_hat, state.error_cov, net.serving, full if design_power is None else design_power
    )
    sinr = instantaneous_estimate_sinr(v, state.h_hat, state.error_cov, p)
    return sc.prelog_ul * torch.log2(1.0 + sinr).mean(dim=1)


def permute_ues(net: Network, perm: torch.Tensor) -> Network:
    """The same setups with UEs reordered (``perm`` [K]: new UE k is old UE perm[k]).

    Every UE-indexed tensor is permuted; pilots and clusters are carried along (not recomputed:
    Algorithm 4.1 depends on UE order, so re-running it could assign other pilots).
    """
    p = perm.to(net.pilot.device)
    return replace(
        net,
        ue_positions=net.ue_positions[:, p],
        distance_2d=net.distance_2d[:, :, p],
        gain_db=net.gain_db[:, :, p],
        correlation=net.correlation[:, :, p],
        pilot=net.pilot[:, p],
        master=net.master[:, p],
        serving=net.serving[:, :, p],
    )


def take_setups(net: Network, index: torch.Tensor | slice) -> Network:
    """A sub-batch of setups. ``index``: a slice or a 1-D long tensor of setup positions."""
    idx = torch.arange(net.batch)[index] if isinstance(index, slice) else index.cpu()
    sel = idx.to(net.pilot.device)
    return replace(
        net,
        indices=tuple(net.indices[i] for i in idx.tolist()),
        **{f: getattr(net, f)[sel] for f in SETUP_TENSORS},
    )


def network_to(net: Network, device: torch.device | str) -> Network:
    """The same setups with every tensor on ``device``."""
    return replace(net, **{f: getattr(net, f).to(device) for f in SETUP_TENSORS})
