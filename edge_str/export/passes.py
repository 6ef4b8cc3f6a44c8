"""Graph passes on an exported ONNX model: each rewrites the model in place and returns it.

``tidy_graph`` makes a TorchScript export small and plain (constants as deduplicated
initializers, no Identity, short names, no debug annotations); ``fold_constants`` evaluates the
shape arithmetic the exporter leaves around a Pad; ``fuse_pad_into_conv`` moves a zero Pad into
the Conv after it; ``strip_prefix`` and ``keep_unused_inputs`` keep the names and signature the
exporters promise. ``onnxoptimizer`` does each job it does as well as hand-written code; what it
does worse or not at all is written here, with the measurement beside it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper

# onnxoptimizer's passes for what they do as well as the hand-written ones did: the same node and
# initializer counts on FastGRNN's 99-step graph (895 nodes, 10 initializers) and the DS-CNN.
_STRUCTURAL_PASSES = [
    "extract_constant_to_initializer",
    "eliminate_identity",
    "eliminate_deadend",
    "eliminate_duplicate_initializer",
    "eliminate_unused_initializer",
]


def tidy_graph(model: onnx.ModelProto, keep_names: Sequence[str] = ()) -> onnx.ModelProto:
    """Make an exported graph small and plain, in place; returns ``model``.

    Constant nodes become (deduplicated) initializers named const0, const1, ..., Identity and
    dead nodes go, unused initializers are dropped (``onnxoptimizer``); then intermediate
    tensors get short names and node names, doc strings, metadata_props and intermediate
    value_info (debug and shape annotations) are removed, which onnxoptimizer does not do:
    without it FastGRNN's 99-step file is 122,957 bytes instead of 84,956. Graph inputs,
    outputs, weight names and ``keep_names`` are kept.
    """
    import onnxoptimizer

    constants = {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    model.CopyFrom(onnxoptimizer.optimize(model, _STRUCTURAL_PASSES))
    graph = model.graph
    outputs = {o.name for o in graph.output}
    taken = {t.name for t in graph.initializer}
    renamed: dict[str, str] = {}
    for t in graph.initializer:
        if t.name in constants and t.name not in outputs:
            renamed[t.name] = next(
                name for i in range(len(taken) + 1) if (name := f"const{i}") not in taken
            )
            taken.add(renamed[t.name])
            t.name = renamed[t.name]

    keep = {i.name for i in graph.input} | outputs | taken | set(keep_names)
    short: dict[str, str] = {}

    def name_of(value: str) -> str:
        value = renamed.get(value, value)
        if not value or value in keep:
            return value
        if value not in short:
            short[value] = _base36(len(short))
        return short[value]

    for node in graph.node:
        node.input[:] = [name_of(i) for i in node.input]
        node.output[:] = [name_of(o) for o in node.output]
        node.name = ""
        node.doc_string = ""
        del node.metadata_props[:]
    del graph.value_info[:]
    graph.doc_string = ""
    model.doc_string = ""
    for value in list(graph.input) + list(graph.output):
        value.doc_string = ""
    del graph.metadata_props[:]
    del model.metadata_props[:]
    return model


def _base36(i: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        i, r = divmod(i, 36)
        out = digits[r] + out
        if i == 0:
            return "_" + out


def fold_constants(model: onnx.ModelProto) -> onnx.ModelProto:
    """Replace every node whose inputs are all initializers by its outputs, in place.

    Evaluated with ``onnx.reference`` at the model's opsets. The TorchScript exporter leaves
    such chains (ConstantOfShape, Concat, Slice, Transpose, Cast) computing a Pad's ``pads``.
    Hand-written because neither library folds them: on the DS-CNN (width 0.25) the graph has 23
    nodes after this and Pad fusion, 31 after onnxoptimizer's passes and 30 after
    ``onnxscript.optimizer.optimize`` (the Pad and its shape chain stay).
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


def fuse_pad_into_conv(model: onnx.ModelProto) -> onnx.ModelProto:
    """Move a zero Pad of the spatial dimensions into the Conv that alone reads it, in place.

    ONNX Conv takes asymmetric ``pads`` (h_begin, w_begin, h_end, w_end), which torch's Conv2d
    cannot express; the DS-CNN's TensorFlow 'SAME' padding is a ZeroPad2d before its first Conv.
    onnxoptimizer's pass (the pads must be an initializer: run ``fold_constants`` first).
    """
    import onnxoptimizer

    model.CopyFrom(onnxoptimizer.optimize(model, ["fuse_pad_into_conv"]))
    return tidy_graph(model)


def strip_prefix(model: onnx.ModelProto, prefix: str) -> None:
    """Remove ``prefix`` (a wrapper's submodule name) from the initializer names."""
    rename = {
        t.name: t.name[len(prefix) :] for t in model.graph.initializer if t.name.startswith(prefix)
    }
    for t in model.graph.initializer:
        t.name = rename.get(t.name, t.name)
    for node in model.graph.node:
        node.input[:] = [rename.get(i, i) for i in node.input]


def keep_unused_inputs(model: onnx.ModelProto, args, input_names: Sequence[str]) -> None:
    """Put back the graph inputs the exporter dropped because nothing reads them (x_t when W has
    rank 0), so the file's signature does not depend on which ranks survived."""
    present = {i.name for i in model.graph.input}
    missing = [(name, a) for name, a in zip(input_names, args) if name not in present]
    for name, arg in missing:
        model.graph.input.append(
            helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, list(arg.shape))
        )
    if missing:
        order = {name: i for i, name in enumerate(input_names)}
        inputs = sorted(model.graph.input, key=lambda v: order.get(v.name, len(order)))
        del model.graph.input[:]
        model.graph.input.extend(inputs)
