import math

import pytest
import torch

from cfmimo.config import preset
from cfmimo.problems.base import Allocation
from cfmimo.problems.sumrate_precoding import (
    PrecodingInstance,
    SumRatePrecoding,
    permute_precoder_antennas,
    precoding_instance,
)


def _cn(shape, g, dtype=torch.complex128):
    return torch.complex(
        torch.randn(shape, generator=g, dtype=torch.float64),
        torch.randn(shape, generator=g, dtype=torch.float64),
    ).to(dtype) / math.sqrt(2)


def _random(B=3, L=3, K=4, N=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    h = _cn((B, L, K, N), g) * torch.rand(B, L, K, 1, generator=g, dtype=torch.float64).mul(3)
    assoc = torch.rand(B, L, K, generator=g) < 0.6
    assoc[:, 0] = True  # every UE served
    p_max = 0.5 + torch.rand(B, L, generator=g, dtype=torch.float64)
    noise = 0.5 + torch.rand(B, generator=g, dtype=torch.float64)
    weights = 0.5 + torch.rand(B, K, generator=g, dtype=torch.float64)
    inst = precoding_instance(h, assoc, p_max, noise, weights)
    v = _cn((B, L, K, N), g)
    return inst, Allocation(precoders=v)


def _loop_objective(inst: PrecodingInstance, v: torch.Tensor) -> torch.Tensor:
    """eqs. (1a)-(2) written as plain loops over instances, UEs and APs."""
    out = []
    for b in range(inst.batch):
        total = 0.0
        for k in range(inst.K):
            amp = []
            for i in range(inst.K):
                s = 0j
                for m in range(inst.L):
                    if inst.association[b, m, i]:
                        s += complex(torch.vdot(inst.h[b, m, k], v[b, m, i]))
                amp.append(abs(s) ** 2)
            interference = sum(amp) - amp[k]
            gamma = amp[k] / (interference + float(inst.noise[b]))
            total += float(inst.weights[b, k]) * math.log2(1 + gamma)
        out.append(total)
    return torch.tensor(out, dtype=torch.float64)


def test_objective_equals_loop_reference_eq2():
    inst, alloc = _random()
    problem = SumRatePrecoding()
    got = problem.objective(inst, alloc)
    want = _loop_objective(inst, alloc.precoders)
    assert torch.allclose(got, want, rtol=1e-12, atol=0)
    m = problem.metrics(inst, alloc)
    assert torch.allclose(m["weighted_sum_rate"], want, rtol=1e-12, atol=0)
    ones = precoding_instance(inst.h, inst.association, inst.p_max, inst.noise)
    assert torch.allclose(
        problem.objective(ones, alloc), problem.metrics(ones, alloc)["sum_rate"], rtol=1e-14
    )


def test_violation_counts_unserved_links_1b():
    inst, _ = _random(B=1, L=2, K=2, N=1)
    problem = SumRatePrecoding()
    a = torch.tensor([[[True, False], [True, True]]])
    inst = precoding_instance(inst.h, a, 1.0)
    v = torch.zeros(1, 2, 2, 1, dtype=torch.complex128)
    v[0, 0, 0, 0] = 1.0  # served link at full power: feasible
    assert problem.violation(inst, Allocation(precoders=v)).item() == 0.0
    v[0, 0, 1, 0] = 0.5j  # unserved link (AP 0 -> UE 1): no signal, but it counts in (1b)
    alloc = Allocation(precoders=v)
    assert problem.violation(inst, alloc).item() == pytest.approx(0.25, abs=1e-15)
    m = problem.metrics(inst, alloc)
    assert m["unserved_power"].item() == pytest.approx(0.25, abs=1e-15)
    assert m["per_ap_power"][0].tolist() == pytest.approx([1.25, 0.0])
    # ... and it changes no SINR (eq. (2) masks it)
    v0 = v.clone()
    v0[0, 0, 1, 0] = 0
    assert torch.equal(problem.objective(inst, alloc), problem.objective(inst, Allocation(precoders=v0)))


def test_take_and_permutations_keep_the_objective():
    inst, alloc = _random(B=4, L=3, K=5, N=3, seed=1)
    problem = SumRatePrecoding()
    base = problem.objective(inst, alloc)
    v = alloc.precoders
    idx = torch.tensor([2, 0])
    assert torch.equal(problem.objective(inst.take(idx), Allocation(precoders=v[idx])), base[idx])
    g = torch.Generator().manual_seed(3)
    pk, pl = torch.randperm(5, generator=g), torch.randperm(3, generator=g)
    pn = torch.stack([torch.randperm(3, generator=g) for _ in range(3)])
    cases = [
        (inst.permute_ues(pk), v[:, :, pk]),
        (inst.permute_aps(pl), v[:, pl]),
        (inst.permute_antennas(pn), permute_precoder_antennas(v, pn)),
    ]
    for permuted, w in cases:
        assert torch.allclose(problem.objective(permuted, Allocation(precoders=w)), base, rtol=1e-12)
        assert torch.allclose(
            problem.violation(permuted, Allocation(precoders=w)), problem.violation(inst, alloc)
        )
    assert torch.equal(inst.permute_antennas(pn).h[1, 2, 3], inst.h[1, 2, 3, pn[2]])


def test_sample_is_noise_normalized_and_reproducible():
    sc = preset("aagnn", K=6)
    problem = SumRatePrecoding()
    inst = problem.sample(sc, 4, seed=5, dtype=torch.float64)
    assert inst.h.dtype == torch.complex128 and inst.h.shape == (4, sc.L, 6, sc.N)
    assert torch.equal(inst.p_max, torch.full((4, sc.L), 1000.0, dtype=torch.float64))
    assert torch.equal(inst.noise, torch.ones(4, dtype=torch.float64)) and bool(inst.association.any(1).all())
    part = problem.sample(sc, 2, seed=5, first_index=2, dtype=torch.float64)
    assert torch.equal(part.h, inst.h[2:])
    f32 = problem.sample(sc, 4, seed=5)
    assert f32.h.dtype == torch.complex64 and torch.allclose(
        f32.h.to(torch.complex128), inst.h, rtol=1e-5, atol=1e-6
    )


def test_bad_input_names_the_field():
    inst, _ = _random(B=2, L=2, K=3, N=2)
    h, a = inst.h, inst.association
    with pytest.raises(TypeError, match="h"):
        precoding_instance(h.real, a, 1.0)
    with pytest.raises(ValueError, match="h"):
        precoding_instance(h[0], a, 1.0)
    with pytest.raises(TypeError, match="association"):
        precoding_instance(h, a.double(), 1.0)
    with pytest.raises(ValueError, match="association"):
        precoding_instance(h, a[:, :1], 1.0)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="p_max"):
            precoding_instance(h, a, bad)
    with pytest.raises(ValueError, match="p_max"):
        precoding_instance(h, a, torch.tensor([[1.0, float("nan")]] * 2))
    with pytest.raises(ValueError, match="noise"):
        precoding_instance(h, a, 1.0, 0.0)
    with pytest.raises(ValueError, match="weights"):
        precoding_instance(h, a, 1.0, 1.0, torch.zeros(2, 3))
    none = a.clone()
    none[1, :, 2] = False
    with pytest.raises(ValueError, match=r"association.*UE 2"):
        precoding_instance(h, none, 1.0)
    assert precoding_instance(h, none, 1.0, allow_unserved=True).batch == 2
    with pytest.raises(TypeError, match="precoders"):
        SumRatePrecoding().objective(inst, Allocation(precoders=inst.h.real))
    with pytest.raises(ValueError, match="precoders"):
        SumRatePrecoding().objective(inst, Allocation(p_dl=torch.ones(2, 3)))


def test_sample_rejects_unserved_ues_unless_allowed():
    sc = preset("aagnn", K=4, clustering={"kind": "radius", "radius_m": 1.0})  # nobody within 1 m
    with pytest.raises(ValueError, match="association"):
        SumRatePrecoding().sample(sc, 2, seed=0)
    inst = SumRatePrecoding(allow_unserved=True).sample(sc, 2, seed=0, dtype=torch.float64)
    assert not bool(inst.association.any())
    v = torch.ones_like(inst.h)
    assert torch.equal(
        SumRatePrecoding().objective(inst, Allocation(precoders=v)), torch.zeros(2, dtype=torch.float64)
    )
