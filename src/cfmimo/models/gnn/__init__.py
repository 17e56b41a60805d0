"""Graph precoders over APs, UEs and antennas (DESIGN.md section 11): shared masked layers
(``layers``), the precoder contract (``base``), AAGNN and its ablations (``aagnn``) and the AAGNN
paper's other learned baselines (``baselines``), the fronthaul models EGAT/ENGNN/BGNN/DNN (``fronthaul``). Importing this package registers the models."""

from cfmimo.models.gnn import aagnn, baselines, ee, fronthaul  # noqa: F401  (registers the models)
from cfmimo.models.gnn.base import PrecoderModel, resolve_widths

#: registry names of the precoder models ("model(h, association, p_max, noise) -> precoders")
PRECODER_MODEL_NAMES = ("aagnn", "aagnn_woa", "aagnn_egat", "mrt_gnn", "sunet", "gnn16")
#: the ones equivariant to UE, AP and per-AP antenna permutations (any K, L, N)
EQUIVARIANT_PRECODERS = ("aagnn", "aagnn_woa", "aagnn_egat", "mrt_gnn")

#: gain-graph models ("model(gains [B, L, K, K], serving) -> (a, ell)", cfmimo.models.gnn.ee)
GAIN_MODEL_NAMES = ("ee_gnn",)

__all__ = [
    "EQUIVARIANT_PRECODERS",
    "GAIN_MODEL_NAMES",
    "PRECODER_MODEL_NAMES",
    "PrecoderModel",
    "resolve_widths",
]
