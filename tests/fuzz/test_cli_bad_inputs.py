"""Bad command-line input to every command ends in a clear error (exit != 0 through the CLI's error
path, the message names the option, field or file, no traceback, bounded time and memory).

Commands: simulate, solve max-min, presets, train, predict, export, reproduce, data generate/inspect
(argument level; corrupt datasets are tests/fuzz of the data layer). File types: scenario YAML,
training config YAML, dataset spec YAML, positions YAML/JSON/CSV/NPZ, ``--set`` overrides, output
paths. Every YAML reader rejects alias bombs, duplicate keys, non-UTF-8 text and bools as numbers.
"""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import torch
from fuzz_harness import Case, assert_clear

from cfmimo.config import preset

# --------------------------------------------------------------------------- inputs
#: "billion laughs": 9 levels of 9 aliases, 306 bytes that expand to 3.9e8 nodes when walked
ALIAS_BOMB = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n"
    for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)
LATIN1 = "name: caf\xe9\n".encode("latin-1")
DEEP = "K: " + "[" * 5000 + "]" * 5000 + "\n"
TRAIN = "data:\n  train: {tmp}/nodata\ntrainer:\n  out_dir: {tmp}/run\n  accelerator: cpu\n"
POSITIONS = "ue: [[10, 20], [30, 40]]\nap: [[0, 0], [100, 100]]\n"


def _write(name: str, content: str | bytes):
    """setup(folder): write ``content`` (``{tmp}`` = the case folder) to folder/name."""

    def setup(folder):
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content.replace("{tmp}", str(folder)))

    return setup


def _both(*setups):
    def setup(folder):
        for s in setups:
            s(folder)

    return setup


def _mkdir(name: str):
    def setup(folder):
        (folder / name).mkdir(parents=True, exist_ok=True)

    return setup


def _npz_bomb(folder):
    """An NPZ whose 'ue' member declares 10^10 x 2 float64 in a 128-byte header."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (10**10, 2)}
    )
    with zipfile.ZipFile(folder / "p.npz", "w") as z:
        z.writestr("ue.npy", header.getvalue())
        z.writestr("ap.npy", header.getvalue())


def _npz(folder, **arrays):
    np.savez(folder / "p.npz", **arrays)


def _npz_truncated(folder):
    _npz(folder, ue=np.ones((3, 2)), ap=np.zeros((2, 2)))
    data = (folder / "p.npz").read_bytes()
    (folder / "p.npz").write_bytes(data[: len(data) // 2])


def _scenario_cases(cmd: tuple[str, ...], prefix: str) -> list[Case]:
    """The scenario-file cases of a command that takes ``--config`` (simulate, solve max-min)."""
    cfg = (*cmd, "--config", "{tmp}/s.yaml")
    name = ("s.yaml",)
    return [
        Case(f"{prefix}-config-alias-bomb", names=name, setup=_write("s.yaml", ALIAS_BOMB), cli=cfg),
        Case(f"{prefix}-config-duplicate-key", names=name, setup=_write("s.yaml", "K: 4\nK: 5\n"), cli=cfg),
        Case(f"{prefix}-config-non-utf8", names=name, setup=_write("s.yaml", LATIN1), cli=cfg),
        Case(
            f"{prefix}-config-bool-K",
            names=("K",),
            setup=_write("s.yaml", "preset: aagnn\nK: true\n"),
            cli=cfg,
        ),
        Case(f"{prefix}-config-is-dir", names=("{tmp}",), cli=(*cmd, "--config", "{tmp}")),
    ]


CASES = [
    # ------------------------------------------------------------------ simulate
    Case("simulate-K-zero", names=("K",), cli=("simulate", "--K", "0")),
    Case("simulate-K-not-a-number", names=("--K",), cli=("simulate", "--K", "abc")),
    Case("simulate-N-negative", names=("N",), cli=("simulate", "--N", "-1")),
    Case("simulate-realizations-zero", names=("realizations",), cli=("simulate", "--realizations", "0")),
    Case("simulate-unknown-preset", names=("preset",), cli=("simulate", "--preset", "nope")),
    Case(
        "simulate-missing-config",
        names=("{tmp}/none.yaml", "none.yaml"),
        cli=("simulate", "--config", "{tmp}/none.yaml"),
    ),
    Case(
        "simulate-config-unknown-field",
        names=("bogus",),
        setup=_write("s.yaml", "preset: aagnn\nbogus: 3\n"),
        cli=("simulate", "--config", "{tmp}/s.yaml"),
    ),
    *_scenario_cases(("simulate",), "simulate"),
    Case(
        "simulate-config-nested-duplicate-key",
        names=("s.yaml",),
        setup=_write("s.yaml", "clustering: {kind: radius, kind: all}\n"),
        cli=("simulate", "--config", "{tmp}/s.yaml"),
    ),
    Case(
        "simulate-config-deep-nesting",
        names=("s.yaml",),
        setup=_write("s.yaml", DEEP),
        cli=("simulate", "--config", "{tmp}/s.yaml"),
    ),
    Case(
        "simulate-config-syntax-error",
        names=("s.yaml",),
        setup=_write("s.yaml", "K: [1, 2\n"),
        cli=("simulate", "--config", "{tmp}/s.yaml"),
    ),
    Case(
        "simulate-config-a-list",
        names=("s.yaml",),
        setup=_write("s.yaml", "- K\n- 4\n"),
        cli=("simulate", "--config", "{tmp}/s.yaml"),
    ),
    Case(
        "simulate-config-empty",
        names=("s.yaml",),
        setup=_write("s.yaml", ""),
        cli=("simulate", "--config", "{tmp}/s.yaml"),
    ),
    Case(
        "simulate-config-preset-not-a-name",
        names=("preset",),
        setup=_write("s.yaml", "preset: [aagnn]\n"),
        cli=("simulate", "--config", "{tmp}/s.yaml"),
    ),
    Case(
        "simulate-config-number-key",
        names=("s.yaml",),
        setup=_write("s.yaml", "1: 2\n"),
        cli=("simulate", "--config", "{tmp}/s.yaml"),
    ),
    Case(
        "simulate-config-bool-power",
        names=("ul_power_mw",),
        setup=_write("s.yaml", "ul_power_mw: false\n"),
        cli=("simulate", "--config", "{tmp}/s.yaml"),
    ),
    Case(
        "simulate-config-nan-power",
        names=("dl_power_per_ap_mw",),
        setup=_write("s.yaml", "dl_power_per_ap_mw: .nan\n"),
        cli=("simulate", "--config", "{tmp}/s.yaml"),
    ),
    Case(
        "simulate-config-coherence-overflow",
        names=("tau_c",),
        setup=_write("s.yaml", "tau_p: 50\ntau_u: 100\ntau_d: 100\n"),
        cli=("simulate", "--config", "{tmp}/s.yaml"),
    ),
    Case(
        "simulate-config-unknown-pathloss",
        names=("pathloss",),
        setup=_write("s.yaml", "pathloss: {model: free_space}\n"),
        cli=("simulate", "--config", "{tmp}/s.yaml"),
    ),
    Case(
        "simulate-config-clustering-without-q",
        names=("q",),
        setup=_write("s.yaml", "clustering: {kind: q_strongest}\n"),
        cli=("simulate", "--config", "{tmp}/s.yaml"),
    ),
    Case(
        "simulate-disc-radius-tiny",
        names=("ue_disc_radius_m",),
        setup=_write("s.yaml", "preset: aagnn\nue_disc_radius_m: 0.001\n"),
        cli=("simulate", "--config", "{tmp}/s.yaml"),
    ),
    Case(
        "simulate-disc-radius-huge",
        names=("ue_disc_radius_m",),
        setup=_write("s.yaml", "preset: aagnn\nue_disc_radius_m: 1.0e+300\n"),
        cli=("simulate", "--config", "{tmp}/s.yaml"),
    ),
    Case("simulate-plot-bad-suffix", names=("--plot",), cli=("simulate", "--plot", "{tmp}/layout.txt")),
    Case(
        "simulate-plot-is-dir",
        names=("--plot",),
        setup=_mkdir("layout.png"),
        cli=("simulate", "--plot", "{tmp}/layout.png"),
    ),
    Case(
        "simulate-plot-missing-folder", names=("--plot",), cli=("simulate", "--plot", "{tmp}/no/such/x.png")
    ),
    Case(
        "simulate-plot-folder-is-file",
        names=("--plot",),
        setup=_write("f", "x"),
        cli=("simulate", "--plot", "{tmp}/f/x.png"),
    ),
    # ------------------------------------------------------------------ solve max-min
    Case("solve-max-min-bad-dl", names=("dl-constraint",), cli=("solve", "max-min", "--dl-constraint", "x")),
    Case("solve-max-min-setups-zero", names=("--setups",), cli=("solve", "max-min", "--setups", "0")),
    Case("solve-max-min-batch-zero", names=("--batch",), cli=("solve", "max-min", "--batch", "0")),
    Case("solve-max-min-K-zero", names=("K",), cli=("solve", "max-min", "--K", "0")),
    Case("solve-max-min-unknown-preset", names=("preset",), cli=("solve", "max-min", "--preset", "x")),
    *_scenario_cases(("solve", "max-min"), "solve-max-min"),
    Case(
        "solve-max-min-disc-radius-tiny",
        names=("ue_disc_radius_m",),
        setup=_write("s.yaml", "preset: aagnn\nue_disc_radius_m: 0.01\n"),
        cli=("solve", "max-min", "--config", "{tmp}/s.yaml", "--setups", "2"),
    ),
    # ------------------------------------------------------------------ presets
    Case("presets-unknown", names=("preset",), cli=("presets", "nope")),
    Case("presets-extra-argument", names=("extra argument",), cli=("presets", "aagnn", "egat")),
    # ------------------------------------------------------------------ train
    Case("train-missing-config", names=("none.yaml",), cli=("train", "--config", "{tmp}/none.yaml")),
    Case("train-config-is-dir", names=("{tmp}",), cli=("train", "--config", "{tmp}")),
    Case("train-no-config", names=("--config",), cli=("train",)),
    Case(
        "train-config-alias-bomb",
        names=("t.yaml",),
        setup=_write("t.yaml", ALIAS_BOMB),
        cli=("train", "--config", "{tmp}/t.yaml"),
    ),
    Case(
        "train-config-duplicate-key",
        names=("t.yaml",),
        setup=_write("t.yaml", TRAIN + "trainer:\n  epochs: 3\n"),
        cli=("train", "--config", "{tmp}/t.yaml"),
    ),
    Case(
        "train-config-non-utf8",
        names=("t.yaml",),
        setup=_write("t.yaml", LATIN1),
        cli=("train", "--config", "{tmp}/t.yaml"),
    ),
    Case(
        "train-config-a-list",
        names=("t.yaml",),
        setup=_write("t.yaml", "- 1\n"),
        cli=("train", "--config", "{tmp}/t.yaml"),
    ),
    Case(
        "train-config-without-data",
        names=("data",),
        setup=_write("t.yaml", "trainer: {epochs: 2}\n"),
        cli=("train", "--config", "{tmp}/t.yaml"),
    ),
    Case(
        "train-config-unknown-field",
        names=("trainer.epoch",),
        setup=_write("t.yaml", TRAIN + "  epoch: 2\n"),
        cli=("train", "--config", "{tmp}/t.yaml"),
    ),
    Case(
        "train-config-bool-epochs",
        names=("trainer.epochs",),
        setup=_write("t.yaml", TRAIN + "  epochs: true\n"),
        cli=("train", "--config", "{tmp}/t.yaml"),
    ),
    Case(
        "train-config-bool-model-width",
        names=("model.d_mod",),
        setup=_write("t.yaml", TRAIN + "model: {d_mod: true}\n"),
        cli=("train", "--config", "{tmp}/t.yaml"),
    ),
    Case(
        "train-set-without-equals",
        names=("key=value",),
        setup=_write("t.yaml", TRAIN),
        cli=("train", "--config", "{tmp}/t.yaml", "--set", "trainer.epochs"),
    ),
    Case(
        "train-set-empty-key",
        names=("dotted field names",),
        setup=_write("t.yaml", TRAIN),
        cli=("train", "--config", "{tmp}/t.yaml", "--set", "trainer..epochs=3"),
    ),
    Case(
        "train-set-bad-yaml-value",
        names=("trainer.epochs",),
        setup=_write("t.yaml", TRAIN),
        cli=("train", "--config", "{tmp}/t.yaml", "--set", "trainer.epochs=[1"),
    ),
    Case(
        "train-set-alias-value",
        names=("trainer.epochs",),
        setup=_write("t.yaml", TRAIN),
        cli=("train", "--config", "{tmp}/t.yaml", "--set", "trainer.epochs=[&a 1, *a]"),
    ),
    Case(
        "train-set-duplicate-key-value",
        names=("model",),
        setup=_write("t.yaml", TRAIN),
        cli=("train", "--config", "{tmp}/t.yaml", "--set", "model={name: deepsets, name: tree_transformer}"),
    ),
    Case(
        "train-set-into-a-value",
        names=("trainer.epochs",),
        setup=_write("t.yaml", TRAIN),
        cli=("train", "--config", "{tmp}/t.yaml", "--set", "trainer.epochs.x=1"),
    ),
    Case(
        "train-set-bool-batch-size",
        names=("trainer.batch_size",),
        setup=_write("t.yaml", TRAIN),
        cli=("train", "--config", "{tmp}/t.yaml", "--set", "trainer.batch_size=true"),
    ),
    Case(
        "train-set-negative-lr",
        names=("optim.lr",),
        setup=_write("t.yaml", TRAIN),
        cli=("train", "--config", "{tmp}/t.yaml", "--set", "optim.lr=-1"),
    ),
    Case(
        "train-set-bad-precision",
        names=("trainer.precision",),
        setup=_write("t.yaml", TRAIN),
        cli=("train", "--config", "{tmp}/t.yaml", "--set", "trainer.precision=8-true"),
    ),
    Case(
        "train-set-unknown-field",
        names=("trainer.epoks",),
        setup=_write("t.yaml", TRAIN),
        cli=("train", "--config", "{tmp}/t.yaml", "--set", "trainer.epoks=3"),
    ),
    Case(
        "train-unknown-accelerator",
        names=("trainer.accelerator",),
        setup=_write("t.yaml", TRAIN),
        cli=("train", "--config", "{tmp}/t.yaml", "--set", "trainer.accelerator=quantum"),
    ),
    Case(
        "train-out-dir-is-a-file",
        names=("trainer.out_dir",),
        setup=_both(_write("t.yaml", TRAIN), _write("run", "x")),
        cli=("train", "--config", "{tmp}/t.yaml"),
    ),
    Case(
        "train-out-dir-under-a-file",
        names=("trainer.out_dir",),
        setup=_both(_write("t.yaml", TRAIN), _write("f", "x")),
        cli=("train", "--config", "{tmp}/t.yaml", "--set", "trainer.out_dir={tmp}/f/run"),
    ),
    # ------------------------------------------------------------------ predict (positions)
    *[
        Case(
            f"predict-positions-{name}",
            names=(file,),
            setup=setup,
            cli=("predict", "{tmp}/none.ckpt", "--positions", f"{{tmp}}/{file}"),
        )
        for name, file, setup in [
            ("missing", "p.yaml", None),
            ("alias-bomb", "p.yaml", _write("p.yaml", ALIAS_BOMB)),
            ("duplicate-key", "p.yaml", _write("p.yaml", POSITIONS + "ue: [[1, 2]]\n")),
            ("non-utf8-yaml", "p.yaml", _write("p.yaml", LATIN1)),
            ("non-utf8-csv", "p.csv", _write("p.csv", b"kind,x,y\nue,1,2\n\xff\xfe,3,4\n")),
            ("json-syntax", "p.json", _write("p.json", '{"ue": [[1, 2]], "ap": [[0, 0]]')),
            ("yaml-without-ap", "p.yaml", _write("p.yaml", "ue: [[1, 2]]\n")),
            ("yaml-empty-ue", "p.yaml", _write("p.yaml", "ue: []\nap: [[0, 0]]\n")),
            ("yaml-three-coordinates", "p.yaml", _write("p.yaml", "ue: [[1, 2, 3]]\nap: [[0, 0, 0]]\n")),
            ("yaml-not-numbers", "p.yaml", _write("p.yaml", "ue: [[a, b]]\nap: [[0, 0]]\n")),
            ("yaml-infinite", "p.yaml", _write("p.yaml", "ue: [[.inf, 0]]\nap: [[0, 0]]\n")),
            ("csv-bad-kind", "p.csv", _write("p.csv", "kind,x,y\nue,1,2\nbs,0,0\n")),
            ("csv-not-a-number", "p.csv", _write("p.csv", "kind,x,y\nue,1,two\nap,0,0\n")),
            ("csv-no-header", "p.csv", _write("p.csv", "ue,1,2\nap,0,0\n")),
            ("csv-no-ap", "p.csv", _write("p.csv", "kind,x,y\nue,1,2\n")),
            ("csv-nul-byte", "p.csv", _write("p.csv", b"kind,x,y\nue,1,2\x00\nap,0,0\n")),
            ("npz-truncated", "p.npz", _npz_truncated),
            ("npz-header-bomb", "p.npz", _npz_bomb),
            ("npz-not-zip", "p.npz", _write("p.npz", b"PK\x03\x04 not really a zip")),
            ("npz-missing-array", "p.npz", lambda f: _npz(f, ue=np.ones((2, 2)))),
            ("npz-object-array", "p.npz", lambda f: _npz(f, ue=np.array([None, 1]), ap=np.zeros((1, 2)))),
            ("npz-complex-shape", "p.npz", lambda f: _npz(f, ue=np.ones((2, 2, 2)), ap=np.zeros((1, 2)))),
            ("unsupported-suffix", "p.txt", _write("p.txt", POSITIONS)),
        ]
    ],
    Case(
        "predict-npy-named-npz",
        names=("p.npz",),
        setup=lambda f: np.save(f / "p.npy", np.ones((2, 2))) or (f / "p.npy").rename(f / "p.npz"),
        cli=("predict", "{tmp}/none.ckpt", "--positions", "{tmp}/p.npz"),
    ),
    Case(
        "predict-unknown-preset",
        names=("preset",),
        setup=_write("p.yaml", POSITIONS),
        cli=("predict", "{tmp}/none.ckpt", "--positions", "{tmp}/p.yaml", "--preset", "nope"),
    ),
    Case(
        "predict-missing-checkpoint",
        names=("none.ckpt",),
        setup=_write("p.yaml", POSITIONS),
        cli=("predict", "{tmp}/none.ckpt", "--positions", "{tmp}/p.yaml"),
    ),
    Case("predict-no-positions", names=("--positions",), cli=("predict", "{tmp}/none.ckpt")),
    # ------------------------------------------------------------------ export
    Case("export-onnx-bad-suffix", names=("--onnx",), cli=("export", "{tmp}/m.ckpt", "--onnx", "{tmp}/m.pt")),
    Case(
        "export-onnx-is-dir",
        names=("--onnx",),
        setup=_mkdir("m.onnx"),
        cli=("export", "{tmp}/m.ckpt", "--onnx", "{tmp}/m.onnx"),
    ),
    Case(
        "export-onnx-missing-folder",
        names=("--onnx",),
        cli=("export", "{tmp}/m.ckpt", "--onnx", "{tmp}/no/m.onnx"),
    ),
    Case(
        "export-missing-checkpoint",
        names=("m.ckpt",),
        cli=("export", "{tmp}/m.ckpt", "--onnx", "{tmp}/m.onnx"),
    ),
    Case("export-no-onnx", names=("--onnx",), cli=("export", "{tmp}/m.ckpt")),
    # ------------------------------------------------------------------ reproduce
    Case("reproduce-unknown-paper", names=("paper",), cli=("reproduce", "nope")),
    Case(
        "reproduce-out-is-a-file",
        names=("--out",),
        setup=_write("out", "x"),
        cli=("reproduce", "tree-transformer", "--quick", "--out", "{tmp}/out"),
    ),
    Case(
        "reproduce-out-under-a-file",
        names=("--out",),
        setup=_write("f", "x"),
        cli=("reproduce", "tree-transformer", "--quick", "--out", "{tmp}/f/out"),
    ),
    Case(
        "reproduce-workers-zero",
        names=("--workers",),
        cli=("reproduce", "tree-transformer", "--workers", "0"),
    ),
    # ------------------------------------------------------------------ data (arguments only)
    Case("data-generate-no-out", names=("--out",), cli=("data", "generate")),
    Case(
        "data-generate-out-is-a-file",
        names=("--out",),
        setup=_write("d", "x"),
        cli=("data", "generate", "--out", "{tmp}/d", "--scheduler", "sync"),
    ),
    Case("data-generate-K-list", names=("--K",), cli=("data", "generate", "--out", "{tmp}/d", "--K", "2,x")),
    Case("data-generate-K-zero", names=("--K",), cli=("data", "generate", "--out", "{tmp}/d", "--K", "0")),
    Case(
        "data-generate-samples-zero",
        names=("--samples",),
        cli=("data", "generate", "--out", "{tmp}/d", "--samples", "0"),
    ),
    Case(
        "data-generate-unknown-dataset",
        names=("nope",),
        cli=("data", "generate", "--out", "{tmp}/d", "--dataset", "nope"),
    ),
    *[
        Case(
            f"data-generate-spec-{name}",
            names=("spec.yaml",),
            setup=setup,
            cli=("data", "generate", "--out", "{tmp}/d", "--spec", "{tmp}/spec.yaml", "--scheduler", "sync"),
        )
        for name, setup in [
            ("missing", None),
            ("alias-bomb", _write("spec.yaml", ALIAS_BOMB)),
            ("duplicate-key", _write("spec.yaml", "samples: 2\nsamples: 3\n")),
            ("non-utf8", _write("spec.yaml", LATIN1)),
            ("a-list", _write("spec.yaml", "- 1\n")),
            ("unknown-field", _write("spec.yaml", "scenario: {}\nsizes: [[2, 4]]\nsamples: 2\nbogus: 1\n")),
            ("bool-samples", _write("spec.yaml", "scenario: {}\nsizes: [[2, 4]]\nsamples: true\n")),
            ("bool-in-scenario", _write("spec.yaml", "scenario: {K: true}\nsizes: [[2, 4]]\nsamples: 2\n")),
        ]
    ],
    Case("data-inspect-missing-folder", names=("nothing",), cli=("data", "inspect", "{tmp}/nothing")),
    Case("simulate-K-exhausts-memory", names=("K = 200000", "GiB"), cli=("simulate", "--K", "200000")),
    Case(
        "solve-max-min-K-exhausts-memory",
        names=("K = 50000", "GiB"),
        cli=("solve", "max-min", "--K", "50000", "--setups", "2"),
    ),
]

if not torch.cuda.is_available():  # on a machine with a GPU this input is valid
    CASES.append(
        Case(
            "train-accelerator-gpu-without-gpu",
            names=("trainer.accelerator",),
            setup=_write("t.yaml", TRAIN),
            cli=("train", "--config", "{tmp}/t.yaml", "--set", "trainer.accelerator=gpu"),
        )
    )

# the API of the presets (the CLI's source of scenarios)
CASES.append(Case("preset-negative-L", names=("L",), call=lambda folder: preset("aagnn", L=-1)))


@pytest.mark.parametrize("case_id", [c.id for c in CASES])
def test_bad_input_is_a_clear_error(fuzz_results, case_id):
    assert_clear(fuzz_results, case_id)
