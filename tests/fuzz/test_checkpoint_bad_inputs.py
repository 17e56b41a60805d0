"""Bad checkpoint files through `predict`, `export`, `train --resume` and ``load_trained``, and bad
positions files through `predict`: each ends in one clear error naming the file (or field).

Every checkpoint case starts from a valid hand-made checkpoint (``_valid``: what ``train`` writes,
minus Lightning's own state; ``tests/learn/test_checkpoint_loading.py`` shows that it loads and
predicts) and breaks one thing. Malicious pickles create a marker file ``PWNED`` if they ever run;
``test_no_payload_ran`` checks that none exists after all cases.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from fuzz_harness import Case, assert_clear

CKPT = "m.ckpt"
MARKER = "PWNED"
POSITIONS = "ue: [[10, 20], [250, 300]]\nap: [[100, 100], [300, 300], [450, 50]]\n"


def _config(folder: Path, d_enc: int = 8):
    from cfmimo.learn.config import TrainConfig
    from cfmimo.learn.trainer import resolve_model_config

    cfg = TrainConfig.from_dict(
        {
            "model": {"name": "deepsets", "d_enc": d_enc, "d_mod": 16},
            "data": {"train": str(folder / "data")},
            "trainer": {
                "epochs": 1,
                "accelerator": "cpu",
                "progress_bar": False,
                "out_dir": str(folder / "run"),
            },
        }
    )
    return resolve_model_config(cfg)


def _valid(folder: Path, d_enc: int = 8) -> dict:
    from cfmimo.data.transforms import PowerScaler
    from cfmimo.models import build_model

    cfg = _config(folder, d_enc)
    torch.manual_seed(0)
    model = build_model(cfg.model)
    g = torch.Generator().manual_seed(0)
    scaler = PowerScaler().fit(torch.rand(20, 3, generator=g) * 100, torch.rand(20, 3, generator=g) * 500)
    return {
        "epoch": 0,
        "global_step": 1,
        "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
        "hyper_parameters": {"config": cfg.to_dict(), "scaler": scaler.to_dict(), "position_frame": None},
    }


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Writes:
    """A second payload kind: a builtin that would write the marker."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('x')",))


def _bytes_valid(folder: Path) -> bytes:
    tmp = folder / "valid.tmp"
    torch.save(_valid(folder), tmp)
    data = tmp.read_bytes()
    tmp.unlink()
    return data


def _edit(change: Callable[[dict, Path], None]) -> Callable[[Path], bytes | dict]:
    def make(folder: Path) -> dict:
        ckpt = _valid(folder)
        change(ckpt, folder)
        return ckpt

    return make


def _set(path: str, value) -> Callable[[dict, Path], None]:
    def change(ckpt: dict, folder: Path) -> None:
        *parents, last = path.split(".")
        node = ckpt
        for p in parents:
            node = node[p]
        if value is _DELETE:
            del node[last]
        else:
            node[last] = value

    return change


_DELETE = object()


def _wrong_shape(ckpt: dict, folder: Path) -> None:
    ckpt["state_dict"] = _valid(folder, d_enc=12)["state_dict"]


def _flip_middle(folder: Path) -> bytes:
    data = bytearray(_bytes_valid(folder))
    for i in range(len(data) // 3, len(data) // 3 + 64):
        data[i] ^= 0xFF
    return bytes(data)


# kind -> a function of the case folder giving the file's bytes, or a checkpoint dict to torch.save
BAD_CHECKPOINTS: dict[str, Callable[[Path], object]] = {
    "empty": lambda folder: b"",
    "truncated": lambda folder: _bytes_valid(folder)[:700],
    "truncated-tail": lambda folder: _bytes_valid(folder)[:-200],
    "random-bytes": lambda folder: np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes(),
    "flipped-bytes": _flip_middle,
    "text-file": lambda folder: b"model: deepsets\nweights: none\n",
    "wrong-shape": _edit(_wrong_shape),
    "pickle-os-system": lambda folder: _pickle_zip(_RunsCode(folder / MARKER)),
    "pickle-exec": lambda folder: _pickle_zip(_Writes(folder / MARKER)),
    "legacy-pickle": lambda folder: pickle.dumps({"state_dict": _RunsCode(folder / MARKER)}),
    "not-a-dict": lambda folder: torch.zeros(3),
    "list-payload": lambda folder: [1, 2, 3],
    "no-state-dict": _edit(_set("state_dict", _DELETE)),
    "no-hyper-parameters": _edit(_set("hyper_parameters", _DELETE)),
    "no-config": _edit(_set("hyper_parameters.config", _DELETE)),
    "no-scaler": _edit(_set("hyper_parameters.scaler", _DELETE)),
    "non-tensor-weight": _edit(lambda c, f: c["state_dict"].update({"model.w_extra": [1.0, 2.0]})),
    "nan-weights": _edit(
        lambda c, f: c.update(
            state_dict={k: torch.full_like(v, float("nan")) for k, v in c["state_dict"].items()}
        )
    ),
    "unknown-model": _edit(_set("hyper_parameters.config.model.name", "no-such-model")),
    "bad-scaler": _edit(_set("hyper_parameters.scaler", {"ul_min": "x"})),
    "bad-frame": _edit(
        _set("hyper_parameters.position_frame", {"x_min": 1.0, "x_max": 0.0, "y_min": 0, "y_max": 1})
    ),
    "string-epoch": _edit(_set("epoch", "ten")),
}


def _pickle_zip(payload) -> dict:
    return {"state_dict": {"model.w": payload}, "hyper_parameters": {}}


def _write_checkpoint(kind: str, where: str) -> Callable[[Path], None]:
    """Setup: the bad checkpoint at folder/CKPT (or at run/checkpoints/last.ckpt for `train
    --resume`, with a valid training config train.yaml), plus a valid positions file."""

    def setup(folder: Path) -> None:
        path = folder / CKPT if where == "file" else folder / "run" / "checkpoints" / "last.ckpt"
        path.parent.mkdir(parents=True, exist_ok=True)
        content = BAD_CHECKPOINTS[kind](folder)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            torch.save(content, path)
        (folder / "pos.yaml").write_text(POSITIONS)
        _config(folder).to_yaml(folder / "train.yaml")

    return setup


def _load_trained(folder: Path) -> None:
    from cfmimo.learn.trainer import load_trained

    load_trained(folder / CKPT)


CASES: list[Case] = []
for kind in BAD_CHECKPOINTS:
    CASES += [
        Case(
            f"predict-{kind}",
            names=(CKPT,),
            setup=_write_checkpoint(kind, "file"),
            cli=("predict", f"{{tmp}}/{CKPT}", "--positions", "{tmp}/pos.yaml", "--json"),
        ),
        Case(
            f"export-{kind}",
            names=(CKPT,),
            setup=_write_checkpoint(kind, "file"),
            cli=("export", f"{{tmp}}/{CKPT}", "--onnx", "{tmp}/m.onnx"),
        ),
        Case(
            f"train-resume-{kind}",
            names=("last.ckpt",),
            setup=_write_checkpoint(kind, "last"),
            cli=("train", "--config", "{tmp}/train.yaml", "--resume", "--json"),
        ),
        Case(
            f"load-trained-{kind}", names=(CKPT,), setup=_write_checkpoint(kind, "file"), call=_load_trained
        ),
    ]

CASES += [
    Case(
        "predict-missing-checkpoint",
        names=("nothere.ckpt",),
        setup=lambda folder: (folder / "p.yaml").write_text(POSITIONS),  # positions are read first
        cli=("predict", "{tmp}/nothere.ckpt", "--positions", "{tmp}/p.yaml"),
    ),
    Case("export-directory-checkpoint", names=("{tmp}",), cli=("export", "{tmp}", "--onnx", "{tmp}/m.onnx")),
    Case(
        "train-resume-other-model",
        names=("last.ckpt",),
        setup=lambda folder: (
            _write_checkpoint("empty", "last")(folder),
            torch.save(_valid(folder, d_enc=12), folder / "run" / "checkpoints" / "last.ckpt"),
        ),
        cli=("train", "--config", "{tmp}/train.yaml", "--resume"),
    ),
]


# ---- bad positions files through `predict` (with a valid checkpoint)


def _positions(name: str, content: bytes | str | Callable[[Path], None]) -> Callable[[Path], None]:
    def setup(folder: Path) -> None:
        torch.save(_valid(folder), folder / CKPT)
        path = folder / name
        if callable(content):
            content(path)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)

    return setup


def _npz(**arrays):
    return lambda path: np.savez(path, **arrays)


BAD_POSITIONS = {
    "nan-ue.yaml": ("ue", "ue: [[.nan, 20], [250, 300]]\nap: [[100, 100], [300, 300]]\n"),
    "inf-ap.yaml": ("ap", "ue: [[10, 20]]\nap: [[100, .inf], [300, 300]]\n"),
    "far-ue.yaml": ("ue", "ue: [[10, 20], [250000, 300]]\nap: [[100, 100], [300, 300]]\n"),
    "far-ap-negative.yaml": ("ap", "ue: [[10, 20]]\nap: [[-9000, 100], [300, 300]]\n"),
    "huge.yaml": ("ue", "ue: [[1e308, 1e308]]\nap: [[100, 100]]\n"),
    "three-coords.yaml": ("ue", "ue: [[10, 20, 30]]\nap: [[100, 100]]\n"),
    "no-ues.yaml": ("ue", "ue: []\nap: [[100, 100]]\n"),
    "strings.yaml": ("ue", "ue: [[a, b]]\nap: [[100, 100]]\n"),
    "missing-ap.yaml": ("ap", "ue: [[10, 20]]\n"),
    "empty.yaml": ("empty.yaml", ""),
    "list.json": ("list.json", "[1, 2, 3]"),
    "latin1.yaml": ("latin1.yaml", "ue: [[10, 20]]\nap: [[100, 100]]\n# caf\xe9\n".encode("latin-1")),
    "nan.csv": ("ue", "kind,x,y\nue,nan,1\nap,100,100\n"),
    "inf.csv": ("ap", "kind,x,y\nue,10,20\nap,inf,100\n"),
    "far.csv": ("ue", "kind,x,y\nue,1e7,20\nap,100,100\n"),
    "nan.npz": ("ue", _npz(ue=np.array([[np.nan, 1.0]]), ap=np.array([[100.0, 100.0]]))),
    "shape.npz": ("ap", _npz(ue=np.array([[10.0, 20.0]]), ap=np.zeros((2, 3)))),
    "object.npz": ("object.npz", _npz(ue=np.array([{"x": 1}], dtype=object), ap=np.zeros((1, 2)))),
    "random.npz": ("random.npz", np.random.default_rng(1).integers(0, 256, 300, dtype=np.uint8).tobytes()),
}

for file, (name, content) in BAD_POSITIONS.items():
    CASES.append(
        Case(
            f"predict-positions-{file}",
            names=(name,),
            setup=_positions(file, content),
            cli=("predict", f"{{tmp}}/{CKPT}", "--positions", f"{{tmp}}/{file}", "--json"),
        )
    )


@pytest.mark.parametrize("case_id", [c.id for c in CASES])
def test_bad_input_is_a_clear_error(fuzz_results, case_id):
    assert_clear(fuzz_results, case_id)


def test_no_payload_ran(fuzz_results, tmp_path_factory):
    """No malicious pickle ran in any case: no marker file anywhere under the cases' folders."""
    assert len([c for c in CASES if "pickle" in c.id]) == 12
    assert not list(Path(tmp_path_factory.getbasetemp()).rglob(MARKER))


def test_enough_distinct_cases():
    assert len({c.id for c in CASES}) == len(CASES) >= 100
