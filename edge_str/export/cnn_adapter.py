"""The CNN family's part of the export pipeline (DS-CNN, ResNet, MobileNetV1): graph and report.

STR: Kusupati et al., "Soft Threshold Weight Reparameterization for Learnable Sparsity", ICML
2020 (unstructured case, g = sigmoid: every weight under its layer's threshold is exactly 0);
GMP: Zhu & Gupta 2017. Export = ``parametrization.baked_copy`` (thresholds / masks -> plain
weights with exact zeros) -> TorchScript export in eval mode (each BatchNorm folded into the
convolution before it; a per-output-channel scale keeps every zero a zero) -> graph clean-up ->
the pipeline's checks -> files.

    report = export_cnn_model(model, "dscnn.onnx", x, y, int8=True)   # x (N, *input_shape)

Graph: raw input (B, *input_shape) -> logits (B, classes), the training split's normaliser
inside (Sub, Div), then Unsqueeze ((T, F) features -> 1-channel image) or Transpose ((H, W, C)
images -> NCHW), Conv (+ Relu, Add for residuals, MaxPool for the ImageNet stem), ReduceMean
(global average pool) and Gemm. ``fold_constants`` evaluates the shape arithmetic the exporter
leaves around the DS-CNN's 'SAME' padding, and ``passes.fuse_pad_into_conv`` moves that (asymmetric)
padding into the Conv's own ``pads``. The weights keep their layer names (``stem.conv.weight``,
``layer1.0.conv1.weight``, ...; biases are the folded BatchNorm shifts), the names the report's
per-layer figures use.

Storage: the ONNX file holds every weight dense (zeros included); FILE.json gives what the
weights take stored dense, as values + indices and as values + bitmask (``weight_storage``), per
layer and in total, next to the budget (per-layer sparsity, dense and sparse MACs). ``--int8``:
the pipeline's weight-only int8 (one DequantizeLinear per Conv/Gemm weight, symmetric
per tensor, so pruned weights stay exactly 0). ``--streaming`` and ``--loop scan`` do not apply: a
CNN classifies the whole input at once and has no per-frame step or time loop.

Checks before anything is written (as for FastGRNN): ONNX checker (full), standard-op allow list,
max |onnxruntime - torch| <= PARITY_TOLERANCE and top-1 agreement on held-out inputs against the
trained (still parametrized) model, and every weight that is zero in torch is zero in the file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from edge_str.cnn.blocks import ImageClassifier
from edge_str.cnn.cost import cnn_cost
from edge_str.cnn.flops import budget_report
from edge_str.cnn.storage import weight_storage
from edge_str.errors import EdgeStrError
from edge_str.export import heldout
from edge_str.export.adapter import Checked, ExportAdapter, ExportJob, Fields, GraphSpec, Prepared
from edge_str.export.checks import weight_bytes
from edge_str.export.files import MAIN
from edge_str.export.options import ExportOptions
from edge_str.export.passes import fold_constants, fuse_pad_into_conv
from edge_str.export.report import kb
from edge_str.export.torch_onnx import describe, torch_logits, torch_to_onnx
from edge_str.parametrization import baked_copy

if TYPE_CHECKING:
    from edge_str.run import RunInfo

OUTPUT = "logits"

# Standard ONNX ops a CNN graph may use (default domain only). After BatchNorm folding and the
# clean-up the package's models need Sub, Div, Unsqueeze/Transpose, Conv, Relu, Add, MaxPool,
# ReduceMean and Gemm; the rest are the plain alternatives other exporter versions emit.
CNN_FLOAT_OPS = frozenset(
    {
        "Conv",
        "Gemm",
        "MatMul",
        "Relu",
        "BatchNormalization",
        "GlobalAveragePool",
        "ReduceMean",
        "MaxPool",
        "AveragePool",
        "Pad",
        "Add",
        "Sub",
        "Mul",
        "Div",
        "Reshape",
        "Flatten",
        "Transpose",
        "Squeeze",
        "Unsqueeze",
    }
)
CNN_INT8_OPS = CNN_FLOAT_OPS | {"DequantizeLinear"}
CNN_WEIGHT_OPS = frozenset({"Conv", "Gemm", "MatMul"})  # their input 1 is a layer's weight


def input_name(input_shape: Sequence[int]) -> str:
    """The graph input: "features" for (T, F) spectrograms, "image" for (H, W, C) images."""
    return "features" if len(input_shape) == 2 else "image"


def weight_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """Conv/Gemm/MatMul nodes whose weight (input 1) is an initializer, in graph order."""
    inits = {t.name for t in model.graph.initializer}
    return [
        n
        for n in model.graph.node
        if n.op_type in CNN_WEIGHT_OPS and len(n.input) > 1 and n.input[1] in inits
    ]


def match_layer_weights(
    model: onnx.ModelProto, layers: Sequence[tuple[str, torch.Tensor]]
) -> dict[str, str] | None:
    """Layer name -> its weight's initializer, renamed to ``<layer>.weight`` where unshared.

    ``layers``: (name, weight) of every conv/linear layer in forward order. The i-th weight node
    of the graph is the i-th layer when counts and shapes agree (a folded Conv weight has the
    layer's shape; a Gemm weight is (out, in) as nn.Linear's, a MatMul weight its transpose);
    otherwise None. Folded biases become ``<layer>.bias``.
    """
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    nodes = weight_nodes(model)
    if len(nodes) != len(layers):
        return None
    for node, (_, weight) in zip(nodes, layers):
        dims = tuple(inits[node.input[1]].dims)
        expected = tuple(weight.shape)
        if node.op_type == "MatMul":
            expected = expected[::-1]
        if dims != expected:
            return None
    uses: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    taken = set(inits)
    rename: dict[str, str] = {}
    for node, (layer, _) in zip(nodes, layers):
        for index, suffix in ((1, "weight"), (2, "bias")):
            if len(node.input) <= index or node.input[index] not in inits:
                continue
            old, new = node.input[index], f"{layer}.{suffix}"
            if old == new or uses[old] != 1 or new in taken or old in rename:
                continue
            rename[old] = new
            taken.add(new)
    for t in graph.initializer:
        t.name = rename.get(t.name, t.name)
    for node in graph.node:
        node.input[:] = [rename.get(i, i) for i in node.input]
    return {layer: node.input[1] for node, (layer, _) in zip(nodes, layers)}


def _onnx_weight(array: np.ndarray, node_type: str) -> np.ndarray:
    return array.T if node_type == "MatMul" else array


def _fully_pruned(layers: Sequence[tuple[str, torch.Tensor]]) -> list[str]:
    return [name for name, weight in layers if not bool(torch.any(weight != 0))]


def refuse_unexportable_cnn(model: nn.Module, what: str = "model") -> None:
    """Raise ``EdgeStrError`` for a model that is not a CNN of this package or not finite."""
    if not isinstance(model, ImageClassifier):
        raise EdgeStrError(
            f"{what}: the CNN exporter takes DS-CNN, ResNet or MobileNetV1 models, "
            f"not {type(model).__name__}"
        )
    with torch.no_grad():
        bad = [
            name
            for name, tensor in [*model.named_parameters(), *model.named_buffers()]
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())
        ]
    if bad:
        raise EdgeStrError(
            f"{what}: non-finite values in {', '.join(bad[:3])}"
            f"{' ...' if len(bad) > 3 else ''} (did training diverge?); nothing to export"
        )


@dataclass
class CNNPrepared(Prepared):
    model_input_shape: tuple[int, ...]
    budget: dict[str, Any]  # per-layer sparsity, MACs; STR thresholds (of the trained model)
    storage: dict[str, Any]
    baked: ImageClassifier
    baked_logits: np.ndarray
    layers: list[tuple[str, torch.Tensor]]  # (name, baked weight) of every conv/linear layer
    x: torch.Tensor
    layer_initializers: dict[str, str] | None = None  # layer -> its weight in the graph


class CNNAdapter(ExportAdapter):
    family = "cnn"

    def check_options(self, options: ExportOptions, what: str) -> None:
        if options.streaming:
            raise EdgeStrError(
                f"--streaming: {what}; a CNN classifies the whole input at once and has no "
                "per-frame step graph (export it without --streaming)"
            )
        if options.loop != "unrolled":
            raise EdgeStrError(
                f"--loop {options.loop}: {what}; a CNN has no time loop, --loop applies to "
                "FastGRNN runs only (export it without --loop)"
            )

    def check_model(self, model: nn.Module, options: ExportOptions, what: str) -> None:
        refuse_unexportable_cnn(model, what)

    def check_inputs(self, model: ImageClassifier, x: torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(x, dtype=torch.float32).cpu()
        shape = tuple(model.input_shape)
        if x.dim() != len(shape) + 1 or tuple(x.shape[1:]) != shape or len(x) == 0:
            raise EdgeStrError(
                f"held-out inputs of shape {tuple(x.shape)}; the model takes (N, "
                f"{', '.join(map(str, shape))})"
            )
        return x

    def random_inputs(self, model: ImageClassifier, info: RunInfo, n: int, seed: int):
        return random_inputs(model, n, seed)

    def prepare(self, model: ImageClassifier, x: torch.Tensor) -> CNNPrepared:
        was_training = model.training
        device = next(model.parameters()).device
        try:
            model.eval()
            reference = torch_logits(model, x.to(device)).cpu().numpy()  # the trained model
            budget = budget_report(model)
            storage = weight_storage(model)
            baked = baked_copy(model).cpu().eval()
        finally:
            model.train(was_training)
        baked_logits = torch_logits(baked, x).numpy()
        modules = dict(baked.named_modules())
        layers = [(e["layer"], modules[e["layer"]].weight.detach()) for e in budget["layers"]]
        pruned = _fully_pruned(layers)
        if not np.isfinite(reference).all():
            raise EdgeStrError(
                "the model gives non-finite logits on the held-out inputs; not exported"
            )
        if len(x) > 1 and float(np.ptp(reference, axis=0).max()) == 0.0:
            raise EdgeStrError(
                "the model's logits do not depend on its input"
                + (f" (fully pruned: {', '.join(pruned)})" if pruned else "")
                + "; nothing to export"
            )
        shape = tuple(model.input_shape)
        return CNNPrepared(reference, shape, budget, storage, baked, baked_logits, layers, x)

    def graphs(self, prepared: CNNPrepared, job: ExportJob) -> list[GraphSpec]:
        options, class_names, scratch = job.options, job.class_names, job.scratch
        shape = prepared.model_input_shape
        name = input_name(shape)
        model = torch_to_onnx(
            prepared.baked,
            (torch.zeros(options.batch, *shape),),
            [name],
            [OUTPUT],
            None if options.fixed_batch else {name: {0: "batch"}, OUTPUT: {0: "batch"}},
            options.opset,
            scratch,
        )
        fuse_pad_into_conv(fold_constants(model))
        prepared.layer_initializers = match_layer_weights(model, prepared.layers)
        describe(model, class_names, "cnn", job.front_end)
        model.metadata_props.add(key="edge_str.input_shape", value=json.dumps(list(shape)))
        return [
            GraphSpec(
                MAIN,
                model,
                CNN_FLOAT_OPS,
                CNN_INT8_OPS,
                CNN_WEIGHT_OPS,
                prepared.x,
                prepared.reference,
            )
        ]

    def report_fields(self, prepared: CNNPrepared, checked: Checked, job: ExportJob) -> Fields:
        onnx_model, names, layers = (
            checked[MAIN].model,
            prepared.layer_initializers,
            prepared.layers,
        )
        warnings = []
        pruned = _fully_pruned(layers)
        if pruned:
            warnings.append(f"fully pruned layers (all weights 0): {', '.join(pruned)}")
        onnx_weights = {}
        if names is None:
            warnings.append(
                "could not match the graph's Conv/Gemm weights to the model's layers; per-layer "
                "ONNX figures are missing"
            )
        else:
            nodes = {n.input[1]: n.op_type for n in weight_nodes(onnx_model)}
            inits = {t.name: t for t in onnx_model.graph.initializer}
            for layer, weight in layers:
                init = names[layer]
                array = _onnx_weight(numpy_helper.to_array(inits[init]), nodes[init])
                lost = int(np.count_nonzero(array[weight.numpy() == 0]))
                if lost:
                    raise EdgeStrError(
                        f"{checked[MAIN].name}: {lost} weights of {layer} that are 0 in "
                        "torch are nonzero in the graph; not exported"
                    )
                onnx_weights[layer] = {"initializer": init, "nonzero": int(np.count_nonzero(array))}
        return {
            **_report(prepared, onnx_model, onnx_weights),
            "max_abs_diff_baked_torch": float(
                np.abs(prepared.baked_logits - prepared.reference).max()
            ),
            "warnings": warnings,
        }

    def run_fields(self, info: RunInfo, run_dir: str | os.PathLike) -> dict[str, Any]:
        return {
            **super().run_fields(info, run_dir),
            "arch": info.config.model.arch,
            "method": info.config.model.sparsity,
        }

    def summary_parts(self, report: dict[str, Any]) -> tuple[list[str], list[str]]:
        weights = report["storage"]["weights"]
        best = min(("indices", "bitmask"), key=lambda f: weights[f"{f}_bytes"])
        dense, sparse = kb(weights["dense_bytes"]), kb(weights[f"{best}_bytes"])
        head = [
            f"{report.get('arch', 'cnn')} sparsity {report['sparsity']:.1%}",
            f"{report['params']:,} params",
            f"weights {dense} dense, {sparse} sparse ({best})",
            f"MACs {report['macs']:,} of {report['macs_dense']:,}",
        ]
        return head, []


CNN_ADAPTER = CNNAdapter()
export_cnn_model = CNN_ADAPTER.export  # the family's entry point: see ExportAdapter.export


def random_inputs(model: ImageClassifier, n: int, seed: int = 0) -> torch.Tensor:
    """Random raw inputs (n, *input_shape) around the model's normalisation statistics."""
    return heldout.random_inputs(model.normalizer, model.input_shape, n, seed)


def _report(
    prepared: CNNPrepared, onnx_model: onnx.ModelProto, onnx_weights: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """The size and cost part of FILE.json (see ``export_cnn_model``)."""
    budget, storage, shape = prepared.budget, prepared.storage, prepared.model_input_shape
    layer_bytes = []
    for entry in storage["layers"]:
        onnx_entry = onnx_weights.get(entry["layer"], {})
        layer_bytes.append(
            {
                **entry,
                "sparsity": 1.0 - entry["nonzero"] / entry["numel"] if entry["numel"] else 0.0,
                "onnx_initializer": onnx_entry.get("initializer"),
                "onnx_nonzero": onnx_entry.get("nonzero"),
            }
        )
    weights = storage["weights"]
    if onnx_weights:  # the rest of the file: folded BN shifts, normaliser, head bias
        mapped = {e["initializer"] for e in onnx_weights.values()}
        other = weight_bytes(onnx_model) - sum(
            4 * int(np.prod(t.dims, dtype=np.int64))
            for t in onnx_model.graph.initializer
            if t.name in mapped
        )
        other_source = "onnx"
    else:
        other, other_source = storage["other_bytes"], "torch"
    formats = ("dense", "indices", "bitmask", "best")
    return {
        "input": input_name(shape),
        "input_shape": list(shape),
        "classes": budget["layers"][-1]["out_channels"],
        # as in final.json (one cost model): sparsity over all conv/linear weights, params with
        # zeros dropped, bytes in the best sparse format, MACs; each beside its dense value
        **cnn_cost(budget, storage),
        "budget": budget,
        "storage": {
            "formats": {
                "dense": "float32 values, zeros included (what FILE.onnx holds)",
                "indices": "float32 nonzero values + flat positions (1, 2 or 4 bytes)",
                "bitmask": "float32 nonzero values + one presence bit per weight",
                "best": "the smallest of the three per layer",
            },
            "layers": layer_bytes,
            "weights": weights,
            "other_bytes": other,
            "other_bytes_source": other_source,
            "total_bytes": {f: weights[f"{f}_bytes"] + other for f in formats},
        },
    }


__all__ = [
    "CNN_FLOAT_OPS",
    "CNN_INT8_OPS",
    "CNN_WEIGHT_OPS",
    "export_cnn_model",
    "match_layer_weights",
    "random_inputs",
    "refuse_unexportable_cnn",
]
