"""What a model reports each epoch and at the end: ranks, thresholds, size, MACs.

One function per family for each report; ``edge_str.families`` names them as the family's
hooks, and ``model_summary`` / ``format_summary`` dispatch through it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from edge_str.cnn import ImageClassifier, budget_report, plot_budget, weight_storage
from edge_str.cnn.cost import cnn_cost
from edge_str.families import family_of, family_of_model
from edge_str.fastgrnn import FastGRNNClassifier

FLOAT32_BYTES = 4


def model_summary(model: nn.Module) -> dict[str, Any]:
    """Size and structure of ``model`` as it will be deployed (after bake + compaction)."""
    return family_of_model(model).summary(model)


def final_summary(
    cfg: Any,
    model: nn.Module,
    *,
    test_accuracy: float,
    val_accuracy: float,
    best_epoch: int,
    epochs: int,
    train_seconds: float,
    method: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """RUN/final.json: the run's settings and accuracies, then ``model_summary(model)``.

    The one builder for a trained run (``trainer``) and a run made without training (the
    study's SVD truncations). ``method`` defaults to the family's (how FastGRNN's W and U are
    factored, how a CNN's weights are sparsified); ``extra`` holds what only one caller knows
    (e.g. svd_seconds).
    """
    return {
        "task": cfg.task,
        "arch": cfg.model.arch,
        "method": family_of(cfg.model.arch).method(cfg.model) if method is None else method,
        "test_accuracy": test_accuracy,
        "val_accuracy": val_accuracy,
        "best_epoch": best_epoch,
        "epochs": epochs,
        "train_seconds": train_seconds,
        "seed": cfg.seed,
        **extra,
        **model_summary(model),
    }


def format_summary(summary: dict[str, Any], arch: str) -> str:
    """Short text for the per-epoch line of a model of ``arch``."""
    return family_of(arch).epoch_text(summary)


# ----------------------------------------------------------------------------- FastGRNN


def is_fastgrnn(model: nn.Module) -> bool:
    return isinstance(model, FastGRNNClassifier)


def fastgrnn_summary(model: FastGRNNClassifier) -> dict[str, Any]:
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


def _ranks_text(summary: dict[str, Any]) -> str:
    ranks, full = summary["ranks"], summary["full_ranks"]
    return f"ranks W {ranks['W']}/{full['W']} U {ranks['U']}/{full['U']}"


def fastgrnn_epoch_text(summary: dict[str, Any]) -> str:
    return f"{_ranks_text(summary)} params {summary['params']:,}"


def fastgrnn_final_text(final: dict[str, Any]) -> str:
    return _ranks_text(final)


# ----------------------------------------------------------------------------- CNN


def is_cnn(model: nn.Module) -> bool:
    return isinstance(model, ImageClassifier)


def cnn_summary(model: nn.Module) -> dict[str, Any]:
    # The learned (or scheduled) sparsity budget decides size and MACs (the one cost model).
    return cnn_cost(budget_report(model), weight_storage(model))


def cnn_epoch_text(summary: dict[str, Any]) -> str:
    return (
        f"sparsity {summary['sparsity']:.1%} params {summary['params']:,} "
        f"MACs {summary['macs']:,}/{summary['macs_dense']:,}"
    )


def cnn_final_text(final: dict[str, Any]) -> str:
    return f"sparsity {final['sparsity']:.1%}, MACs {final['macs']:,}"


def cnn_final_extras(model: nn.Module, cfg: Any, run_dir: Path) -> dict[str, Any]:
    """final.json's per-layer budget, also plotted to RUN/budget.png."""
    budget = budget_report(model)
    plot_budget(budget, Path(run_dir) / "budget.png", title=f"{cfg.model.arch} on {cfg.task}")
    return {"budget": budget}


# ----------------------------------------------------------------------------- GRU / LSTM


def is_rnn_baseline(model: nn.Module) -> bool:
    from edge_str.baselines import RNNClassifier

    return isinstance(model, RNNClassifier)


def rnn_baseline_summary(model: nn.Module) -> dict[str, Any]:
    # Nothing to compact: as trained is as deployed.
    cost = model.cost()
    return {
        "params": cost.params_compact,
        "bytes": cost.params_compact * FLOAT32_BYTES,
        "macs_per_step": cost.macs_per_step_compact,
        "head_macs": cost.head_macs,
    }


def rnn_baseline_epoch_text(summary: dict[str, Any]) -> str:
    return f"params {summary['params']:,} MACs/step {summary['macs_per_step']:,}"


def rnn_baseline_final_text(final: dict[str, Any]) -> str:
    return f"MACs/step {final['macs_per_step']:,}"
