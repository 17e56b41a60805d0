"""Bad numbers never become plausible numbers: decisions are checked for shape, dtype, batch size and
finiteness against the instance; instances, positions and model outputs must be finite; ``--json``
output is strict JSON. (The fuzz modules try many more inputs; these tests pin the rules.)"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch

from cfmimo.cli import json_text
from cfmimo.config import preset
from cfmimo.data.transforms import PositionFrame, PowerScaler
from cfmimo.models import build_model
from cfmimo.policies.classical.power import FullPower, MaxMinClosedForm
from cfmimo.policies.neural import PositionPowerPolicy, predict_powers
from cfmimo.problems.base import Allocation, DecisionSpec, Problem, check_decision, evaluate
from cfmimo.problems.maxmin_power import MaxMinPower
from cfmimo.sim.network import networks_from_positions


@pytest.fixture(scope="module")
def inst():
    return MaxMinPower().sample(
        preset("tree-transformer", K=3, L=4, realizations=5), 2, seed=0, dtype=torch.float64
    )


def test_decision_shapes_name_field_shape_dtype_and_device(inst):
    spec = MaxMinPower().decision_shapes(inst)
    assert spec == {
        "p_ul": DecisionSpec((2, 3), torch.float64, inst.ul_budget.device),
        "p_dl": DecisionSpec((2, 3), torch.float64, inst.ul_budget.device),
    }


def test_a_k_vector_is_not_broadcast_over_the_batch(inst):
    ok = FullPower()(inst)
    problem = MaxMinPower()
    # before the check, p_ul [K] broadcast silently and scored as if every instance had it
    with pytest.raises(ValueError, match=r"'p_ul' must have shape \[2, 3\], got \[3\] \(no broadcasting"):
        problem.metrics(inst, replace(ok, p_ul=ok.p_ul[0]))
    with pytest.raises(ValueError, match=r"'p_dl'.*batch size 1 != the instance's 2"):
        problem.violation(inst, replace(ok, p_dl=ok.p_dl[:1]))


def test_float32_decisions_on_a_float64_instance_are_named(inst):
    ok = FullPower()(inst)
    for method in ("metrics", "violation", "objective", "check"):
        with pytest.raises(ValueError, match=r"'p_dl' must have dtype torch.float64.*got torch.float32"):
            getattr(MaxMinPower(), method)(inst, replace(ok, p_dl=ok.p_dl.float()))


def test_a_nan_power_is_an_error_not_se_zero(inst):
    ok = MaxMinClosedForm()(inst)
    p = ok.p_ul.clone()
    p[1, 2] = math.nan
    with pytest.raises(ValueError, match="'p_ul' has 1 non-finite entries"):
        MaxMinPower().metrics(inst, replace(ok, p_ul=p))
    with pytest.raises(ValueError, match="'p_ul' has 1 non-finite"):
        evaluate(MaxMinPower(), lambda i: replace(ok, p_ul=p), inst)
    # negative powers have no SE (metrics raises) but are measured by violation
    neg = replace(ok, p_dl=-ok.p_dl)
    with pytest.raises(ValueError, match="'p_dl' has negative powers"):
        MaxMinPower().metrics(inst, neg)
    assert (MaxMinPower().violation(inst, neg) > 0.1).all()


def test_check_decision_accepts_exactly_the_spec():
    spec = DecisionSpec((2, 3), torch.float32)
    check_decision("x", torch.zeros(2, 3), spec)
    with pytest.raises(TypeError, match=r"'x' must be a torch\.Tensor"):
        check_decision("x", np.zeros((2, 3), dtype=np.float32), spec)
    with pytest.raises(ValueError, match="'x' has 1 non-finite"):
        check_decision("x", torch.tensor([[0.0, math.inf, 0.0], [0.0, 0.0, 0.0]]), spec)


def test_a_family_without_decision_shapes_keeps_the_presence_check():
    class Minimal(Problem):
        decision_fields = ("p_ul",)

        def sample(self, *a, **k): ...
        def metrics(self, instance, allocation): ...
        def objective(self, instance, allocation): ...
        def violation(self, instance, allocation): ...

    Minimal().check(None, Allocation(p_ul=torch.zeros(3)))
    with pytest.raises(ValueError, match="'p_ul'"):
        Minimal().check(None, Allocation())


def test_instances_reject_non_finite_and_negative_fields(inst):
    budget = inst.ul_budget.clone()
    budget[0, 0] = math.nan
    with pytest.raises(ValueError, match="ul_budget has 1 non-finite"):
        replace(inst, ul_budget=budget)
    with pytest.raises(ValueError, match=r"uplink.noise must be >= 0"):
        replace(inst, uplink=replace(inst.uplink, noise=-inst.uplink.noise))
    # changed in place after construction: every policy re-validates
    changed = replace(inst, dl_budget=inst.dl_budget.clone())
    changed.dl_budget[0, 0] = math.inf
    with pytest.raises(ValueError, match="MaxMinClosedForm: invalid instance: dl_budget has 1 non-finite"):
        MaxMinClosedForm()(changed)


def test_positions_non_finite_far_or_outside_the_area():
    sc = preset("tree-transformer", K=2, L=2)  # area [0, 500] m
    ap = torch.tensor([[[100.0, 100.0], [300.0, 300.0]]], dtype=torch.float64)
    ue = torch.tensor([[[10.0, 20.0], [250.0, 300.0]]], dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        networks_from_positions(sc, ap, ue, seed=0, indices=range(1))  # inside: silent
    bad = ue.clone()
    bad[0, 1, 1] = math.nan
    with pytest.raises(ValueError, match=r"ue positions have 1 non-finite"):
        networks_from_positions(sc, ap, bad, seed=0, indices=range(1))
    far = ue.clone()
    far[0, 1, 0] = 800.0  # 300 m outside a 500 m area: warned, with the numbers
    with pytest.warns(
        UserWarning, match=r"ue positions span \[10.0, 800.0\] m; the scenario's area is \[0, 500\] m"
    ):
        networks_from_positions(sc, ap, far, seed=0, indices=range(1))
    far[0, 1, 0] = 1e4  # more than a side outside: wrong units or origin
    with pytest.raises(ValueError, match=r"ue positions span \[10.0, 10000.0\] m.*more than one area side"):
        networks_from_positions(sc, ap, far, seed=0, indices=range(1))


def _scaler():
    g = torch.Generator().manual_seed(0)
    return PowerScaler().fit(torch.rand(20, 3, generator=g) * 100, torch.rand(20, 3, generator=g) * 500)


def test_model_output_must_be_finite_and_positions_inside_the_frame(inst):
    class Broken(torch.nn.Module):
        def forward(self, ue, ap):
            out = torch.sigmoid(ue.sum(-1, keepdim=True)).expand(-1, -1, 2).clone()
            out[0, 0, 1] = math.inf
            return out

    with pytest.raises(ValueError, match="model output has 1 non-finite values"):
        PositionPowerPolicy(Broken(), _scaler())(inst)
    model = build_model({"name": "deepsets"})
    ue = torch.tensor([[[10.0, 20.0], [450.0, 300.0]]])
    ap = torch.tensor([[[100.0, 100.0], [300.0, 300.0]]])
    frame = PositionFrame(0.0, 500.0, 0.0, 500.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        predict_powers(model, _scaler(), ue, ap, 800.0, (0,), frame=frame)
    small = PositionFrame(0.0, 200.0, 0.0, 200.0)  # a model trained on a 200 m square
    ap = torch.tensor([[[100.0, 100.0], [150.0, 150.0]]])
    with pytest.warns(
        UserWarning, match=r"ue positions span x \[10.0, 450.0\] m.*training frame x \[0.0, 200.0\]"
    ):
        predict_powers(model, _scaler(), ue, ap, 800.0, (0,), frame=small)


def test_json_output_is_strict_json():
    text = json_text(
        {"loss": math.nan, "hi": math.inf, "t": torch.tensor([1.0, math.nan]), "n": np.float64(2.5)}
    )
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON token {c}")) == {
        "loss": None,
        "hi": None,
        "t": [1.0, None],
        "n": 2.5,
    }


def test_every_json_command_prints_strict_json():
    """`simulate --json` and `solve max-min --json` (train/predict/data inspect use the same
    ``json_text``; predict is checked in tests/learn/test_checkpoint_loading.py)."""
    from typer.testing import CliRunner

    from cfmimo.cli import app

    runner = CliRunner()
    for args in (
        ["simulate", "--K", "2", "--L", "4", "--realizations", "5", "--json"],
        ["solve", "max-min", "--K", "2", "--L", "4", "--realizations", "5", "--setups", "2", "--json"],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        json.loads(result.output, parse_constant=lambda c: pytest.fail(f"non-JSON token {c}"))
