"""Configuration of ``cfmimo reproduce tree-transformer``: the paper's Table II, the run config
(``TreeTransformerConfig``; defaults are the paper's), the settings of the site study (issue 15) and
the dataset specs a config implies (``specs``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from cfmimo.config import preset
from cfmimo.data.spec import DatasetSpec, deployment_scenario
from cfmimo.sim.shadowing_field import check_same_site

PAPER_TABLE2 = {  # Table II of the paper (K = 40, L = 16)
    "tree_transformer": {"params": 584_354, "latency_ms": 3.57, "avg_se": 2.01},
    "transformer": {"params": 845_826, "latency_ms": 28.46, "avg_se": 1.66},
    "cosformer": {"params": 102_338, "latency_ms": 7.11, "avg_se": 1.80},
    "performer": {"params": 102_338, "latency_ms": 25.45, "avg_se": 1.81},
}


class TreeTransformerConfig(BaseModel):
    """Defaults are the paper's (Sect. III-A, Table I, Sect. IV); ``quick()`` is a small real run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["full", "quick"] = "full"
    train_K: list[int] = [2, 4, 6, 8, 10]  # Sect. III-A
    train_L: int = 16
    train_samples: int = 8000
    test_K: list[int] = list(range(2, 41))  # K = 2, ..., 40
    test_L: list[int] = [1, 4, 9, 16, 25]
    test_samples: int = 200
    realizations: int = 100
    sigma_ue_m: float = 5.0  # eq. (10)
    epochs: int = 100  # Table I
    batch_size: int = 128
    lr: float = 1e-3
    # a name + SE_TERM_SUFFIX (e.g. "tree_transformer_gain_se", not a paper model) is that model
    # trained with the worst-UE SE term (``cfmimo.learn.config.SeTermConfig``, weight se_term_lam)
    models: list[str] = ["tree_transformer", "transformer", "cosformer", "performer"]
    se_term_lam: float = 0.01
    baselines_L: int = 16  # the fixed-L token baselines
    table_K: int = 40  # Table II
    latency_K: list[int] = [10, 100, 1000, 10_000]
    reference_samples: int = 50  # per test size, for the positions-only references
    seed: int = 0
    # the site study (issue 15, item 4): "book" drops (the paper's setting as we read it), "fixed"
    # (one AP layout per deployment_seed, shadowing per drop), "site" (the fixed layout and a fixed
    # shadowing field). Off the book's drops the site has train_L APs, so the test grid is L = train_L.
    deployment: Literal["book", "fixed", "site"] = "book"
    deployment_seed: int = 0

    @classmethod
    def quick(cls) -> TreeTransformerConfig:
        return cls(
            mode="quick",
            train_samples=384,
            test_K=[2, 5, 10, 20, 40],
            test_L=[1, 4, 16, 25],
            test_samples=16,
            realizations=20,
            epochs=4,
            batch_size=64,
            latency_K=[10, 100, 1000],
        )


#: settings of the site study (issue 15, item 4): setting -> (deployment, model of the setting)
STUDY_SETTINGS = {
    "a": ("book", "tree_transformer"),
    "b": ("fixed", "tree_transformer"),
    "c": ("site", "tree_transformer"),
    "d": ("book", "tree_transformer_gain"),
}


#: a model name with this suffix is the model trained with the worst-UE SE term (``models``)
SE_TERM_SUFFIX = "_se"


def split_model_name(name: str) -> tuple[str, bool]:
    """(architecture name, trained with the SE term?) of a ``models`` entry."""
    if name.endswith(SE_TERM_SUFFIX):
        return name[: -len(SE_TERM_SUFFIX)], True
    return name, False


def study_setting(deployment: str, model: str) -> str:
    """The study setting (a-d) of a tree model under a deployment; other pairs get a descriptive
    label (e.g. "c+gains": the gain-aware model on the site, the upper reference of setting c;
    "d+se": setting d's model trained with the worst-UE SE term)."""
    base, se_term = split_model_name(model)
    if se_term:
        return f"{study_setting(deployment, base)}+se"
    for key, pair in STUDY_SETTINGS.items():
        if pair == (deployment, model):
            return key
    base = next(k for k, (d, m) in STUDY_SETTINGS.items() if d == deployment and m == "tree_transformer")
    return f"{base}+gains" if model == "tree_transformer_gain" else f"{base}:{model}"


def specs(config: TreeTransformerConfig) -> tuple[DatasetSpec, DatasetSpec]:
    """(training, test) dataset specs of a config: the paper's sizes under ``config.deployment``
    (the test grid keeps only L = train_L off the book's drops: the site has train_L APs); the
    test samples are new UE positions on the training site."""
    base = preset("tree-transformer", realizations=config.realizations)
    scenario = deployment_scenario(base, config.deployment, config.deployment_seed)
    test_L = config.test_L if config.deployment == "book" else [config.train_L]
    train = DatasetSpec(
        scenario=scenario,
        sizes=[(k, config.train_L) for k in config.train_K],
        samples=config.train_samples,
        seed=config.seed,
    )
    test = DatasetSpec(
        scenario=scenario,
        sizes=[(k, l) for l in test_L for k in config.test_K],
        samples=config.test_samples,
        seed=config.seed + 1,
    )
    check_same_site(train.scenario, test.scenario, what="test set")
    return train, test
