"""Shared fixtures: small, seeded networks in float64 for exact checks."""

from __future__ import annotations

import pytest
import torch

from cfmimo.config import preset
from cfmimo.sim.network import sample_channel_state, sample_networks


def small(**overrides):
    """A small network: L = 4 APs, N = 2, K = 6 UEs on tau_p = 3 pilots (pilot contamination),
    150 m square, DCC clusters; any field can be overridden."""
    fields = dict(
        L=4, K=6, N=2, tau_p=3, tau_u=97, area_side_m=150.0, realizations=8, clustering={"kind": "dcc"}
    )
    return preset("tree-transformer", **{**fields, **overrides})


@pytest.fixture
def small_factory():
    return small


@pytest.fixture
def small_scenario():
    return small()


@pytest.fixture
def small_net(small_scenario):
    return sample_networks(small_scenario, 3, seed=11, dtype=torch.float64)


@pytest.fixture
def small_state(small_net):
    return sample_channel_state(small_net)
