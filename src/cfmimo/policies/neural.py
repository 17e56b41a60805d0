"""Neural policies: a trained power model plus its feature map and output head, as a Policy.

``PositionPowerPolicy`` turns a position-based power model (``cfmimo.models`` contract) into a
policy for ``MaxMinPower`` instances, so a trained model is scored by the same code as the
classical baselines:

  positions (+ optional Gaussian noise, tree-transformer eq. (10)) -> the model's fitted frame
  (eq. (11); per-sample min-max without one) -> model -> normalized (p~_UL, p~_DL) -> rescaler (eqs. (12)-(13):
  UL de-normalized and clamped to the training range, DL de-normalized and renormalized to the
  total budget) -> for a per-AP DL constraint, a common scaling so the most loaded AP is at its
  limit (the rescaler alone guarantees only the papers' sum constraint).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import torch
from torch import nn

from cfmimo.data.transforms import (
    PositionFrame,
    PowerScaler,
    add_position_noise,
    minmax_positions,
    rescale_predictions,
)
from cfmimo.models.cluster_models import output_clusters
from cfmimo.policies.classical.clustering import GivenClustersMaxMin, checked_clustering_instance
from cfmimo.policies.classical.power import check_number, checked_power_instance, scale_to_budget
from cfmimo.problems.base import Allocation
from cfmimo.problems.clustering_power import ClusteringInstance
from cfmimo.problems.maxmin_power import PowerInstance
from cfmimo.rng import stream


def noisy_positions(
    positions: torch.Tensor, sigma_m: float, *, seed: int, name: str, indices: tuple[int, ...]
) -> torch.Tensor:
    """Positions plus N(0, sigma^2) per coordinate, one stream per sample (batch-independent).

    Shapes: positions [B, P, 2] -> [B, P, 2].
    """
    if sigma_m == 0:
        return positions
    return torch.cat(
        [
            add_position_noise(positions[b : b + 1], sigma_m, generator=stream(seed, name, i))
            for b, i in enumerate(indices)
        ]
    )


#: positions further outside a model's training frame than this fraction of its span are warned about
FRAME_MARGIN = 0.1


def check_positions(name: str, positions: object) -> torch.Tensor:
    """``positions`` if it is a finite floating tensor [B, P, 2] (metres); else ValueError/TypeError naming it."""
    if not isinstance(positions, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor [B, P, 2] (metres), got {type(positions).__name__}")
    if positions.dim() != 3 or positions.shape[-1] != 2 or not positions.is_floating_point():
        raise ValueError(
            f"{name} must be a floating tensor [B, P, 2], got {positions.dtype} {list(positions.shape)}"
        )
    finite = torch.isfinite(positions)
    if not bool(finite.all()):
        raise ValueError(f"{name} has {int((~finite).sum())} non-finite coordinates (NaN or inf)")
    return positions


def warn_outside_frame(frame: PositionFrame, **positions: torch.Tensor) -> None:
    """Warn (with the numbers) when positions lie outside the model's training frame by more than
    ``FRAME_MARGIN`` of its span: the model was never trained there and extrapolates."""
    span_x, span_y = frame.x_max - frame.x_min, frame.y_max - frame.y_min
    for name, pos in positions.items():
        lo, hi = pos.reshape(-1, 2).amin(0).tolist(), pos.reshape(-1, 2).amax(0).tolist()
        outside = (
            lo[0] < frame.x_min - FRAME_MARGIN * span_x
            or hi[0] > frame.x_max + FRAME_MARGIN * span_x
            or lo[1] < frame.y_min - FRAME_MARGIN * span_y
            or hi[1] > frame.y_max + FRAME_MARGIN * span_y
        )
        if outside:
            warnings.warn(
                f"{name} positions span x [{lo[0]:.1f}, {hi[0]:.1f}] m, y [{lo[1]:.1f}, {hi[1]:.1f}] m, "
                f"outside the model's training frame x [{frame.x_min:.1f}, {frame.x_max:.1f}] m, "
                f"y [{frame.y_min:.1f}, {frame.y_max:.1f}] m by more than {FRAME_MARGIN:.0%} of its "
                "span: the model extrapolates there",
                UserWarning,
                stacklevel=3,
            )


def model_features(
    ue: torch.Tensor, ap: torch.Tensor, frame: PositionFrame | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The models' inputs (eq. (11)): positions in the trained model's fitted frame (a warning
    when they lie far outside it), or, without one, per-sample min-max scaled per set, x and y
    separately.

    Shapes: ue [B, K, 2], ap [B, L, 2] -> same shapes.
    """
    if frame is not None:
        warn_outside_frame(frame, ue=ue, ap=ap)
        return frame.apply(ue), frame.apply(ap)
    return minmax_positions(ue), minmax_positions(ap)


def check_model_output(out: object) -> torch.Tensor:
    """The normalized powers [B, K, 2] of a model output (a tensor, or an object with ``power``);
    ValueError if any entry is NaN or inf: a broken model must not turn into NaN powers."""
    power = getattr(out, "power", out)
    if not isinstance(power, torch.Tensor) or power.dim() != 3 or power.shape[-1] != 2:
        got = list(power.shape) if isinstance(power, torch.Tensor) else type(power).__name__
        raise ValueError(f"model output must be normalized powers [B, K, 2], got {got}")
    finite = torch.isfinite(power)
    if not bool(finite.all()):
        raise ValueError(
            f"model output has {int((~finite).sum())} non-finite values (NaN or inf) of {power.numel()}: "
            "the model or its checkpoint is broken"
        )
    return power


@torch.inference_mode()
def predict_powers(
    model: nn.Module,
    scaler: PowerScaler,
    ue: torch.Tensor,
    ap: torch.Tensor,
    dl_total_mw: torch.Tensor | float,
    indices: tuple[int, ...],
    *,
    frame: PositionFrame | None = None,
    sigma_ue_m: float = 0.0,
    sigma_ap_m: float = 0.0,
    seed: int = 0,
    gain_db: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Positions -> (noise) -> features -> model -> rescaler (eqs. (10)-(13)); the one inference path
    of position-based models. Noise streams are keyed by the sample ``indices``. ``gain_db``
    [B, L, K] (dB over noise, no noise added): the large-scale gains, required by the gain-aware
    models (``cfmimo.models.gain_aware``, which normalize them with their stored statistics) and
    ignored by the others.

    Shapes: ue [B, K, 2], ap [B, L, 2], dl_total_mw [B] or float -> (p_ul [B, K], p_dl [B, K] with
    sum = dl_total_mw, the raw model output: normalized powers [B, K, 2], or for clustering models
    a ``ClusterPowerOutput`` whose ``power`` is that).
    """
    ue, ap = check_positions("ue", ue), check_positions("ap", ap)
    if ue.shape[0] != ap.shape[0]:
        raise ValueError(
            f"ue and ap must hold the same number of setups, got {ue.shape[0]} and {ap.shape[0]}"
        )
    ue = noisy_positions(ue.float(), sigma_ue_m, seed=seed, name="eval_noise/ue", indices=indices)
    ap = noisy_positions(ap.float(), sigma_ap_m, seed=seed, name="eval_noise/ap", indices=indices)
    was_training = model.training
    model.eval()
    extra = {}
    if getattr(model, "uses_gains", False):
        if gain_db is None:
            raise ValueError(f"gain_db: {type(model).__name__} takes the large-scale gains [B, L, K] (dB)")
        extra["gain_db"] = gain_db.to(device=ue.device, dtype=ue.dtype)
    try:
        out = model(*model_features(ue, ap, frame), **extra)
    finally:
        model.train(was_training)
    power = check_model_output(out)  # [B, K, 2]
    total = dl_total_mw.float() if isinstance(dl_total_mw, torch.Tensor) else dl_total_mw
    p_ul, p_dl = rescale_predictions(power[..., 0], power[..., 1], scaler, total)
    return p_ul, p_dl, out


def _check_policy_fields(policy: PositionPowerPolicy | ClusterPowerPolicy) -> None:
    owner = type(policy).__name__
    if not isinstance(policy.model, nn.Module):
        raise TypeError(f"{owner}.model must be an nn.Module, got {type(policy.model).__name__}")
    if not isinstance(policy.scaler, PowerScaler):
        raise TypeError(f"{owner}.scaler must be a PowerScaler, got {type(policy.scaler).__name__}")
    if policy.frame is not None and not isinstance(policy.frame, PositionFrame):
        raise TypeError(f"{owner}.frame must be a PositionFrame or None, got {type(policy.frame).__name__}")
    check_number(owner, "sigma_ue_m", policy.sigma_ue_m, low=0.0)
    check_number(owner, "sigma_ap_m", policy.sigma_ap_m, low=0.0)


@dataclass
class PositionPowerPolicy:
    """A trained position -> power model as a policy (module docstring)."""

    model: nn.Module
    scaler: PowerScaler
    frame: PositionFrame | None = None
    sigma_ue_m: float = 0.0
    sigma_ap_m: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        _check_policy_fields(self)

    @torch.inference_mode()
    def __call__(self, instance: PowerInstance) -> Allocation:
        instance = checked_power_instance(instance, "PositionPowerPolicy")
        net = instance.network
        dtype = instance.ul_budget.dtype
        # eq. (13) renormalizes to the total budget sum_l P_l (per setup) ...
        p_ul, p_dl, out = predict_powers(
            self.model,
            self.scaler,
            net.ue_positions,
            net.ap_positions,
            instance.dl_budget.sum(-1),
            net.indices,
            frame=self.frame,
            sigma_ue_m=self.sigma_ue_m,
            sigma_ap_m=self.sigma_ap_m,
            seed=self.seed,
            gain_db=net.gain_db,
        )
        if instance.dl_constraint == "per_ap":  # ... and, for per-AP limits, scale to the most loaded AP
            p_dl = scale_to_budget(p_dl.to(dtype), instance.dl_weights, instance.dl_budget)
        p_ul = torch.minimum(p_ul.to(dtype), instance.ul_budget)
        return Allocation(p_ul=p_ul, p_dl=p_dl.to(dtype), info={"normalized": out})


@dataclass
class OnnxPowerPolicy:
    """``PositionPowerPolicy`` with the model run by ONNX Runtime from an exported file
    (``cfmimo export`` / ``export.export_trained``): the same noise, frame, rescaler and budget
    steps, only the forward pass changes backend. ``scaler`` and ``frame`` default to those stored
    in the file's metadata (``frame`` None and none stored: per-sample min-max, as in PyTorch);
    ``threads``: onnxruntime intra-op threads. Clustering models: use
    ``ClusterPowerPolicy(OnnxRuntimeModel(path), scaler, frame)`` (the tau_p cap is applied to the
    ONNX outputs by the same code)."""

    path: str | os.PathLike
    scaler: PowerScaler | None = None
    frame: PositionFrame | None = None
    threads: int = 1
    sigma_ue_m: float = 0.0
    sigma_ap_m: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        from cfmimo.export import OnnxRuntimeModel

        model = OnnxRuntimeModel(self.path, threads=self.threads)
        if model.is_cluster:
            raise ValueError(
                f"OnnxPowerPolicy.path: {self.path} holds a clustering model; use "
                "ClusterPowerPolicy(OnnxRuntimeModel(path), scaler, frame)"
            )
        meta = model.metadata or {}
        scaler, frame = self.scaler, self.frame
        if scaler is None:
            if not meta.get("scaler"):
                raise ValueError(
                    f"OnnxPowerPolicy.scaler: {self.path} stores no scaler (exported without metadata); pass one"
                )
            scaler = PowerScaler.from_dict(meta["scaler"])
        if frame is None and meta.get("frame"):
            frame = PositionFrame.from_dict(meta["frame"])
        self.scaler, self.frame, self.model = scaler, frame, model
        self._policy = PositionPowerPolicy(
            model, scaler, frame, sigma_ue_m=self.sigma_ue_m, sigma_ap_m=self.sigma_ap_m, seed=self.seed
        )

    def __call__(self, instance: PowerInstance) -> Allocation:
        return self._policy(instance)


@dataclass
class ClusterPowerPolicy:
    """A trained clustering + power model (``cfmimo.models.cluster_models``) as a policy for
    ``ClusteringInstance``s: the model's clusters (eq. (16): top-tau_p UEs per AP, threshold ξ,
    every UE kept served) with either its own powers (the paper's "Predicted UC-CF", rescaled by
    eqs. (19)-(21)) or, with ``optimal_powers=True``, the exact max-min powers for its clusters
    ("Optimal UC-CF"). ``tau_p=None`` takes the instance's per-AP limit."""

    model: nn.Module
    scaler: PowerScaler
    frame: PositionFrame | None = None
    tau_p: int | None = None
    threshold: float = 0.3
    optimal_powers: bool = False
    sigma_ue_m: float = 0.0
    sigma_ap_m: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        _check_policy_fields(self)
        if not (isinstance(self.threshold, (int, float)) and 0.0 <= self.threshold < 1.0):
            raise ValueError(f"ClusterPowerPolicy.threshold must be in [0, 1), got {self.threshold!r}")
        if self.tau_p is not None and (
            isinstance(self.tau_p, bool) or not isinstance(self.tau_p, int) or self.tau_p < 1
        ):
            raise ValueError(f"ClusterPowerPolicy.tau_p must be an int >= 1 or None, got {self.tau_p!r}")

    @torch.inference_mode()
    def clusters(self, instance: ClusteringInstance) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(serving [B, L, K] bool, p_ul, p_dl [B, K] mW) predicted for the instance."""
        instance = checked_clustering_instance(instance, "ClusterPowerPolicy")
        net = instance.network
        total = net.scenario.dl_power_per_ap_mw * net.gain_db.shape[1]
        p_ul, p_dl, out = predict_powers(
            self.model,
            self.scaler,
            net.ue_positions,
            net.ap_positions,
            float(total),
            net.indices,
            frame=self.frame,
            sigma_ue_m=self.sigma_ue_m,
            sigma_ap_m=self.sigma_ap_m,
            seed=self.seed,
            gain_db=net.gain_db,
        )
        serving = output_clusters(out, self.tau_p or instance.max_ues_per_ap, self.threshold)
        return serving, p_ul, p_dl

    def __call__(self, instance: ClusteringInstance) -> Allocation:
        serving, p_ul, p_dl = self.clusters(instance)
        if self.optimal_powers:
            return GivenClustersMaxMin(serving)(instance)
        pinst = instance.for_clusters(serving)
        dtype = pinst.ul_budget.dtype
        return Allocation(
            serving=pinst.network.serving,
            p_ul=torch.minimum(p_ul.to(dtype), pinst.ul_budget),
            p_dl=p_dl.to(dtype),
            info={"power_instance": pinst},
        )


@dataclass
class PrecoderPolicy:
    """A precoder model (``cfmimo.models.gnn`` contract: ``model(h, association, p_max, noise)``) as a
    policy for ``PrecodingInstance``s: instance -> Allocation(precoders=...) in the instance's complex
    dtype and device. Feasibility comes from the model's own head (zero on unserved links, each AP
    scaled to its budget); nothing is rescaled here.

    The call follows the caller's grad mode, so the unsupervised trainer differentiates through the
    same policy that evaluation scores (wrap calls in ``torch.no_grad()`` for inference). The model's
    train/eval mode is left as it is.
    """

    model: nn.Module

    def __call__(self, instance) -> Allocation:
        h = instance.h
        device = next(iter(self.model.buffers()), next(self.model.parameters())).device
        v = self.model(
            h.to(device),
            instance.association.to(device),
            instance.p_max.to(device),
            instance.noise.to(device),
        )
        return Allocation(precoders=v.to(device=h.device, dtype=h.dtype))


@dataclass
class FronthaulPolicy:
    """A fronthaul model (``cfmimo.models.gnn.fronthaul`` channel-graph contract) as a policy for
    ``FronthaulInstance``s: instance -> features -> model -> Allocation(precoders, serving) by (36)-(37)
    (``fronthaul_decision``): association ``pi > 0.5`` (test time) or, with ``sample=True``, one
    Bernoulli(pi) draw from a generator seeded with ``seed`` per call (the paper's sampled variant;
    its draws depend on the batch composition, so it is not batch = per-sample), then beams zeroed off
    the association and each AP at full power P_l.

    Without ``repair`` the fronthaul limits (3b) may be violated (the model only learned to meet
    them through the multipliers): score feasibility with ``problem.violation``. With ``repair=True``
    the decision goes through ``FronthaulWSR.repair`` (the Sect. V-A heuristic scaling) and is
    feasible. ``info["pi"]`` holds the probabilities [B, L, K]. Follows the caller's grad mode.
    """

    model: nn.Module
    repair: bool = False
    sample: bool = False
    seed: int = 0

    def __call__(self, instance) -> Allocation:
        from cfmimo.models.gnn.fronthaul import fronthaul_decision
        from cfmimo.problems.fronthaul_wsr import FronthaulWSR

        h = instance.h
        device = next(iter(self.model.buffers()), next(self.model.parameters())).device
        moved = instance
        if h.device != device:
            from cfmimo.learn.unsupervised import move_instance

            moved = move_instance(instance, device)
        out = self.model.forward_instance(moved)
        generator = torch.Generator(device).manual_seed(self.seed) if self.sample else None
        v, x = fronthaul_decision(
            out, moved.power.to(out.logits.dtype), sample=self.sample, generator=generator
        )
        alloc = Allocation(
            precoders=v.to(device=h.device, dtype=h.dtype),
            serving=x.to(h.device),
            info={"pi": out.pi.to(h.device)},
        )
        if self.repair:
            with torch.no_grad():
                alloc = FronthaulWSR().repair(instance, alloc)
        return alloc


#: smallest power of the log-power support (fraction of the cap; ``ModelConfig.support_scale="log"``):
#: 1e-7 of the preset's 1 W cap is 0.1 uW, below the EE optima's smallest useful powers
LOG_POWER_FLOOR = 1e-7


@dataclass
class EEPowerPolicy:
    """A gain-graph model (``cfmimo.models.gnn.ee`` contract: ``model(gains, serving) -> (a, ell)`` as
    fractions of the cap) as a policy for ``EEInstance``s: instance -> Allocation(link_power) in mW,
    in the instance's dtype and device.

    ``power="low"`` (the paper's test-time power, Sect. IV): p = a cap (= alpha_delta(H)); ``"midpoint"``
    (ablation): p = (a + ell / 2) cap. Both are clipped to [0, cap] and zero on unserved links, so the
    allocation is feasible. With the model config's ``support_scale="log"`` (ablation) a and ell live
    in a log-power domain and ``to_power`` maps them to mW (cap * floor**(1 - t)). ``info`` carries the support (``a_mw``, ``ell_mw``) and its mean
    cap-normalized width over served links (``support_width``).
    """

    model: nn.Module
    power: str = "low"

    def __post_init__(self) -> None:
        if self.power not in ("low", "midpoint"):
            raise ValueError(f"power must be 'low' or 'midpoint', got {self.power!r}")

    @property
    def support_scale(self) -> str:
        """ "linear" (the paper) or "log" (the model config's ``support_scale``, an ablation)."""
        return getattr(getattr(self.model, "config", None), "support_scale", "linear")

    def to_power(self, x: torch.Tensor, cap: torch.Tensor, serving: torch.Tensor) -> torch.Tensor:
        """Map support-domain values x in [0, cap] (what eq. (5) samples) to link powers in mW:
        identity for the linear support; cap * LOG_POWER_FLOOR**(1 - x / cap) for the log support
        (x = 0 -> floor * cap, x = cap -> cap). Zero on unserved links either way.

        Shapes: x, cap, serving broadcastable [..., L, K] -> [..., L, K]."""
        if self.support_scale == "log":
            x = cap * torch.pow(torch.as_tensor(LOG_POWER_FLOOR, dtype=x.dtype), 1.0 - x / cap)
        return x * serving.to(x.dtype)

    def support(self, instance) -> tuple[torch.Tensor, torch.Tensor]:
        """(a, ell) in mW on the model's device and dtype (for the log support: in the support
        domain [0, cap], see ``to_power``). Shapes: [B, L, K] each."""
        device = next(iter(self.model.buffers()), next(self.model.parameters())).device
        dtype = next(self.model.parameters()).dtype
        a, ell = self.model(instance.gains.to(device=device, dtype=dtype), instance.serving.to(device))
        cap = instance.cap.to(device=device, dtype=dtype)[..., None]
        return a * cap, ell * cap

    def __call__(self, instance) -> Allocation:
        a, ell = self.support(instance)
        cap = instance.cap.to(device=a.device, dtype=a.dtype)[..., None]
        p = a if self.power == "low" else a + ell / 2
        served = instance.serving.to(a.device)
        p = self.to_power(torch.minimum(p.clamp_min(0.0), cap), cap, served)
        width = ((ell / cap) * served).sum((1, 2)) / served.sum((1, 2)).clamp_min(1)
        g = instance.gains
        return Allocation(
            link_power=p.to(device=g.device, dtype=g.dtype),
            info={"a_mw": a.detach(), "ell_mw": ell.detach(), "support_width": width.detach()},
        )
