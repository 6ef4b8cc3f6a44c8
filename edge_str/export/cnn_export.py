"""Export a trained sparse CNN (DS-CNN, ResNet, MobileNetV1) to standard ONNX.

STR: Kusupati et al., "Soft Threshold Weight Reparameterization for Learnable Sparsity", ICML
2020 (unstructured case, g = sigmoid: every weight under its layer's threshold is exactly 0);
GMP: Zhu & Gupta 2017. Export = ``baked_copy`` (thresholds / masks -> plain weights with exact
zeros) -> TorchScript export in eval mode (each BatchNorm folded into the convolution before it;
a per-output-channel scale keeps every zero a zero) -> graph clean-up -> checks -> files.

Graph: raw input (B, *input_shape) -> logits (B, classes), the training split's normaliser
inside (Sub, Div), then Unsqueeze ((T, F) features -> 1-channel image) or Transpose ((H, W, C)
images -> NCHW), Conv (+ Relu, Add for residuals, MaxPool for the ImageNet stem), ReduceMean
(global average pool) and Gemm. ``fold_constants`` evaluates the shape arithmetic the exporter
leaves around the DS-CNN's 'SAME' padding, and ``fuse_pad_into_conv`` moves that (asymmetric)
padding into the Conv's own ``pads``. The weights keep their layer names (``stem.conv.weight``,
``layer1.0.conv1.weight``, ...; biases are the folded BatchNorm shifts), the names the report's
per-layer figures use.

Storage: the ONNX file holds every weight dense (zeros included); FILE.json gives what the
weights take stored dense, as values + indices and as values + bitmask (``weight_storage``), per
layer and in total, next to the budget (per-layer sparsity, dense and sparse MACs). ``--int8``:
the FastGRNN exporter's weight-only int8 (one DequantizeLinear per Conv/Gemm weight, symmetric
per tensor, so pruned weights stay exactly 0). ``--streaming`` and ``--loop scan`` do not apply: a
CNN classifies the whole input at once and has no per-frame step or time loop.

Checks before anything is written (as for FastGRNN): ONNX checker (full), standard-op allow list,
max |onnxruntime - torch| <= PARITY_TOLERANCE and top-1 agreement on held-out inputs against the
trained (still parametrized) model, and every weight that is zero in torch is zero in the file.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper
from torch import nn

from edge_str.atomic import write_json
from edge_str.cnn.blocks import ImageClassifier
from edge_str.cnn.flops import budget_report
from edge_str.cnn.sparsity import baked_copy
from edge_str.cnn.storage import weight_storage
from edge_str.errors import EdgeStrError
from edge_str.export.onnx_common import (
    DEFAULT_OPSET,
    PARITY_TOLERANCE,
    HeldoutLoader,
    accuracy_of,
    agreement,
    check_parity,
    describe,
    front_end_of,
    int8_weight_bytes_estimate,
    op_types,
    quantize_weights,
    resolve_heldout,
    tidy_graph,
    torch_logits,
    torch_to_onnx,
    validate_options,
    weight_bytes,
    write_checked,
)

if TYPE_CHECKING:
    pass

DEFAULT_RANDOM_EXAMPLES = 64
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


# ----------------------------------------------------------------------------- graph clean-up


def fold_constants(model: onnx.ModelProto) -> onnx.ModelProto:
    """Replace every node whose inputs are all initializers by its outputs, in place.

    Evaluated with ``onnx.reference`` at the model's opsets. The TorchScript exporter leaves
    such chains (ConstantOfShape, Concat, Slice, Transpose, Cast) computing a Pad's ``pads``.
    """
    from onnx.reference import ReferenceEvaluator

    graph = model.graph
    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    outputs = {o.name for o in graph.output}
    rename: dict[str, str] = {}  # folded outputs get names tidy_graph will not hand out again
    kept = []
    for node in graph.node:
        node.input[:] = [rename.get(name, name) for name in node.input]
        constant = all(not name or name in values for name in node.input)
        if not constant or not node.input or any(o in outputs for o in node.output):
            kept.append(node)
            continue
        inputs = [name for name in node.input if name]
        single = helper.make_graph(
            [node],
            "fold",
            [
                helper.make_tensor_value_info(
                    name,
                    helper.np_dtype_to_tensor_dtype(values[name].dtype),
                    list(values[name].shape),
                )
                for name in inputs
            ],
            [helper.make_value_info(name, onnx.TypeProto()) for name in node.output],
        )
        folded = helper.make_model(single, opset_imports=list(model.opset_import))
        results = ReferenceEvaluator(folded).run(None, {name: values[name] for name in inputs})
        for name, value in zip(node.output, results):
            rename[name] = f"folded{len(rename)}"
            value = np.asarray(value)
            values[rename[name]] = value
            graph.initializer.append(numpy_helper.from_array(value, rename[name]))
    del graph.node[:]
    graph.node.extend(kept)
    return tidy_graph(model)  # drops the initializers only the folded nodes read


def _attribute(node: onnx.NodeProto, name: str, default: Any = None) -> Any:
    for attribute in node.attribute:
        if attribute.name == name:
            return helper.get_attribute_value(attribute)
    return default


def fuse_pad_into_conv(model: onnx.ModelProto) -> onnx.ModelProto:
    """Move a zero Pad of the spatial dimensions into the Conv that alone reads it, in place.

    ONNX Conv takes asymmetric ``pads`` (h_begin, w_begin, h_end, w_end), which torch's Conv2d
    cannot express; the DS-CNN's TensorFlow 'SAME' padding is a ZeroPad2d before its first Conv.
    """
    graph = model.graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    outputs = {o.name for o in graph.output}
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    removed = set()
    for pad in graph.node:
        if pad.op_type != "Pad" or pad.output[0] in outputs:
            continue
        mode = _attribute(pad, "mode", b"constant")
        if (mode.decode() if isinstance(mode, bytes) else mode) != "constant":
            continue
        if len(pad.input) < 2 or pad.input[1] not in inits:
            continue
        if len(pad.input) > 3 and pad.input[3]:  # opset 18 "axes": not the exporter's form
            continue
        if len(pad.input) > 2 and pad.input[2]:
            value = inits.get(pad.input[2])
            if value is None or np.any(value != 0):
                continue
        pads = [int(p) for p in inits[pad.input[1]].ravel()]
        users = readers.get(pad.output[0], [])
        if len(pads) != 8 or min(pads) < 0 or any(pads[i] for i in (0, 1, 4, 5)):
            continue
        if len(users) != 1 or users[0].op_type != "Conv" or users[0].input[0] != pad.output[0]:
            continue
        conv = users[0]
        auto_pad = _attribute(conv, "auto_pad", b"NOTSET")
        if (auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad) != "NOTSET":
            continue
        old = list(_attribute(conv, "pads", [0, 0, 0, 0]))
        new = [old[0] + pads[2], old[1] + pads[3], old[2] + pads[6], old[3] + pads[7]]
        kept = [a for a in conv.attribute if a.name != "pads"]
        del conv.attribute[:]
        conv.attribute.extend(kept + [helper.make_attribute("pads", new)])
        conv.input[0] = pad.input[0]
        removed.add(id(pad))
    nodes = [node for node in graph.node if id(node) not in removed]
    del graph.node[:]
    graph.node.extend(nodes)
    return tidy_graph(model)


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


def op_count(model: onnx.ModelProto, op_type: str) -> int:
    return sum(node.op_type == op_type for node in model.graph.node)


def _onnx_weight(array: np.ndarray, node_type: str) -> np.ndarray:
    return array.T if node_type == "MatMul" else array


# ----------------------------------------------------------------------------- checks


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


def random_inputs(model: ImageClassifier, n: int, seed: int = 0) -> torch.Tensor:
    """Random raw inputs (n, *input_shape) around the model's normalisation statistics."""
    generator = torch.Generator().manual_seed(seed)
    mean, std = model.normalizer.mean.cpu(), model.normalizer.std.cpu()
    noise = torch.randn(n, *model.input_shape, generator=generator)
    return (mean + std * noise).float()  # statistics over the last dimension


# ----------------------------------------------------------------------------- exporting


def export_cnn_model(
    model: ImageClassifier,
    out: str | os.PathLike,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    *,
    int8: bool = False,
    opset: int = DEFAULT_OPSET,
    fixed_batch: int | None = None,
    class_names: Sequence[str] | None = None,
    heldout_source: str = "given",
    heldout_note: str | None = None,
    extra: dict[str, Any] | None = None,
    front_end: str | None = None,
) -> dict[str, Any]:
    """Bake, export and check a CNN; write FILE.onnx (FILE.int8.onnx) and FILE.json.

    ``x`` (N, *input_shape) are raw held-out inputs and ``y`` (N,) their labels, if known (then
    accuracies are reported). The trained ``model`` (STR/GMP still attached, or already baked)
    is the parity reference and is left unchanged. Returns the report (also FILE.json). Raises
    ``EdgeStrError`` when the model cannot be exported or a check fails; then nothing is
    written.
    """
    paths = validate_options(out, opset, fixed_batch)
    refuse_unexportable_cnn(model)
    x = torch.as_tensor(x, dtype=torch.float32).cpu()
    shape = tuple(model.input_shape)
    if x.dim() != len(shape) + 1 or tuple(x.shape[1:]) != shape or len(x) == 0:
        raise EdgeStrError(
            f"held-out inputs of shape {tuple(x.shape)}; the model takes (N, "
            f"{', '.join(map(str, shape))})"
        )
    y_np = None if y is None else torch.as_tensor(y).long().cpu().numpy()
    if y_np is not None and y_np.shape != (x.shape[0],):
        raise EdgeStrError(f"{len(y_np)} labels for {x.shape[0]} held-out examples")

    was_training = model.training
    device = next(model.parameters()).device
    try:
        model.eval()
        reference = torch_logits(model, x.to(device)).cpu().numpy()  # the trained model
        budget = budget_report(model)  # per-layer sparsity, MACs; STR thresholds
        storage = weight_storage(model)
        baked = baked_copy(model).cpu().eval()
    finally:
        model.train(was_training)
    baked_logits = torch_logits(baked, x).numpy()
    modules = dict(baked.named_modules())
    layers = [(e["layer"], modules[e["layer"]].weight.detach()) for e in budget["layers"]]
    pruned = _fully_pruned(layers)
    if not np.isfinite(reference).all():
        raise EdgeStrError("the model gives non-finite logits on the held-out inputs; not exported")
    if len(x) > 1 and float(np.ptp(reference, axis=0).max()) == 0.0:
        raise EdgeStrError(
            "the model's logits do not depend on its input"
            + (f" (fully pruned: {', '.join(pruned)})" if pruned else "")
            + "; nothing to export"
        )

    batch = fixed_batch or 1
    name = input_name(shape)
    paths.onnx.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".edge_str-export-", dir=paths.onnx.parent) as tmp:
        tmp = Path(tmp)
        onnx_model = torch_to_onnx(
            baked,
            (torch.zeros(batch, *shape),),
            [name],
            [OUTPUT],
            None if fixed_batch else {name: {0: "batch"}, OUTPUT: {0: "batch"}},
            opset,
            tmp / "raw.onnx",
        )
        fuse_pad_into_conv(fold_constants(onnx_model))
        names = match_layer_weights(onnx_model, layers)
        describe(onnx_model, class_names, "cnn", front_end)
        onnx_model.metadata_props.add(key="edge_str.input_shape", value=json.dumps(list(shape)))
        onnx_logits = write_checked(onnx_model, CNN_FLOAT_OPS, tmp / "m.onnx", paths.onnx.name, x)
        parity = check_parity(onnx_logits, reference, paths.onnx.name, PARITY_TOLERANCE)

        warnings = []
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
            for (layer, weight), init in zip(layers, (names[layer] for layer, _ in layers)):
                array = _onnx_weight(numpy_helper.to_array(inits[init]), nodes[init])
                lost = int(np.count_nonzero(array[weight.numpy() == 0]))
                if lost:
                    raise EdgeStrError(
                        f"{paths.onnx.name}: {lost} weights of {layer} that are 0 in torch are "
                        "nonzero in the graph; not exported"
                    )
                onnx_weights[layer] = {"initializer": init, "nonzero": int(np.count_nonzero(array))}

        report = _report(
            paths, opset, fixed_batch, shape, class_names, budget, storage, onnx_model, onnx_weights
        )
        report.update(
            {
                "file_bytes": {"onnx": (tmp / "m.onnx").stat().st_size},
                "heldout": {
                    "source": heldout_source,
                    "examples": int(x.shape[0]),
                    "note": heldout_note,
                },
                "max_abs_diff": parity["max_abs_diff"],
                "top1_agreement": parity["top1_agreement"],
                "max_abs_diff_baked_torch": float(np.abs(baked_logits - reference).max()),
                "tolerance": PARITY_TOLERANCE,
                "accuracy": {
                    "torch": accuracy_of(reference, y_np),
                    "onnx": accuracy_of(onnx_logits, y_np),
                    "int8": None,
                    "int8_change": None,
                },
                "int8": None,
                "warnings": warnings,
            }
        )
        moves = [(tmp / "m.onnx", paths.onnx)]

        if int8:
            quantized = quantize_weights(tmp / "m.onnx", CNN_WEIGHT_OPS)
            int8_logits = write_checked(
                quantized, CNN_INT8_OPS, tmp / "int8.onnx", paths.int8.name, x
            )
            accuracy = report["accuracy"]
            accuracy["int8"] = accuracy_of(int8_logits, y_np)
            if accuracy["int8"] is not None:
                accuracy["int8_change"] = accuracy["int8"] - accuracy["onnx"]
            report["int8"] = {
                "max_abs_diff_vs_float": float(np.abs(int8_logits - onnx_logits).max()),
                "top1_agreement_vs_float": agreement(int8_logits, onnx_logits),
                "weights_quantized": op_count(quantized, "DequantizeLinear"),
                "op_types": sorted(op_types(quantized)),
            }
            report["weight_bytes"]["int8"] = weight_bytes(quantized)
            report["weight_bytes_int8_measured"] = True
            report["int8_onnx"] = str(paths.int8)
            report["file_bytes"]["int8"] = (tmp / "int8.onnx").stat().st_size
            moves.append((tmp / "int8.onnx", paths.int8))

        if extra:
            report.update(extra)
        paths.move_into_place(moves)
    write_json(paths.report, report)
    return report


def _report(
    paths, opset, fixed_batch, shape, class_names, budget, storage, onnx_model, onnx_weights
) -> dict[str, Any]:
    """The size and cost part of FILE.json (see ``export_cnn_model``)."""
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
        "onnx": str(paths.onnx),
        "int8_onnx": None,
        "opset": opset,
        "batch": fixed_batch if fixed_batch else "dynamic",
        "input": input_name(shape),
        "input_shape": list(shape),
        "classes": budget["layers"][-1]["out_channels"],
        "class_names": list(class_names) if class_names is not None else None,
        # as in final.json: sparsity over all conv/linear weights, params with zeros dropped
        "sparsity": budget["sparsity"],
        "params": budget["nonzero"] + budget["other_params"],
        "params_dense": budget["params"] + budget["other_params"],
        "macs": budget["sparse_macs"],
        "macs_dense": budget["dense_macs"],
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
        # int8: estimated here, measured on the file when --int8 writes one
        "weight_bytes": {
            "float32": weight_bytes(onnx_model),
            "int8": int8_weight_bytes_estimate(onnx_model, CNN_WEIGHT_OPS),
        },
        "weight_bytes_int8_measured": False,
        "graph_nodes": len(onnx_model.graph.node),
        "op_types": sorted(op_types(onnx_model)),
    }


# ----------------------------------------------------------------------------- run directories


def export_cnn_run(
    run_dir: str | os.PathLike,
    out: str | os.PathLike,
    x: torch.Tensor | None = None,
    y: torch.Tensor | None = None,
    *,
    heldout: HeldoutLoader | None = None,
    checkpoint: str | None = None,
    streaming: bool = False,
    int8: bool = False,
    opset: int = DEFAULT_OPSET,
    fixed_batch: int | None = None,
    loop: str = "unrolled",
    heldout_source: str = "given",
    random_examples: int = DEFAULT_RANDOM_EXAMPLES,
    seed: int = 0,
) -> dict[str, Any]:
    """Export the kept (best-validation) model of a CNN run; see ``export_cnn_model``.

    The arguments are ``export_run``'s (which calls this for a CNN run). ``streaming`` and a
    ``loop`` other than the default "unrolled" (FastGRNN's ``--loop scan``) are refused: a CNN
    has no per-frame step graph and no time loop.
    """
    from edge_str.run import BEST_CHECKPOINT, load_run_info, load_trained_model

    validate_options(out, opset, fixed_batch)
    arch = load_run_info(run_dir).config.model.arch
    if streaming:
        raise EdgeStrError(
            f"--streaming: {run_dir} is a {arch} run; a CNN classifies the whole input at once "
            "and has no per-frame step graph (export it without --streaming)"
        )
    if loop != "unrolled":
        raise EdgeStrError(
            f"--loop {loop}: {run_dir} is a {arch} run; a CNN has no time loop, --loop applies "
            "to FastGRNN runs only (export it without --loop)"
        )
    info, model = load_trained_model(run_dir, checkpoint or BEST_CHECKPOINT)
    refuse_unexportable_cnn(model, str(run_dir))
    x, y, heldout_source, reason = resolve_heldout(
        run_dir,
        info,
        x,
        y,
        heldout,
        heldout_source,
        lambda: random_inputs(model, random_examples, seed),
    )
    return export_cnn_model(
        model,
        out,
        x,
        y,
        int8=int8,
        opset=opset,
        fixed_batch=fixed_batch,
        class_names=info.class_names,
        heldout_source=heldout_source,
        heldout_note=reason,
        extra={
            "run": str(run_dir),
            "task": info.config.task,
            "arch": arch,
            "method": info.config.model.sparsity,
        },
        front_end=front_end_of(info),
    )


def cnn_summary_line(report: dict[str, Any]) -> str:
    """The one-line summary ``edge-str export`` prints for a CNN."""
    storage = report["storage"]
    weights = storage["weights"]
    best = min(("indices", "bitmask"), key=lambda f: weights[f"{f}_bytes"])
    parts = [
        f"exported {report['onnx']}: {report.get('arch', 'cnn')} sparsity {report['sparsity']:.1%}",
        f"{report['params']:,} params",
        f"weights {_kb(weights['dense_bytes'])} dense, {_kb(weights[f'{best}_bytes'])} sparse "
        f"({best})",
        f"MACs {report['macs']:,} of {report['macs_dense']:,}",
        f"file {_kb(report['file_bytes']['onnx'])}",
        f"max|ort-torch| {report['max_abs_diff']:.1g}",
        f"top-1 agree {report['top1_agreement']:.0%}",
    ]
    accuracy = report["accuracy"]
    if accuracy["onnx"] is not None:
        parts.append(f"test acc {accuracy['onnx']:.2%}")
    else:
        parts.append(f"{report['heldout']['source']} held-out inputs, no accuracy")
    if report["int8"] is not None:
        text = f"int8 {_kb(report['file_bytes']['int8'])}"
        if accuracy["int8_change"] is not None:
            text += f" acc {accuracy['int8']:.2%} ({accuracy['int8_change']:+.2%})"
        parts.append(text)
    return ", ".join(parts)


def _kb(n: int) -> str:
    return f"{n / 1000:.1f} KB"


__all__ = [
    "CNN_FLOAT_OPS",
    "CNN_INT8_OPS",
    "CNN_WEIGHT_OPS",
    "cnn_summary_line",
    "export_cnn_model",
    "export_cnn_run",
    "fold_constants",
    "fuse_pad_into_conv",
    "match_layer_weights",
    "random_inputs",
    "refuse_unexportable_cnn",
]
