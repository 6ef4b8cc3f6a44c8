"""`edge-str evaluate`: accuracy, per-class report and confusion matrix of a trained run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="evaluate a trained run",
        description="Accuracy, per-class precision/recall/F1 and confusion matrix, as JSON.",
    )
    p.add_argument("run", help="run directory made by `edge-str train`")
    p.add_argument("--data", help="another data tree of the same task (default: the run's)")
    p.add_argument("--split", choices=("test", "val"), default="test")
    p.set_defaults(func=run)


def evaluate_run(run_dir: str | Path, data_dir: str | None = None, split: str = "test") -> dict:
    """Evaluate the kept model of ``run_dir`` on a split; the model's own normalisation is used."""
    from edge_str.atomic import write_json
    from edge_str.data import load_task
    from edge_str.errors import EdgeStrError
    from edge_str.run import load_trained_model
    from edge_str.training import classification_summary, predict

    info, model = load_trained_model(run_dir)
    cfg = info.config
    data = load_task(cfg.task, data_dir or cfg.data_dir, cfg.data)
    if list(data.class_names) != list(info.class_names):
        raise EdgeStrError(
            f"{data_dir}: classes {data.class_names} differ from the run's {info.class_names}"
        )
    x, y = data.split_tensors(split)
    if len(y) == 0:
        raise EdgeStrError(f"{data_dir or cfg.data_dir}: the {split} split is empty")
    result = {
        "run": str(run_dir),
        "data": str(data_dir or cfg.data_dir),
        "split": split,
        **classification_summary(y, predict(model, x), list(info.class_names)),
    }
    write_json(Path(run_dir) / "eval.json", result)
    return result


def run(args: argparse.Namespace) -> int:
    result = evaluate_run(args.run, args.data, args.split)
    print(json.dumps(result, indent=2))
    return 0
