"""ONNX plumbing shared by the exporters (FastGRNN in ``onnx_export``, CNNs in ``cnn_export``).

Running an exported file in onnxruntime (``onnx_session``, ``run_onnx``), making a TorchScript
export small and plain (``torch_to_onnx``, ``tidy_graph``), the checks every file passes before it
is written (``check_graph``: ONNX checker plus a standard-op allow list; ``check_parity``: max
|onnxruntime - torch| and top-1 agreement against the torch reference), weight-only int8
(``quantize_weights``: one DequantizeLinear per weight) and the files one ``--out FILE.onnx``
names (``ExportPaths``). Each exporter stages its files in a temporary folder beside the target
and renames them into place only after every check passed.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper

from edge_str.atomic import file_in_the_way
from edge_str.errors import EdgeStrError

DEFAULT_OPSET = 13  # opset-13 Split (FastGRNN), Conv/Gemm (CNNs); MCU tools know 13
MIN_OPSET, MAX_OPSET = 13, 20  # 20: the newest opset the TorchScript exporter writes
PARITY_TOLERANCE = 1e-4  # max |onnxruntime - torch| on logits, float32
_DYNAMIC_CHUNK = 1024  # rows per onnxruntime call for a dynamic-batch graph (bounds memory)

# Ops whose input 1 is a weight that ``quantize_weights`` may store as int8, and its rank.
MATMUL_WEIGHTS = frozenset({"MatMul"})  # FastGRNN: every product is a MatMul on a named matrix
_WEIGHT_RANK = {"MatMul": 2, "Gemm": 2, "Conv": 4}

if TYPE_CHECKING:
    from edge_str.run import RunInfo


@dataclass(frozen=True)
class ExportPaths:
    """The files one export writes, all derived from ``--out FILE.onnx``."""

    onnx: Path
    step: Path
    int8: Path
    step_int8: Path
    report: Path

    @classmethod
    def for_output(cls, out: str | os.PathLike) -> ExportPaths:
        out = Path(out)
        if out.suffix != ".onnx":
            raise EdgeStrError(f"--out {out}: the file name must end in .onnx")
        if out.is_dir():
            raise EdgeStrError(f"--out {out}: is a directory")
        blocking = file_in_the_way(out)
        if blocking is not None:
            raise EdgeStrError(f"--out {out}: {blocking} is a file, not a folder")
        stem = out.with_suffix("")
        return cls(
            onnx=out,
            step=Path(f"{stem}.step.onnx"),
            int8=Path(f"{stem}.int8.onnx"),
            step_int8=Path(f"{stem}.step.int8.onnx"),
            report=Path(f"{stem}.json"),
        )

    def move_into_place(self, moves: list[tuple[Path, Path]]) -> None:
        """Rename the checked files onto their targets, then remove the siblings this export
        did not write: a FILE.int8.onnx or FILE.step.onnx of an earlier export (of another
        checkpoint, maybe) must not sit beside a report that says there is none."""
        for src, dst in moves:
            os.replace(src, dst)  # within one folder: an atomic rename
        written = {dst for _, dst in moves}
        for sibling in (self.step, self.int8, self.step_int8):
            if sibling not in written:
                sibling.unlink(missing_ok=True)


# ----------------------------------------------------------------------------- running ONNX


def onnx_session(path: str | os.PathLike, threads: int | None = None):
    """An onnxruntime CPU session for ``path`` (``threads``: intra-op threads, None = default)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    # Weight-only int8 files: without this onnxruntime copies each DequantizeLinear for every
    # consumer (QDQ node units), so every step of the unrolled graph dequantizes U again and the
    # file runs ~1.5-2x slower than the float one. With it the weights are dequantized once, at
    # load (constant folding), and computed with as float: what the file means. No effect on
    # float graphs.
    options.add_session_config_entry("session.disable_quant_qdq", "1")
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _fixed_batch(session) -> int | None:
    dim = session.get_inputs()[0].shape[0]
    return dim if isinstance(dim, int) else None


def _chunks(x: np.ndarray, batch: int, pad: bool = True):
    """(chunk, n): ``x`` in slices of ``batch`` rows, the last one zero padded to ``batch``
    (unless ``pad`` is false: a dynamic-batch graph takes the short last slice as it is)."""
    for start in range(0, len(x), batch):
        chunk = x[start : start + batch]
        n = len(chunk)
        if pad and n < batch:
            chunk = np.concatenate([chunk, np.zeros((batch - n,) + chunk.shape[1:], chunk.dtype)])
        yield chunk, n


def run_onnx(path: str | os.PathLike, x: np.ndarray | torch.Tensor, session=None) -> np.ndarray:
    """Run an exported file on raw input x (N, ...) -> logits (N, C), float32.

    Works for every file ``export_model`` (FastGRNN, x (N, T, F)) and ``export_cnn_model``
    write: a one-input graph gets x in batches (chunks of the fixed batch, the last zero
    padded, where the file has one; else of up to 1024 rows); a single-step graph
    (inputs x_t, h) is stepped frame by frame (``run_onnx_streaming``). Pass ``session``
    (``onnx_session(path)``) to reuse one.
    """
    session = session or onnx_session(path)
    if len(session.get_inputs()) == 2:
        return run_onnx_streaming(path, x, session)
    x = _as_numpy(x)
    name = session.get_inputs()[0].name
    fixed = _fixed_batch(session)
    chunks = _chunks(x, fixed or _DYNAMIC_CHUNK, pad=fixed is not None)
    return np.concatenate([session.run(None, {name: c})[0][:n] for c, n in chunks])


def run_onnx_streaming(
    path: str | os.PathLike, x: np.ndarray | torch.Tensor, session=None
) -> np.ndarray:
    """Run an exported single-step graph frame by frame over x (N, T, F); logits (N, C).

    Each sequence starts from h = 0 and feeds h' back, as a device does; the logits after the
    last frame are returned.
    """
    session = session or onnx_session(path)
    x = _as_numpy(x)
    x_name, h_name = (i.name for i in session.get_inputs())
    batch = _fixed_batch(session) or 1
    hidden = session.get_inputs()[1].shape[1]
    out = []
    for chunk, n in _chunks(x, batch):
        h = np.zeros((batch, hidden), np.float32)
        logits = None
        for t in range(chunk.shape[1]):
            h, logits = session.run(None, {x_name: np.ascontiguousarray(chunk[:, t]), h_name: h})
        out.append(logits[:n])
    return np.concatenate(out)


def _as_numpy(x: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.ascontiguousarray(x, dtype=np.float32)


# ----------------------------------------------------------------------------- graph hygiene


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
            total += numel + 4 + 1
        else:
            total += numel * helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
    return total


# ----------------------------------------------------------------------------- exporting


def torch_to_onnx(
    module: torch.nn.Module,
    args: tuple[torch.Tensor, ...],
    input_names: Sequence[str],
    output_names: Sequence[str],
    dynamic_axes: dict[str, dict[int, str]] | None,
    opset: int,
    path: Path,
    strip_prefix: str | None = None,
) -> onnx.ModelProto:
    """Export ``module`` with the TorchScript exporter to ``path`` and return it tidied.

    The TorchScript exporter (``dynamo=False``) writes opsets from 13 natively, keeps torch
    parameter names on the initializers and, in eval mode, folds each BatchNorm into the
    convolution before it. ``strip_prefix``: removed from initializer names (a wrapper's
    submodule name).
    """
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            module,
            args,
            str(path),
            dynamo=False,  # see the docstring
            input_names=list(input_names),
            output_names=list(output_names),
            dynamic_axes=dynamic_axes,
            opset_version=opset,
            do_constant_folding=True,
        )
    model = onnx.load(str(path))
    if strip_prefix:
        _strip_prefix(model, strip_prefix)
    tidy_graph(model)
    label(model)
    _keep_unused_inputs(model, args, input_names)
    return model


def label(model: onnx.ModelProto) -> None:
    """Name edge_str (and its version) as the producer of ``model``, in place."""
    from edge_str import __version__

    model.producer_name = "edge_str"
    model.producer_version = __version__


def _strip_prefix(model: onnx.ModelProto, prefix: str) -> None:
    rename = {
        t.name: t.name[len(prefix) :] for t in model.graph.initializer if t.name.startswith(prefix)
    }
    for t in model.graph.initializer:
        t.name = rename.get(t.name, t.name)
    for node in model.graph.node:
        node.input[:] = [rename.get(i, i) for i in node.input]


def _keep_unused_inputs(model: onnx.ModelProto, args, input_names: Sequence[str]) -> None:
    """The exporter drops inputs the graph does not read (x_t when W has rank 0); put them back
    so the file's signature does not depend on which ranks survived."""
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


def save_model(model: onnx.ModelProto, path: Path) -> None:
    onnx.save_model(model, str(path), save_as_external_data=False)


@torch.no_grad()
def torch_logits(model: torch.nn.Module, x: torch.Tensor, chunk: int = 512) -> torch.Tensor:
    model.eval()
    return torch.cat([model(x[i : i + chunk]) for i in range(0, len(x), chunk)])


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float((a.argmax(1) == b.argmax(1)).mean())


def check_parity(
    onnx_logits: np.ndarray,
    reference: np.ndarray,
    what: str,
    tolerance: float = PARITY_TOLERANCE,
) -> dict[str, Any]:
    """max |onnx - torch| <= ``tolerance`` and the same top-1 class on every example.

    A top-1 flip counts only where the reference's top two logits are within the tolerance
    (a tie to float32 rounding); any other disagreement fails the export.
    """
    if onnx_logits.shape != reference.shape:
        raise EdgeStrError(f"{what}: logits of shape {onnx_logits.shape}, torch {reference.shape}")
    diff = float(np.abs(onnx_logits - reference).max())
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


def accuracy_of(logits: np.ndarray, y: np.ndarray | None) -> float | None:
    return None if y is None else float((logits.argmax(1) == y).mean())


HeldoutLoader = Callable[["RunInfo"], tuple[torch.Tensor | None, torch.Tensor | None, str]]


def front_end_of(info: RunInfo) -> str | None:
    """The JSON of a run's audio front end (None for a task whose input is not audio)."""
    if info.config.task != "google12":
        return None
    from edge_str.inference.frontend import FrontEnd

    return FrontEnd.from_data_config(info.config.data).to_json()


def resolve_heldout(
    run_dir: str | os.PathLike,
    info: RunInfo,
    x: torch.Tensor | None,
    y: torch.Tensor | None,
    heldout: HeldoutLoader | None,
    source: str,
    make_random: Callable[[], torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor | None, str, str | None]:
    """The inputs a run's export is checked on: (x, y, source, why-not-real-data).

    Given ``x`` wins; else ``heldout(info)`` (which may answer (None, None, reason)); else
    ``make_random()`` without labels. Given or loaded inputs must have the run's input shape.
    """
    reason = None
    if x is None and heldout is not None:
        x, y, source = heldout(info)
        if x is None:
            reason = source
    if x is None:
        return make_random(), None, "random", reason
    if tuple(x.shape[1:]) != tuple(info.input_shape):
        raise EdgeStrError(
            f"held-out inputs of shape {tuple(x.shape[1:])}; {run_dir} was trained on "
            f"{tuple(info.input_shape)}"
        )
    return x, y, source, reason


def validate_options(out: str | os.PathLike, opset: int, fixed_batch: int | None) -> ExportPaths:
    """Refuse a bad --out, --opset or --fixed-batch; returns the files the export would write."""
    paths = ExportPaths.for_output(out)
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise EdgeStrError(f"--opset {opset}: supported opsets are {MIN_OPSET}..{MAX_OPSET}")
    if fixed_batch is not None and fixed_batch < 1:
        raise EdgeStrError(f"--fixed-batch {fixed_batch}: must be at least 1")
    return paths


def write_checked(
    model: onnx.ModelProto, allowed: frozenset[str], path: Path, what: str, x: torch.Tensor
) -> np.ndarray:
    """Check ``model`` (ONNX checker, op allow list), save it to ``path`` and run it on ``x``."""
    check_graph(model, allowed, what)
    save_model(model, path)
    logits = run_onnx(path, x)
    if not np.isfinite(logits).all():
        raise EdgeStrError(f"{what}: onnxruntime gives non-finite logits; not exported")
    return logits


def describe(
    model: onnx.ModelProto,
    class_names: Sequence[str] | None,
    kind: str,
    front_end: str | None = None,
) -> None:
    """Model-level metadata a device integrator needs (not per-node debugging data).

    ``front_end``: the JSON of the audio front end the model was trained on
    (``edge_str.inference.FrontEnd``), so a WAV can be turned into its input from the file alone.
    """
    props = {"edge_str.graph": kind}
    if class_names is not None:
        props["edge_str.class_names"] = json.dumps(list(class_names))
    if front_end is not None:
        props["edge_str.front_end"] = front_end
    helper.set_model_props(model, props)


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
    matrices = quantizable_weights(model, weight_ops)
    dequantize = []
    for name in matrices:
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
