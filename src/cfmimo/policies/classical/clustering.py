"""Clustering baselines for ``ClusteringPower``, each followed by the exact max-min powers.

The elu-cosformer paper's baselines (Sect. VI):
  * ``ClusteredMaxMin(Clustering(kind="all"))``: "Optimal CF", every AP serves every UE;
  * ``ClusteredMaxMin(Clustering(kind="q_strongest", q=8))``: its "DCC", Q = 8 strongest APs;
  * ``ClusteredMaxMin(Clustering(kind="dcc"))``: the book's DCC (master AP + strongest per pilot);
  * ``GivenClustersMaxMin(masks)``: given clusters (e.g. a model's) with optimal powers,
    its "Optimal UC-CF".
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cfmimo.config import Clustering
from cfmimo.policies.classical.power import MaxMinClosedForm
from cfmimo.problems.base import Allocation
from cfmimo.problems.clustering_power import ClusteringInstance
from cfmimo.sim.clustering import serving_mask


def _with_powers(instance: ClusteringInstance, serving: torch.Tensor, rtol: float) -> Allocation:
    pinst = instance.for_clusters(serving)
    powers = MaxMinClosedForm(rtol=rtol)(pinst)
    return Allocation(
        serving=pinst.network.serving,
        p_ul=powers.p_ul,
        p_dl=powers.p_dl,
        info={**powers.info, "power_instance": pinst},
    )


@dataclass(frozen=True)
class ClusteredMaxMin:
    """A clustering rule from the instance's gains, then closed-form max-min powers."""

    rule: Clustering
    rtol: float = 1e-12

    def __call__(self, instance: ClusteringInstance) -> Allocation:
        net = instance.network
        serving = serving_mask(
            self.rule, net.gain_db, net.distance_2d, net.pilot, net.master, net.scenario.tau_p
        )
        return _with_powers(instance, serving, self.rtol)


@dataclass(frozen=True)
class GivenClustersMaxMin:
    """Closed-form max-min powers for given clusters [B, L, K] (e.g. predicted by a model)."""

    serving: torch.Tensor
    rtol: float = 1e-12

    def __call__(self, instance: ClusteringInstance) -> Allocation:
        return _with_powers(instance, self.serving, self.rtol)
