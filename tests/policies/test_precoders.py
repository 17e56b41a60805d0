import math

import pytest
import torch

from cfmimo.policies.classical.precoders import MRTPrecoder, RZFPrecoder, ZFPrecoder, rzf_regularization
from cfmimo.policies.classical.wmmse import WMMSE
from cfmimo.problems.base import Allocation
from cfmimo.problems.sumrate_precoding import SumRatePrecoding, precoding_instance
from cfmimo.sim.instantaneous import received_gains

PROBLEM = SumRatePrecoding()


def _instance(B=3, L=3, K=4, N=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    shape = (B, L, K, N)
    h = torch.complex(
        torch.randn(shape, generator=g, dtype=torch.float64),
        torch.randn(shape, generator=g, dtype=torch.float64),
    )
    h = h * (10 * torch.rand(B, L, K, 1, generator=g, dtype=torch.float64)).sqrt() / math.sqrt(2)
    assoc = torch.rand(B, L, K, generator=g) < 0.6
    assoc[:, 0] = True
    assoc[:, 2, :] = False  # AP 2 serves nobody
    p_max = 0.5 + torch.rand(B, L, generator=g, dtype=torch.float64)
    return precoding_instance(h, assoc, p_max, 0.7)


def _ap_power(v):
    return v.abs().square().sum(dim=(-2, -1))  # [B, L]


@pytest.mark.parametrize("policy", [MRTPrecoder, ZFPrecoder, RZFPrecoder])
def test_scalings_meet_the_budgets(policy):
    inst = _instance()
    active = inst.association.any(-1)  # APs that serve someone
    per_ap = policy("per_ap")(inst).precoders
    assert torch.allclose(_ap_power(per_ap), torch.where(active, inst.p_max, 0.0), rtol=1e-12)
    common = policy("common")(inst).precoders
    ratio = _ap_power(common) / inst.p_max
    assert torch.allclose(ratio.amax(-1), torch.ones(inst.batch, dtype=torch.float64), rtol=1e-12)
    for v in (per_ap, common):
        assert torch.equal(v[~inst.association], torch.zeros_like(v[~inst.association]))
        assert PROBLEM.violation(inst, Allocation(precoders=v)).max().item() <= 1e-12


def test_mrt_direction_and_zf_nulls():
    inst = _instance(N=4, K=3)
    v = MRTPrecoder("common")(inst).precoders
    ratio = v / torch.where(inst.association[..., None], inst.h, 1.0)  # [B, L, K, N]
    for b in range(inst.batch):  # "common" MRT: one real positive factor on every served link
        r = ratio[b][inst.association[b]]
        assert torch.allclose(r, r[0, 0].real.expand_as(r).to(r.dtype), rtol=1e-12) and r[0, 0].real > 0
    z = ZFPrecoder("common")(inst).precoders
    g = received_gains(inst.h, z, inst.association)  # [B, K, K]
    off = g - torch.diag_embed(torch.diagonal(g, dim1=-2, dim2=-1))
    assert off.abs().max().item() < 1e-10 * g.abs().max().item()  # nulls kept by the common scaling


def test_rzf_limits_and_default_regularization():
    inst = _instance()
    assert torch.allclose(rzf_regularization(inst)[:, 0], inst.K * inst.noise / inst.p_max.sum(-1))
    unit = lambda v: v / v.abs().square().sum(dim=(1, 2, 3), keepdim=True).sqrt()  # noqa: E731
    small = RZFPrecoder("common", regularization=1e-9)(inst).precoders
    assert torch.allclose(unit(small), unit(ZFPrecoder("common")(inst).precoders), atol=1e-6)
    big = RZFPrecoder("common", regularization=1e9)(inst).precoders
    assert torch.allclose(unit(big), unit(MRTPrecoder("common")(inst).precoders), atol=1e-6)


def test_ue_permutation_equivariance_and_wmmse_beats_its_rzf_start():
    inst = _instance(seed=3)
    perm = torch.tensor([3, 1, 0, 2])
    for policy in (MRTPrecoder(), ZFPrecoder(), RZFPrecoder(), RZFPrecoder("common")):
        v = policy(inst).precoders
        assert torch.allclose(policy(inst.permute_ues(perm)).precoders, v[:, :, perm], rtol=1e-9, atol=1e-12)
    rzf = PROBLEM.objective(inst, RZFPrecoder()(inst))
    wm = WMMSE(random_starts=0, max_iterations=30)(inst)
    assert (PROBLEM.objective(inst, wm) >= rzf - 1e-12).all()
    assert torch.allclose(
        wm.info["history"][:, 0, 0], rzf, rtol=1e-12
    )  # the RZF start is exactly this policy


def test_bad_options():
    with pytest.raises(ValueError, match="scaling"):
        MRTPrecoder("sum")
    with pytest.raises(ValueError, match="scaling"):
        ZFPrecoder("none")
    with pytest.raises(ValueError, match="regularization"):
        RZFPrecoder(regularization=0.0)
