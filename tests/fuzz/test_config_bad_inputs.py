"""Bad input to the configuration API ends in a ValueError/TypeError naming the field or file:
scenarios (``preset``, ``build_scenario``, ``Scenario.with_``/``from_yaml``), training configs
(``TrainConfig.from_dict``, ``load_train_config``, ``parse_override``, ``apply_overrides``), the safe
YAML reader, positions files, the book's .npz/.mat arrays and disc-union layouts."""

from __future__ import annotations

import io
import math
import zipfile

import numpy as np
import pytest
import torch
from fuzz_harness import Case, assert_clear

from cfmimo.config import Scenario, build_scenario, preset
from cfmimo.interop import load_mat, load_npz
from cfmimo.learn.config import TrainConfig, apply_overrides, load_train_config, parse_override
from cfmimo.predict import read_positions
from cfmimo.sim.geometry import disc_union_positions
from cfmimo.sim.network import sample_networks
from cfmimo.yamlio import load_yaml_file, load_yaml_text

ALIAS_BOMB = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n"
    for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)
DATA = {"data": {"train": "nowhere"}}


def _file(name: str, content: str | bytes, reader):
    """call(folder): write folder/name, then read it with ``reader``."""

    def call(folder):
        path = folder / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        return reader(path)

    return call


def _truncated_npz(folder):
    np.savez(folder / "b.npz", R=np.ones((2, 2, 1, 1)))
    data = (folder / "b.npz").read_bytes()
    (folder / "b.npz").write_bytes(data[: len(data) // 2])


def _npz_bomb(path):
    """A zip whose 'H' member declares 4e9 complex values in a 128-byte header."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<c16", "fortran_order": False, "shape": (10**9, 4)}
    )
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("H.npy", header.getvalue())


def _plain_npy(path):
    with path.open("wb") as f:
        np.save(f, np.zeros(3))


def _hdf5_bomb(path):
    """A v7.3 .mat (HDF5) file of 1.4 kB whose dataset 'H' declares 32 GB (no storage allocated)."""
    import h5py

    with h5py.File(path, "w") as f:
        f.create_dataset("H", shape=(10**9, 4), dtype="f8")


def _train(**sections):
    return lambda folder: TrainConfig.from_dict({**DATA, **sections})


CASES = [
    # ------------------------------------------------------------------ scenarios
    Case("preset-bool-K", names=("K",), call=lambda f: preset("tree-transformer", K=True)),
    Case("preset-bool-tau-p", names=("tau_p",), call=lambda f: preset("tree-transformer", tau_p=False)),
    Case("preset-bool-power", names=("pilot_power_mw",), call=lambda f: preset("egat", pilot_power_mw=True)),
    Case("preset-string-K", names=("K",), call=lambda f: preset("aagnn", K="many")),
    Case("preset-float-K", names=("K",), call=lambda f: preset("aagnn", K=2.5)),
    Case("preset-inf-area", names=("area_side_m",), call=lambda f: preset("aagnn", area_side_m=math.inf)),
    Case("preset-unknown", names=("preset",), call=lambda f: preset("nope")),
    Case("preset-not-a-string", names=("preset",), call=lambda f: preset(["aagnn"])),
    Case(
        "preset-nested-bool",
        names=("clustering.radius_m",),
        call=lambda f: preset("aagnn", clustering={"kind": "radius", "radius_m": True}),
    ),
    Case(
        "preset-pathloss-bool",
        names=("pathloss.d0_m",),
        call=lambda f: preset("egat", pathloss={"model": "cost231_three_slope", "d0_m": True}),
    ),
    Case(
        "build-scenario-bool", names=("realizations",), call=lambda f: build_scenario({"realizations": True})
    ),
    Case(
        "with-bool",
        names=("shadowing_std_db",),
        call=lambda f: preset("tree-transformer").with_(shadowing_std_db=True),
    ),
    Case(
        "disc-union-without-radius",
        names=("ue_disc_radius_m",),
        call=lambda f: build_scenario({"ue_layout": "disc_union"}),
    ),
    *[
        Case(f"scenario-yaml-{name}", names=("s.yaml",), call=_file("s.yaml", text, Scenario.from_yaml))
        for name, text in [
            ("alias-bomb", ALIAS_BOMB),
            ("anchor-only", "name: &n x\n"),
            ("merge-key", "base: &b {K: 3}\n<<: *b\n"),
            ("duplicate-key", "K: 3\nL: 4\nK: 3\n"),
            ("non-utf8", "name: caf\xe9\n".encode("latin-1")),
            ("utf16", "K: 3\n".encode("utf-16")),
            ("binary", bytes(range(256))),
            ("deep-nesting", "K: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n"),
            ("python-tag", "K: !!python/object/apply:os.system ['true']\n"),
            ("a-scalar", "42\n"),
            ("bool-key", "true: 3\n"),
        ]
    ],
    Case(
        "scenario-yaml-too-large",
        names=("big.yaml",),
        call=_file("big.yaml", "#" * (17 << 20), Scenario.from_yaml),
    ),
    # ------------------------------------------------------------------ training configs
    Case("train-no-data", names=("data",), call=lambda f: TrainConfig.from_dict({})),
    Case("train-bool-epochs", names=("trainer.epochs",), call=_train(trainer={"epochs": True})),
    Case("train-bool-seed", names=("trainer.seed",), call=_train(trainer={"seed": False})),
    Case("train-bool-lr", names=("optim.lr",), call=_train(optim={"lr": True})),
    Case("train-bool-heads", names=("model.heads",), call=_train(model={"heads": True})),
    Case("train-bool-dropout", names=("model.dropout",), call=_train(model={"dropout": True})),
    Case(
        "train-bool-sigma", names=("data.sigma_ue_m",), call=_train(data={"train": "x", "sigma_ue_m": True})
    ),
    Case("train-bool-lam", names=("dynamic.lam",), call=_train(dynamic={"lam": True})),
    Case(
        "train-bool-limit",
        names=("trainer.limit_train_batches",),
        call=_train(trainer={"limit_train_batches": True}),
    ),
    Case("train-nan-lr", names=("optim.lr",), call=_train(optim={"lr": math.nan})),
    Case("train-bad-devices", names=("trainer.devices",), call=_train(trainer={"devices": "all"})),
    Case(
        "train-yaml-alias-bomb",
        names=("t.yaml",),
        call=_file("t.yaml", ALIAS_BOMB, load_train_config),
    ),
    Case(
        "train-yaml-duplicate-section",
        names=("t.yaml",),
        call=_file(
            "t.yaml", "data: {train: x}\ntrainer: {epochs: 1}\ntrainer: {epochs: 2}\n", load_train_config
        ),
    ),
    Case(
        "train-yaml-non-utf8",
        names=("t.yaml",),
        call=_file("t.yaml", b"data: {train: \xff}\n", load_train_config),
    ),
    Case("train-yaml-missing", names=("none.yaml",), call=lambda f: load_train_config(f / "none.yaml")),
    Case("override-not-a-string", names=("override",), call=lambda f: parse_override(3)),
    Case("override-no-equals", names=("key=value",), call=lambda f: parse_override("trainer.epochs")),
    Case("override-alias", names=("override",), call=lambda f: parse_override("x=[&a 1, *a]")),
    Case("override-deep", names=("override",), call=lambda f: parse_override("x=" + "[" * 200 + "]" * 200)),
    Case(
        "overrides-one-string", names=("overrides",), call=lambda f: apply_overrides({}, "trainer.epochs=3")
    ),
    Case(
        "override-bool-batch",
        names=("trainer.batch_size",),
        call=lambda f: TrainConfig.from_dict(apply_overrides(DATA, ["trainer.batch_size=yes"])),
    ),
    # ------------------------------------------------------------------ YAML reader and positions
    Case("yaml-text-duplicate", names=("source",), call=lambda f: load_yaml_text("a: 1\na: 1\n", "source")),
    Case("yaml-file-directory", names=("{tmp}",), call=lambda f: load_yaml_file(f)),
    Case(
        "positions-directory-npz",
        names=("d.npz",),
        call=lambda f: (f / "d.npz").mkdir() or read_positions(f / "d.npz"),
    ),
    Case(
        "positions-directory-yaml",
        names=("d.yaml",),
        call=lambda f: (f / "d.yaml").mkdir() or read_positions(f / "d.yaml"),
    ),
    Case(
        "positions-yaml-bomb",
        names=("p.yaml",),
        call=_file("p.yaml", "ue: &u [[1, 2]]\nap: *u\n", read_positions),
    ),
    Case(
        "positions-csv-utf16",
        names=("p.csv",),
        call=_file("p.csv", "kind,x,y\nue,1,2\nap,0,0\n".encode("utf-16"), read_positions),
    ),
    Case(
        "positions-csv-huge-field",
        names=("p.csv",),
        call=_file("p.csv", "kind,x,y\nue,1," + "9" * 200_000 + "\nap,0,0\n", read_positions),
    ),
    # ------------------------------------------------------------------ the book's arrays (interop)
    Case("book-npz-truncated", names=("b.npz",), call=lambda f: _truncated_npz(f) or load_npz(f / "b.npz")),
    Case("book-npz-not-zip", names=("b.npz",), call=_file("b.npz", b"PK\x03\x04 junk", load_npz)),
    Case(
        "book-npz-header-bomb",
        names=("b.npz",),
        call=lambda f: _npz_bomb(f / "b.npz") or load_npz(f / "b.npz"),
    ),
    Case(
        "book-npz-plain-npy",
        names=("b.npz",),
        call=lambda f: _plain_npy(f / "b.npz") or load_npz(f / "b.npz"),
    ),
    Case(
        "book-mat-junk", names=("b.mat",), call=_file("b.mat", b"MATLAB 5.0 MAT-file" + bytes(200), load_mat)
    ),
    Case("book-mat-empty", names=("b.mat",), call=_file("b.mat", b"", load_mat)),
    Case(
        "book-mat-hdf5-bomb",
        names=("b.mat",),
        call=lambda f: _hdf5_bomb(f / "b.mat") or load_mat(f / "b.mat"),
    ),
    # ------------------------------------------------------------------ disc-union layouts
    Case(
        "disc-radius-tiny",
        names=("ue_disc_radius_m",),
        call=lambda f: sample_networks(preset("aagnn", ue_disc_radius_m=1e-6), 1, seed=0),
    ),
    Case(
        "disc-radius-nan",
        names=("ue_disc_radius_m",),
        call=lambda f: disc_union_positions(
            torch.zeros(1, 2, 2), math.nan, 4, seed=0, name="ue", indices=[0]
        ),
    ),
    Case(
        "disc-radius-negative",
        names=("ue_disc_radius_m",),
        call=lambda f: disc_union_positions(torch.zeros(1, 2, 2), -1.0, 4, seed=0, name="ue", indices=[0]),
    ),
]


@pytest.mark.parametrize("case_id", [c.id for c in CASES])
def test_bad_config_is_a_clear_error(fuzz_results, case_id):
    assert_clear(fuzz_results, case_id)
