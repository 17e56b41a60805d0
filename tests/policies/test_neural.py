import torch

from cfmimo.config import preset
from cfmimo.data.transforms import PowerScaler
from cfmimo.models import build_model
from cfmimo.policies.neural import PositionPowerPolicy
from cfmimo.problems.maxmin_power import MaxMinPower
from cfmimo.testing import assert_policy


def _scaler():
    g = torch.Generator().manual_seed(0)
    return PowerScaler().fit(torch.rand(100, 6, generator=g) * 100, torch.rand(100, 6, generator=g) * 600)


def test_position_policy_meets_the_contract_for_both_dl_constraints():
    torch.manual_seed(0)
    policy = PositionPowerPolicy(build_model({"name": "deepsets"}), _scaler())
    for constraint in ("sum", "per_ap"):
        inst = MaxMinPower(dl_constraint=constraint).sample(
            preset("tree-transformer", K=6, realizations=10), 4, seed=0, dtype=torch.float64
        )
        alloc = assert_policy(MaxMinPower(), policy, inst, rtol=1e-5, atol=1e-4)
        load = (inst.dl_weights @ alloc.p_dl[..., None]).squeeze(-1) / inst.dl_budget
        assert torch.allclose(load.amax(-1), torch.ones(4, dtype=torch.float64), rtol=1e-5)  # budget used


def test_noise_is_per_sample_and_seeded():
    torch.manual_seed(0)
    inst = MaxMinPower().sample(preset("tree-transformer", K=5, realizations=10), 4, seed=1)
    policy = PositionPowerPolicy(build_model({"name": "deepsets"}), _scaler(), sigma_ue_m=5.0, seed=3)
    whole = policy(inst)
    part = policy(inst.take(slice(2, 4)))
    assert torch.allclose(whole.p_ul[2:], part.p_ul, rtol=1e-5)  # noise depends on the sample, not the batch
    other = PositionPowerPolicy(policy.model, policy.scaler, sigma_ue_m=5.0, seed=4)(inst)
    assert not torch.allclose(whole.p_ul, other.p_ul)
