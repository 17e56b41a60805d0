"""Neural allocators (nn.Modules) and their registry.

Contract of a power model (every model here follows it, so training, evaluation, export and the
policy wrapper are model-agnostic):

    model(ue, ap, ue_mask=None, ap_mask=None) -> [B, K, 2]

with ``ue`` [B, K, 2] and ``ap`` [B, L, 2] the normalized (min-max) positions, boolean masks
(True = real UE/AP; None = no padding) and the output the normalized UL and DL powers
(p~_UL, p~_DL) in (0, 1) per UE (a sigmoid). Outputs at padded UEs are ignored by callers, and
padding never changes the outputs of real UEs. The rescaler (tree-transformer eqs. (12)-(13)) is
applied outside the model (``cfmimo.data.transforms.rescale_predictions``).

Joint clustering + power models (``cfmimo.models.cluster_models``, the elu-cosformer paper) take
the same inputs and return a ``ClusterPowerOutput`` instead: mask scores [B, L, K] (eq. (15)) and
the same normalized powers [B, K, 2] in ``.power``.

Gain-aware variants (``cfmimo.models.gain_aware``: "tree_transformer_gain", "elu_cosformer_gain")
take one more input, ``gain_db`` [B, L, K] (large-scale gains over noise in dB, keyword), and carry
their gain normalization as buffers; ``model_uses_gains(name)`` tells them apart.

``build_model(ModelConfig(name=..., ...))`` builds a registered model; constructor vocabulary is
shared: ``d_enc``, ``d_mod``, ``heads``, ``layers``, ``ff``, ``dropout``, ``features``, ``num_aps``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


class ModelConfig(BaseModel):
    """Name and hyperparameters of a registered model (unused ones are ignored by a model)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "tree_transformer"
    d_enc: Annotated[int, Field(gt=0)] = 32
    d_mod: Annotated[int, Field(gt=0)] = 64
    heads: Annotated[int, Field(gt=0)] = 4
    layers: Annotated[int, Field(gt=0)] = 2
    ff: Annotated[int, Field(gt=0)] = 2048
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.0
    features: Annotated[int, Field(gt=0)] = 256
    num_aps: Annotated[int, Field(gt=0)] = 16
    activation: str = "relu"
    window: Annotated[int, Field(gt=0)] = 4
    """Longformer one-sided window w: each token attends to the real tokens within w ranks (2w + 1)."""
    # Graph precoders (cfmimo.models.gnn): hidden width = d_mod, hidden layers = layers, unless
    # ``widths`` gives every layer's channels (input and output included, e.g. [2,128,128,128,128,2]).
    widths: tuple[Annotated[int, Field(gt=0)], ...] | None = None
    aggregation: Literal["sum", "mean"] = "sum"
    """GNN aggregation over UEs, APs and antennas (the AAGNN paper sums)."""
    power_scaling: Literal["exact", "clip"] = "exact"
    """Precoder head: sqrt(P_l)/||V_l|| ("exact") or min(1, sqrt(P_l)/||V_l||) ("clip")."""
    init: Literal["default", "mrt"] = "default"
    """Antenna-level GNN precoders (AAGNN, woA, EGAT; they use "mrt" when this is left unset):
    "default" = nn.Linear-style uniform init; "mrt" = the self matrices (O1~, O1^) start as identity
    pairs and every other weight at ``init_scale`` x the default, so the untrained model outputs
    per-AP-scaled MRT on its input."""
    init_scale: Annotated[float, Field(ge=0)] = 0.1
    """With ``init="mrt"``: the factor on the default init of the non-identity weights (0 = exact MRT)."""
    attention_norm: Literal["none", "cosine"] = "none"
    """AAGNN eq. (20): "none" = the paper's raw correlation alpha h^H t; "cosine" = alpha h^H t /
    (||h|| ||t||) (a stated deviation: keeps each layer 1-homogeneous in x instead of quadratic)."""
    antennas: Annotated[int, Field(gt=0)] = 16
    """N of the fixed-N precoders (SUNet-like CNN, GNN of ref. [16]); the equivariant ones take any N."""
    num_ues: Annotated[int, Field(gt=0)] = 4
    """K of the fixed-size fronthaul DNN (egat-fronthaul ref. [40]); with ``num_aps`` and ``antennas``."""
    # EE GNN with nested SINRnets (cfmimo.models.gnn.ee, ee-gnn eqs. (10)-(11), (13)): width = d_mod
    # per SINRnet category, ``sinr_depth`` layers per SINRnet (phi and gamma), ``rounds`` of (10).
    sinr_depth: Annotated[int, Field(gt=0)] = 2
    rounds: Annotated[int, Field(gt=0)] = 2
    norm_eps_mean: float = 0.0
    """eps of eq. (13): the log-gain mean used is mu - eps (0 = standardization)."""
    norm_eps_std: Annotated[float, Field(ge=0)] = 0.0
    """eps' of eq. (13): the log-gain std used is sigma - eps' (must stay > 0)."""
    support_scale: Literal["linear", "log"] = "linear"
    """EE GNN support domain: "linear" (the paper: p ~ U(a cap, (a + ell) cap)) or "log" (ablation:
    t ~ U(a, a + ell) in [0, 1] and p = cap * floor**(1 - t), a log-uniform prior over
    [floor cap, cap]; ``cfmimo.policies.neural.LOG_POWER_FLOOR``)."""


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Class decorator: make a model buildable by name from a ModelConfig."""

    def wrap(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model name {name!r} is already registered")
        _REGISTRY[name] = factory
        return factory

    return wrap


def model_names() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def build_model(config: ModelConfig | dict[str, Any]) -> nn.Module:
    """Build the registered model a config names; ValueError lists the choices otherwise."""
    _load_builtin()
    cfg = config if isinstance(config, ModelConfig) else ModelConfig.model_validate(config)
    if cfg.name not in _REGISTRY:
        raise ValueError(f"unknown model {cfg.name!r}; choose one of: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[cfg.name](cfg)


def with_defaults(config: ModelConfig, **defaults: object) -> ModelConfig:
    """The config with a model's own defaults for the fields the user did not set explicitly
    (e.g. the token baselines' 3 layers / ff 4*d_mod). Models keep the resolved config as
    ``self.config``; that is what checkpoints must record."""
    return config.model_copy(update={k: v for k, v in defaults.items() if k not in config.model_fields_set})


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def model_uses_gains(name: str) -> bool:
    """Whether the registered model ``name`` takes the large-scale gains ``gain_db`` as input
    (``cfmimo.models.gain_aware``)."""
    _load_builtin()
    return bool(getattr(_REGISTRY.get(name), "uses_gains", False))


def _load_builtin() -> None:
    # Importing the modules registers their models (kept lazy so `cfmimo.models` imports fast).
    import importlib

    for module in (
        "cfmimo.models.deepsets",
        "cfmimo.models.tree_transformer",
        "cfmimo.models.token_models",
        "cfmimo.models.cluster_models",
        "cfmimo.models.gnn",
        "cfmimo.models.gain_aware",
    ):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None, dim: int) -> torch.Tensor:
    """Mean over ``dim`` of the real entries. Shapes: x [B, P, D], mask [B, P] -> [B, D]."""
    if mask is None:
        return x.mean(dim)
    w = mask.to(x.dtype).unsqueeze(-1)
    return (x * w).sum(dim) / w.sum(dim).clamp_min(1.0)
