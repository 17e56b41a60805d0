"""Reproduction of Chafaa, Bacci, Sanguinetti, "Linear Attention for Joint Power Optimization and
User-Centric Clustering in Cell-Free Networks" (ELU-CosFormer;
../shared/papers/elu-cosformer-clustering-power.md), Sects. V-VII.

Pipeline (``run``):

1. data: the unlabelled training set (Sect. V-A: K in {5, 10}, L = 16, 8000 positions each; the
   dataset preset "elu-cosformer-train"); the labels are computed during training;
2. training with dynamic supervision (Algorithm 1, loss (32), Table II: AdamW 1e-3, batch 64,
   20 epochs, λ = 1e-2, ξ = 0.3, σ = 1 m Gaussian noise on UE and AP positions) of the five
   variants of Sect. VI-E (ELU-CosFormer, CosFormer, Transformer, Longformer, Performer) and of
   the CosFormer with the other kernel activations of Fig. 5, all with the same recipe;
3. evaluation on test setups drawn directly from the "elu-cosformer" scenario (channel
   realizations included; a test seed distinct from training; inputs with σ = 1 m noise unless
   stated), every scheme scored by ``ClusteringPower`` (UatF SEs of the MMSE combiners/precoders
   of its clusters): Optimal CF (all APs, closed-form max-min powers), DCC (Q = 8 strongest APs,
   closed form), Optimal UC-CF (the model's clusters, closed form), Predicted UC-CF (the model's
   clusters and powers);
4. Figs. 5-11, Table IV (parameters, memory, FLOPs, latency at K = 10, training time per epoch),
   the runtime at K = 40 (Sect. VII) and the paper's claims next to ours.

Pilot model (``EluCosFormerConfig.pilot_model``): "book" (default) or "per_ap_orthogonal" (the
paper's eq. (2)) for every scenario of the run; under the latter, Optimal CF and DCC are scored with
the book's estimator on the setups where they break the tau_p cap (``BookPilotsOverCap``).
``cfmimo.experiments.elu_cosformer.pilots`` puts the Fig. 6-7 claims of runs side by side.

"Average per-UE SE" (Figs. 5, 6, 10, 11) is the mean of se_ul / se_dl over UEs and test samples;
the mean worst-UE SE (the max-min objective) is reported too. The CosFormer "relu" curve of Fig. 5
is the "cosformer_cluster" run (the same architecture and recipe as ELU-CosFormer with φ = ReLU),
and the "elu1" curve (φ = ELU + 1, ``models.attention``) is the ELU-CosFormer run; "elu" is the raw ELU.

Modules: ``config`` (``EluCosFormerConfig``, constants, scenarios), ``run`` (the pipeline),
``evaluation`` (schemes on the test setups), ``complexity`` (Table IV, runtime, layout), ``claims``,
``study`` (the site study of issue 15), ``report`` (figures, report.md), ``pilots`` (the pilot-model
comparison).
"""

from __future__ import annotations

from cfmimo.experiments.elu_cosformer.config import (
    MAIN,
    PAPER,
    PAPER_NOISE_DROP,
    PAPER_RUNTIME,
    PAPER_TABLE4,
    REFERENCE,
    SCHEME_LABELS,
    SCHEMES,
    VARIANT_LABELS,
    VARIANTS,
    EluCosFormerConfig,
)
from cfmimo.experiments.elu_cosformer.evaluation import eval_device, mask_diagnostics, optimal_for_clusters
from cfmimo.experiments.elu_cosformer.run import run

__all__ = [
    "MAIN",
    "PAPER",
    "PAPER_NOISE_DROP",
    "PAPER_RUNTIME",
    "PAPER_TABLE4",
    "REFERENCE",
    "SCHEMES",
    "SCHEME_LABELS",
    "VARIANTS",
    "VARIANT_LABELS",
    "EluCosFormerConfig",
    "eval_device",
    "mask_diagnostics",
    "optimal_for_clusters",
    "run",
]
