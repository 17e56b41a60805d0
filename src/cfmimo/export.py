"""ONNX export of position models with a dynamic number of users, checked for parity, and the
ONNX Runtime execution path.

Power models: the graph takes ``ue`` [B, K, 2] and ``ap`` [B, L, 2] (normalized positions, as the
model's ``forward``) and returns ``p`` [B, K, 2] (normalized UL/DL powers); gain-aware models (``cfmimo.models.gain_aware``) also take ``gain_db``
[B, L, K] (raw dB, normalized inside the graph by the model's buffers). Clustering models
(``cfmimo.models.cluster_models``) return ``mask`` [B, L, K] (association scores, eq. (15)), ``p``
[B, K, 2] and ``mask_logits`` [B, L, K]. B and K are dynamic, and L too for models that pool over
APs (the token and clustering models have a fixed L). The legacy TorchScript-based exporter is
used (``dynamo=False``): the Tree-Transformer switches to a fixed-depth tree while exporting, so
one graph serves every K up to 65 536.

Outside the graph, as in PyTorch: the input frame (eq. (11)), the rescaler (eqs. (12)-(13)) and,
for clustering models, the binary clusters (eq. (16): top-tau_p UEs per AP, threshold, repair;
``cluster_mask``), whose loop over repair rounds is data-dependent. ``export_trained`` stores the
scaler, frame and model config in the ONNX file's metadata (``metadata_props["cfmimo"]``, JSON), so
an exported file is usable on its own: ``OnnxRuntimeModel(path)`` runs it with the model's call
signature (an ``nn.Module`` returning a tensor or a ``ClusterPowerOutput``), so every policy and
``cfmimo predict --backend onnxruntime`` use the same code for both backends, and the tau_p cap is
enforced on the ONNX outputs exactly as on the PyTorch ones.
"""

from __future__ import annotations

import contextlib
import json
import os
import types
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cfmimo.models.cluster_models import ClusterPowerOutput, output_clusters

METADATA_KEY = "cfmimo"
POWER_OUTPUTS = ("p",)
CLUSTER_OUTPUTS = ("mask", "p", "mask_logits")


def _fixed_aps(model: nn.Module) -> int | None:
    config = getattr(model, "config", None)
    # the token and clustering models (gain-aware variants included) fix L in their widths
    fixed = type(model).__module__.endswith("token_models") or is_cluster_model(model)
    return getattr(config, "num_aps", None) if fixed else None


def is_cluster_model(model: nn.Module) -> bool:
    """Whether ``model`` returns a ``ClusterPowerOutput`` (a clustering + power model)."""
    from cfmimo.models.cluster_models import _ClusterHeadModel

    return isinstance(model, _ClusterHeadModel)


class _GraphModel(nn.Module):
    """A position model with the export's positional inputs and tensor outputs: (ue, ap) or, for
    gain-aware models (``cfmimo.models.gain_aware``), (ue, ap, gain_db) (the gain normalization
    stays inside the graph, its buffers); a clustering model's ``ClusterPowerOutput`` flattened to
    (mask, p, mask_logits)."""

    def __init__(self, model: nn.Module, *, gains: bool, cluster: bool) -> None:
        super().__init__()
        self.model, self.gains, self.cluster = model, gains, cluster

    def forward(self, ue: torch.Tensor, ap: torch.Tensor, *gain_db: torch.Tensor):
        out = self.model(ue, ap, gain_db=gain_db[0]) if self.gains else self.model(ue, ap)
        return (out.mask, out.power, out.mask_logits) if self.cluster else out


def _traceable_self_attention(
    self: nn.MultiheadAttention,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    key_padding_mask: torch.Tensor | None = None,
    need_weights: bool = True,
    attn_mask: torch.Tensor | None = None,
    average_attn_weights: bool = True,
    is_causal: bool = False,
) -> tuple[torch.Tensor, None]:
    """``nn.MultiheadAttention.forward`` for self-attention (query = key = value, eval mode), written
    with shape-relative reshapes. torch's own implementation bakes the sequence length of the
    example input into a Reshape of the legacy ONNX trace (the graph then fails at any other K);
    this one traces with a dynamic K. Same math: softmax(q kᵀ / sqrt(d_head)) v, padded keys
    (``key_padding_mask`` True) excluded. Shapes: query [B, S, d] (batch_first) -> ([B, S, d], None)."""
    if (
        attn_mask is not None
        or is_causal
        or not self._qkv_same_embed_dim
        or self.bias_k is not None
        or self.add_zero_attn
    ):
        raise ValueError(
            "ONNX export supports plain self-attention layers only (no attn_mask, bias_k, zero attention)"
        )
    x = query if self.batch_first else query.transpose(0, 1)  # [B, S, d]
    heads, d = self.num_heads, self.embed_dim
    qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)  # [B, S, 3d]
    q, k, v = (t.reshape(x.shape[0], -1, heads, d // heads).transpose(1, 2) for t in qkv.chunk(3, dim=-1))
    mask = None if key_padding_mask is None else ~key_padding_mask.bool()[:, None, None, :]  # True = attend
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # [B, H, S, d_head]
    out = self.out_proj(out.transpose(1, 2).reshape(x.shape[0], -1, d))  # [B, S, d]
    return (out if self.batch_first else out.transpose(0, 1)), None


@contextlib.contextmanager
def _traceable_attention(model: nn.Module):
    """Within the block, every ``nn.MultiheadAttention`` of ``model`` runs ``_traceable_self_attention``
    and PyTorch's fused encoder fast path is off (it would bypass it)."""
    patched = [m for m in model.modules() if isinstance(m, nn.MultiheadAttention)]
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    for m in patched:
        m.forward = types.MethodType(_traceable_self_attention, m)
    try:
        yield
    finally:
        for m in patched:
            del m.forward
        torch.backends.mha.set_fastpath_enabled(fastpath)


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    check: bool = True,
    tol: float = 1e-5,
    metadata: dict[str, Any] | None = None,
    tau_p: int = 10,
) -> dict:
    """Export ``model`` to ONNX at ``path`` (atomic) and, with ``check``, compare onnxruntime with
    PyTorch on random inputs of several sizes. ``metadata`` (JSON-safe) is stored in the file's
    ``metadata_props["cfmimo"]``. For clustering models the check also compares the binary clusters
    (``output_clusters`` at ``tau_p``, threshold 0.3) of both backends and checks the tau_p cap on
    the ONNX ones. Returns {"path", "dynamic", "outputs", "parity": {size: max|diff|}} (+
    "clusters_equal": {size: bool} for clustering models).
    """
    path = Path(path)
    model = model.eval()
    cluster = is_cluster_model(model)
    outputs = CLUSTER_OUTPUTS if cluster else POWER_OUTPUTS
    fixed_l = _fixed_aps(model)
    gains = bool(getattr(model, "uses_gains", False))
    graph = _GraphModel(model, gains=gains, cluster=cluster).eval()
    g = torch.Generator().manual_seed(0)

    def sample(B: int, K: int, L: int) -> tuple[torch.Tensor, ...]:
        ue, ap = torch.rand(B, K, 2, generator=g), torch.rand(B, L, 2, generator=g)
        return (ue, ap, 40.0 - 60.0 * torch.rand(B, L, K, generator=g)) if gains else (ue, ap)

    names = ["ue", "ap", "gain_db"] if gains else ["ue", "ap"]
    axes: dict[str, dict[int, str]] = {
        "ue": {0: "B", 1: "K"},
        "ap": {0: "B"} if fixed_l else {0: "B", 1: "L"},
    }
    if gains:
        axes["gain_db"] = {0: "B", 2: "K"} if fixed_l else {0: "B", 1: "L", 2: "K"}
    axes["p"] = {0: "B", 1: "K"}
    if cluster:
        axes.update({name: {0: "B", 2: "K"} for name in ("mask", "mask_logits")})
    tmp = path.with_name(f".{path.name}.tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        try:
            with warnings.catch_warnings(), _traceable_attention(model):
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    graph,
                    sample(2, 5, fixed_l or 7),
                    str(tmp),
                    dynamo=False,
                    input_names=names,
                    output_names=list(outputs),
                    dynamic_axes=axes,
                )
        except (RuntimeError, torch.onnx.errors.OnnxExporterError) as err:  # an op without a dynamic-K export
            name = getattr(getattr(model, "config", None), "name", type(model).__name__)
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
            raise ValueError(f"model {name!r} cannot be exported to ONNX with a dynamic K: {first}") from None
        if metadata is not None:
            import onnx

            proto = onnx.load(str(tmp))
            onnx.helper.set_model_props(proto, {METADATA_KEY: json.dumps(metadata)})
            onnx.save(proto, str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    result: dict[str, Any] = {
        "path": str(path),
        "dynamic": {k: list(v.values()) for k, v in axes.items()},
        "outputs": list(outputs),
        "parity": {},
    }
    if check:
        ort_model = OnnxRuntimeModel(path)
        if cluster:
            result["clusters_equal"] = {}
        for K, L in ((1, fixed_l or 1), (3, fixed_l or 16), (17, fixed_l or 16), (40, fixed_l or 25)):
            x = sample(3, K, L)
            with torch.inference_mode():
                want = model(*x[:2], **({"gain_db": x[2]} if gains else {}))
                got = ort_model(*x[:2], **({"gain_db": x[2]} if gains else {}))
            size = f"K={K},L={L}"
            if cluster:
                diff = max(float((a - b).abs().max()) for a, b in zip(_flat(got), _flat(want), strict=True))
                theirs, ours = output_clusters(got, tau_p), output_clusters(want, tau_p)
                if int(theirs.sum(-1).max()) > tau_p:
                    raise RuntimeError(f"ONNX clusters break the tau_p = {tau_p} cap at {size}")
                result["clusters_equal"][size] = bool(torch.equal(theirs, ours))
            else:
                diff = float((got - want).abs().max())
            result["parity"][size] = diff
            if diff > tol:
                raise RuntimeError(f"ONNX parity failed at {size}: max |diff| = {diff:.3g} > {tol}")
    return result


def _flat(out: ClusterPowerOutput) -> tuple[torch.Tensor, ...]:
    return out.mask, out.power, out.mask_logits


def export_trained(trained, path: str | os.PathLike, *, check: bool = True, tau_p: int = 10) -> dict:
    """Export a ``learn.trainer.TrainedModel`` with its scaler, frame and model config in the
    file's metadata (``read_metadata``), so ``OnnxRuntimeModel``/``OnnxPowerPolicy`` need nothing else."""
    metadata = {
        "format": 1,
        "kind": "cluster" if is_cluster_model(trained.model) else "power",
        "model": trained.config.model.model_dump(mode="json"),
        "scaler": trained.scaler.to_dict(),
        "frame": None if trained.frame is None else trained.frame.to_dict(),
        "site": getattr(trained, "site", None),  # the training site (predict scores and checks it)
    }
    return export_onnx(trained.model, path, check=check, metadata=metadata, tau_p=tau_p)


def _session(path: Path, threads: int):
    try:
        import onnxruntime as ort
    except ImportError:  # the "export" extra
        raise ValueError(
            "the onnxruntime backend needs the onnxruntime package (pip install cfmimo[export])"
        ) from None
    if not path.is_file():
        raise ValueError(f"ONNX file {path} does not exist")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own exception types for unreadable files
        raise ValueError(f"ONNX file {path}: cannot be loaded by onnxruntime: {err}") from None


class OnnxRuntimeModel(nn.Module):
    """An exported position model run by ONNX Runtime (CPU), with the PyTorch model's call:
    ``forward(ue, ap)`` -> normalized powers [B, K, 2] (power models) or a ``ClusterPowerOutput``
    (clustering models), float32 on the inputs' device. No parameters; ``threads`` = onnxruntime's
    intra-op threads. Padding masks are not part of the graph: a mask with a padded entry raises.

    ``metadata``: the file's cfmimo metadata (``export_trained``), or None for a bare export.
    Shapes: ue [B, K, 2], ap [B, L, 2] -> [B, K, 2] | ClusterPowerOutput(mask [B, L, K], ...).
    """

    def __init__(self, path: str | os.PathLike, *, threads: int = 1) -> None:
        super().__init__()
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be an int >= 1, got {threads!r}")
        self.path = Path(path)
        self.session = _session(self.path, threads)
        self.outputs = tuple(o.name for o in self.session.get_outputs())
        if self.outputs not in (POWER_OUTPUTS, CLUSTER_OUTPUTS):
            raise ValueError(
                f"ONNX file {self.path}: outputs {list(self.outputs)} are neither {list(POWER_OUTPUTS)} "
                f"nor {list(CLUSTER_OUTPUTS)} (export it with cfmimo export)"
            )
        self.metadata = read_metadata(self.path, self.session)
        # a gain-aware export takes gain_db as its third input; callers (predict_powers) look here
        self.uses_gains = "gain_db" in {i.name for i in self.session.get_inputs()}
        self.eval()

    @property
    def is_cluster(self) -> bool:
        return self.outputs == CLUSTER_OUTPUTS

    def forward(
        self,
        ue: torch.Tensor,
        ap: torch.Tensor,
        ue_mask: torch.Tensor | None = None,
        ap_mask: torch.Tensor | None = None,
        gain_db: torch.Tensor | None = None,
    ) -> torch.Tensor | ClusterPowerOutput:
        for name, mask in (("ue_mask", ue_mask), ("ap_mask", ap_mask)):
            if mask is not None and not bool(mask.all()):
                raise ValueError(f"{name}: the ONNX graph takes unpadded inputs (no padded entries)")
        arrays = {"ue": ue, "ap": ap}
        if self.uses_gains:
            if gain_db is None:
                raise ValueError(f"gain_db: ONNX file {self.path} takes the large-scale gains [B, L, K] (dB)")
            arrays["gain_db"] = gain_db
        feeds = {k: v.detach().to("cpu", torch.float32).contiguous().numpy() for k, v in arrays.items()}
        got = [torch.from_numpy(np.asarray(a)).to(ue.device) for a in self.session.run(None, feeds)]
        if self.is_cluster:
            return ClusterPowerOutput(mask=got[0], power=got[1], mask_logits=got[2])
        return got[0]


def read_metadata(path: str | os.PathLike, session=None) -> dict[str, Any] | None:
    """The cfmimo metadata of an exported file (``export_trained``), or None if it has none."""
    session = session or _session(Path(path), 1)
    text = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    if text is None:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"ONNX file {path}: metadata_props['{METADATA_KEY}'] is not JSON: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"ONNX file {path}: metadata_props['{METADATA_KEY}'] must be a JSON object")
    return data
