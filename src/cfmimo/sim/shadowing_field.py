"""Site-specific deployments: a fixed AP layout and spatially consistent shadowing (issue 15).

A *site* is fixed by ``Scenario.deployment_seed``. With ``ap_deployment="fixed"`` every sample uses
the site's AP layout; with ``shadowing_field=True`` AP l's shadowing is one Gaussian field F_l(x)
over the area, drawn once per site and read at each UE position, so the same place always has the
same shadowing (the book's model, Section 5.3: 4 dB, E{F_l(x) F_l(y)} = 2^(-|x - y| / 9 m),
independent across APs).

Sampling (exact in law on the grid): the field's grid points are embedded in a periodic grid (a
torus) of n_t x n_t points, on which the covariance c(d) = 2^(-d/d0) of the minimum-image distance is
a block-circulant matrix diagonalized by the 2-D DFT, lambda = FFT2(c) (Dietrich & Newsam 1997):
    X = FFT2( sqrt(lambda / n_t^2) * W ),  W complex white noise,
gives Re X and Im X, two independent fields with covariance c on the grid (so one FFT serves two
APs). With wrap-around the torus is the area itself (n_t = n grid cells per side, spacing side/n);
otherwise the n + 1 grid points per side of the domain are embedded in a torus of at least 2n
points, on which every pair of domain points keeps its true distance, so the law is exact, not
approximate.
Eigenvalues of c below zero (minimum-image kernels need not be positive definite) are clamped;
``ShadowingField.covariance_error`` records the largest change of the grid covariance this causes.
For 2^(-d/9 m) at 1 m spacing no eigenvalue is negative once the torus has >= 120 points per side
(measured: the error is 1.9e-6 at 100 and 1.7e-3 at 60 points), so the non-wrapping torus has at
least MIN_TORUS_DECORRELATIONS decorrelation distances per side; a wrap-around area smaller than
~13 decorrelation distances gets the clamped (approximate) law, reported in covariance_error.

Reading: the value of the nearest grid point, F_l(x) = z_l(g(x)), so the marginal is exactly
N(0, 1) everywhere and two points have correlation 2^(-|g(x) - g(y)| / d0);
``interpolated_correlation`` gives it exactly, which is how the interpolation error against
2^(-|x - y| / d0) is measured (docs/physics.md).

Every random number comes from the stream (deployment_seed, "shadowing_field", pair index) of
``cfmimo.rng``; fields are computed on the CPU in float64 and stored in float32, and are cached per
process by the fields that define them, so they do not depend on sample batches, workers or device.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from cfmimo.config import Scenario
from cfmimo.rng import stream
from cfmimo.sim.geometry import grid_positions, isd_positions

#: smallest side of the non-wrapping torus, in decorrelation distances (keeps the embedding PSD)
MIN_TORUS_DECORRELATIONS = 14.0

#: torus points above which the FFTs of a chunk of AP pairs are split (memory, not results)
CHUNK_POINTS = 1 << 23


# ----------------------------------------------------------------------------- fixed AP layout
def site_ap_positions(scenario: Scenario) -> torch.Tensor:
    """The site's AP positions [L, 2] (float64, metres) for ``deployment_seed``.

    ``ap_layout="uniform"``: uniform in the area from the stream (deployment_seed, "site_ap_positions");
    the deterministic layouts (grid, square_isd, hex_isd) are their usual positions.
    """
    if scenario.deployment_seed is None:
        raise ValueError("a fixed deployment needs the field 'deployment_seed'")
    side, L = scenario.area_side_m, scenario.L
    if scenario.ap_layout == "grid":
        return grid_positions(L, side, 1, dtype=torch.float64)[0]
    if scenario.ap_layout in ("square_isd", "hex_isd"):
        lattice = "square" if scenario.ap_layout == "square_isd" else "hex"
        return isd_positions(L, scenario.ap_isd_m, side, 1, lattice=lattice, dtype=torch.float64)[0]
    g = stream(scenario.deployment_seed, "site_ap_positions", 0)
    return torch.rand(L, 2, generator=g, dtype=torch.float64) * side


# ----------------------------------------------------------------------------- the field
@dataclass(frozen=True)
class ShadowingField:
    """Standard normal fields, one per AP, on a square grid (``shadowing_grid_m`` is its largest
    spacing; the actual ``spacing`` divides the domain into whole cells).

    Grid point (i, j) (row i along y, column j along x) is at (origin + j*spacing, origin + i*spacing).
    ``periodic``: the grid wraps (period ``points * spacing`` = the area side).

    Shapes:
        values [L, P, P] float32 (P = ``points``).
    """

    deployment_seed: int
    area_side_m: float
    wrap_around: bool
    decorrelation_m: float
    grid_m: float
    margin_m: float
    origin: float
    spacing: float
    points: int
    periodic: bool
    values: torch.Tensor
    covariance_error: float

    def check(self, scenario: Scenario) -> None:
        """ValueError naming the field when this site's field was drawn for another scenario."""
        mine = _field_key(scenario)
        theirs = (
            self.deployment_seed,
            self.values.shape[0],
            self.area_side_m,
            self.wrap_around,
            self.decorrelation_m,
            self.grid_m,
            self.margin_m,
        )
        names = ("deployment_seed", "L", "area_side_m", "wrap_around", "shadowing_decorrelation_m")
        names += ("shadowing_grid_m", "ue_disc_radius_m")
        for name, a, b in zip(names, theirs, mine, strict=True):
            if a != b:
                raise ValueError(
                    f"shadowing_field: the site (deployment_seed {self.deployment_seed}) was drawn with "
                    f"{name} = {a!r}, the scenario has {name} = {b!r}"
                )


#: the scenario fields that define a site (its AP layout and shadowing field) besides deployment_seed
SITE_FIELDS = (
    "L",
    "area_side_m",
    "wrap_around",
    "ap_layout",
    "ap_isd_m",
    "shadowing_field",
    "shadowing_std_db",
    "shadowing_decorrelation_m",
    "shadowing_grid_m",
    "ue_disc_radius_m",
)


def check_same_site(site: Scenario, scenario: Scenario, *, what: str = "scenario") -> None:
    """ValueError naming the field when ``scenario`` is not on the site ``site`` was built for: the
    same ``deployment_seed`` (a fixed deployment) with another area, AP count, layout or field
    settings would silently be another site. A no-op when ``site`` has no fixed deployment."""
    if site.ap_deployment != "fixed" and not site.shadowing_field:
        return
    if scenario.deployment_seed != site.deployment_seed or scenario.ap_deployment != site.ap_deployment:
        raise ValueError(
            f"{what}: deployment_seed = {scenario.deployment_seed!r} (ap_deployment {scenario.ap_deployment!r}) "
            f"is not the site deployment_seed = {site.deployment_seed!r} (ap_deployment {site.ap_deployment!r})"
        )
    for name in SITE_FIELDS:
        a, b = getattr(site, name), getattr(scenario, name)
        if a != b:
            raise ValueError(
                f"{what}: the site deployment_seed = {site.deployment_seed} was built for {name} = {a!r}, "
                f"got {name} = {b!r} (the same seed with another {name} is another site)"
            )


def site_identity(scenario: Scenario) -> dict[str, Any] | None:
    """The fields that identify the site of a fixed deployment (``ap_deployment``,
    ``deployment_seed`` and ``SITE_FIELDS``; JSON-safe), None under the book's drops. Trained models
    record their training site (checkpoint ``hyper_parameters["site"]``, ONNX metadata ``site``),
    so that ``on_site`` can score their predictions on it and refuse another one."""
    if scenario.ap_deployment != "fixed" and not scenario.shadowing_field:
        return None
    fields = {"ap_deployment": scenario.ap_deployment, "deployment_seed": scenario.deployment_seed}
    return fields | {name: getattr(scenario, name) for name in SITE_FIELDS}


def on_site(
    scenario: Scenario,
    site: Mapping[str, Any] | None,
    *,
    ap_positions: torch.Tensor | None = None,
    what: str = "positions",
) -> Scenario:
    """``scenario`` placed on a recorded site (``site_identity``; None: unchanged): the site's
    fields replace the scenario's, so gains are those of the site (its AP layout and shadowing
    field). ``ap_positions`` [L, 2] (metres), when given, must be the site's AP layout (within 1 cm):
    a model of one site says nothing about another, and the field of AP l is attached to the site's
    AP l. ValueError naming ``what`` (e.g. the positions file) and the site otherwise."""
    if site is None:
        return scenario
    try:
        placed = scenario.with_(**dict(site))
    except ValueError as err:
        raise ValueError(
            f"site: the recorded site is not a valid scenario: {' '.join(str(err).split())}"
        ) from None
    if ap_positions is not None:
        expected = site_ap_positions(placed)
        got = torch.as_tensor(ap_positions, dtype=torch.float64)
        name = f"the model's training site (deployment_seed {placed.deployment_seed}, L = {placed.L})"
        if tuple(got.shape) != tuple(expected.shape):
            raise ValueError(f"{what}: {got.shape[0]} APs, but {name} has {placed.L}")
        far = (got - expected).norm(dim=-1) > 0.01
        if bool(far.any()):
            l = int(far.nonzero()[0])
            raise ValueError(
                f"{what}: AP {l} at {got[l].tolist()} m is not where {name} has it "
                f"({[round(v, 3) for v in expected[l].tolist()]} m): the model was trained for that site only"
            )
    return placed


def _margin(scenario: Scenario) -> float:
    """How far outside the area UEs can be: the disc radius for disc_union layouts, else 0."""
    if scenario.wrap_around or scenario.ue_layout != "disc_union":
        return 0.0
    return float(scenario.ue_disc_radius_m or 0.0)


def _field_key(scenario: Scenario) -> tuple:
    return (
        scenario.deployment_seed,
        scenario.L,
        scenario.area_side_m,
        scenario.wrap_around,
        scenario.shadowing_decorrelation_m,
        scenario.shadowing_grid_m,
        _margin(scenario),
    )


def circulant_eigenvalues(torus_points: int, spacing: float, decorrelation_m: float) -> torch.Tensor:
    """Eigenvalues lambda = FFT2(c) of the covariance 2^(-d/d0) on a periodic grid (minimum image).

    Shapes:
        -> [n_t, n_t] float64 (real: c is symmetric).
    """
    i = torch.arange(torus_points, dtype=torch.float64)
    lag = torch.minimum(i, torus_points - i) * spacing  # [n_t] minimum-image offset per axis
    d = torch.sqrt(lag[:, None] ** 2 + lag[None, :] ** 2)
    c = torch.pow(2.0, -d / decorrelation_m)
    return torch.fft.fft2(c).real


def sample_fields(
    count: int,
    torus_points: int,
    spacing: float,
    decorrelation_m: float,
    *,
    seed: int,
    keep: int | None = None,
    chunk: int | None = None,
) -> tuple[torch.Tensor, float]:
    """``count`` independent standard normal fields with covariance 2^(-d/d0) on a periodic grid.

    Pair j of fields comes from the stream (seed, "shadowing_field", j): field 2j is Re, 2j + 1 is
    Im of one FFT. ``keep``: the first keep x keep grid points are returned (the domain inside a
    larger torus). ``chunk``: AP pairs per FFT batch (memory only; results do not depend on it).
    Returns (fields [count, keep, keep] float64, the largest absolute change of the grid covariance
    caused by clamping negative eigenvalues to 0; 0.0 when none is negative).
    """
    n_t = torus_points
    keep = n_t if keep is None else keep
    lam = circulant_eigenvalues(n_t, spacing, decorrelation_m)
    negative = 0.0
    if bool((lam < 0).any()):
        change = torch.fft.ifft2((lam.clamp_min(0) - lam).to(torch.complex128)).real
        negative = float(change.abs().max())
    scale = (lam.clamp_min(0) / (n_t * n_t)).sqrt()  # [n_t, n_t]
    pairs = (count + 1) // 2
    chunk = chunk or max(1, CHUNK_POINTS // (n_t * n_t))
    out = []
    for start in range(0, pairs, chunk):
        w = torch.stack(
            [
                torch.randn(n_t, n_t, 2, generator=stream(seed, "shadowing_field", j), dtype=torch.float32)
                for j in range(start, min(pairs, start + chunk))
            ]
        )  # [P, n_t, n_t, 2], drawn in float32 like every normal in cfmimo
        x = torch.fft.fft2(torch.view_as_complex(w.double()) * scale)[:, :keep, :keep]
        out.append(torch.stack([x.real, x.imag], dim=1).reshape(-1, keep, keep))
    return torch.cat(out)[:count], negative


@functools.lru_cache(maxsize=4)
def _cached_field(key: tuple) -> ShadowingField:
    seed, L, side, wrap, d0, grid_m, margin = key
    if wrap:
        cells = math.ceil(side / grid_m - 1e-9)
        spacing, origin, points, torus = side / cells, 0.0, cells, cells
    else:
        span = side + 2 * margin
        cells = math.ceil(span / grid_m - 1e-9)
        spacing, origin, points = span / cells, -margin, cells + 1
        torus = max(2 * cells, math.ceil(MIN_TORUS_DECORRELATIONS * d0 / spacing))
    values, negative = sample_fields(L, torus, spacing, d0, seed=seed, keep=points)
    return ShadowingField(
        seed, side, wrap, d0, grid_m, margin, origin, spacing, points, wrap, values.float(), negative
    )


def site_shadowing_field(scenario: Scenario) -> ShadowingField:
    """The scenario's site field (cached per process by the fields that define it)."""
    if scenario.deployment_seed is None:
        raise ValueError("shadowing_field needs the field 'deployment_seed'")
    return _cached_field(_field_key(scenario))


def _grid_index(points: torch.Tensor, field: ShadowingField) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest grid point (column ix along x, row iy along y) of each point, checked in the domain.

    Shapes:
        points [..., 2] -> (ix, iy), each [...] long.
    """
    u = (points.double() - field.origin) / field.spacing
    if field.periodic:
        i = torch.remainder(torch.round(u), field.points).long()
    else:
        top = field.points - 1
        eps = 1e-9 * top
        if bool(((u < -eps) | (u > top + eps)).any()):
            lo, hi = field.origin, field.origin + top * field.spacing
            raise ValueError(
                f"shadowing_field: UE positions span [{float(points.min()):.2f}, {float(points.max()):.2f}] m, "
                f"outside the site's field [{lo:g}, {hi:g}] m (area_side_m = {field.area_side_m:g})"
            )
        i = torch.round(u).long().clamp(0, top)
    return i[..., 0], i[..., 1]


def field_values(field: ShadowingField, points: torch.Tensor) -> torch.Tensor:
    """Standard normal shadowing of every AP's field at ``points``: the value of the nearest grid point.

    Nearest rather than bilinear: the marginal stays exactly N(0, 1) and the correlation of two
    uniformly placed points is unbiased to < 0.006 at spacing 1 m, whereas bilinear interpolation
    (even with its variance renormalized) smooths the rough exponential field and raises the
    correlation by 0.02-0.03 at 4.5-9 m (measured, docs/physics.md).

    Shapes:
        points [B, K, 2] metres -> [B, L, K] float64.
    """
    ix, iy = _grid_index(points, field)
    v = field.values.to(device=points.device)
    z = v[:, iy.to(points.device), ix.to(points.device)].double()  # [L, B, K]
    return z.transpose(0, 1)  # [B, L, K]


def site_shadowing_db(
    scenario: Scenario, ue: torch.Tensor, field: ShadowingField | None = None
) -> torch.Tensor:
    """Shadowing F_lk [dB] = shadowing_std_db * F_l(ue_k) of the site (``field``: an explicit site,
    checked against the scenario; default the scenario's own).

    Shapes:
        ue [B, K, 2] -> [B, L, K] in the dtype of ``ue``.
    """
    if field is None:
        field = site_shadowing_field(scenario)
    else:
        field.check(scenario)
    return (scenario.shadowing_std_db * field_values(field, ue)).to(ue.dtype)


def interpolated_correlation(p: torch.Tensor, q: torch.Tensor, spacing: float, d0: float) -> torch.Tensor:
    """Exact correlation of the field read at points p and q (nearest grid point, a grid with spacing
    ``spacing`` and a point at the origin, no wrapping): 2^(-|g(p) - g(q)| / d0). Measures the
    interpolation error against 2^(-|p - q| / d0).

    Shapes:
        p, q [M, 2] -> [M] float64.
    """
    gp, gq = torch.round(p.double() / spacing), torch.round(q.double() / spacing)
    return torch.pow(2.0, -torch.linalg.vector_norm(gp - gq, dim=-1) * spacing / d0)
