"""Book (MATLAB) array conventions: exact round trips, loop ports of the book's code, bad files."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
import scipy.linalg
import torch

from cfmimo.interop import (
    BOOK_FIELDS,
    book_spectral_efficiency,
    channels_from_book,
    check_book_arrays,
    load_mat,
    load_npz,
    network_from_book,
    save_mat,
    save_npz,
    state_from_book,
    to_book,
    uatf_spectral_efficiency,
)
from cfmimo.sim.estimation import sample_pilot_noise
from cfmimo.sim.network import (
    ChannelState,
    estimate,
    instantaneous_estimate_se,
    network_statistics,
    sample_channel_state,
    sample_networks,
)
from cfmimo.sim.uatf import downlink_sinr, spectral_efficiency, uplink_sinr

NET_FIELDS = (
    "ap_positions",
    "ue_positions",
    "distance_2d",
    "gain_db",
    "correlation",
    "pilot",
    "master",
    "serving",
)


# ----------------------------------------------------------------------------- helpers
def sampled(scenario, batch=2, realizations=3, seed=4, dtype=torch.float64):
    """A native batch: network, channel state and the pilot noise that produced the estimates."""
    net = sample_networks(scenario, batch, seed=seed, dtype=dtype)
    state = sample_channel_state(net, realizations)
    noise = sample_pilot_noise(
        (net.batch, realizations, scenario.L),
        scenario.tau_p,
        scenario.N,
        seed=net.seed,
        indices=net.indices,
        dtype=state.h.dtype,
    )
    assert torch.equal(estimate(net, state.h, noise).h_hat, state.h_hat)  # same noise as the sampler
    return net, state, noise


def matlab_squeeze(arrays):
    """What MATLAB would write: trailing singleton dimensions dropped (at least 2-D), vectors as rows."""
    out = {}
    for name, a in arrays.items():
        shape = list(a.shape) if a.ndim > 1 else [1, a.size]
        while len(shape) > 2 and shape[-1] == 1:
            shape.pop()
        out[name] = a.reshape(shape)
    return out


def write(path: Path, arrays, fmt: str) -> dict:
    """Write with the module (mat/npz) or as a squeezing foreign tool would, and read back."""
    if fmt == "mat":
        save_mat(path, arrays)
    elif fmt == "npz":
        save_npz(path, arrays, compress=True)
    elif fmt == "mat_by_matlab":  # file as MATLAB itself would hold it
        scipy.io.savemat(path, matlab_squeeze(arrays))
    elif fmt == "npz_squeezed":  # every singleton dimension squeezed away
        np.savez(path, **{k: np.squeeze(v) for k, v in arrays.items()})
    return load_mat(path) if fmt.startswith("mat") else load_npz(path)


# ----------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("fmt", ["mat", "npz", "mat_by_matlab", "npz_squeezed"])
@pytest.mark.parametrize("sizes", [(4, 6, 2), (1, 3, 2), (3, 1, 2), (3, 4, 1), (1, 1, 1)], ids=str)
def test_round_trip_is_exact(small_scenario, tmp_path, fmt, sizes):
    L, K, N = sizes
    sc = small_scenario.with_(L=L, K=K, N=N)
    net, state, noise = sampled(sc)
    b = 1
    arrays = to_book(net, state, noise, index=b, estimates=True)
    assert set(arrays) == set(BOOK_FIELDS)
    assert arrays["H"].shape == (L * N, 3, K) and arrays["Np"].shape == (N, 3, L, sc.tau_p)
    assert arrays["R"].shape == (N, N, L, K) and arrays["pilotIndex"].min() == 1

    back = write(tmp_path / f"setup.{fmt.split('_')[0]}", arrays, fmt)
    assert set(back) == set(arrays)
    for name, a in arrays.items():
        assert back[name].shape == a.shape and back[name].dtype == a.dtype, name
        assert np.array_equal(back[name], a), name

    net2 = network_from_book(back, sc)
    assert net2.batch == 1 and net2.scenario == sc
    for name in NET_FIELDS:
        assert torch.equal(getattr(net2, name), getattr(net, name)[b : b + 1]), name
    h, pilot_noise = channels_from_book(back)
    assert torch.equal(h, state.h[b : b + 1]) and torch.equal(pilot_noise, noise[b : b + 1])
    st2 = state_from_book(back)
    for name in ("h", "h_hat", "estimate_cov", "error_cov"):
        assert torch.equal(getattr(st2, name), getattr(state, name)[b : b + 1]), name
    assert torch.equal(estimate(net2, h, pilot_noise).h_hat, state.h_hat[b : b + 1])


def test_book_layout_of_each_entry(small_net, small_state):
    """Spot checks of the index maps, written out in MATLAB's 1-based terms."""
    net, state = small_net, small_state
    noise = torch.randn(*state.h.shape[:3], net.scenario.tau_p, net.scenario.N, dtype=state.h.dtype)
    a = to_book(net, state, noise, index=2)
    N = net.scenario.N
    for l, k, n, t in [(1, 1, 1, 1), (3, 5, 2, 7), (4, 6, 2, 8)]:  # MATLAB indices
        assert a["H"][(l - 1) * N + n - 1, t - 1, k - 1] == state.h[2, t - 1, l - 1, k - 1, n - 1]
        assert a["R"][n - 1, 0, l - 1, k - 1] == net.correlation[2, l - 1, k - 1, n - 1, 0]
        assert a["Np"][n - 1, t - 1, l - 1, 2] == noise[2, t - 1, l - 1, 2, n - 1]
        assert a["D"][l - 1, k - 1] == float(net.serving[2, l - 1, k - 1])
    assert np.array_equal(a["pilotIndex"], net.pilot[2].numpy() + 1)
    assert a["APpositions"][1] == complex(net.ap_positions[2, 1, 0], net.ap_positions[2, 1, 1])


def test_float32_round_trip_keeps_single_precision(small_scenario, tmp_path):
    net, state, noise = sampled(small_scenario, dtype=torch.float32)
    back = write(tmp_path / "single.mat", to_book(net, state, noise, index=0), "mat")
    assert back["H"].dtype == np.complex64 and back["R"].dtype == np.complex64
    net2 = network_from_book(back, small_scenario)
    assert net2.gain_db.dtype == torch.float32 and torch.equal(net2.correlation, net.correlation[:1])
    h, pilot_noise = channels_from_book(back)
    assert h.dtype == torch.complex64 and torch.equal(h, state.h[:1]) and torch.equal(pilot_noise, noise[:1])


def test_reads_matlab_v73_hdf5(small_net, small_state, tmp_path):
    """A v7.3 file as MATLAB writes it: HDF5 after a 512-byte header, dims reversed, complex compounds."""
    arrays = to_book(small_net, small_state, index=0)
    path = tmp_path / "v73.mat"
    with h5py.File(path, "w", userblock_size=512) as f:
        for name, a in matlab_squeeze(arrays).items():
            if np.iscomplexobj(a):
                data = np.empty(a.shape, dtype=[("real", "<f8"), ("imag", "<f8")])
                data["real"], data["imag"] = a.real, a.imag
            else:
                data = a
            f.create_dataset(name, data=data.T)  # MATLAB is column-major
    with open(path, "r+b") as f:
        f.write(
            b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
        )
    back = load_mat(path)
    assert set(back) == set(arrays)
    for name, a in arrays.items():
        assert np.array_equal(back[name], a), name


# ----------------------------------------------------------------------------- the book's code, ported
def book_channel_estimates(R, H, Np, pilotIndex, p, tau_p):
    """functionChannelEstimates.m (the estimation part), loop by loop; pilotIndex is 1-based."""
    N, _, L, K = R.shape
    nbrOfRealizations = H.shape[1]
    eyeN = np.eye(N)
    Hhat = np.zeros((L * N, nbrOfRealizations, K), dtype=complex)
    B = np.zeros(R.shape, dtype=complex)
    C = np.zeros(R.shape, dtype=complex)
    for l in range(L):
        rows = slice(l * N, (l + 1) * N)  # (l-1)*N+1:l*N
        for t in range(1, tau_p + 1):
            onT = pilotIndex == t
            yp = np.sqrt(p) * tau_p * H[rows][:, :, onT].sum(axis=2) + np.sqrt(tau_p) * Np[:, :, l, t - 1]
            PsiInv = p * tau_p * R[:, :, l, onT].sum(axis=2) + eyeN
            for k in np.flatnonzero(onT):
                RPsi = np.linalg.solve(PsiInv.T, R[:, :, l, k].T).T  # R(:,:,l,k) / PsiInv
                Hhat[rows, :, k] = np.sqrt(p) * RPsi @ yp
                B[:, :, l, k] = p * tau_p * RPsi @ R[:, :, l, k]
                C[:, :, l, k] = R[:, :, l, k] - B[:, :, l, k]
    return Hhat, B, C


def book_uatf_mr(H, Hhat, D, N):
    """functionComputeSE_uplink.m's centralized loop with MR combining (v = Hhat of the serving APs)."""
    _, nbrOfRealizations, K = H.shape
    signal = np.zeros(K, dtype=complex)
    interf = np.zeros((K, K))
    scaling = np.zeros(K)
    for n in range(nbrOfRealizations):
        for k in range(K):
            servingAPs = np.flatnonzero(D[:, k] == 1)
            La = len(servingAPs)
            Hallj_active = np.zeros((N * La, K), dtype=complex)
            Hhatallj_active = np.zeros((N * La, K), dtype=complex)
            for l in range(La):
                rows = slice(servingAPs[l] * N, (servingAPs[l] + 1) * N)
                Hallj_active[l * N : (l + 1) * N, :] = H[rows, n, :]
                Hhatallj_active[l * N : (l + 1) * N, :] = Hhat[rows, n, :]
            v = Hhatallj_active[:, k]
            signal[k] += (v.conj() @ Hallj_active[:, k]) / nbrOfRealizations
            interf[k, :] += np.abs(v.conj() @ Hallj_active) ** 2 / nbrOfRealizations
            scaling[k] += np.linalg.norm(v) ** 2 / nbrOfRealizations
    return np.abs(signal) ** 2, interf, scaling


@pytest.fixture
def own_channels(small_net):
    """A user's own setup: the book's R, gains, pilots, D with H and Np drawn the book's way in NumPy."""
    arrays = to_book(small_net, index=0)
    R = arrays["R"]
    N, _, L, K = R.shape
    T, tau_p = 40, small_net.scenario.tau_p
    rng = np.random.default_rng(2024)
    H = rng.standard_normal((L * N, T, K)) + 1j * rng.standard_normal((L * N, T, K))
    for l in range(L):
        for k in range(K):
            H[l * N : (l + 1) * N, :, k] = (
                np.sqrt(0.5) * scipy.linalg.sqrtm(R[:, :, l, k]) @ H[l * N : (l + 1) * N, :, k]
            )
    Np = np.sqrt(0.5) * (rng.standard_normal((N, T, L, tau_p)) + 1j * rng.standard_normal((N, T, L, tau_p)))
    assert len(set(arrays["pilotIndex"])) < K  # pilot contamination
    return {**arrays, "H": H, "Np": Np}


def test_estimates_match_book_functionChannelEstimates(own_channels, small_scenario, tmp_path):
    a = own_channels
    sc = small_scenario
    Hhat, B, C = book_channel_estimates(a["R"], a["H"], a["Np"], a["pilotIndex"], sc.pilot_power_mw, sc.tau_p)

    back = load_mat(save_mat(tmp_path / "own.mat", a))
    net = network_from_book(back, sc)
    state = estimate(net, *channels_from_book(back))
    ours = to_book(net, state, index=0, estimates=True)
    for name, ref in (("Hhat", Hhat), ("B", B), ("C", C)):
        scale = np.abs(ref).max()
        np.testing.assert_allclose(ours[name], ref, rtol=1e-10, atol=1e-13 * scale, err_msg=name)


def test_mr_uatf_statistics_match_book_loop(own_channels, small_scenario):
    a = own_channels
    sc = small_scenario
    N, p = sc.N, sc.ul_power_mw
    Hhat, _, _ = book_channel_estimates(a["R"], a["H"], a["Np"], a["pilotIndex"], sc.pilot_power_mw, sc.tau_p)
    signal, interf, scaling = book_uatf_mr(a["H"], Hhat, a["D"], N)

    net = network_from_book(a, sc)
    state = estimate(net, *channels_from_book(a))
    ul, _ = network_statistics(net, state, "mr", dl_normalization="average")
    np.testing.assert_allclose(ul.signal[0].numpy(), signal, rtol=1e-10)
    np.testing.assert_allclose(ul.interference[0].numpy(), interf, rtol=1e-10)
    np.testing.assert_allclose(ul.noise[0].numpy(), scaling, rtol=1e-10)

    # UL SE at full power p and DL SE (book normalization w_k = v_k / sqrt(E||v_k||^2)), per UE
    sinr_ul = p * signal / (p * interf.sum(axis=1) - p * signal + scaling)
    rho = np.linspace(50.0, 150.0, sc.K)
    a_dl = signal / scaling  # |E{h_k^H w_k}|^2
    d_dl = interf.T / scaling[None, :]  # d_ki = E|h_k^H w_i|^2 = c_ik / E||v_i||^2
    sinr_dl = rho * a_dl / (d_dl @ rho - rho * a_dl + 1.0)
    se_ul, se_dl = uatf_spectral_efficiency(
        a, sc, "mr", dl_normalization="average", dl_power=torch.tensor(rho)[None]
    )
    np.testing.assert_allclose(se_ul[0].numpy(), sc.prelog_ul * np.log2(1 + sinr_ul), rtol=1e-10)
    np.testing.assert_allclose(se_dl[0].numpy(), sc.prelog_dl * np.log2(1 + sinr_dl), rtol=1e-10)


def book_theorem_5_1_mr(H, Hhat, C, D, N, p, prelog):
    """functionComputeSE_uplink.m's centralized SE with MR combining (Theorem 5.1): per realization,
    SINR_k = p |v^H hhat_k|^2 / (v^H (sum_i p hhat_i hhat_i^H + sum_i p C_i + I) v - p |v^H hhat_k|^2)
    with v = hhat_k over the serving APs, C_i the block-diagonal error correlations there."""
    _, nbrOfRealizations, K = H.shape
    SE = np.zeros(K)
    for n in range(nbrOfRealizations):
        for k in range(K):
            servingAPs = np.flatnonzero(D[:, k] == 1)
            La = len(servingAPs)
            Hhatallj_active = np.zeros((N * La, K), dtype=complex)
            C_tot_blk = np.zeros((N * La, N * La), dtype=complex)
            for l in range(La):
                rows = slice(servingAPs[l] * N, (servingAPs[l] + 1) * N)
                Hhatallj_active[l * N : (l + 1) * N, :] = Hhat[rows, n, :]
                C_tot_blk[l * N : (l + 1) * N, l * N : (l + 1) * N] = p * C[:, :, servingAPs[l], :].sum(
                    axis=2
                )
            v = Hhatallj_active[:, k]
            numerator = p * np.abs(v.conj() @ Hhatallj_active[:, k]) ** 2
            denominator = (
                p * np.linalg.norm(v.conj() @ Hhatallj_active) ** 2
                + (v.conj() @ (C_tot_blk + np.eye(N * La)) @ v).real
                - numerator
            )
            SE[k] += prelog * np.log2(1 + numerator / denominator) / nbrOfRealizations
    return SE


def test_book_spectral_efficiency_is_the_books_theorem_5_1_and_6_1(own_channels, small_scenario):
    a = own_channels
    sc = small_scenario
    Hhat, _, C = book_channel_estimates(a["R"], a["H"], a["Np"], a["pilotIndex"], sc.pilot_power_mw, sc.tau_p)
    ref = book_theorem_5_1_mr(a["H"], Hhat, C, a["D"], sc.N, sc.ul_power_mw, sc.prelog_ul)
    se_ul, se_dl = book_spectral_efficiency(a, sc, "mr")
    np.testing.assert_allclose(se_ul[0].numpy(), ref, rtol=1e-10)
    # DL: Theorem 6.1 is the hardening (UatF) bound, the same as uatf_spectral_efficiency's
    uatf_ul, uatf_dl = uatf_spectral_efficiency(a, sc, "mr")
    torch.testing.assert_close(se_dl, uatf_dl, rtol=1e-12, atol=0)
    # the UL bound cfmimo optimizes is another quantity: it is below Theorem 5.1 for every UE here
    assert bool((uatf_ul < se_ul).all())
    # MMSE: the same as cfmimo's Theorem 5.1 function on the same estimates
    net = network_from_book(a, sc)
    state = estimate(net, *channels_from_book(a))
    torch.testing.assert_close(
        book_spectral_efficiency(a, sc)[0], instantaneous_estimate_se(net, state), rtol=1e-12, atol=0
    )


def test_books_prelog_for_both_links_is_a_scenario_option(own_channels, small_scenario):
    a, sc = own_channels, small_scenario
    book = sc.with_(prelog="book")
    assert book.prelog_ul == book.prelog_dl == pytest.approx(1 - sc.tau_p / sc.tau_c, rel=1e-15)
    for se in (book_spectral_efficiency, uatf_spectral_efficiency):
        (ul, dl), (ul_b, dl_b) = se(a, sc, "mr"), se(a, book, "mr")
        torch.testing.assert_close(ul_b, ul * book.prelog_ul / sc.prelog_ul, rtol=1e-12, atol=0)
        torch.testing.assert_close(dl_b, dl * book.prelog_dl / sc.prelog_dl, rtol=1e-12, atol=0)
    # instances carry it too: the problems' SEs use the scenario's pre-logs
    from cfmimo.problems.maxmin_power import MaxMinPower

    inst = MaxMinPower().sample(book, 1, seed=0, dtype=torch.float64)
    assert inst.prelog_ul == inst.prelog_dl == book.prelog_ul
    # the default is not written out, so scenario dumps (and dataset spec hashes) are unchanged
    assert "prelog" not in sc.model_dump() and book.model_dump()["prelog"] == "book"


# ----------------------------------------------------------------------------- native vs interop
@pytest.mark.parametrize("combiner", ["mmse", "pmmse", "mr"])
def test_native_and_interop_paths_agree(small_scenario, tmp_path, combiner):
    sc = small_scenario
    net, state, noise = sampled(sc, batch=3, realizations=sc.realizations, seed=11)
    ul, dl = network_statistics(net, state, combiner)
    p = torch.full((3, sc.K), sc.ul_power_mw, dtype=torch.float64)
    rho = torch.full((3, sc.K), sc.dl_total_power_mw / sc.K, dtype=torch.float64)
    native_ul = spectral_efficiency(uplink_sinr(ul, p), sc.prelog_ul)
    native_dl = spectral_efficiency(downlink_sinr(dl, rho), sc.prelog_dl)

    paths = [save_npz(tmp_path / f"setup{b}.npz", to_book(net, state, noise, index=b)) for b in range(3)]
    setups = [load_npz(path, require=("H", "Np")) for path in paths]
    net2 = network_from_book(setups, sc)
    ul2, dl2 = network_statistics(net2, estimate(net2, *channels_from_book(setups)), combiner)
    for x, y in ((ul, ul2), (dl, dl2)):
        for name in x.__dataclass_fields__:
            torch.testing.assert_close(getattr(y, name), getattr(x, name), rtol=1e-12, atol=0)
    se_ul, se_dl = uatf_spectral_efficiency(setups, sc, combiner)
    torch.testing.assert_close(se_ul, native_ul, rtol=1e-12, atol=0)
    torch.testing.assert_close(se_dl, native_dl, rtol=1e-12, atol=0)
    assert bool((se_ul > 0).all())


def test_stored_estimates_give_the_same_se(small_net, small_state):
    noise = sample_pilot_noise(
        small_state.h.shape[:3],
        small_net.scenario.tau_p,
        small_net.scenario.N,
        seed=small_net.seed,
        indices=small_net.indices,
        dtype=small_state.h.dtype,
    )
    full = to_book(small_net, small_state, noise, index=0, estimates=True)
    stored = {k: v for k, v in full.items() if k != "Np"}
    for se in (uatf_spectral_efficiency, book_spectral_efficiency):
        for x, y in zip(se(full, small_net.scenario), se(stored, small_net.scenario), strict=True):
            torch.testing.assert_close(x, y, rtol=1e-12, atol=0)


def test_network_from_book_adopts_sizes_and_tolerates_missing_positions(
    small_net, small_state, small_scenario
):
    arrays = to_book(small_net, small_state, index=1)
    del arrays["APpositions"], arrays["UEpositions"]
    net = network_from_book(arrays, small_scenario.with_(L=9, K=2, N=8), seed=5)
    assert (net.scenario.L, net.scenario.K, net.scenario.N) == (4, 6, 2)
    assert net.ap_positions.isnan().all() and net.distance_2d.isnan().all()
    assert torch.equal(net.master, small_net.master[1:2])
    ul, _ = network_statistics(net, ChannelState(*[t[1:2] for t in vars(small_state).values()]))
    assert ul.signal.isfinite().all()
    with pytest.raises(ValueError, match=r"pilotIndex.*tau_p = 2"):
        network_from_book(arrays, small_scenario.with_(tau_p=2))


def test_default_dl_power_respects_per_ap_limit(small_net, small_state):
    noise = torch.zeros(
        *small_state.h.shape[:3], small_net.scenario.tau_p, small_net.scenario.N, dtype=torch.complex128
    )
    arrays = to_book(small_net, small_state, noise, index=0)
    sc = small_net.scenario
    se_avg = uatf_spectral_efficiency(arrays, sc, dl_normalization="average")[1]
    torch.testing.assert_close(book_spectral_efficiency(arrays, sc, dl_normalization="average")[1], se_avg)
    # rebuild the default: the largest equal power with every AP at most at its limit
    net = network_from_book(arrays, sc)
    _, dl = network_statistics(net, estimate(net, *channels_from_book(arrays)), dl_normalization="average")
    rho = sc.dl_power_per_ap_mw / dl.ap_power_share.sum(-1).amax().item()
    torch.testing.assert_close(
        se_avg, spectral_efficiency(downlink_sinr(dl, torch.full_like(se_avg, rho)), sc.prelog_dl)
    )


# ----------------------------------------------------------------------------- bad input
def raw_setup(net, state, noise):
    return to_book(net, state, noise, index=0)


@pytest.mark.parametrize("fmt", ["mat", "npz"])
@pytest.mark.parametrize(
    ("field", "edit", "message"),
    [
        ("R", lambda a: a.pop("R"), "missing array 'R'"),
        ("pilotIndex", lambda a: a.pop("pilotIndex"), "missing array 'pilotIndex'"),
        ("H", lambda a: a.update(H=a["H"].transpose(1, 0, 2)), r"'H' has shape \(3, 8, 6\)"),
        ("Np", lambda a: a.update(Np=a["Np"][..., :2]), "'pilotIndex' has values up to 3 but 'Np'"),
        ("R", lambda a: a.update(R=a["R"][:, :, :, :5]), "'R' has shape"),
        ("gainOverNoisedB", lambda a: a.update(gainOverNoisedB=a["gainOverNoisedB"].T), "'gainOverNoisedB'"),
        ("pilotIndex", lambda a: a.update(pilotIndex=a["pilotIndex"] - 1), "'pilotIndex' must be 1-based"),
        (
            "pilotIndex",
            lambda a: a.update(pilotIndex=a["pilotIndex"] + 0.5),
            "'pilotIndex' must hold integers",
        ),
        ("D", lambda a: a.update(D=2 * a["D"]), "'D' must hold only 0 and 1"),
        (
            "R",
            lambda a: a.update(R=a["R"] + np.triu(np.ones((2, 2)), 1)[..., None, None]),
            "'R' is not Hermitian",
        ),
        ("H", lambda a: a.update(H=np.where(a["H"] == a["H"][0, 0, 0], np.nan, a["H"])), "'H' contains NaN"),
        ("Np", lambda a: a.pop("H"), "'Np' needs 'H'"),
    ],
)
def test_bad_files_name_file_and_field(small_scenario, tmp_path, fmt, field, edit, message):
    net, state, noise = sampled(small_scenario, batch=1)
    arrays = raw_setup(net, state, noise)
    edit(arrays)
    path = tmp_path / f"bad.{fmt}"
    if fmt == "mat":  # written by a foreign tool: no validation on the way in
        scipy.io.savemat(path, arrays)
    else:
        np.savez(path, **arrays)
    with pytest.raises(ValueError, match=message) as err:
        load_mat(path) if fmt == "mat" else load_npz(path)
    assert str(path) in str(err.value) and f"'{field}'" in str(err.value)
    with pytest.raises(ValueError, match=message):  # our writers refuse the same arrays
        (save_mat if fmt == "mat" else save_npz)(tmp_path / f"refused.{fmt}", arrays)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"bad.{fmt}"]  # nothing written, no temp files


def test_unreadable_and_incomplete_files(small_net, small_state, tmp_path):
    junk = tmp_path / "junk.mat"
    junk.write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(ValueError, match=r"junk\.mat: cannot read"):
        load_mat(junk)
    junk_npz = tmp_path / "junk.npz"
    junk_npz.write_bytes(b"not an npz")
    with pytest.raises(ValueError, match=r"junk\.npz: cannot read"):
        load_npz(junk_npz)
    single = tmp_path / "single.npz"
    with single.open("wb") as f:
        np.save(f, np.zeros(3))
    with pytest.raises(ValueError, match=r"single\.npz: not a \.npz archive"):
        load_npz(single)
    partial = save_mat(tmp_path / "stats_only.mat", to_book(small_net, index=0))
    assert "H" not in load_mat(partial)
    with pytest.raises(ValueError, match=r"stats_only\.mat: missing array 'H'"):
        load_mat(partial, require=("H", "Np"))
    with pytest.raises(ValueError, match=r"missing array 'H'"):
        channels_from_book(load_mat(partial))
    for se in (uatf_spectral_efficiency, book_spectral_efficiency):
        with pytest.raises(ValueError, match=rf"{se.__name__} needs 'H' and 'Np'"):
            se(load_mat(partial), small_net.scenario)
    with pytest.raises(ValueError, match=r"arrays\[1\]: K = 5 differs"):
        other = sample_networks(small_net.scenario.with_(K=5), 1, seed=0, dtype=torch.float64)
        network_from_book([to_book(small_net), to_book(other)], small_net.scenario)
    with pytest.raises(FileNotFoundError):
        load_npz(tmp_path / "absent.npz")


def test_writes_are_atomic_and_overwrite(small_net, small_state, tmp_path):
    path = tmp_path / "sub" / "setup.mat"
    first = to_book(small_net, small_state, index=0)
    save_mat(path, first)
    before = path.read_bytes()
    bad = {**first, "D": 3 * first["D"]}
    with pytest.raises(ValueError):
        save_mat(path, bad)
    assert path.read_bytes() == before  # a failed write leaves the old file intact
    save_mat(path, to_book(small_net, small_state, index=2))
    assert np.array_equal(load_mat(path)["H"], to_book(small_net, small_state, index=2)["H"])
    assert [p.name for p in path.parent.iterdir()] == ["setup.mat"]


def test_check_book_arrays_ignores_foreign_variables_and_checks_types(small_net):
    arrays = {**to_book(small_net), "SE_MMSE": np.ones(3), "__header__": b"x"}
    assert set(check_book_arrays(arrays)) <= set(BOOK_FIELDS)
    with pytest.raises(ValueError, match="'D' must be numeric"):
        check_book_arrays({**arrays, "D": np.array([["a"]])})
    with pytest.raises(TypeError):
        check_book_arrays([1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"index must be in 0 \.\. 2"):
        to_book(small_net, index=3)
