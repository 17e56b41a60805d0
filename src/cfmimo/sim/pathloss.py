"""Large-scale fading: path loss, spatially correlated shadowing, gains normalized by noise.

The book's convention (Demir et al. 2021, Section 5.3, eq. (5.42)):
    gain over noise [dB] = -30.5 - 36.7 log10(d3D / 1 m) + F_lk - sigma^2 [dBm],
with F_lk ~ N(0, 4^2) dB correlated across UEs as E{F_lk F_ij} = 4^2 * 2^(-delta_ki / 9 m) for the
same AP (independent across APs). The book draws it UE by UE by conditioning; we draw the exact
joint Gaussian (same law) with a Cholesky factor of the K x K covariance.

Other papers' models: COST231-Hata three-slope (Ngo et al. 2017) with the two-component shadowing
z_lk = sqrt(delta) a_l + sqrt(1 - delta) b_k (AP part and UE part, each correlated over its own
distances), which applies only beyond the second breakpoint d1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from cfmimo.config import Cost231ThreeSlopePathLoss, LogDistancePathLoss, Scenario
from cfmimo.rng import per_sample
from cfmimo.sim.geometry import distances_2d


def log_distance_gain_db(d3d: torch.Tensor, model: LogDistancePathLoss, carrier_ghz: float) -> torch.Tensor:
    """Channel gain in dB (negative path loss) of the log-distance model.

    Shapes:
        d3d: [...] metres -> [...] dB.
    """
    d = d3d.clamp_min(model.min_distance_m)
    return (
        model.intercept_db
        - 10.0 * model.exponent * torch.log10(d)
        - model.frequency_coefficient * math.log10(carrier_ghz)
    )


def cost231_constant_db(model: Cost231ThreeSlopePathLoss, carrier_ghz: float) -> float:
    """The constant L of the COST231-Hata three-slope model (Ngo et al. 2017, eq. (53))."""
    f = carrier_ghz * 1e3  # MHz
    return (
        46.3
        + 33.9 * math.log10(f)
        - 13.82 * math.log10(model.ap_height_m)
        - (1.1 * math.log10(f) - 0.7) * model.ue_height_m
        + (1.56 * math.log10(f) - 0.8)
    )


def cost231_gain_db(d2d: torch.Tensor, model: Cost231ThreeSlopePathLoss, carrier_ghz: float) -> torch.Tensor:
    """Three-slope gain in dB (Ngo et al. 2017, eq. (52)); distances are horizontal, in km inside.

    Shapes:
        d2d: [...] metres -> [...] dB.
    """
    big_l = cost231_constant_db(model, carrier_ghz)
    d_km = (d2d / 1e3).clamp_min(1e-9)
    d0, d1 = model.d0_m / 1e3, model.d1_m / 1e3
    far = -big_l - 35.0 * torch.log10(d_km)
    mid = -big_l - 15.0 * math.log10(d1) - 20.0 * torch.log10(d_km)
    near = torch.full_like(d_km, -big_l - 15.0 * math.log10(d1) - 20.0 * math.log10(d0))
    return torch.where(d_km > d1, far, torch.where(d_km > d0, mid, near))


def pathloss_gain_db(d2d: torch.Tensor, scenario: Scenario) -> torch.Tensor:
    """Deterministic channel gain in dB (no shadowing) for the scenario's path-loss model.

    Horizontal distances below ``scenario.min_distance_m`` are evaluated at it (a UE closer to an AP
    than the model's validity range sees the gain at its edge; 0 = no clamp).

    Shapes:
        d2d: [B, L, K] metres -> [B, L, K] dB.
    """
    model = scenario.pathloss
    d2d = d2d.clamp_min(scenario.min_distance_m)
    if isinstance(model, LogDistancePathLoss):
        d3d = torch.sqrt(d2d**2 + scenario.height_difference_m**2)
        return log_distance_gain_db(d3d, model, scenario.carrier_ghz)
    return cost231_gain_db(d2d, model, scenario.carrier_ghz)


def correlated_normal(
    points: torch.Tensor,
    side: float,
    wrap_around: bool,
    decorrelation_m: float,
    columns: int,
    *,
    seed: int,
    name: str,
    indices: Sequence[int],
) -> torch.Tensor:
    """Standard normals correlated across points as 2^(-distance / decorrelation), exact joint draw.

    ``columns`` independent copies are drawn (e.g. one per AP when correlating over UEs).

    Shapes:
        points: [B, P, 2] -> [B, P, columns] (dtype of ``points``).
    """
    count = points.shape[1]
    dist = distances_2d(points.double(), points.double(), side, wrap_around)  # [B, P, P]
    cov = torch.pow(2.0, -dist / decorrelation_m)
    # Wrapped distances can make the kernel marginally indefinite; a tiny jitter keeps the
    # factorization exact to ~1e-9 without changing the law in any measurable way.
    eye = torch.eye(count, dtype=torch.float64, device=points.device)
    factor, info = torch.linalg.cholesky_ex(cov + 1e-10 * eye)
    if bool((info > 0).any()):
        vals, vecs = torch.linalg.eigh(cov)
        factor = vecs * vals.clamp_min(0).sqrt()[..., None, :]
    z = per_sample(
        lambda g: torch.randn(count, columns, generator=g, dtype=torch.float64),
        seed,
        name,
        indices,
        device=points.device,
    )
    return (factor @ z).to(points.dtype)  # [B, P, columns]


def shadowing_db(
    ap: torch.Tensor,
    ue: torch.Tensor,
    d2d: torch.Tensor,
    scenario: Scenario,
    *,
    seed: int,
    indices: Sequence[int],
) -> torch.Tensor:
    """Shadow fading F_lk in dB.

    ``ue_correlated`` (the book): independent across APs, correlated across UEs.
    ``two_component`` (Ngo et al. 2017, eq. (54)): sqrt(delta) a_l + sqrt(1 - delta) b_k.
    ``scenario.shadowing_field``: the site's fixed field per AP read at the UE positions
    (``sim.shadowing_field``), the same for every sample.
    With the COST231 model, links within d1 get no shadowing (Ngo et al.).

    Shapes:
        ap: [B, L, 2], ue: [B, K, 2], d2d: [B, L, K] -> [B, L, K] dB.
    """
    std = scenario.shadowing_std_db
    L = ap.shape[1]
    if std == 0:
        return torch.zeros_like(d2d)
    if scenario.shadowing_field:
        # spatially consistent: the site's field of each AP read at the UE positions (issue 15)
        from cfmimo.sim.shadowing_field import site_shadowing_db

        f = site_shadowing_db(scenario, ue).to(d2d.dtype)
        if isinstance(scenario.pathloss, Cost231ThreeSlopePathLoss):
            f = torch.where(d2d > scenario.pathloss.d1_m, f, torch.zeros_like(f))
        return f
    common = dict(
        side=scenario.area_side_m,
        wrap_around=scenario.wrap_around,
        decorrelation_m=scenario.shadowing_decorrelation_m,
        seed=seed,
        indices=indices,
    )
    if scenario.shadowing_model == "ue_correlated":
        z = correlated_normal(ue, columns=L, name="shadowing", **common).transpose(1, 2)  # [B, L, K]
    else:
        a = correlated_normal(ap, columns=1, name="shadowing_ap", **common)  # [B, L, 1]
        b = correlated_normal(ue, columns=1, name="shadowing_ue", **common).transpose(1, 2)  # [B, 1, K]
        delta = scenario.shadowing_ap_share
        z = math.sqrt(delta) * a + math.sqrt(1.0 - delta) * b
    f = std * z
    if isinstance(scenario.pathloss, Cost231ThreeSlopePathLoss):
        f = torch.where(d2d > scenario.pathloss.d1_m, f, torch.zeros_like(f))
    return f
