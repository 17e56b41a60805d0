"""Reproduction of the ee-gnn paper (GNN with nested SINRnets for sum-of-ratios EE), Sect. V:
``run`` and its config."""

from cfmimo.experiments.ee_gnn.config import EEGnnConfig
from cfmimo.experiments.ee_gnn.run import run

__all__ = ["EEGnnConfig", "run"]
