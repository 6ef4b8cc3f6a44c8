"""The one cost model of a sparse CNN: what the training summary, the export report and the
study give as its size and MACs, from its sparsity budget and its weight storage."""

from __future__ import annotations

from typing import Any


def cnn_cost(budget: dict[str, Any], storage: dict[str, Any]) -> dict[str, Any]:
    """Sparsity, params (zeros dropped) and bytes (best sparse format), MACs; each beside its
    dense value. ``budget``: ``flops.budget_report``; ``storage``: ``storage.weight_storage``."""
    return {
        "sparsity": budget["sparsity"],
        "params": budget["nonzero"] + budget["other_params"],
        "params_dense": budget["params"] + budget["other_params"],
        "bytes": storage["total_best_bytes"],
        "bytes_dense": storage["total_dense_bytes"],
        "macs": budget["sparse_macs"],
        "macs_dense": budget["dense_macs"],
    }
