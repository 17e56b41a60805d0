"""Reproduction of the EGAT fronthaul paper (egat-fronthaul.md, Sect. V): ``run`` and its config."""

from cfmimo.experiments.egat.config import EgatConfig
from cfmimo.experiments.egat.run import run

__all__ = ["EgatConfig", "run"]
