"""`edge-str evaluate`: accuracy, per-class report and confusion matrix of a trained run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

EVAL_FILE, CONFUSION_PNG = "eval.json", "confusion.png"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="evaluate a trained run",
        description=(
            "Accuracy, per-class precision/recall/F1 and confusion matrix: a short summary on "
            "stdout, the whole report in RUN/eval.json (or on stdout with --json) and the "
            "confusion matrix as a labelled PNG, RUN/confusion.png."
        ),
    )
    p.add_argument("run", help="run directory made by `edge-str train`")
    p.add_argument("--data", help="another data tree of the same task (default: the run's)")
    p.add_argument("--split", choices=("test", "val"), default="test")
    p.add_argument("--json", action="store_true", help="print the whole report as JSON")
    p.set_defaults(func=run)


def evaluate_run(run_dir: str | Path, data_dir: str | None = None, split: str = "test") -> dict:
    """Evaluate the kept model of ``run_dir`` on a split; the model's own normalisation is used."""
    from edge_str.atomic import write_json
    from edge_str.data import load_task
    from edge_str.errors import EdgeStrError
    from edge_str.run import load_trained_model
    from edge_str.training import classification_summary, predict
    from edge_str.training.confusion_plot import plot_confusion

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
    title = f"{Path(run_dir).name}: {split} accuracy {result['accuracy']:.1%}"
    png = plot_confusion(
        result["confusion_matrix"], result["class_names"], Path(run_dir) / CONFUSION_PNG, title
    )
    result["confusion_png"] = str(png)
    write_json(Path(run_dir) / EVAL_FILE, result)
    return result


def summary(result: dict) -> str:
    """A few lines: accuracy, macro F1, the weakest classes, where the report and PNG are."""
    recalls = sorted(result["per_class"].items(), key=lambda item: item[1]["recall"])
    weakest = ", ".join(f"{name} {r['recall']:.0%}" for name, r in recalls[:3])
    return "\n".join(
        [
            f"{result['split']} accuracy {result['accuracy']:.2%} on {result['examples']} "
            f"examples, macro F1 {result['macro_avg']['f1-score']:.3f}",
            f"lowest recall: {weakest}",
            f"report: {Path(result['run']) / EVAL_FILE}; confusion matrix: "
            f"{result['confusion_png']}",
        ]
    )


def run(args: argparse.Namespace) -> int:
    result = evaluate_run(args.run, args.data, args.split)
    print(json.dumps(result, indent=2) if args.json else summary(result))
    return 0
