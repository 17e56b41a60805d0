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


# --- precoding instances (complex decisions, AP and antenna permutations, association) ------------


@pytest.fixture(scope="module")
def precoding():
    from cfmimo.problems.sumrate_precoding import SumRatePrecoding

    return SumRatePrecoding().sample(preset("aagnn", K=4, N=3), 3, seed=1, dtype=torch.float64)


def test_classical_precoders_meet_the_extended_contract(precoding):
    from cfmimo.policies.classical.precoders import MRTPrecoder, RZFPrecoder, ZFPrecoder
    from cfmimo.problems.sumrate_precoding import SumRatePrecoding

    for policy in (MRTPrecoder(), ZFPrecoder(), RZFPrecoder(), MRTPrecoder("common")):
        assert_policy(SumRatePrecoding(), policy, precoding, rtol=1e-7, atol=1e-9)


@dataclass(frozen=True)
class _Precoder:
    """MRT with a deliberate defect: leak onto unserved links, antenna-order dependence or the
    wrong complex dtype."""

    defect: str

    def __call__(self, inst):
        from cfmimo.models.gnn.layers import power_head

        h, assoc = inst.h, inst.association
        if self.defect == "leak":
            v = h / h.abs().square().sum((-2, -1), keepdim=True).sqrt() * inst.p_max[..., None, None].sqrt()
            return Allocation(precoders=v)
        v = h.clone()
        if self.defect == "antenna":
            v[..., 0] = v[..., 0] * 3  # the first antenna of every AP is favoured
        v = power_head(v, assoc, inst.p_max)
        if self.defect == "dtype":
            v = v.to(torch.complex64)
        return Allocation(precoders=v)


def test_extended_contract_catches_bad_precoders(precoding):
    from cfmimo.problems.sumrate_precoding import SumRatePrecoding

    problem = SumRatePrecoding()
    assert_policy(problem, _Precoder("none"), precoding)  # the defect-free version passes
    with pytest.raises(AssertionError, match="unserved links"):
        assert_policy(problem, _Precoder("leak"), precoding)
    with pytest.raises(AssertionError, match="antennas"):
        assert_policy(problem, _Precoder("antenna"), precoding)
    with pytest.raises(AssertionError, match="dtype"):
        assert_policy(problem, _Precoder("dtype"), precoding)
