"""What a dataset is: the spec (scenario, sizes, samples, seed, labels) and its shard plan.

A sample is identified by (group (K, L), index). Its content depends only on (spec, seed, K, L,
index): the group's seed is derived from the base seed and (K, L), and every random step of the
simulator draws from per-sample streams (``cfmimo.rng``). Shards are fixed slices of each group's
index range, so the plan, and therefore every array, is independent of worker count and order.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cfmimo.config import Scenario, preset
from cfmimo.rng import stream_seed


@dataclass(frozen=True)
class ShardTask:
    """Samples start..start+count-1 of group (K, L)."""

    K: int
    L: int
    start: int
    count: int


#: at most this many shard files per dataset (a bound that keeps a bad spec or manifest from
#: starting a walk over billions of shards)
MAX_SHARDS = 1_000_000


class DatasetSpec(BaseModel):
    """A labelled (or unlabelled) dataset. ``scenario`` gives everything but K and L."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    scenario: Scenario
    sizes: list[tuple[Annotated[int, Field(gt=0)], Annotated[int, Field(gt=0)]]] = Field(
        description="(K, L) groups"
    )
    samples: Annotated[int, Field(gt=0)] = Field(description="samples per (K, L) group")
    seed: Annotated[int, Field(ge=-(2**63), lt=2**63)] = 0  # stored as an int64 shard attribute
    shard_size: Annotated[int, Field(gt=0)] = 500
    labels: bool = Field(True, description="store UatF statistics and max-min labels")
    combiner: Literal["mmse", "pmmse", "przf", "mr"] = "mmse"
    dl_constraint: Literal["sum", "per_ap"] | None = None

    @field_validator("sizes")
    @classmethod
    def _unique(cls, v: list[tuple[int, int]]) -> list[tuple[int, int]]:
        if not v:
            raise ValueError("sizes must hold at least one (K, L) pair")
        if len(set(v)) != len(v):
            raise ValueError(f"sizes has repeated (K, L) pairs: {v}")
        return v

    @model_validator(mode="after")
    def _bounded_plan(self) -> DatasetSpec:
        if self.shard_count() > MAX_SHARDS:
            raise ValueError(
                f"samples = {self.samples} with shard_size = {self.shard_size} over {len(self.sizes)} "
                f"(K, L) groups makes {self.shard_count()} shard files, more than {MAX_SHARDS}: "
                "lower samples or raise shard_size"
            )
        if self.samples >= 2**62:
            raise ValueError(f"samples = {self.samples} is too large (sample indices are int64)")
        return self

    def shard_count(self) -> int:
        """Number of shard files (computed, not by building the plan)."""
        return len(self.sizes) * -(-self.samples // self.shard_size)

    def group_seed(self, K: int, L: int) -> int:
        return stream_seed(self.seed, f"dataset/K={K}/L={L}")

    def group_scenario(self, K: int, L: int) -> Scenario:
        return self.scenario.with_(K=K, L=L)

    def iter_plan(self) -> Iterator[ShardTask]:
        """The shards, lazily, in (sizes order, start) order."""
        for K, L in self.sizes:
            for start in range(0, self.samples, self.shard_size):
                yield ShardTask(K, L, start, min(self.shard_size, self.samples - start))

    def plan(self) -> list[ShardTask]:
        return list(self.iter_plan())

    def identity(self) -> dict[str, Any]:
        """The JSON that defines the content (what the manifest stores and compares)."""
        return self.model_dump(mode="json")


def _tree_train() -> DatasetSpec:
    """Tree-transformer training set (Sect. III-A): 8000 samples for each K in {2,4,6,8,10}, L = 16."""
    return DatasetSpec(
        scenario=preset("tree-transformer"), sizes=[(k, 16) for k in (2, 4, 6, 8, 10)], samples=8000
    )


def _tree_test() -> DatasetSpec:
    """Tree-transformer test grid (Sect. III-A): 200 samples for each K = 2..40 and L in {1,4,9,16,25}."""
    return DatasetSpec(
        scenario=preset("tree-transformer"),
        sizes=[(k, l) for l in (1, 4, 9, 16, 25) for k in range(2, 41)],
        samples=200,
        seed=1,
    )


def _elu_train() -> DatasetSpec:
    """ELU-CosFormer training set (Sect. V-A): 8000 samples for K in {5, 10}, L = 16, no labels:
    they depend on the model's clusters and are computed during training from the stored
    positions, gains and the sample's seed (which regenerates its channels)."""
    return DatasetSpec(
        scenario=preset("elu-cosformer"), sizes=[(5, 16), (10, 16)], samples=8000, labels=False
    )


#: deployments of the site study (issue 15): book drops, a fixed AP layout, a site with a field
DEPLOYMENTS = ("book", "fixed", "site")


def deployment_scenario(scenario: Scenario, deployment: str, deployment_seed: int = 0) -> Scenario:
    """``scenario`` under one of ``DEPLOYMENTS``: "book" (unchanged: APs, UEs and shadowing redrawn
    per sample), "fixed" (one AP layout per ``deployment_seed``, shadowing still drawn per sample,
    as the Tree-Transformer authors' data), "site" (the fixed layout and one shadowing field per
    AP, so a place always has the same gains)."""
    if deployment not in DEPLOYMENTS:
        raise ValueError(f"deployment must be one of {', '.join(DEPLOYMENTS)}, got {deployment!r}")
    if deployment == "book":
        return scenario
    return scenario.with_(
        ap_deployment="fixed", deployment_seed=deployment_seed, shadowing_field=deployment == "site"
    )


def _tree_site_train(deployment: str = "site") -> DatasetSpec:
    """Site training set: as ``tree-transformer-train`` (5 x 8000, L = 16) on site
    ``deployment_seed`` 0 (fixed AP layout and, for "site", a fixed shadowing field)."""
    base = _tree_train()
    return base.model_copy(update={"scenario": deployment_scenario(base.scenario, deployment)})


def _tree_site_test(deployment: str = "site") -> DatasetSpec:
    """Site test set: new UE positions on the training site, K = 2..40, L = 16, 200 each (seed 1)."""
    return DatasetSpec(
        scenario=deployment_scenario(preset("tree-transformer"), deployment),
        sizes=[(k, 16) for k in range(2, 41)],
        samples=200,
        seed=1,
    )


def _ee_train() -> DatasetSpec:
    """ee-gnn training set (Sect. V): 10,240 samples for each Table II size (L, K) = (5, 10),
    (10, 10), (15, 15), no labels: positions, gains and serving masks are stored, and each sample's
    perfect-CSI MRT gains (eq. (2)) regenerate from its seed (``data.generation.regenerate_ee``)."""
    return DatasetSpec(
        scenario=preset("ee-gnn"), sizes=[(10, 5), (10, 10), (15, 15)], samples=10_240, labels=False
    )


def _ee_test() -> DatasetSpec:
    """ee-gnn test set (Sect. V): 1,024 samples per Table II size, a different seed, no labels."""
    return DatasetSpec(
        scenario=preset("ee-gnn"), sizes=[(10, 5), (10, 10), (15, 15)], samples=1_024, seed=1, labels=False
    )


DATASET_PRESETS = {
    "tree-transformer-train": _tree_train,
    "tree-transformer-test": _tree_test,
    "elu-cosformer-train": _elu_train,
    "tree-transformer-site-train": _tree_site_train,
    "tree-transformer-site-test": _tree_site_test,
    "tree-transformer-fixed-train": lambda: _tree_site_train("fixed"),
    "tree-transformer-fixed-test": lambda: _tree_site_test("fixed"),
    "ee-gnn-train": _ee_train,
    "ee-gnn-test": _ee_test,
}


def dataset_preset(name: str, **overrides: Any) -> DatasetSpec:
    if name not in DATASET_PRESETS:
        raise ValueError(
            f"unknown dataset preset {name!r}; choose one of: {', '.join(sorted(DATASET_PRESETS))}"
        )
    base = DATASET_PRESETS[name]()
    return DatasetSpec.model_validate({**base.model_dump(), **overrides})


def load_spec_file(path: str | os.PathLike) -> DatasetSpec:
    """A DatasetSpec from a YAML file; ValueError naming the file on any problem."""
    from cfmimo.config import reject_bool_numbers
    from cfmimo.yamlio import load_yaml_file

    # the safe reader: UTF-8 only, no anchors/aliases (no alias bombs), no duplicate keys; errors name the file
    data = load_yaml_file(path, "spec file")
    if not isinstance(data, dict):
        raise ValueError(
            f"spec file {path} must hold a mapping (scenario, sizes, samples, ...), got {type(data).__name__}"
        )
    try:
        reject_bool_numbers(DatasetSpec, data)  # `samples: true` is not 1 sample
        return DatasetSpec.model_validate(data)
    except ValueError as err:
        raise ValueError(f"spec file {path}: {err}") from None
