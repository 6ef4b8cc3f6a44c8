"""Bytes to store the conv/linear weights: dense float32, and two sparse formats.

For a layer with n weights of which k are nonzero (Han et al., "Deep Compression", 2016, use
the same two ideas of storing only the nonzeros plus their positions):

    dense     4 n                    float32 values
    indices   (4 + b) k              float32 value + flat position in b bytes, b the smallest
                                     unsigned integer holding n - 1 (1, 2 or 4 bytes)
    bitmask   4 k + ceil(n / 8)      float32 values in order + one presence bit per weight

"best" is the smallest of the three for that layer. The rest of the float parameters and buffers
an inference graph carries (biases, batch norm, the input normaliser) are counted dense as
"other". Works on a trained model with STR/GMP still attached (effective weights) or baked.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from edge_str.cnn.sparsity import mask_parametrizations, prunable_layers
from edge_str.parametrization import threshold_parameters

FLOAT_BYTES = 4


def index_bytes(numel: int) -> int:
    """Bytes of the smallest unsigned integer that addresses ``numel`` positions."""
    for size in (1, 2, 4):
        if numel <= 1 << (8 * size):
            return size
    return 8


def layer_storage(name: str, weight: torch.Tensor) -> dict[str, Any]:
    n = weight.numel()
    k = int(torch.count_nonzero(weight))
    b = index_bytes(n)
    sizes = {
        "dense_bytes": FLOAT_BYTES * n,
        "indices_bytes": (FLOAT_BYTES + b) * k,
        "bitmask_bytes": FLOAT_BYTES * k + math.ceil(n / 8),
    }
    best = min(sizes, key=sizes.get)
    return {
        "layer": name,
        "numel": n,
        "nonzero": k,
        "index_bytes": b,
        **sizes,
        "best_format": best.removesuffix("_bytes"),
        "best_bytes": sizes[best],
    }


@torch.no_grad()
def weight_storage(model: nn.Module) -> dict[str, Any]:
    """Per-layer and total bytes of the conv/linear weights in each format, plus other floats."""
    layers = [layer_storage(name, module.weight) for name, module in prunable_layers(model)]
    skip = {id(p) for p in threshold_parameters(model)}
    skip |= {id(m.mask) for _, _, m in mask_parametrizations(model)}
    for _, module in prunable_layers(model):
        if hasattr(module, "parametrizations") and "weight" in module.parametrizations:
            skip.add(id(module.parametrizations.weight.original))
        else:
            skip.add(id(module.weight))
    seen: set[int] = set()
    other = 0
    for tensor in [*model.parameters(), *model.buffers()]:
        if id(tensor) in skip or id(tensor) in seen or not tensor.is_floating_point():
            continue  # thresholds and masks are training-only; num_batches_tracked is an int
        seen.add(id(tensor))
        other += tensor.numel()
    totals = {
        key: sum(layer[key] for layer in layers)
        for key in ("numel", "nonzero", "dense_bytes", "indices_bytes", "bitmask_bytes")
    }
    totals["best_bytes"] = sum(layer["best_bytes"] for layer in layers)
    return {
        "layers": layers,
        "weights": totals,
        "other_floats": other,
        "other_bytes": FLOAT_BYTES * other,
        "total_dense_bytes": totals["dense_bytes"] + FLOAT_BYTES * other,
        "total_best_bytes": totals["best_bytes"] + FLOAT_BYTES * other,
    }


__all__ = ["index_bytes", "layer_storage", "weight_storage"]
