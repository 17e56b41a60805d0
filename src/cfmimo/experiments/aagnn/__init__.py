"""Reproduction of the AAGNN paper (association-aware GNN precoding), Sect. IV: ``run`` and its config."""

from cfmimo.experiments.aagnn.config import AagnnConfig
from cfmimo.experiments.aagnn.run import run

__all__ = ["AagnnConfig", "run"]
