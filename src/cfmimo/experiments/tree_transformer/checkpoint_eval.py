"""Score any trained position model on a finished tree-transformer run's test grid, exactly as the
run scores its own models (``run._evaluate``: same noisy inputs, rescaler and stored statistics):
for reference experiments trained outside the reproduction (e.g. other training sizes).

    python -m cfmimo.experiments.tree_transformer.checkpoint_eval RUN_DIR CHECKPOINT --name NAME [--out FILE.json]

RUN_DIR is a finished run (its results.json gives the config: test set, noise, seed).

Writes (or prints) the model's worst-UE and mean per-UE SE gaps to the max-min optimum averaged over
the whole test grid (``min_se_gap_*``, ``mean_se_gap_*``: what ``metrics.study`` reports), the same
per training-size group when the checkpoint's training sizes are known, and every per-size row.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from cfmimo.config import atomic_write_text
from cfmimo.data.spec import DatasetSpec
from cfmimo.data.storage import load_dataset, read_manifest
from cfmimo.experiments.training import TrainedPowerModel
from cfmimo.experiments.tree_transformer.config import TreeTransformerConfig, specs
from cfmimo.experiments.tree_transformer.run import _evaluate, _gaps
from cfmimo.learn.trainer import load_trained


def evaluate_checkpoint(run_dir: Path, checkpoint: Path, *, name: str) -> dict[str, Any]:
    """The gaps of the checkpoint's model on ``run_dir``'s test set (module docstring)."""
    results = Path(run_dir) / "results.json"
    if not results.is_file():
        raise ValueError(f"{run_dir} is not a finished tree-transformer run (no results.json)")
    config = TreeTransformerConfig.model_validate(json.loads(results.read_text())["config"])
    train_spec, _ = specs(config)
    test = load_dataset(Path(run_dir) / "data" / "test").groups
    tm = load_trained(checkpoint)
    model = TrainedPowerModel(tm.model, tm.scaler, tm.frame, str(checkpoint), float("nan"), 0, 0.0, 0.0)
    rows, _ = _evaluate(config, {name: model}, test, train_spec.scenario)
    trained_sizes = sorted(
        tuple(s) for s in DatasetSpec.model_validate(read_manifest(tm.config.data.train)["spec"]).sizes
    )
    in_training = [r for r in rows if (r["K"], r["L"]) in set(trained_sizes)]
    return {
        "checkpoint": str(checkpoint),
        "training_config": tm.config.to_dict(),
        "training_sizes": [list(s) for s in trained_sizes],
        "test_sizes": len(rows),
        "grid": _gaps(rows, name),
        "training_sizes_only": _gaps(in_training, name) if in_training else None,
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--name", required=True)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    result = evaluate_checkpoint(args.run_dir, args.checkpoint, name=args.name)
    text = json.dumps(result, indent=1)
    if args.out:
        atomic_write_text(args.out, text)
    print(json.dumps({k: result[k] for k in ("grid", "training_sizes_only")}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
