"""What a model reports each epoch and at the end: ranks, thresholds, size, MACs."""

from __future__ import annotations

from typing import Any

from torch import nn

from edge_str.cnn import budget_report, weight_storage
from edge_str.cnn.cost import cnn_cost
from edge_str.config import TrainConfig
from edge_str.fastgrnn import FastGRNNClassifier

FLOAT32_BYTES = 4


def model_summary(model: nn.Module) -> dict[str, Any]:
    """Size and structure of ``model`` as it will be deployed (after bake + compaction)."""
    if isinstance(model, FastGRNNClassifier):
        cost = model.cost()
        return {
            "ranks": model.effective_ranks(),
            "full_ranks": model.full_ranks(),
            "thresholds": model.thresholds(),
            "params": cost.params_compact,
            "params_trained": cost.params_trained,
            "bytes": cost.params_compact * FLOAT32_BYTES,
            "macs_per_step": cost.macs_per_step_compact,
            "macs_per_step_trained": cost.macs_per_step_trained,
            "head_macs": cost.head_macs,
        }
    # CNNs: the learned (or scheduled) sparsity budget decides size and MACs.
    return cnn_cost(budget_report(model), weight_storage(model))


def final_summary(
    cfg: TrainConfig,
    model: nn.Module,
    *,
    method: str,
    test_accuracy: float,
    val_accuracy: float,
    best_epoch: int,
    epochs: int,
    train_seconds: float,
    **extra: Any,
) -> dict[str, Any]:
    """RUN/final.json: the run's settings and accuracies, then ``model_summary(model)``.

    The one builder for a trained run (``trainer``) and a run made without training (the
    study's SVD truncations); ``extra`` holds what only one of them knows (e.g. svd_seconds).
    """
    return {
        "task": cfg.task,
        "arch": cfg.model.arch,
        "method": method,
        "test_accuracy": test_accuracy,
        "val_accuracy": val_accuracy,
        "best_epoch": best_epoch,
        "epochs": epochs,
        "train_seconds": train_seconds,
        "seed": cfg.seed,
        **extra,
        **model_summary(model),
    }


def format_summary(summary: dict[str, Any]) -> str:
    """Short text for the per-epoch line."""
    if "ranks" in summary:
        ranks, full = summary["ranks"], summary["full_ranks"]
        return (
            f"ranks W {ranks['W']}/{full['W']} U {ranks['U']}/{full['U']} "
            f"params {summary['params']:,}"
        )
    return (
        f"sparsity {summary['sparsity']:.1%} params {summary['params']:,} "
        f"MACs {summary['macs']:,}/{summary['macs_dense']:,}"
    )
