"""The checks every exported file passes before it is written, and what it weighs.

``check_graph``: the ONNX checker (full, with strict shape inference) plus a standard-op allow
list; ``check_parity``: max |onnxruntime - torch| and top-1 agreement against the torch
reference; ``weight_bytes``: bytes of all initializers.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import onnx
from onnx import helper

from edge_str.errors import EdgeStrError


def all_nodes(graph: onnx.GraphProto):
    """Every node of ``graph``, including those of subgraphs (a Scan's loop body)."""
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                yield from all_nodes(attribute.g)
            for sub in attribute.graphs:
                yield from all_nodes(sub)


def op_types(model: onnx.ModelProto) -> set[str]:
    return {n.op_type for n in all_nodes(model.graph)}


def op_count(model: onnx.ModelProto, op_type: str) -> int:
    return sum(node.op_type == op_type for node in model.graph.node)


def check_graph(model: onnx.ModelProto, allowed: frozenset[str] | set[str], what: str) -> None:
    """ONNX checker (with strict shape inference) plus the standard-op allow list."""
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as error:
        raise EdgeStrError(f"{what}: ONNX checker failed: {str(error).splitlines()[0]}") from None
    foreign = {
        f"{n.domain}::{n.op_type}" if n.domain not in ("", "ai.onnx") else n.op_type
        for n in all_nodes(model.graph)
        if n.domain not in ("", "ai.onnx") or n.op_type not in allowed
    }
    if foreign:
        raise EdgeStrError(
            f"{what}: uses ops outside the standard set: {', '.join(sorted(foreign))}"
        )


def weight_bytes(model: onnx.ModelProto) -> int:
    """Bytes of all initializers (weights, biases, normalisation statistics, constants)."""
    return sum(
        int(np.prod(t.dims, dtype=np.int64)) * helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
        for t in model.graph.initializer
    )


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of rows whose top-1 class is the same in ``a`` and ``b``."""
    return float((a.argmax(1) == b.argmax(1)).mean())


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max())


def accuracy_of(logits: np.ndarray, y: np.ndarray | None) -> float | None:
    return None if y is None else float((logits.argmax(1) == y).mean())


def check_parity(
    onnx_logits: np.ndarray, reference: np.ndarray, what: str, tolerance: float
) -> dict[str, Any]:
    """max |onnx - torch| <= ``tolerance`` and the same top-1 class on every example.

    A top-1 flip counts only where the reference's top two logits are within the tolerance
    (a tie to float32 rounding); any other disagreement fails the export.
    """
    if onnx_logits.shape != reference.shape:
        raise EdgeStrError(f"{what}: logits of shape {onnx_logits.shape}, torch {reference.shape}")
    diff = max_abs_diff(onnx_logits, reference)
    agree = agreement(onnx_logits, reference)
    flips = onnx_logits.argmax(1) != reference.argmax(1)
    top2 = np.sort(reference, axis=1)[:, -2:]
    real_flips = int((flips & (top2[:, 1] - top2[:, 0] > tolerance)).sum())
    if not math.isfinite(diff) or diff > tolerance or real_flips:
        raise EdgeStrError(
            f"{what}: onnxruntime disagrees with torch (max |diff| {diff:.3g} > "
            f"{tolerance:g} or top-1 agreement {agree:.2%}); not exported"
        )
    return {"max_abs_diff": diff, "top1_agreement": agree}
