"""Configuration of ``cfmimo reproduce egat`` (egat-fronthaul.md, Sect. V: Figs. 4-10, Tables II-V).

Defaults are the paper's values (section / table in the comments); ``quick()`` is a small real run
(every figure and table at reduced sizes, <= 5 min on 2 CPU cores) and ``tiny()`` the seconds-long
smoke-test configuration. Model sizes are ``ModelConfig`` overrides per registry name (empty = the
model's own defaults, docs/learning.md "EGAT fronthaul models").
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cfmimo.models.gnn.fronthaul import FRONTHAUL_MODEL_NAMES

#: the four learned policies of Sect. V-A, in the paper's order (registry names)
MODELS = FRONTHAUL_MODEL_NAMES  # ("egat_fh", "engnn_fh", "bgnn_fh", "dnn_fh")
#: fixed-size models (built for the training L, K): evaluated only where the size matches
FIXED_SIZE = ("dnn_fh",)
#: classical baselines of Sect. V-A
BASELINES = ("ao_sca_reweighted", "ao_sca_literal", "pc_wmmse", "fc_zf")

Positive = Annotated[int, Field(gt=0)]
Sizes = tuple[Positive, ...]


class EgatConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    mode: Literal["full", "quick", "tiny"] = "full"
    models: tuple[str, ...] = MODELS
    # per-model ModelConfig overrides (d_mod / heads / layers); {} = registry defaults
    model_overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # torch CPU threads during the run (None = torch's default); 1 on a shared 2-core machine
    threads: Positive | None = None
    seed: int = 0  # root of every seed stream (training / validation / test sets, initializations)

    # ---- training (Sect. V-A): 300 epochs x 100 mini-batches x 256, Adam 1e-3, unsupervised
    train_samples: Positive = 25_600  # "a dataset of 25,600 samples" (Sect. V-F)
    batch_size: Positive = 256
    lr: Annotated[float, Field(gt=0)] = 1e-3
    # the paper's 30,000 steps when a GPU is present; on the CPU a budget that fits 2.5 h on 2 cores
    # (docs/learning.md "Reproducing the EGAT paper" derives it from measured steps/s). None = by device.
    max_steps: Positive | None = None
    max_steps_gpu: Positive = 30_000
    max_steps_cpu: Positive = 4_000
    val_points: Positive = 20  # validations per run (history for Fig. 4b-c)
    val_samples: Positive = 200
    pg_samples: Annotated[int, Field(ge=2)] = 4  # S Bernoulli draws per instance (leave-one-out baseline)
    # multipliers: "ap" = shared mu [L] (the paper's mu in R_+^B), "scalar", "instance" = per sample.
    # The default is chosen from the short runs of benchmarks/fronthaul_multipliers.py (report.md).
    mu: Literal["ap", "scalar", "instance"] = "instance"
    dual_lr: Annotated[float, Field(gt=0)] = 1.0
    # one capacity-conditioned model: every training sample gets C ~ U[lo, hi] (Table II's range)
    train_capacity_mbps: tuple[float, float] = (40.0, 90.0)
    train_L: Positive = 8  # Sect. V-E: "a base scenario with 4 UEs and 8 APs"
    train_K: Positive = 4

    # ---- evaluation (Sect. V-A: "we test the average performance of 200 samples")
    test_samples: Positive = 200
    capacity_mbps: Annotated[float, Field(gt=0)] = 60.0  # C of Figs. 5, 7-10 and Tables III-IV
    table2_capacities_mbps: tuple[Annotated[float, Field(gt=0)], ...] = (40.0, 50.0, 60.0, 70.0, 80.0, 90.0)
    table3_L: Sizes = (7, 8, 9, 10)  # Table III / Fig. 7 (K = 4)
    table4_K: Sizes = (4, 5, 6, 7)  # Table IV / Figs. 8-9 (L = 8)
    fig5_L: Sizes = (8, 10)  # Fig. 5(a)-(b): "different number of APs" (the counts are not printed)
    table5_K: Sizes = (3, 6)  # Table V grid
    table5_L: Sizes = (4, 8, 10)

    # ---- baselines
    ao_sca_max_iter: Positive = 50
    ao_sca_test_samples: Positive | None = None  # None = test_samples
    pc_wmmse_max_iterations: Positive = 200
    latency_batch: Positive = 200
    latency_repeats: Positive = 5

    @field_validator("table2_capacities_mbps", "table3_L", "table4_K", "fig5_L", "table5_K", "table5_L")
    @classmethod
    def _non_empty(cls, v: tuple, info) -> tuple:
        if len(v) == 0:
            raise ValueError(f"{info.field_name} must not be empty")
        return v

    @field_validator("train_capacity_mbps")
    @classmethod
    def _range(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0 < v[0] <= v[1]:
            raise ValueError(f"train_capacity_mbps must be 0 < lo <= hi, got {v}")
        return v

    @model_validator(mode="after")
    def _check(self) -> EgatConfig:
        for name in (*self.models, *self.model_overrides):
            if name not in MODELS:
                raise ValueError(f"models: unknown model {name!r}; choose from {list(MODELS)}")
        if "egat_fh" not in self.models:
            raise ValueError("models: must include 'egat_fh' (every claim is about it)")
        if self.train_K not in self.table4_K:
            raise ValueError(f"train_K = {self.train_K} must be one of table4_K {self.table4_K}")
        if self.train_L not in self.table3_L:
            raise ValueError(f"train_L = {self.train_L} must be one of table3_L {self.table3_L}")
        if self.capacity_mbps not in self.table2_capacities_mbps:
            raise ValueError(
                f"capacity_mbps = {self.capacity_mbps} must be one of table2_capacities_mbps (settings are shared)"
            )
        return self

    # ------------------------------------------------------------------ derived
    @property
    def steps(self) -> int:
        """The training step budget: ``max_steps``, else the paper's with a GPU, else the CPU budget."""
        if self.max_steps is not None:
            return self.max_steps
        return self.max_steps_gpu if torch.cuda.is_available() else self.max_steps_cpu

    @property
    def val_every(self) -> int:
        return max(1, self.steps // self.val_points)

    @property
    def ao_sca_samples(self) -> int:
        return min(self.test_samples, self.ao_sca_test_samples or self.test_samples)

    @classmethod
    def quick(cls) -> EgatConfig:
        """Every figure and table at reduced sizes (measured in docs/learning.md)."""
        return cls(
            mode="quick",
            model_overrides={m: {"d_mod": 16, "layers": 2} for m in ("egat_fh", "engnn_fh", "bgnn_fh")}
            | {"dnn_fh": {"d_mod": 32}},
            threads=1,
            train_samples=512,
            batch_size=64,
            max_steps=300,
            val_points=6,  # validations at 250 and 300 steps: the "stable after 250/300" window
            val_samples=64,
            test_samples=48,
            table2_capacities_mbps=(40.0, 60.0, 90.0),
            table3_L=(7, 8, 10),
            table4_K=(4, 5, 7),
            ao_sca_max_iter=6,
            ao_sca_test_samples=4,
            pc_wmmse_max_iterations=50,
            latency_batch=48,
            latency_repeats=7,
            table5_K=(3,),
            table5_L=(4, 8),
        )

    @classmethod
    def tiny(cls) -> EgatConfig:
        """Seconds-long smoke-test configuration (tests/experiments/test_egat.py)."""
        q = cls.quick()
        small = {"d_mod": 8, "layers": 1}
        return q.model_copy(
            update={
                "mode": "tiny",
                "model_overrides": {
                    "egat_fh": small,
                    "engnn_fh": small,
                    "bgnn_fh": small,
                    "dnn_fh": {"d_mod": 8},
                },
                "train_samples": 32,
                "batch_size": 16,
                "max_steps": 6,
                "val_points": 2,
                "val_samples": 8,
                "test_samples": 6,
                "table2_capacities_mbps": (40.0, 60.0),
                "table3_L": (7, 8),
                "table4_K": (4, 5),
                "fig5_L": (8,),
                "ao_sca_max_iter": 2,
                "ao_sca_test_samples": 2,
                "pc_wmmse_max_iterations": 5,
                "latency_batch": 6,
                "latency_repeats": 1,
                "table5_K": (3,),
                "table5_L": (4,),
            }
        )
