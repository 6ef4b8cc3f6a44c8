"""Graph passes on an exported ONNX model: each rewrites the model in place and returns it.

``tidy_graph`` makes a TorchScript export small and plain (constants as deduplicated
initializers, no Identity, short names, no debug annotations); ``fold_constants`` evaluates the
shape arithmetic the exporter leaves around a Pad; ``fuse_pad_into_conv`` moves a zero Pad into
the Conv after it; ``strip_prefix`` and ``keep_unused_inputs`` keep the names and signature the
exporters promise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper


def tidy_graph(model: onnx.ModelProto, keep_names: Sequence[str] = ()) -> onnx.ModelProto:
    """Make an exported graph small and plain, in place; returns ``model``.

    Constant nodes become (deduplicated) initializers, Identity nodes are bypassed, unused
    initializers dropped, intermediate tensors get short names, node names, doc strings,
    metadata_props and intermediate value_info (debug and shape annotations) are removed. Graph
    inputs, outputs and initializer names are kept.
    """
    graph = model.graph
    outputs = {o.name for o in graph.output}
    by_content: dict[tuple, str] = {}
    for t in graph.initializer:
        by_content.setdefault(_tensor_key(t), t.name)
    rename: dict[str, str] = {}
    nodes = []
    counter = 0
    for node in graph.node:
        node.input[:] = [rename.get(i, i) for i in node.input]
        if (
            node.op_type == "Constant"
            and len(node.attribute) == 1
            and node.attribute[0].name == "value"
            and node.output[0] not in outputs
        ):
            tensor = onnx.TensorProto()
            tensor.CopyFrom(node.attribute[0].t)
            key = _tensor_key(tensor)
            if key not in by_content:
                tensor.name = f"const{counter}"
                counter += 1
                graph.initializer.append(tensor)
                by_content[key] = tensor.name
            rename[node.output[0]] = by_content[key]
            continue
        if node.op_type == "Identity" and node.output[0] not in outputs:
            rename[node.output[0]] = node.input[0]
            continue
        nodes.append(node)
    for o in graph.output:
        if o.name in rename:  # a graph output that is an alias: keep one Identity for it
            nodes.append(helper.make_node("Identity", [rename[o.name]], [o.name]))
    del graph.node[:]
    graph.node.extend(nodes)

    used = {i for n in graph.node for i in n.input} | outputs
    kept = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)

    keep = {i.name for i in graph.input} | outputs | {t.name for t in kept} | set(keep_names)
    short: dict[str, str] = {}

    def name_of(value: str) -> str:
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


def _tensor_key(t: onnx.TensorProto) -> tuple:
    array = numpy_helper.to_array(t)
    return (t.data_type, tuple(t.dims), array.tobytes())


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
