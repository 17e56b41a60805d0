"""Reproduction of Chafaa, Bacci, Sanguinetti, "hybrid Tree-Transformer" power allocation
(../shared/papers/tree-transformer-power-allocation.md).

Pipeline (``run``): datasets (training: K in {2,4,6,8,10}, L = 16, 8000 each; test grid: K = 2..40 x
L in {1,4,9,16,25}, 200 each; labels by our max-min closed form) -> training of the Tree-Transformer
and the Table II baselines (Transformer, CosFormer, Performer; supervised MSE on normalized powers,
AdamW 1e-3, batch 128, 100 epochs, 5 m position noise) -> evaluation on the noisy test grid:
Fig. 5 (CDFs of predicted vs optimal powers), Fig. 6 (SE vs K and vs L), the average SE gap,
Table II (parameters, latency at K = 40, L = 16, average SE) and latency vs K up to 10 000.
The baselines take one token per UE with all AP coordinates (2L + 2 inputs, as the paper's
ref. [8]), so they exist for L = 16 only and are evaluated there.

Modules: ``config`` (``TreeTransformerConfig``, Table II of the paper, the site study settings,
``specs``), ``run`` (the pipeline and the claims), ``report`` (figures, report.md),
``checkpoint_eval`` (score an outside checkpoint on a finished run's test grid).
"""

from cfmimo.experiments.tree_transformer.config import (
    PAPER_TABLE2,
    STUDY_SETTINGS,
    TreeTransformerConfig,
    specs,
    study_setting,
)
from cfmimo.experiments.tree_transformer.report import study_lines, write_figures, write_report
from cfmimo.experiments.tree_transformer.run import run

__all__ = [
    "PAPER_TABLE2",
    "STUDY_SETTINGS",
    "TreeTransformerConfig",
    "run",
    "specs",
    "study_lines",
    "study_setting",
    "write_figures",
    "write_report",
]
