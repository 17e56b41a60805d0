from dataclasses import dataclass

import pytest
import torch

from cfmimo.config import preset
from cfmimo.policies.classical.power import FractionalPower, FullPower, MaxMinClosedForm, MaxMinFixedPoint
from cfmimo.problems.base import Allocation
from cfmimo.problems.maxmin_power import MaxMinPower
from cfmimo.testing import assert_policy


@pytest.fixture(scope="module")
def instance():
    return MaxMinPower().sample(
        preset("tree-transformer", K=12, realizations=20), 4, seed=3, dtype=torch.float64
    )


@pytest.mark.parametrize(
    "policy", [MaxMinClosedForm(), MaxMinFixedPoint(tolerance=1e-9), FullPower(), FractionalPower()]
)
def test_classical_policies_meet_the_contract(policy, instance):
    assert_policy(MaxMinPower(), policy, instance, rtol=1e-6)


@dataclass(frozen=True)
class _FirstUeGetsAll:
    """A deliberately order-dependent, over-budget policy: the contract must catch it."""

    def __call__(self, inst):
        p = torch.zeros_like(inst.ul_budget)
        p[:, 0] = 2 * inst.ul_budget[:, 0]
        return Allocation(p_ul=p, p_dl=p.clone())


def test_contract_catches_bad_policies(instance):
    with pytest.raises(AssertionError, match="infeasible"):
        assert_policy(MaxMinPower(), _FirstUeGetsAll(), instance)
    with pytest.raises(AssertionError, match="not permuted"):
        assert_policy(MaxMinPower(), _FirstUeGetsAll(), instance, feasible=False)
    with pytest.raises(ValueError, match="p_dl"):
        assert_policy(MaxMinPower(), lambda inst: Allocation(p_ul=inst.ul_budget), instance)
