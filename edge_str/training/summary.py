"""What a model reports each epoch and at the end: ranks, thresholds, size, MACs."""

from __future__ import annotations

from typing import Any

from torch import nn

from edge_str.baselines import RNNClassifier
from edge_str.cnn import budget_report, weight_storage
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
    if isinstance(model, RNNClassifier):  # nothing to compact: as trained is as deployed
        cost = model.cost()
        return {
            "params": cost.params_compact,
            "bytes": cost.params_compact * FLOAT32_BYTES,
            "macs_per_step": cost.macs_per_step_compact,
            "head_macs": cost.head_macs,
        }
    # CNNs: the learned (or scheduled) sparsity budget decides size and MACs.
    budget = budget_report(model)
    storage = weight_storage(model)
    return {
        "sparsity": budget["sparsity"],
        "params": budget["nonzero"] + budget["other_params"],
        "params_dense": budget["params"] + budget["other_params"],
        "bytes": storage["total_best_bytes"],
        "bytes_dense": storage["total_dense_bytes"],
        "macs": budget["sparse_macs"],
        "macs_dense": budget["dense_macs"],
    }


def format_summary(summary: dict[str, Any]) -> str:
    """Short text for the per-epoch line."""
    if "ranks" in summary:
        ranks, full = summary["ranks"], summary["full_ranks"]
        return (
            f"ranks W {ranks['W']}/{full['W']} U {ranks['U']}/{full['U']} "
            f"params {summary['params']:,}"
        )
    if "sparsity" not in summary:
        return f"params {summary['params']:,} MACs/step {summary['macs_per_step']:,}"
    return (
        f"sparsity {summary['sparsity']:.1%} params {summary['params']:,} "
        f"MACs {summary['macs']:,}/{summary['macs_dense']:,}"
    )
