"""Export a trained STR FastGRNN to standard ONNX after baking STR in and dropping pruned ranks.

Method: STR (Kusupati et al., "Soft Threshold Weight Reparameterization for Learnable Sparsity",
ICML 2020) with g = exp on the singular values of FastGRNN's W = W1·diag(sigma)·W2 and U (Kusupati
et al., "FastGRNN", NeurIPS 2018): a thresholded singular value is exactly 0, so that rank can be
dropped. Export = ``bake_str`` -> ``LowRankMatrix.compact`` -> a plain torch module
(``compact_model``) -> ONNX, then checked against the original parametrized model.

Exporter: the TorchScript exporter (``dynamo=False``). For this straight-line model it emits the
plain op set a microcontroller converter wants (MatMul, Add, Mul, Sub, Div, Sigmoid, Tanh,
Flatten/Split), keeps the torch parameter names on the initializers (``W.right_t`` ...), writes
opsets from 13 natively (the dynamo exporter starts at 18 and converts down) and takes well under
a second where the dynamo exporter takes ~15 s for the 99-step unrolled graph. Its output needs no
shape repair before quantization.

Files: FILE.onnx (sequence graph), FILE.step.onnx (``--streaming``), FILE.int8.onnx (``--int8``;
with ``--streaming`` also FILE.step.int8.onnx) and FILE.json (the report). Every file is written
under a temporary name and renamed into place only after all checks passed.

Size note: the sequence graph is unrolled (see ``CompactFastGRNN``), so its file holds T copies of
the step's 10-11 nodes (``graph_nodes_per_step``) besides the weights (stored once). The int8
files store every matrix as int8 plus one DequantizeLinear (weight-only quantization), so they
are always smaller than the float ones; ``onnxruntime.quantization.quantize_dynamic`` was not
used because it adds ~4 nodes to every product of every step and made the 99-step file larger
than the float one.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper

from edge_str.atomic import write_json
from edge_str.errors import EdgeStrError
from edge_str.export.compact_model import (
    CompactFastGRNN,
    CompactFastGRNNStep,
    MatrixSummary,
    compact_fastgrnn,
    refuse_unexportable,
)
from edge_str.export.scan_graph import loop_body, scan_sequence_graph
from edge_str.fastgrnn import FastGRNNClassifier

if TYPE_CHECKING:
    from edge_str.run import RunInfo

DEFAULT_OPSET = 13  # the newest op this graph needs is opset-13 Split; MCU tools know 13
MIN_OPSET, MAX_OPSET = 13, 20  # 20: the newest opset the TorchScript exporter writes
PARITY_TOLERANCE = 1e-4  # max |onnxruntime - torch| on logits, float32
DEFAULT_RANDOM_EXAMPLES = 64
_DYNAMIC_CHUNK = 1024  # rows per onnxruntime call for a dynamic-batch graph (bounds memory)
STREAMING_CHECK_EXAMPLES = 256  # the step graph is checked frame by frame on this many examples

SEQUENCE_INPUT, SEQUENCE_OUTPUT = "features", "logits"
STEP_INPUTS, STEP_OUTPUTS = ("x_t", "h"), ("h_next", "logits")

# Standard ONNX ops the float graphs may use (default domain only; no custom or contrib ops).
FLOAT_OPS = frozenset(
    {
        "MatMul",
        "Gemm",
        "Add",
        "Sub",
        "Mul",
        "Div",
        "Sigmoid",
        "Tanh",
        "Concat",
        "Slice",
        "Split",
        "Flatten",
        "Gather",
        "Squeeze",
        "Unsqueeze",
        "Reshape",
        "Transpose",
        "Shape",
        "Expand",
        "ConstantOfShape",
    }
)
# What weight-only 8-bit quantization adds: one DequantizeLinear per matrix (standard ONNX).
INT8_OPS = FLOAT_OPS | {"DequantizeLinear"}
LOOP_FORMS = ("unrolled", "scan")  # --loop: the time loop as a straight line, or one ONNX Scan
SCAN_OPS = FLOAT_OPS | {"Scan"}
SCAN_INT8_OPS = INT8_OPS | {"Scan"}


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
        stem = out.with_suffix("")
        return cls(
            onnx=out,
            step=Path(f"{stem}.step.onnx"),
            int8=Path(f"{stem}.int8.onnx"),
            step_int8=Path(f"{stem}.step.int8.onnx"),
            report=Path(f"{stem}.json"),
        )


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


def _chunks(x: np.ndarray, batch: int):
    """(chunk, n): ``x`` in slices of ``batch`` rows, the last one zero padded to ``batch``."""
    for start in range(0, len(x), batch):
        chunk = x[start : start + batch]
        n = len(chunk)
        if n < batch:
            chunk = np.concatenate([chunk, np.zeros((batch - n,) + chunk.shape[1:], chunk.dtype)])
        yield chunk, n


def run_onnx(path: str | os.PathLike, x: np.ndarray | torch.Tensor, session=None) -> np.ndarray:
    """Run an exported file on raw features x (N, T, F) -> logits (N, C), float32.

    Works for every file ``export_model`` writes: a sequence graph gets x in batches (chunks of
    the fixed batch, the last zero padded, where the file has one); a single-step graph
    (inputs x_t, h) is stepped frame by frame (``run_onnx_streaming``). Pass ``session``
    (``onnx_session(path)``) to reuse one.
    """
    session = session or onnx_session(path)
    if len(session.get_inputs()) == 2:
        return run_onnx_streaming(path, x, session)
    x = _as_numpy(x)
    name = session.get_inputs()[0].name
    batch = _fixed_batch(session) or _DYNAMIC_CHUNK
    return np.concatenate([session.run(None, {name: c})[0][:n] for c, n in _chunks(x, batch)])


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


def _matrices(model: onnx.ModelProto) -> set[str]:
    """Initializers read as the weight of a MatMul (in the graph or its loop body)."""
    inits = {t.name: t for t in model.graph.initializer}
    return {
        n.input[1]
        for n in all_nodes(model.graph)
        if n.op_type == "MatMul" and n.input[1] in inits and len(inits[n.input[1]].dims) == 2
    }


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


def int8_weight_bytes_estimate(model: onnx.ModelProto) -> int:
    """Initializer bytes after per-tensor 8-bit quantization of every MatMul weight.

    What ``--int8`` stores: int8 values plus a float32 scale and an int8 zero point per matrix;
    everything else (biases, statistics, constants) stays as it is.
    """
    matrices = _matrices(model)
    total = 0
    for t in model.graph.initializer:
        numel = int(np.prod(t.dims, dtype=np.int64))
        if t.name in matrices:
            total += numel + 4 + 1
        else:
            total += numel * helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
    return total


# ----------------------------------------------------------------------------- exporting


def _torch_to_onnx(
    module: torch.nn.Module,
    args: tuple[torch.Tensor, ...],
    input_names: Sequence[str],
    output_names: Sequence[str],
    dynamic_axes: dict[str, dict[int, str]] | None,
    opset: int,
    path: Path,
) -> onnx.ModelProto:
    import warnings

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            module,
            args,
            str(path),
            dynamo=False,  # see the module docstring
            input_names=list(input_names),
            output_names=list(output_names),
            dynamic_axes=dynamic_axes,
            opset_version=opset,
            do_constant_folding=True,
        )
    model = onnx.load(str(path))
    _strip_prefix(model, "net.")  # the step wrapper's submodule: same names in both graphs
    tidy_graph(model)
    _label(model)
    _keep_unused_inputs(model, args, input_names)
    return model


def _label(model: onnx.ModelProto) -> None:
    from edge_str import __version__

    model.producer_name = "edge_str"
    model.producer_version = __version__


def _loop_body_nodes(model: onnx.ModelProto) -> int | None:
    body = loop_body(model)
    return None if body is None else len(body.node)


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


def _save(model: onnx.ModelProto, path: Path) -> None:
    onnx.save_model(model, str(path), save_as_external_data=False)


@torch.no_grad()
def _torch_logits(model: torch.nn.Module, x: torch.Tensor, chunk: int = 512) -> torch.Tensor:
    model.eval()
    return torch.cat([model(x[i : i + chunk]) for i in range(0, len(x), chunk)])


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float((a.argmax(1) == b.argmax(1)).mean())


def _check_parity(onnx_logits: np.ndarray, reference: np.ndarray, what: str) -> dict[str, Any]:
    """max |onnx - torch| <= tolerance and the same top-1 class on every example.

    A top-1 flip counts only where the reference's top two logits are within the tolerance
    (a tie to float32 rounding); any other disagreement fails the export.
    """
    if onnx_logits.shape != reference.shape:
        raise EdgeStrError(f"{what}: logits of shape {onnx_logits.shape}, torch {reference.shape}")
    diff = float(np.abs(onnx_logits - reference).max())
    agreement = _agreement(onnx_logits, reference)
    flips = onnx_logits.argmax(1) != reference.argmax(1)
    top2 = np.sort(reference, axis=1)[:, -2:]
    real_flips = int((flips & (top2[:, 1] - top2[:, 0] > PARITY_TOLERANCE)).sum())
    if not math.isfinite(diff) or diff > PARITY_TOLERANCE or real_flips:
        raise EdgeStrError(
            f"{what}: onnxruntime disagrees with torch (max |diff| {diff:.3g} > "
            f"{PARITY_TOLERANCE:g} or top-1 agreement {agreement:.2%}); not exported"
        )
    return {"max_abs_diff": diff, "top1_agreement": agreement}


def _accuracy(logits: np.ndarray, y: np.ndarray | None) -> float | None:
    return None if y is None else float((logits.argmax(1) == y).mean())


def random_heldout(model: FastGRNNClassifier, n: int, steps: int, seed: int = 0) -> torch.Tensor:
    """Random raw features (n, T, F) drawn around the model's normalisation statistics."""
    generator = torch.Generator().manual_seed(seed)
    mean, std = model.normalizer.mean, model.normalizer.std
    noise = torch.randn(n, steps, mean.numel(), generator=generator)
    return (mean + std * noise).float()


def validate_options(
    out: str | os.PathLike, opset: int, fixed_batch: int | None, loop: str = "unrolled"
) -> ExportPaths:
    """Refuse a bad --out, --opset, --fixed-batch or --loop; returns the files to be written."""
    paths = ExportPaths.for_output(out)
    if loop not in LOOP_FORMS:
        raise EdgeStrError(f"--loop {loop}: must be one of {', '.join(LOOP_FORMS)}")
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise EdgeStrError(f"--opset {opset}: supported opsets are {MIN_OPSET}..{MAX_OPSET}")
    if fixed_batch is not None and fixed_batch < 1:
        raise EdgeStrError(f"--fixed-batch {fixed_batch}: must be at least 1")
    return paths


def export_model(
    model: FastGRNNClassifier,
    out: str | os.PathLike,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    *,
    streaming: bool = False,
    int8: bool = False,
    opset: int = DEFAULT_OPSET,
    fixed_batch: int | None = None,
    loop: str = "unrolled",
    class_names: Sequence[str] | None = None,
    heldout_source: str = "given",
    heldout_note: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Bake, compact and export ``model``; check the files; write them and FILE.json.

    ``x`` (N, T, F) are raw held-out features (T also fixes the unrolled length of the sequence
    graph) and ``y`` (N,) their labels, if known (then accuracies are reported). The original,
    still parametrized ``model`` is the reference for parity. Returns the report (also written
    to FILE.json). Raises ``EdgeStrError`` when the model cannot be exported or a check fails;
    then nothing is written. ``loop``: "unrolled" (default: one straight line of standard ops,
    what microcontroller converters take) or "scan" (the time loop as one ONNX Scan, faster
    under onnxruntime at batch 1; see ``scan_graph``). The streaming step graph is the same
    either way.
    """
    paths = validate_options(out, opset, fixed_batch, loop)
    if not isinstance(model, FastGRNNClassifier):
        raise EdgeStrError(f"export supports FastGRNN classifiers only, not {type(model).__name__}")
    x = torch.as_tensor(x, dtype=torch.float32)
    features = model.rnn.cell.input_size
    if x.dim() != 3 or x.shape[2] != features or x.shape[0] == 0 or x.shape[1] == 0:
        raise EdgeStrError(
            f"held-out inputs of shape {tuple(x.shape)}; the model takes (N, T, {features})"
        )
    y_np = None if y is None else torch.as_tensor(y).long().numpy()
    if y_np is not None and y_np.shape != (x.shape[0],):
        raise EdgeStrError(f"{len(y_np)} labels for {x.shape[0]} held-out examples")
    steps = x.shape[1]

    was_training = model.training
    model.eval()
    try:
        compact, summary = compact_fastgrnn(model)
        reference = _torch_logits(model, x).numpy()  # the original, parametrized model
        compact_logits = _torch_logits(compact, x).numpy()
    finally:
        model.train(was_training)
    batch = fixed_batch or 1

    paths.onnx.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".edge_str-export-", dir=paths.onnx.parent) as tmp:
        tmp = Path(tmp)
        # Sequence graph: raw features (batch, T, F) -> logits.
        if loop == "scan":
            seq = scan_sequence_graph(compact, steps, fixed_batch, opset)
            _label(seq)
        else:
            dynamic = (
                None
                if fixed_batch
                else {SEQUENCE_INPUT: {0: "batch"}, SEQUENCE_OUTPUT: {0: "batch"}}
            )
            seq = _torch_to_onnx(
                compact,
                (torch.zeros(batch, steps, features),),
                [SEQUENCE_INPUT],
                [SEQUENCE_OUTPUT],
                dynamic,
                opset,
                tmp / "raw.onnx",
            )
        _describe(seq, class_names, "sequence")
        allowed = SCAN_OPS if loop == "scan" else FLOAT_OPS
        onnx_logits = _write_checked(seq, allowed, tmp / "seq.onnx", paths.onnx.name, x)
        parity = _check_parity(onnx_logits, reference, paths.onnx.name)
        report: dict[str, Any] = {
            "onnx": str(paths.onnx),
            "step_onnx": None,
            "int8_onnx": None,
            "step_int8_onnx": None,
            "opset": opset,
            "batch": fixed_batch if fixed_batch else "dynamic",
            "steps": steps,
            "features": features,
            "hidden": compact.hidden_size,
            "classes": compact.num_classes,
            "class_names": list(class_names) if class_names is not None else None,
            "ranks": {name: s.to_dict() for name, s in summary.items()},
            "params": _params(compact),
            "params_dense": _params_dense(compact),
            # int8: estimated here, measured on the file below when --int8 writes one.
            "weight_bytes": {"float32": weight_bytes(seq), "int8": int8_weight_bytes_estimate(seq)},
            "weight_bytes_int8_measured": False,
            "macs_per_step": _macs_per_step(compact),
            "macs_per_step_dense": _macs_per_step_dense(compact),
            "head_macs": compact.hidden_size * compact.num_classes,
            "file_bytes": {"onnx": (tmp / "seq.onnx").stat().st_size},
            "loop": loop,
            "graph_nodes": len(seq.graph.node),
            "loop_body_nodes": _loop_body_nodes(seq),
            "op_types": sorted(op_types(seq)),
            "heldout": {
                "source": heldout_source,
                "examples": int(x.shape[0]),
                "note": heldout_note,
            },
            "max_abs_diff": parity["max_abs_diff"],
            "top1_agreement": parity["top1_agreement"],
            "max_abs_diff_compact_torch": float(np.abs(compact_logits - reference).max()),
            "tolerance": PARITY_TOLERANCE,
            "accuracy": {
                "torch": _accuracy(reference, y_np),
                "onnx": _accuracy(onnx_logits, y_np),
                "int8": None,
                "int8_change": None,
            },
            "streaming": None,
            "int8": None,
            "warnings": _warnings(summary),
        }
        moves = [(tmp / "seq.onnx", paths.onnx)]

        if streaming:
            # Step graph: (x_t (batch, F), h (batch, H)) -> (h', logits), checked frame by frame.
            step = _torch_to_onnx(
                CompactFastGRNNStep(compact).eval(),
                (torch.zeros(batch, features), torch.zeros(batch, compact.hidden_size)),
                STEP_INPUTS,
                STEP_OUTPUTS,
                None,
                opset,
                tmp / "raw.onnx",
            )
            _describe(step, class_names, "step")
            n = min(len(x), STREAMING_CHECK_EXAMPLES)
            stream_logits = _write_checked(
                step, FLOAT_OPS, tmp / "step.onnx", paths.step.name, x[:n]
            )
            report["streaming"] = {
                **_check_parity(stream_logits, reference[:n], paths.step.name),
                "examples": n,
                "max_abs_diff_vs_sequence_graph": float(
                    np.abs(stream_logits - onnx_logits[:n]).max()
                ),
                "batch": batch,
                "graph_nodes": len(step.graph.node),
                "op_types": sorted(op_types(step)),
            }
            report["step_onnx"] = str(paths.step)
            report["file_bytes"]["step"] = (tmp / "step.onnx").stat().st_size
            moves.append((tmp / "step.onnx", paths.step))

        if int8:
            quantized = _quantize(tmp / "seq.onnx", tmp)
            allowed = SCAN_INT8_OPS if loop == "scan" else INT8_OPS
            int8_logits = _write_checked(quantized, allowed, tmp / "int8.onnx", paths.int8.name, x)
            accuracy = report["accuracy"]
            accuracy["int8"] = _accuracy(int8_logits, y_np)
            if accuracy["int8"] is not None:
                accuracy["int8_change"] = accuracy["int8"] - accuracy["onnx"]
            report["int8"] = {
                "max_abs_diff_vs_float": float(np.abs(int8_logits - onnx_logits).max()),
                "top1_agreement_vs_float": _agreement(int8_logits, onnx_logits),
                "op_types": sorted(op_types(quantized)),
            }
            report["weight_bytes"]["int8"] = weight_bytes(quantized)
            report["weight_bytes_int8_measured"] = True
            report["int8_onnx"] = str(paths.int8)
            report["file_bytes"]["int8"] = (tmp / "int8.onnx").stat().st_size
            moves.append((tmp / "int8.onnx", paths.int8))
            if streaming:
                step_q = _quantize(tmp / "step.onnx", tmp)
                n = report["streaming"]["examples"]
                step_q_path = tmp / "step_int8.onnx"
                step_q_logits = _write_checked(
                    step_q, INT8_OPS, step_q_path, paths.step_int8.name, x[:n]
                )
                report["streaming"]["int8"] = {
                    "max_abs_diff_vs_float": float(np.abs(step_q_logits - stream_logits).max()),
                    "top1_agreement_vs_float": _agreement(step_q_logits, stream_logits),
                    "weight_bytes": weight_bytes(step_q),
                }
                report["step_int8_onnx"] = str(paths.step_int8)
                report["file_bytes"]["step_int8"] = step_q_path.stat().st_size
                moves.append((step_q_path, paths.step_int8))

        if extra:
            report.update(extra)
        for src, dst in moves:
            os.replace(src, dst)  # within one folder: an atomic rename
    write_json(paths.report, report)
    return report


def graph_nodes_per_step(model: FastGRNNClassifier, opset: int = DEFAULT_OPSET) -> int:
    """Nodes the unrolled sequence graph of ``model`` repeats per time step (after the first).

    The sequence graph holds a fixed part (normalisation, the input product for all steps, the
    split into steps, the head), the first step (no U h: the state starts at 0) and T - 1 copies
    of one step; the difference between 3- and 2-step exports is one copy. At batch 1 this count
    times T sets onnxruntime's time (each node costs a fixed ~0.3-1 us there, see
    ``compact_model``).
    """
    compact, _ = compact_fastgrnn(model)
    features = compact.input_size
    counts = []
    with tempfile.TemporaryDirectory(prefix="edge_str-nodes-") as tmp:
        for steps in (2, 3):
            graph = _torch_to_onnx(
                compact,
                (torch.zeros(1, steps, features),),
                [SEQUENCE_INPUT],
                [SEQUENCE_OUTPUT],
                {SEQUENCE_INPUT: {0: "batch"}, SEQUENCE_OUTPUT: {0: "batch"}},
                opset,
                Path(tmp) / "raw.onnx",
            )
            counts.append(len(graph.graph.node))
    return counts[1] - counts[0]


def _write_checked(
    model: onnx.ModelProto, allowed: frozenset[str], path: Path, what: str, x: torch.Tensor
) -> np.ndarray:
    """Check ``model`` (ONNX checker, op allow list), save it to ``path`` and run it on ``x``."""
    check_graph(model, allowed, what)
    _save(model, path)
    logits = run_onnx(path, x)
    if not np.isfinite(logits).all():
        raise EdgeStrError(f"{what}: onnxruntime gives non-finite logits; not exported")
    return logits


def _describe(model: onnx.ModelProto, class_names: Sequence[str] | None, kind: str) -> None:
    """Model-level metadata a device integrator needs (not per-node debugging data)."""
    import json

    props = {"edge_str.graph": kind}
    if class_names is not None:
        props["edge_str.class_names"] = json.dumps(list(class_names))
    helper.set_model_props(model, props)


def _quantize(float_path: Path, tmp: Path) -> onnx.ModelProto:
    """8-bit weights: every MatMul weight stored as int8 with a scale, float compute.

    Weight-only quantization with onnxruntime's quantization math (``quantize_data``, symmetric
    per-tensor int8): each matrix becomes an int8 initializer and one ``DequantizeLinear`` that
    runs once per call. Unlike ``quantize_dynamic``, which adds quantize/rescale nodes to every
    product of the unrolled time loop, this keeps the graph's step count and always shrinks the
    file by ~4x on the matrices, which is what a device stores.
    """
    from onnxruntime.quantization.quant_utils import quantize_data

    del tmp  # nothing to stage: the graph is rewritten in memory
    model = onnx.load(str(float_path))
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    matrices = sorted(_matrices(model))
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


def _params(compact: CompactFastGRNN) -> int:
    """Parameters of the compacted model (as ``FastGRNNClassifier.cost().params_compact``)."""
    h, c = compact.hidden_size, compact.num_classes
    return compact.W.params() + compact.U.params() + 2 * h + 2 + h * c + c


def _params_dense(compact: CompactFastGRNN) -> int:
    """The same model with dense W and U."""
    h, f, c = compact.hidden_size, compact.input_size, compact.num_classes
    return h * f + h * h + 2 * h + 2 + h * c + c


def _macs_per_step(compact: CompactFastGRNN) -> int:
    """W x_t and U h products (k(m + n) factored, m n dense, 0 pruned) + 3 H elementwise."""
    return compact.W.params() + compact.U.params() + 3 * compact.hidden_size


def _macs_per_step_dense(compact: CompactFastGRNN) -> int:
    h, f = compact.hidden_size, compact.input_size
    return h * f + h * h + 3 * h


def _warnings(summary: dict[str, MatrixSummary]) -> list[str]:
    out = []
    if summary["W"].rank == 0:
        out.append("W has rank 0: the logits do not depend on the input features")
    return out


# ----------------------------------------------------------------------------- run directories


HeldoutLoader = Callable[["RunInfo"], tuple[torch.Tensor | None, torch.Tensor | None, str]]


def export_run(
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
    """Export the kept (best-validation) model of a training run; see ``export_model``.

    ``x``/``y``: held-out raw features (N, T, F) and labels, e.g. the test split. Or
    ``heldout(run_info) -> (x, y, source)``, called only once the options are valid and the
    run's model loaded and found exportable (so a refusal never waits for data); it may return
    (None, None, reason). Without held-out inputs, ``random_examples`` random sequences of the
    run's input length (no labels, so no accuracy) are used for the parity checks and the
    report's ``heldout`` says why.
    """
    from edge_str.run import BEST_CHECKPOINT, load_trained_model

    validate_options(out, opset, fixed_batch, loop)
    info, model = load_trained_model(run_dir, checkpoint or BEST_CHECKPOINT)
    if not isinstance(model, FastGRNNClassifier):
        raise EdgeStrError(f"{run_dir}: export supports FastGRNN runs only")
    refuse_unexportable(model)
    if loop == "scan" and model.effective_ranks()["W"] == 0:
        raise EdgeStrError("--loop scan: W has rank 0; export the unrolled graph")
    reason = None
    if x is None and heldout is not None:
        x, y, heldout_source = heldout(info)
        if x is None:
            reason = heldout_source
    if x is None:
        if len(info.input_shape) != 2:
            raise EdgeStrError(f"{run_dir}: input_shape {info.input_shape} is not (T, F)")
        x = random_heldout(model, random_examples, int(info.input_shape[0]), seed)
        y = None
        heldout_source = "random"
    elif tuple(x.shape[1:]) != tuple(info.input_shape):
        raise EdgeStrError(
            f"held-out inputs of shape {tuple(x.shape[1:])}; {run_dir} was trained on "
            f"{tuple(info.input_shape)}"
        )
    report = export_model(
        model,
        out,
        x,
        y,
        streaming=streaming,
        int8=int8,
        opset=opset,
        fixed_batch=fixed_batch,
        loop=loop,
        class_names=info.class_names,
        heldout_source=heldout_source,
        extra={"run": str(run_dir), "task": info.config.task},
        heldout_note=reason,
    )
    return report


def summary_line(report: dict[str, Any]) -> str:
    """The one-line summary the command prints."""
    ranks = ", ".join(f"{k} {v['kept']}/{v['full']}" for k, v in report["ranks"].items())
    parts = [
        f"exported {report['onnx']}: ranks {ranks}",
        f"{report['params']:,} params",
        f"{_kb(report['weight_bytes']['float32'])} weights",
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
    if report["streaming"] is not None:
        parts.append(f"step graph {_kb(report['file_bytes']['step'])}")
    return ", ".join(parts)


def _kb(n: int) -> str:
    return f"{n / 1000:.1f} KB"
