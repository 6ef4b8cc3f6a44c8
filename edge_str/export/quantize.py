"""Weight-only 8-bit quantization of an exported graph, and its plain dequantized arithmetic.

``quantize_weights``: every weight of the given ops stored as int8 with a float scale
(symmetric per tensor, so an exact zero stays exactly zero) and one ``DequantizeLinear`` that
runs once per call; compute stays float. ``dequantized_model``: the same graph with each
DequantizeLinear replaced by its float result, w = (q - zero) · scale, computed here: the
arithmetic a C runtime does, against which the int8 file's results are also reported.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edge_str.export.checks import all_nodes

# Ops whose input 1 is a weight that ``quantize_weights`` may store as int8, and its rank.
MATMUL_WEIGHTS = frozenset({"MatMul"})  # FastGRNN: every product is a MatMul on a named matrix
_WEIGHT_RANK = {"MatMul": 2, "Gemm": 2, "Conv": 4}
_INT8_STORAGE_EXTRA = 4 + 1  # a float32 scale and an int8 zero point per quantized weight


def quantizable_weights(
    model: onnx.ModelProto, weight_ops: Collection[str] = MATMUL_WEIGHTS
) -> list[str]:
    """Names of the initializers ``quantize_weights`` stores as int8, sorted.

    The weight input (input 1) of every node whose op is in ``weight_ops``, in the graph or a
    subgraph (a Scan's loop body reads the outer graph's initializers): a 2-D MatMul/Gemm
    matrix, or a Conv kernel (C_out, C_in / groups, k_h, k_w).
    """
    inits = {t.name: t for t in model.graph.initializer}
    return sorted(
        {
            n.input[1]
            for n in all_nodes(model.graph)
            if n.op_type in weight_ops
            and len(n.input) > 1
            and n.input[1] in inits
            and len(inits[n.input[1]].dims) == _WEIGHT_RANK.get(n.op_type, 2)
        }
    )


def int8_weight_bytes_estimate(
    model: onnx.ModelProto, weight_ops: Collection[str] = MATMUL_WEIGHTS
) -> int:
    """Initializer bytes after per-tensor 8-bit quantization of every weight (MatMul by default).

    What ``--int8`` stores: int8 values plus a float32 scale and an int8 zero point per weight;
    everything else (biases, statistics, constants) stays as it is.
    """
    matrices = set(quantizable_weights(model, weight_ops))
    total = 0
    for t in model.graph.initializer:
        numel = int(np.prod(t.dims, dtype=np.int64))
        if t.name in matrices:
            total += numel + _INT8_STORAGE_EXTRA
        else:
            total += numel * helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
    return total


def quantize_weights(
    float_path: Path, weight_ops: Collection[str] = MATMUL_WEIGHTS
) -> onnx.ModelProto:
    """8-bit weights: every weight of ``weight_ops`` stored as int8 with a scale, float compute.

    Weight-only quantization with onnxruntime's quantization math (``quantize_data``, symmetric
    per-tensor int8, so an exact zero stays exactly zero): each weight becomes an int8
    initializer and one ``DequantizeLinear`` that runs once per call. Unlike
    ``quantize_dynamic``, which adds quantize/rescale nodes to every product (of every step of
    FastGRNN's unrolled time loop), this keeps the graph's node count plus one node per weight
    and always shrinks the weights by ~4x, which is what a device stores.
    """
    from onnxruntime.quantization.quant_utils import quantize_data

    model = onnx.load(str(float_path))
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    dequantize = []
    for name in quantizable_weights(model, weight_ops):
        values = numpy_helper.to_array(inits[name])
        zero_point, scale, quantized = quantize_data(
            values.ravel(), onnx.TensorProto.INT8, symmetric=True
        )
        graph.initializer.remove(inits[name])
        graph.initializer.extend(
            [
                numpy_helper.from_array(quantized.reshape(values.shape), f"{name}_q"),
                numpy_helper.from_array(np.asarray(scale, np.float32), f"{name}_scale"),
                numpy_helper.from_array(np.asarray(zero_point, np.int8), f"{name}_zero"),
            ]
        )
        dequantize.append(
            helper.make_node(
                "DequantizeLinear", [f"{name}_q", f"{name}_scale", f"{name}_zero"], [name]
            )
        )
    nodes = dequantize + list(graph.node)  # weights first: the graph stays topologically sorted
    del graph.node[:]
    graph.node.extend(nodes)
    props = {p.key: p.value for p in model.metadata_props}
    props["edge_str.graph"] += "-int8"
    helper.set_model_props(model, props)
    return model


def dequantized_model(quantized: onnx.ModelProto) -> onnx.ModelProto:
    """A float copy of ``quantized`` with every DequantizeLinear's output precomputed.

    w = (q - zero) · scale in float32 (ONNX DequantizeLinear, per tensor): the int8 file's
    weights as a plain runtime multiplies with them.
    """
    model = onnx.ModelProto()
    model.CopyFrom(quantized)
    graph = model.graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    consumed, weights, kept = set(), [], []
    for node in graph.node:
        if node.op_type != "DequantizeLinear":
            kept.append(node)
            continue
        q, scale, zero = (inits[name] for name in node.input)
        values = (q.astype(np.float32) - np.float32(zero)) * np.float32(scale)
        weights.append(numpy_helper.from_array(values.astype(np.float32), node.output[0]))
        consumed.update(node.input)
    del graph.node[:]
    graph.node.extend(kept)
    others = [t for t in graph.initializer if t.name not in consumed]
    del graph.initializer[:]
    graph.initializer.extend(others + weights)
    return model
