"""Use a trained model: read positions from a file, predict UL/DL powers, and score them.

Position files (one setup), coordinates in metres:
  * YAML/JSON: ``{ue: [[x, y], ...], ap: [[x, y], ...]}``
  * CSV: a header ``kind,x,y`` and one row per node, kind ``ue`` or ``ap``
  * NPZ: arrays ``ue`` [K, 2] and ``ap`` [L, 2]
The SEs of the predicted powers (and of the closed-form optimum, for comparison) are computed by
the simulator for these positions: shadowing and small-scale fading are drawn from ``seed``, since
positions alone do not fix the channels.
"""

from __future__ import annotations

import csv
import io
import os
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cfmimo.config import Scenario
from cfmimo.data.transforms import PositionFrame, PowerScaler
from cfmimo.npzio import npz_array
from cfmimo.policies.classical.power import MaxMinClosedForm
from cfmimo.policies.neural import PositionPowerPolicy
from cfmimo.problems.base import Allocation
from cfmimo.problems.maxmin_power import MaxMinPower, power_instance
from cfmimo.sim.network import networks_from_positions, sample_channel_state
from cfmimo.yamlio import load_yaml_file, read_utf8


def _as_points(value: Any, name: str, path: Path) -> np.ndarray:
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{path}: '{name}' must be a list of [x, y] pairs") from None
    if a.ndim != 2 or a.shape[1] != 2 or a.shape[0] < 1 or not np.isfinite(a).all():
        raise ValueError(
            f"{path}: '{name}' must be a non-empty list of finite [x, y] pairs, got shape {a.shape}"
        )
    return a


#: largest array read from a positions NPZ (bytes); a setup of 10^6 nodes is 16 MB
MAX_NPZ_ARRAY_BYTES = 64 << 20


def read_positions(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(ue [K, 2], ap [L, 2]) from a YAML/JSON, CSV or NPZ file; ValueError naming the file."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix in (".yaml", ".yml", ".json"):
            # the safe loader (no aliases, no duplicate keys, UTF-8 only); JSON is YAML
            data = load_yaml_file(path, "positions file")
            if not isinstance(data, dict) or "ue" not in data or "ap" not in data:
                raise ValueError(f"{path}: expected a mapping with keys 'ue' and 'ap'")
            return _as_points(data["ue"], "ue", path), _as_points(data["ap"], "ap", path)
        if suffix == ".csv":
            rows: dict[str, list[list[float]]] = {"ue": [], "ap": []}
            text = read_utf8(path, "positions file")
            with io.StringIO(text, newline="") as f:
                for i, row in enumerate(csv.DictReader(f), start=2):
                    kind = (row.get("kind") or "").strip().lower()
                    if kind not in rows:
                        raise ValueError(f"{path}: line {i}: kind must be 'ue' or 'ap', got {kind!r}")
                    try:
                        rows[kind].append([float(row["x"]), float(row["y"])])
                    except (KeyError, TypeError, ValueError):
                        raise ValueError(f"{path}: line {i}: columns x and y must be numbers") from None
            return _as_points(rows["ue"], "ue", path), _as_points(rows["ap"], "ap", path)
        if suffix == ".npz":
            if path.is_dir():
                raise ValueError(f"positions file {path} is a directory, not a file")
            try:
                z = np.load(path, allow_pickle=False)
                if not isinstance(z, np.lib.npyio.NpzFile):  # a plain .npy file named .npz
                    raise ValueError(f"{path}: not an NPZ archive (arrays 'ue' and 'ap')")
                with z:
                    if "ue" not in z or "ap" not in z:
                        raise ValueError(f"{path}: expected arrays 'ue' and 'ap'")
                    return _as_points(npz_array(z, "ue", path, MAX_NPZ_ARRAY_BYTES), "ue", path), _as_points(
                        npz_array(z, "ap", path, MAX_NPZ_ARRAY_BYTES), "ap", path
                    )
            except ValueError as err:
                if str(path) in str(err):
                    raise
                raise ValueError(f"positions file {path}: unreadable NPZ: {err}") from None
            except (EOFError, zipfile.BadZipFile, zlib.error) as err:  # truncated or not a zip file
                raise ValueError(f"positions file {path}: unreadable NPZ: {err}") from None
    except OSError as err:
        raise ValueError(f"cannot read positions file {path}: {err}") from None
    except csv.Error as err:
        raise ValueError(f"positions file {path}: malformed CSV: {err}") from None
    except UnicodeDecodeError as err:
        raise ValueError(
            f"positions file {path} is not UTF-8 text: {err.reason} at byte {err.start}"
        ) from None
    except (ValueError, TypeError, KeyError, EOFError, zipfile.BadZipFile) as err:  # a damaged or pickled NPZ
        if str(path) in str(err):
            raise
        raise ValueError(f"cannot read positions file {path}: {err}") from None
    raise ValueError(f"{path}: unsupported positions format {suffix!r} (use .yaml, .json, .csv or .npz)")


def predict_setup(
    model: torch.nn.Module,
    scaler: PowerScaler,
    ue: np.ndarray,
    ap: np.ndarray,
    scenario: Scenario,
    *,
    seed: int = 0,
    frame: PositionFrame | None = None,
) -> dict[str, Any]:
    """Predicted and optimal powers and per-UE SEs for one setup at given positions."""
    sc = scenario.with_(K=int(ue.shape[0]), L=int(ap.shape[0]))
    net = networks_from_positions(
        sc,
        torch.tensor(ap[None], dtype=torch.float64),
        torch.tensor(ue[None], dtype=torch.float64),
        seed=seed,
        indices=range(1),
    )
    inst = power_instance(net, sample_channel_state(net))
    problem = MaxMinPower()
    pred = PositionPowerPolicy(model, scaler, frame)(inst)
    opt = MaxMinClosedForm()(inst)
    mp, mo = problem.metrics(inst, pred), problem.metrics(inst, opt)
    return {
        "K": sc.K,
        "L": sc.L,
        "p_ul_mw": pred.p_ul[0].tolist(),
        "p_dl_mw": pred.p_dl[0].tolist(),
        "se_ul": mp["se_ul"][0].tolist(),
        "se_dl": mp["se_dl"][0].tolist(),
        "optimal": {
            "p_ul_mw": opt.p_ul[0].tolist(),
            "p_dl_mw": opt.p_dl[0].tolist(),
            "se_ul": mo["se_ul"][0].tolist(),
            "se_dl": mo["se_dl"][0].tolist(),
        },
        "dl_total_mw": float(pred.p_dl[0].sum()),
        "dl_budget_mw": sc.dl_total_power_mw,
    }


def predict_cluster_setup(
    model: torch.nn.Module,
    scaler: PowerScaler,
    ue: np.ndarray,
    ap: np.ndarray,
    scenario: Scenario,
    *,
    seed: int = 0,
    frame: PositionFrame | None = None,
    threshold: float = 0.3,
) -> dict[str, Any]:
    """A clustering + power model (elu-cosformer Sect. IV) on one setup at given positions: its
    clusters (eq. (16) + repair, at most tau_p = the scenario's tau_p UEs per AP) and powers
    (eqs. (19)-(21)), their per-UE SEs, and the exact max-min powers for the same clusters
    ("Optimal UC-CF") for comparison. ``model`` may be a PyTorch model or an ``OnnxRuntimeModel``."""
    from cfmimo.policies.neural import ClusterPowerPolicy
    from cfmimo.problems.clustering_power import ClusteringInstance, ClusteringPower

    sc = scenario.with_(K=int(ue.shape[0]), L=int(ap.shape[0]))
    net = networks_from_positions(
        sc,
        torch.tensor(ap[None], dtype=torch.float64),
        torch.tensor(ue[None], dtype=torch.float64),
        seed=seed,
        indices=range(1),
    )
    inst = ClusteringInstance(net, sample_channel_state(net), sc.tau_p)
    problem = ClusteringPower()
    pred = ClusterPowerPolicy(model, scaler, frame, threshold=threshold)(inst)
    powers = MaxMinClosedForm(rtol=1e-12)(pred.info["power_instance"])  # Optimal UC-CF: same clusters
    opt = Allocation(serving=pred.serving, p_ul=powers.p_ul, p_dl=powers.p_dl)
    mp, mo = problem.metrics(inst, pred), problem.metrics(inst, opt)
    serving = pred.serving[0]  # [L, K]
    return {
        "K": sc.K,
        "L": sc.L,
        "tau_p": sc.tau_p,
        "serving_aps": [serving[:, k].nonzero().flatten().tolist() for k in range(sc.K)],
        "max_ues_per_ap": int(serving.sum(-1).max()),
        "p_ul_mw": pred.p_ul[0].tolist(),
        "p_dl_mw": pred.p_dl[0].tolist(),
        "se_ul": mp["se_ul"][0].tolist(),
        "se_dl": mp["se_dl"][0].tolist(),
        "optimal": {
            "p_ul_mw": opt.p_ul[0].tolist(),
            "p_dl_mw": opt.p_dl[0].tolist(),
            "se_ul": mo["se_ul"][0].tolist(),
            "se_dl": mo["se_dl"][0].tolist(),
        },
        "dl_total_mw": float(pred.p_dl[0].sum()),
        "dl_budget_mw": sc.dl_total_power_mw,
    }


BACKENDS = ("torch", "onnxruntime")


def load_predictor(
    path: str | os.PathLike, backend: str = "torch", *, threads: int = 1
) -> tuple[torch.nn.Module, PowerScaler, PositionFrame | None]:
    """(model, scaler, frame) of a checkpoint (.ckpt) or an exported file (.onnx, with the metadata
    of ``cfmimo export``) for ``backend`` "torch" (checkpoints only) or "onnxruntime" (a checkpoint
    is exported to a temporary file first, parity-checked). ValueError naming the file or backend."""
    from cfmimo.export import OnnxRuntimeModel, export_trained
    from cfmimo.learn.trainer import load_trained

    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        if backend != "onnxruntime":
            raise ValueError(f"{path} is an ONNX file: use --backend onnxruntime")
        model = OnnxRuntimeModel(path, threads=threads)
        meta = model.metadata
        if not meta or not meta.get("scaler"):
            raise ValueError(
                f"ONNX file {path} has no cfmimo metadata (scaler): export it with cfmimo export"
            )
        frame = PositionFrame.from_dict(meta["frame"]) if meta.get("frame") else None
        return model, PowerScaler.from_dict(meta["scaler"]), frame
    trained = load_trained(path)
    if backend == "torch":
        return trained.model, trained.scaler, trained.frame
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:  # onnxruntime reads the file at session creation
        onnx_path = Path(tmp) / "model.onnx"
        export_trained(trained, onnx_path, check=True)
        model = OnnxRuntimeModel(onnx_path, threads=threads)
    return model, trained.scaler, trained.frame


def predictor_site(path: str | os.PathLike) -> dict[str, Any] | None:
    """The training site recorded in a checkpoint (.ckpt) or an exported file (.onnx metadata
    ``site``), None for models of the book's drops (and files from before sites were recorded)."""
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        from cfmimo.export import read_metadata

        site = (read_metadata(path) or {}).get("site")
        if site is not None and not isinstance(site, dict):
            raise ValueError(f"ONNX file {path}: metadata site must be a mapping of scenario fields")
        return site
    from cfmimo.learn.trainer import load_trained

    return load_trained(path).site


def is_cluster_predictor(model: torch.nn.Module) -> bool:
    """Whether ``model`` (PyTorch or ONNX Runtime) is a clustering + power model."""
    from cfmimo.export import OnnxRuntimeModel, is_cluster_model

    return model.is_cluster if isinstance(model, OnnxRuntimeModel) else is_cluster_model(model)
