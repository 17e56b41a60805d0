"""Bring your own channels: the MATLAB array conventions of the book, as .mat and .npz files.

The book (Demir, Björnson, Sanguinetti, "Foundations of User-Centric Cell-Free Massive MIMO", 2021;
code: ``generateSetup.m``, ``functionChannelEstimates.m``, ``functionComputeSE_uplink.m``) keeps one
setup in these arrays (MATLAB indices are 1-based; the book's names are kept as field names):

=================  ===============================  ===============================================
field              shape (MATLAB order)             meaning
=================  ===============================  ===============================================
H                  complex [L*N, T, K]              realizations; AP l's antennas are rows
                                                    (l-1)*N+1 .. l*N (0-based: l*N .. l*N+N-1)
Np                 complex [N, T, L, tau_p]         pilot noise, CN(0, 1) entries
R                  complex [N, N, L, K]             correlation matrices, gain included (over noise)
gainOverNoisedB    real [L, K]                      channel gain over noise, dB
pilotIndex         integer-valued [K]               pilot of each UE, 1-based (1 .. tau_p)
D                  0/1 [L, K]                       D(l, k) = 1 if AP l serves UE k
APpositions        complex [L] (optional)           x + 1j*y, metres
UEpositions        complex [K] (optional)           x + 1j*y, metres
Hhat               complex [L*N, T, K] (optional)   MMSE estimates, laid out like H
B, C               complex [N, N, L, K] (optional)  estimate and error correlation matrices
=================  ===============================  ===============================================

The received pilot signal is the book's
``yp = sqrt(p)*tau_p*sum(H((l-1)*N+1:l*N, :, t==pilotIndex), 3) + sqrt(tau_p)*Np(:, :, l, t)``, the
same as cfmimo's (DESIGN.md 9.6), so :func:`cfmimo.sim.network.estimate` on imported ``H``, ``Np``
and ``R`` reproduces ``functionChannelEstimates`` to rounding.

cfmimo's tensors are batched (DESIGN.md section 2): ``h [B, T, L, K, N]``, pilot noise
``[B, T, L, tau_p, N]``, ``R [B, L, K, N, N]``, ``gain_db``/``serving [B, L, K]``, ``pilot [B, K]``
(0-based). The conversions are pure index permutations (no arithmetic), hence exact:

    H[l*N + n, t, k]  = h[b, t, l, k, n]          Np[n, t, l, s] = pilot_noise[b, t, l, s, n]
    R[n, m, l, k]     = R_cfmimo[b, l, k, n, m]    pilotIndex[k]  = pilot[b, k] + 1

One file holds one setup; a batch is a list of array dicts (one per setup, equal sizes), which
:func:`network_from_book`, :func:`channels_from_book`, :func:`state_from_book`,
:func:`book_spectral_efficiency` and :func:`uatf_spectral_efficiency` accept in place of a single dict.

SE conventions: :func:`book_spectral_efficiency` returns the book's quantities (UL Theorem 5.1 with
instantaneous estimates, DL Theorem 6.1); :func:`uatf_spectral_efficiency` the UatF bounds that
cfmimo's max-min problems optimize. Both use the scenario's pre-logs; the book's 1 - tau_p/tau_c for
both links is ``scenario.with_(prelog="book")``.

Reading is forgiving about singleton dimensions only: MATLAB drops trailing ones (``H`` of a single
UE is ``[L*N, T]``), NumPy users may squeeze others, and vectors may be rows or columns. The sizes
L, K, N, T and tau_p are inferred from ``pilotIndex`` (K), ``gainOverNoisedB`` (L), ``R`` (N),
``H`` or ``Hhat`` (T) and ``Np`` (tau_p); every array must then have its book shape up to singleton
dimensions, in the book's order. Anything else raises a ValueError that names the file (or
``arrays``) and the field. Files are written atomically (temporary file in the same folder, then
``os.replace``); ``.npz`` files are read without pickle. ``load_mat`` also reads MATLAB v7.3 (HDF5)
files through h5py.
"""

from __future__ import annotations

import io
import math
import os
import zipfile
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import scipy.io
import torch

from cfmimo.config import Scenario
from cfmimo.npzio import npz_array
from cfmimo.sim.geometry import distances_2d
from cfmimo.sim.network import (
    ChannelState,
    Network,
    estimate,
    instantaneous_estimate_se,
    network_statistics,
)
from cfmimo.sim.pilots import master_aps
from cfmimo.sim.uatf import downlink_sinr, equal_downlink_power, spectral_efficiency, uplink_sinr

#: Every field this module reads or writes, in the book's names.
BOOK_FIELDS = (
    "H",
    "Np",
    "R",
    "gainOverNoisedB",
    "pilotIndex",
    "D",
    "APpositions",
    "UEpositions",
    "Hhat",
    "B",
    "C",
)
#: Fields every setup must have (large-scale statistics, pilots and clusters).
REQUIRED_FIELDS = ("R", "gainOverNoisedB", "pilotIndex", "D")

_LAYOUT = {
    "H": "complex [L*N, T, K]",
    "Hhat": "complex [L*N, T, K]",
    "Np": "complex [N, T, L, tau_p]",
    "R": "complex [N, N, L, K]",
    "B": "complex [N, N, L, K]",
    "C": "complex [N, N, L, K]",
    "gainOverNoisedB": "real [L, K]",
    "pilotIndex": "1-based integers [K]",
    "D": "0/1 [L, K]",
    "APpositions": "complex [L]",
    "UEpositions": "complex [K]",
}

BookArrays = Mapping[str, Any]


# ----------------------------------------------------------------------------- validation
def _squeezed(shape: Sequence[int]) -> tuple[int, ...]:
    return tuple(s for s in shape if s != 1)


def _numeric(name: str, value: Any, source: str) -> np.ndarray:
    a = np.asarray(value)
    if a.dtype == bool:
        a = a.astype(np.float64)
    if a.dtype.kind not in "iufc":
        raise ValueError(f"{source}: array '{name}' must be numeric, got dtype {a.dtype}")
    return a


def _fit(name: str, a: np.ndarray, shape: tuple[int, ...], source: str, dims: str) -> np.ndarray:
    """``a`` reshaped to the book shape ``shape``; only singleton dimensions may differ."""
    if a.size != math.prod(shape) or _squeezed(a.shape) != _squeezed(shape):
        raise ValueError(
            f"{source}: array '{name}' has shape {tuple(a.shape)}, expected {_LAYOUT[name]} = {shape} "
            f"({dims}; singleton dimensions may be dropped, the others must keep the book's order)"
        )
    return a.reshape(shape)  # only singleton dimensions move: element order is unchanged


def _complex(a: np.ndarray) -> np.ndarray:
    single = a.dtype in (np.float32, np.complex64, np.float16)
    return a.astype(np.complex64 if single else np.complex128, copy=False)


def _real(a: np.ndarray, name: str, source: str) -> np.ndarray:
    if a.dtype.kind == "c":
        if np.any(a.imag != 0):
            raise ValueError(f"{source}: array '{name}' must be real, got complex values")
        a = a.real
    return a.astype(np.float32 if a.dtype == np.float32 else np.float64, copy=False)


def _finite(name: str, a: np.ndarray, source: str) -> None:
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{source}: array '{name}' contains NaN or infinite values")


def _count(name: str, a: np.ndarray, per: int, source: str, what: str) -> int:
    """Size of the dimension ``what`` of ``a`` given the product ``per`` of its other dimensions."""
    if per <= 0 or a.size % per or a.size // per < 1:
        raise ValueError(
            f"{source}: array '{name}' has shape {tuple(a.shape)} ({a.size} entries), which is not "
            f"{_LAYOUT[name]} for any {what} >= 1 (the other sizes give {per} entries per unit of {what})"
        )
    return a.size // per


def check_book_arrays(
    arrays: BookArrays, *, source: str = "arrays", require: Iterable[str] = ()
) -> dict[str, np.ndarray]:
    """Validate one setup in the book's conventions and return it in canonical form.

    The result holds the known fields only (others, e.g. MATLAB variables such as ``SE``, are
    dropped), reshaped to their full book shapes, complex fields as complex64/complex128 (following
    the input's precision), ``gainOverNoisedB`` real, ``pilotIndex`` and ``D`` as float64 (MATLAB
    doubles). ``source`` names the file in error messages; ``require`` adds fields to
    :data:`REQUIRED_FIELDS`.

    Shapes:
        see the module docstring; returns the same fields with exactly those shapes.

    Raises:
        ValueError naming ``source`` and the field: missing array, wrong shape or dtype, NaN/inf,
        pilot indices that are not 1-based integers (or exceed tau_p of ``Np``), D not 0/1,
        R not Hermitian, Np without H or Hhat.
    """
    if not isinstance(arrays, Mapping):
        raise TypeError(
            f"{source}: book arrays must be a mapping of names to arrays, got {type(arrays).__name__}"
        )
    for name in (*REQUIRED_FIELDS, *require):
        if name not in BOOK_FIELDS:
            raise ValueError(f"unknown book field {name!r} in require; known: {', '.join(BOOK_FIELDS)}")
        if name not in arrays or arrays[name] is None:
            raise ValueError(f"{source}: missing array '{name}' ({_LAYOUT[name]})")
    raw = {k: _numeric(k, arrays[k], source) for k in BOOK_FIELDS if k in arrays and arrays[k] is not None}
    out: dict[str, np.ndarray] = {}

    # K from pilotIndex, L from gainOverNoisedB, N from R
    pilot = raw["pilotIndex"]
    if len(_squeezed(pilot.shape)) > 1:
        raise ValueError(f"{source}: array 'pilotIndex' must be a vector [K], got shape {tuple(pilot.shape)}")
    K = pilot.size
    if K < 1:
        raise ValueError(f"{source}: array 'pilotIndex' is empty (K = 0)")
    pilot = _real(pilot.reshape(K), "pilotIndex", source)
    _finite("pilotIndex", pilot, source)
    if np.any(pilot != np.round(pilot)):
        raise ValueError(f"{source}: array 'pilotIndex' must hold integers, got {pilot.tolist()}")
    if pilot.min() < 1:
        raise ValueError(
            f"{source}: array 'pilotIndex' must be 1-based (values 1 .. tau_p, as in MATLAB), got "
            f"minimum {pilot.min():g}" + (" (0-based indices? add 1)" if pilot.min() == 0 else "")
        )
    out["pilotIndex"] = pilot.astype(np.float64)

    L = _count("gainOverNoisedB", raw["gainOverNoisedB"], K, source, "L")
    dims = f"L = {L}, K = {K}"
    gain = _real(
        _fit("gainOverNoisedB", raw["gainOverNoisedB"], (L, K), source, dims), "gainOverNoisedB", source
    )
    _finite("gainOverNoisedB", gain, source)
    out["gainOverNoisedB"] = gain

    n_sq = _count("R", raw["R"], L * K, source, "N*N")
    N = math.isqrt(n_sq)
    if N * N != n_sq:
        raise ValueError(
            f"{source}: array 'R' has shape {tuple(raw['R'].shape)}, expected {_LAYOUT['R']} "
            f"(L = {L}, K = {K}): {raw['R'].size} entries is not N*N*L*K for an integer N"
        )
    dims = f"L = {L}, K = {K}, N = {N}"
    for name in ("R", "B", "C"):
        if name in raw:
            a = _complex(_fit(name, raw[name], (N, N, L, K), source, dims))
            _finite(name, a, source)
            out[name] = a
    r = out["R"]
    asym = np.abs(r - r.conj().transpose(1, 0, 2, 3)).max(axis=(0, 1))  # [L, K]
    scale = np.abs(r).max(axis=(0, 1))
    bad = asym > 1e-5 * np.maximum(scale, np.finfo(np.float64).tiny)
    if np.any(bad):
        l, k = np.argwhere(bad)[0]
        raise ValueError(
            f"{source}: array 'R' is not Hermitian: R(:, :, {l + 1}, {k + 1}) (1-based) differs from its "
            f"conjugate transpose by {asym[l, k]:.3g} (entries up to {scale[l, k]:.3g})"
        )

    d = _real(_fit("D", raw["D"], (L, K), source, dims), "D", source)
    if not np.all((d == 0) | (d == 1)):
        raise ValueError(f"{source}: array 'D' must hold only 0 and 1 (D(l, k) = 1 if AP l serves UE k)")
    out["D"] = d.astype(np.float64)

    for name, count in (("APpositions", L), ("UEpositions", K)):
        if name in raw:
            a = _complex(_fit(name, raw[name], (count,), source, dims))
            _finite(name, a, source)
            out[name] = a

    # T from H (or Hhat), tau_p from Np
    t_source = "H" if "H" in raw else "Hhat" if "Hhat" in raw else None
    if t_source is not None:
        T = _count(t_source, raw[t_source], L * N * K, source, "T")
        dims = f"L = {L}, K = {K}, N = {N}, T = {T}"
        for name in ("H", "Hhat"):
            if name in raw:
                a = _complex(_fit(name, raw[name], (L * N, T, K), source, dims))
                _finite(name, a, source)
                out[name] = a
        if "Np" in raw:
            tau_p = _count("Np", raw["Np"], N * T * L, source, "tau_p")
            a = _complex(_fit("Np", raw["Np"], (N, T, L, tau_p), source, dims + f", tau_p = {tau_p}"))
            _finite("Np", a, source)
            out["Np"] = a
            if pilot.max() > tau_p:
                raise ValueError(
                    f"{source}: array 'pilotIndex' has values up to {pilot.max():g} but 'Np' holds only "
                    f"tau_p = {tau_p} pilots"
                )
    elif "Np" in raw:
        raise ValueError(f"{source}: array 'Np' needs 'H' (or 'Hhat') to fix the number of realizations T")
    return out


def _sizes(a: dict[str, np.ndarray]) -> dict[str, int]:
    N, _, L, K = a["R"].shape
    sizes = {"L": L, "K": K, "N": N}
    if "H" in a or "Hhat" in a:
        sizes["T"] = (a["H"] if "H" in a else a["Hhat"]).shape[1]
    if "Np" in a:
        sizes["tau_p"] = a["Np"].shape[3]
    return sizes


def _checked_list(arrays: BookArrays | Sequence[BookArrays], require: Iterable[str] = ()) -> list[dict]:
    """One or more setups, validated, with equal sizes (a batch)."""
    require = tuple(require)
    if isinstance(arrays, Mapping):
        return [check_book_arrays(arrays, require=require)]
    items = list(arrays)
    if not items:
        raise ValueError("arrays: empty list of setups")
    checked = [check_book_arrays(a, source=f"arrays[{i}]", require=require) for i, a in enumerate(items)]
    first = _sizes(checked[0])
    for i, c in enumerate(checked[1:], start=1):
        sizes = _sizes(c)
        for key in ("L", "K", "N", *[k for k in ("T", "tau_p") if k in sizes and k in first]):
            if sizes[key] != first[key]:
                raise ValueError(
                    f"arrays[{i}]: {key} = {sizes[key]} differs from arrays[0] ({key} = {first[key]}); "
                    "setups of one batch must have equal sizes"
                )
    return checked


def _real_dtype(checked: list[dict], dtype: torch.dtype | None) -> torch.dtype:
    if dtype is None:
        return torch.float32 if all(c["R"].dtype == np.complex64 for c in checked) else torch.float64
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32, torch.float64 or None, got {dtype}")
    return dtype


def _complex_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.complex64 if dtype == torch.float32 else torch.complex128


def _tensor(a: np.ndarray, dtype: torch.dtype, device: torch.device | str | None) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).to(dtype=dtype, device=device)


# ----------------------------------------------------------------------------- layout conversions
def _h_to_book(h: torch.Tensor) -> np.ndarray:
    """Shapes: h [T, L, K, N] -> H [L*N, T, K]."""
    T, L, K, N = h.shape
    return h.detach().cpu().numpy().transpose(1, 3, 0, 2).reshape(L * N, T, K)  # [L, N, T, K] -> rows l*N+n


def _h_from_book(H: np.ndarray, L: int, N: int) -> np.ndarray:
    """Shapes: H [L*N, T, K] -> h [T, L, K, N]."""
    _, T, K = H.shape
    return H.reshape(L, N, T, K).transpose(2, 0, 3, 1)  # row l*N+n -> (l, n)


def _cov_to_book(r: torch.Tensor) -> np.ndarray:
    """Shapes: [L, K, N, N] -> [N, N, L, K]."""
    return r.detach().cpu().numpy().transpose(2, 3, 0, 1)


def _positions_to_book(x: torch.Tensor) -> np.ndarray:
    """Shapes: [P, 2] -> complex [P] (x + 1j*y)."""
    a = x.detach().cpu().numpy()
    return a[:, 0] + 1j * a[:, 1]


def to_book(
    net: Network,
    state: ChannelState | None = None,
    pilot_noise: torch.Tensor | None = None,
    *,
    index: int = 0,
    estimates: bool = False,
) -> dict[str, np.ndarray]:
    """Setup ``index`` of a cfmimo batch as book arrays (exact: index permutations only).

    Always ``R``, ``gainOverNoisedB``, ``pilotIndex`` (1-based), ``D``; ``APpositions`` and
    ``UEpositions`` when the positions are finite; ``H`` from ``state``; ``Np`` from
    ``pilot_noise``; ``Hhat``, ``B``, ``C`` from ``state`` when ``estimates``. Precision follows the
    tensors (complex64 for float32 networks); pilotIndex and D are float64 as in MATLAB.

    Shapes:
        net: Network of B setups; state.h, state.h_hat [B, T, L, K, N]; pilot_noise
        [B, T, L, tau_p, N] -> dict of book arrays (module docstring).
    """
    if not 0 <= index < net.batch:
        raise ValueError(f"index must be in 0 .. {net.batch - 1} (batch of {net.batch}), got {index}")
    b = index
    _, L, K, N, _ = net.correlation.shape
    out: dict[str, np.ndarray] = {
        "R": _cov_to_book(net.correlation[b]),
        "gainOverNoisedB": net.gain_db[b].detach().cpu().numpy(),
        "pilotIndex": net.pilot[b].detach().cpu().numpy().astype(np.float64) + 1.0,
        "D": net.serving[b].detach().cpu().numpy().astype(np.float64),
    }
    for name, pos in (("APpositions", net.ap_positions[b]), ("UEpositions", net.ue_positions[b])):
        if bool(torch.isfinite(pos).all()):
            out[name] = _positions_to_book(pos)
    if state is not None:
        if state.h.dim() != 5 or tuple(state.h.shape[0:1]) + tuple(state.h.shape[2:]) != (net.batch, L, K, N):
            raise ValueError(
                f"state.h must be [B, T, L, K, N] = [{net.batch}, T, {L}, {K}, {N}], got "
                f"{tuple(state.h.shape)}"
            )
        out["H"] = _h_to_book(state.h[b])
        if estimates:
            out["Hhat"] = _h_to_book(state.h_hat[b])
            out["B"] = _cov_to_book(state.estimate_cov[b])
            out["C"] = _cov_to_book(state.error_cov[b])
    elif estimates:
        raise ValueError("estimates=True needs state")
    if pilot_noise is not None:
        if (
            pilot_noise.dim() != 5
            or pilot_noise.shape[0] != net.batch
            or pilot_noise.shape[2] != L
            or (pilot_noise.shape[4] != N)
        ):
            raise ValueError(
                f"pilot_noise must be [B, T, L, tau_p, N] = [{net.batch}, T, {L}, tau_p, {N}], got "
                f"{tuple(pilot_noise.shape)}"
            )
        if state is None:
            raise ValueError("pilot_noise needs state (the realizations H fix T)")
        if pilot_noise.shape[1] != state.h.shape[1]:
            raise ValueError(
                f"pilot_noise has T = {pilot_noise.shape[1]} realizations, state.h has {state.h.shape[1]}"
            )
        out["Np"] = (
            pilot_noise[b].detach().cpu().numpy().transpose(3, 0, 1, 2)
        )  # [T, L, tau_p, N] -> [N, T, L, tau_p]
    return check_book_arrays(out, source=f"to_book(index={index})")


def network_from_book(
    arrays: BookArrays | Sequence[BookArrays],
    scenario: Scenario,
    *,
    seed: int = 0,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> Network:
    """A cfmimo Network whose large-scale quantities come from book arrays (nothing is resampled).

    R, gains, pilots and serving masks are taken from ``R``, ``gainOverNoisedB``, ``pilotIndex``
    and ``D``; master APs are argmax of the gains (as in ``generateSetup.m``); positions from
    ``APpositions``/``UEpositions`` (NaN where absent), 2-D distances from them under the
    scenario's area and wrap-around (NaN without positions). The scenario supplies everything else
    (powers, tau_c/tau_u/tau_d, DL normalization, pilot power p); its L, K, N, and tau_p when ``Np``
    is given, are set from the arrays (``scenario.with_``), and pilot indices must not exceed its
    tau_p. ``seed`` and indices 0..B-1 only matter if you sample new realizations for this network.
    ``dtype``: float32/float64, or None for float32 when every R is single precision, else float64.

    Shapes:
        arrays: one setup's book arrays, or a list of B of them (equal sizes) -> Network with
        gain_db, serving [B, L, K], correlation [B, L, K, N, N], pilot, master [B, K],
        ap_positions [B, L, 2], ue_positions [B, K, 2].
    """
    checked = _checked_list(arrays)
    sizes = _sizes(checked[0])
    fields = {k: sizes[k] for k in ("L", "K", "N", "tau_p") if k in sizes}
    if any(getattr(scenario, k) != v for k, v in fields.items()):
        scenario = scenario.with_(**fields)
    for i, c in enumerate(checked):
        if c["pilotIndex"].max() > scenario.tau_p:
            name = "arrays" if isinstance(arrays, Mapping) else f"arrays[{i}]"
            raise ValueError(
                f"{name}: array 'pilotIndex' has values up to {c['pilotIndex'].max():g} > scenario.tau_p = "
                f"{scenario.tau_p}"
            )
    real = _real_dtype(checked, dtype)
    cplx = _complex_dtype(real)
    L, K = sizes["L"], sizes["K"]

    def stack(fn: Callable[[dict], np.ndarray], dt: torch.dtype) -> torch.Tensor:
        return _tensor(np.stack([fn(c) for c in checked]), dt, device)

    def positions(c: dict, name: str, count: int) -> np.ndarray:
        if name not in c:
            return np.full((count, 2), np.nan)
        return np.stack([c[name].real, c[name].imag], axis=-1)  # [P] complex -> [P, 2]

    ap = stack(lambda c: positions(c, "APpositions", L), real)  # [B, L, 2]
    ue = stack(lambda c: positions(c, "UEpositions", K), real)  # [B, K, 2]
    gain_db = stack(lambda c: c["gainOverNoisedB"], real)  # [B, L, K]
    r = stack(lambda c: c["R"].transpose(2, 3, 0, 1), cplx)  # [N, N, L, K] -> [B, L, K, N, N]
    pilot = stack(lambda c: c["pilotIndex"] - 1.0, torch.float64).round().long()  # [B, K], 0-based
    serving = stack(lambda c: c["D"], torch.float64) > 0  # [B, L, K]
    d2d = distances_2d(ap, ue, scenario.area_side_m, scenario.wrap_around)  # [B, L, K]
    return Network(
        scenario=scenario,
        seed=seed,
        indices=tuple(range(len(checked))),
        ap_positions=ap,
        ue_positions=ue,
        distance_2d=d2d,
        gain_db=gain_db,
        correlation=r,
        pilot=pilot,
        master=master_aps(gain_db),
        serving=serving,
    )


def channels_from_book(
    arrays: BookArrays | Sequence[BookArrays],
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Realizations and pilot noise from ``H`` and ``Np``, for :func:`cfmimo.sim.network.estimate`.

    Shapes:
        arrays: one setup or a list of B -> (h [B, T, L, K, N], pilot_noise [B, T, L, tau_p, N]).
    """
    checked = _checked_list(arrays, require=("H", "Np"))
    cplx = _complex_dtype(_real_dtype(checked, dtype))
    L, N = _sizes(checked[0])["L"], _sizes(checked[0])["N"]
    h = _tensor(np.stack([_h_from_book(c["H"], L, N) for c in checked]), cplx, device)
    noise = np.stack([c["Np"].transpose(1, 2, 3, 0) for c in checked])  # [N, T, L, tau_p] -> [T, L, tau_p, N]
    return h, _tensor(noise, cplx, device)


def state_from_book(
    arrays: BookArrays | Sequence[BookArrays],
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> ChannelState:
    """A ChannelState from given realizations and estimates (``H``, ``Hhat``, ``B``, ``C``).

    Use it when you bring your own estimator; with ``Np`` prefer ``estimate(net, h, pilot_noise)``.

    Shapes:
        arrays: one setup or a list of B -> h, h_hat [B, T, L, K, N]; B, C [B, L, K, N, N].
    """
    checked = _checked_list(arrays, require=("H", "Hhat", "B", "C"))
    cplx = _complex_dtype(_real_dtype(checked, dtype))
    L, N = _sizes(checked[0])["L"], _sizes(checked[0])["N"]

    def stack(name: str) -> torch.Tensor:
        if name in ("H", "Hhat"):
            return _tensor(np.stack([_h_from_book(c[name], L, N) for c in checked]), cplx, device)
        return _tensor(np.stack([c[name].transpose(2, 3, 0, 1) for c in checked]), cplx, device)

    return ChannelState(h=stack("H"), h_hat=stack("Hhat"), estimate_cov=stack("B"), error_cov=stack("C"))


def _own_state(
    arrays: BookArrays | Sequence[BookArrays], scenario: Scenario, dtype: torch.dtype | None, who: str
) -> tuple[Network, ChannelState]:
    """The network and channel state of the user's arrays (estimated from ``Np`` or stored)."""
    checked = _checked_list(arrays)
    net = network_from_book(checked, scenario, dtype=dtype)
    if all("Np" in c and "H" in c for c in checked):
        h, noise = channels_from_book(checked, dtype=net.gain_db.dtype)
        return net, estimate(net, h, noise)
    if all(all(k in c for k in ("H", "Hhat", "B", "C")) for c in checked):
        return net, state_from_book(checked, dtype=net.gain_db.dtype)
    raise ValueError(f"arrays: {who} needs 'H' and 'Np' (or 'H', 'Hhat', 'B' and 'C') in every setup")


def _downlink_se(
    net: Network,
    dl: Any,
    dl_power: torch.Tensor | None,
    normalization: str,
) -> torch.Tensor:
    sc = net.scenario
    shape = tuple(net.pilot.shape)
    if dl_power is None:
        dl_power = equal_downlink_power(dl, normalization, sc.dl_power_per_ap_mw)
    elif tuple(dl_power.shape) != shape:
        raise ValueError(f"dl_power must be [B, K] = {shape}, got {tuple(dl_power.shape)}")
    return spectral_efficiency(downlink_sinr(dl, dl_power), sc.prelog_dl)


def uatf_spectral_efficiency(
    arrays: BookArrays | Sequence[BookArrays],
    scenario: Scenario,
    combiner: str = "mmse",
    *,
    dl_power: torch.Tensor | None = None,
    dl_normalization: str | None = None,
    dtype: torch.dtype | None = None,
    chunk: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-UE UatF UL and DL SE (bit/s/Hz) of the user's own channels: what cfmimo's problems
    optimize (the papers' eqs. (4) and (7); the book's UL bound of Section 7.1 and DL Theorem 6.1).

    Estimates come from ``H`` and ``Np`` (the book's ``functionChannelEstimates``) when ``Np`` is
    given, else from the stored ``Hhat``, ``B``, ``C``. Centralized combiners ``combiner``
    ('mmse', 'pmmse', 'przf', 'mr') over the serving APs in ``D``, designed at full UL power;
    UL SE at full UL power ``scenario.ul_power_mw``. DL precoders are the normalized combiners
    (``dl_normalization``, scenario's by default). DL powers ``dl_power`` [B, K] in mW; by default
    equal for all UEs: ``L * dl_power_per_ap_mw / K`` under the papers' sum constraint
    (``per_realization``), or the largest equal power that keeps every AP within
    ``dl_power_per_ap_mw`` (``average``, the book's per-AP limits). Pre-logs are
    ``scenario.prelog_ul``/``prelog_dl``: tau_u/tau_c and tau_d/tau_c, or the book's
    1 - tau_p/tau_c for both with ``scenario.with_(prelog="book")``.

    This was ``book_spectral_efficiency`` before; that name now returns the book's UL quantity
    (Theorem 5.1), which differs from this UL bound by 3-23 % (see :func:`book_spectral_efficiency`).

    Shapes:
        arrays: one setup or a list of B -> (se_ul [B, K], se_dl [B, K]).
    """
    net, state = _own_state(arrays, scenario, dtype, "uatf_spectral_efficiency")
    normalization = dl_normalization or net.scenario.dl_normalization
    ul, dl = network_statistics(net, state, combiner, dl_normalization=normalization, chunk=chunk)
    p = torch.full(net.pilot.shape, net.scenario.ul_power_mw, dtype=net.gain_db.dtype)
    se_ul = spectral_efficiency(uplink_sinr(ul, p), net.scenario.prelog_ul)
    return se_ul, _downlink_se(net, dl, dl_power, normalization)


def book_spectral_efficiency(
    arrays: BookArrays | Sequence[BookArrays],
    scenario: Scenario,
    combiner: str = "mmse",
    *,
    dl_power: torch.Tensor | None = None,
    dl_normalization: str | None = None,
    dtype: torch.dtype | None = None,
    chunk: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-UE UL and DL SE (bit/s/Hz) as the book defines them for centralized operation, from the
    user's own channels (the values of the book's ``functionComputeSE_uplink`` and
    ``functionComputeSE_downlink``):

    * UL: Theorem 5.1, SE_k = prelog_ul E{log2(1 + SINR_k)} with the instantaneous SINR of the
      estimates (``cfmimo.sim.network.instantaneous_estimate_se``), full UL power;
    * DL: Theorem 6.1, the hardening bound prelog_dl log2(1 + SINR_k) (the same as
      :func:`uatf_spectral_efficiency`'s DL).

    Arguments as in :func:`uatf_spectral_efficiency`. The book's pre-log 1 - tau_p/tau_c for both
    links: pass ``scenario.with_(prelog="book")``. Changed: this function used to return the UatF
    bound for UL (3-23 % below Theorem 5.1 on the book's setups); that is now
    :func:`uatf_spectral_efficiency` (same arguments, same values as before).

    Shapes:
        arrays: one setup or a list of B -> (se_ul [B, K], se_dl [B, K]).
    """
    net, state = _own_state(arrays, scenario, dtype, "book_spectral_efficiency")
    normalization = dl_normalization or net.scenario.dl_normalization
    _, dl = network_statistics(net, state, combiner, dl_normalization=normalization, chunk=chunk)
    se_ul = instantaneous_estimate_se(net, state, combiner)
    return se_ul, _downlink_se(net, dl, dl_power, normalization)


# ----------------------------------------------------------------------------- files
def _atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Write through ``write(file)`` into memory, then atomically and durably to ``path``
    (``cfmimo.fileio``), creating missing parent folders."""
    from cfmimo.fileio import atomic_write_bytes

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    write(buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def save_mat(path: str | os.PathLike, arrays: BookArrays, *, compress: bool = False) -> Path:
    """Write one setup's book arrays to a MATLAB .mat file (v5; vectors as columns), atomically.

    The arrays are validated first (nothing is written if they are invalid). MATLAB's v5 format
    limits each variable to 2 GiB.

    Shapes:
        arrays: book arrays of one setup (module docstring).
    """
    checked = check_book_arrays(arrays, source=str(path))
    return _atomic_write(
        path, lambda f: scipy.io.savemat(f, checked, oned_as="column", do_compression=compress)
    )


def _read_hdf5_mat(path: Path) -> dict[str, np.ndarray]:
    """The book fields of a MATLAB v7.3 (HDF5) file: dimensions reversed, complex compounds joined."""
    import h5py

    out = {}
    with h5py.File(path, "r") as f:
        for name in BOOK_FIELDS:
            node = f.get(name)
            if not isinstance(node, h5py.Dataset):
                continue
            size = node.size * node.dtype.itemsize  # checked before h5py allocates the declared shape
            if size > MAX_NPZ_ARRAY_BYTES:
                raise ValueError(
                    f"array '{name}' declares shape {node.shape} ({size} bytes), over the "
                    f"{MAX_NPZ_ARRAY_BYTES}-byte limit"
                )
            a = node[()]
            if a.dtype.names and {"real", "imag"} <= set(a.dtype.names):
                a = a["real"] + 1j * a["imag"]
            out[name] = np.asarray(a).T  # MATLAB writes column-major: HDF5 dims are reversed
    return out


def load_mat(path: str | os.PathLike, *, require: Iterable[str] = ()) -> dict[str, np.ndarray]:
    """Read one setup's book arrays from a .mat file (v5/v7, or v7.3 via h5py), validated.

    Other variables in the file are ignored. ``require`` names optional fields that must be
    present (e.g. ``("H", "Np")``).

    Shapes:
        returns the canonical book arrays (see :func:`check_book_arrays`).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such .mat file: {path}")
    try:
        import h5py

        if h5py.is_hdf5(path):
            raw = _read_hdf5_mat(path)
        else:
            raw = scipy.io.loadmat(path, squeeze_me=False, chars_as_strings=True)
    except (
        OSError,
        ValueError,
        TypeError,
        KeyError,
        RuntimeError,
        NotImplementedError,
        zlib.error,
        scipy.io.matlab.MatReadError,
    ) as err:  # h5py raises KeyError/RuntimeError on some corrupt files
        raise ValueError(f"{path}: cannot read as a MATLAB .mat file: {err}") from err
    return check_book_arrays(raw, source=str(path), require=require)


def save_npz(path: str | os.PathLike, arrays: BookArrays, *, compress: bool = False) -> Path:
    """Write one setup's book arrays to a NumPy .npz file at exactly ``path``, atomically.

    Shapes:
        arrays: book arrays of one setup (module docstring).
    """
    checked = check_book_arrays(arrays, source=str(path))
    saver = np.savez_compressed if compress else np.savez
    return _atomic_write(path, lambda f: saver(f, **checked))


#: largest array ``load_npz`` reads (bytes); ``H`` of L*N = 400 antennas, 1000 realizations and
#: K = 40 UEs is 256 MiB
MAX_NPZ_ARRAY_BYTES = 4 << 30


def load_npz(
    path: str | os.PathLike, *, require: Iterable[str] = (), max_bytes: int = MAX_NPZ_ARRAY_BYTES
) -> dict[str, np.ndarray]:
    """Read one setup's book arrays from a .npz file (no pickle), validated.

    Each array's declared size is checked against its zip member and ``max_bytes`` before NumPy
    allocates it (``cfmimo.npzio``); truncated, non-zip and corrupt files raise a ValueError naming
    the file.

    Shapes:
        returns the canonical book arrays (see :func:`check_book_arrays`).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such .npz file: {path}")
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError(f"{path}: not a .npz archive of named arrays (got a single array)")
        with data:
            raw = {k: npz_array(data, k, path, max_bytes) for k in data.files if k in BOOK_FIELDS}
    except ValueError as err:
        if str(path) in str(err):
            raise
        raise ValueError(f"{path}: cannot read as a NumPy .npz file: {err}") from err
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise ValueError(f"{path}: cannot read as a NumPy .npz file: {err}") from err
    return check_book_arrays(raw, source=str(path), require=require)
