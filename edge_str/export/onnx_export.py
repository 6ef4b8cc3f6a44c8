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
with ``--streaming`` also FILE.step.int8.onnx) and FILE.json (the report). The step graph's
state ("h" in, "h_next" out) is FastGRNN's h divided by sigmoid(zeta) (see ``compact_model``):
a device starts it at 0 and feeds it back; h = state_scale x state (``state_scale`` in the
report's "streaming" part). Every file is written
under a temporary name and renamed into place only after all checks passed.

Size note: the sequence graph is unrolled (see ``CompactFastGRNN``), so its file holds T copies of
the step's 9-10 nodes (``graph_nodes_per_step``) besides the weights (stored once). The int8
files store every matrix as int8 plus one DequantizeLinear (weight-only quantization), so they
are always smaller than the float ones; ``onnxruntime.quantization.quantize_dynamic`` was not
used because it adds ~4 nodes to every product of every step and made the 99-step file larger
than the float one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
import torch

from edge_str.atomic import write_json
from edge_str.errors import EdgeStrError
from edge_str.export.compact_model import (
    CompactFastGRNN,
    CompactFastGRNNStep,
    MatrixSummary,
    compact_fastgrnn,
    refuse_unexportable,
)
from edge_str.export.onnx_common import (  # noqa: F401  (re-exported: the module's old API)
    DEFAULT_OPSET,
    MAX_OPSET,
    MIN_OPSET,
    PARITY_TOLERANCE,
    ExportPaths,
    HeldoutLoader,
    accuracy_of,
    agreement,
    all_nodes,
    check_graph,
    check_parity,
    describe,
    front_end_of,
    int8_weight_bytes_estimate,
    label,
    onnx_session,
    op_types,
    quantize_weights,
    resolve_heldout,
    run_onnx,
    run_onnx_streaming,
    tidy_graph,
    torch_logits,
    torch_to_onnx,
    weight_bytes,
    write_checked,
)
from edge_str.export.onnx_common import validate_options as validate_common_options
from edge_str.export.scan_graph import loop_body, scan_sequence_graph
from edge_str.fastgrnn import FastGRNNClassifier

if TYPE_CHECKING:
    pass

DEFAULT_RANDOM_EXAMPLES = 64
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


def _check_parity(onnx_logits: np.ndarray, reference: np.ndarray, what: str) -> dict[str, Any]:
    """``check_parity`` at this module's ``PARITY_TOLERANCE`` (read at call time)."""
    return check_parity(onnx_logits, reference, what, PARITY_TOLERANCE)


def _loop_body_nodes(model: onnx.ModelProto) -> int | None:
    body = loop_body(model)
    return None if body is None else len(body.node)


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
    if loop not in LOOP_FORMS:
        raise EdgeStrError(f"--loop {loop}: must be one of {', '.join(LOOP_FORMS)}")
    return validate_common_options(out, opset, fixed_batch)


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
    front_end: str | None = None,
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
        reference = torch_logits(model, x).numpy()  # the original, parametrized model
        compact_logits = torch_logits(compact, x).numpy()
    finally:
        model.train(was_training)
    batch = fixed_batch or 1

    paths.onnx.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".edge_str-export-", dir=paths.onnx.parent) as tmp:
        tmp = Path(tmp)
        # Sequence graph: raw features (batch, T, F) -> logits.
        if loop == "scan":
            seq = scan_sequence_graph(compact, steps, fixed_batch, opset)
            label(seq)
        else:
            dynamic = (
                None
                if fixed_batch
                else {SEQUENCE_INPUT: {0: "batch"}, SEQUENCE_OUTPUT: {0: "batch"}}
            )
            seq = torch_to_onnx(
                compact,
                (torch.zeros(batch, steps, features),),
                [SEQUENCE_INPUT],
                [SEQUENCE_OUTPUT],
                dynamic,
                opset,
                tmp / "raw.onnx",
                strip_prefix="net.",  # the step wrapper's submodule: same names in both graphs
            )
        describe(seq, class_names, "sequence", front_end)
        allowed = SCAN_OPS if loop == "scan" else FLOAT_OPS
        onnx_logits = write_checked(seq, allowed, tmp / "seq.onnx", paths.onnx.name, x)
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
                "torch": accuracy_of(reference, y_np),
                "onnx": accuracy_of(onnx_logits, y_np),
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
            step = torch_to_onnx(
                CompactFastGRNNStep(compact).eval(),
                (torch.zeros(batch, features), torch.zeros(batch, compact.hidden_size)),
                STEP_INPUTS,
                STEP_OUTPUTS,
                None,
                opset,
                tmp / "raw.onnx",
                strip_prefix="net.",
            )
            describe(step, class_names, "step", front_end)
            n = min(len(x), STREAMING_CHECK_EXAMPLES)
            stream_logits = write_checked(
                step, FLOAT_OPS, tmp / "step.onnx", paths.step.name, x[:n]
            )
            report["streaming"] = {
                **_check_parity(stream_logits, reference[:n], paths.step.name),
                "examples": n,
                "max_abs_diff_vs_sequence_graph": float(
                    np.abs(stream_logits - onnx_logits[:n]).max()
                ),
                "batch": batch,
                "state_scale": float(compact.state_scale),  # h = state_scale * state
                "graph_nodes": len(step.graph.node),
                "op_types": sorted(op_types(step)),
            }
            report["step_onnx"] = str(paths.step)
            report["file_bytes"]["step"] = (tmp / "step.onnx").stat().st_size
            moves.append((tmp / "step.onnx", paths.step))

        if int8:
            quantized = quantize_weights(tmp / "seq.onnx")
            allowed = SCAN_INT8_OPS if loop == "scan" else INT8_OPS
            int8_logits = write_checked(quantized, allowed, tmp / "int8.onnx", paths.int8.name, x)
            accuracy = report["accuracy"]
            accuracy["int8"] = accuracy_of(int8_logits, y_np)
            if accuracy["int8"] is not None:
                accuracy["int8_change"] = accuracy["int8"] - accuracy["onnx"]
            report["int8"] = {
                "max_abs_diff_vs_float": float(np.abs(int8_logits - onnx_logits).max()),
                "top1_agreement_vs_float": agreement(int8_logits, onnx_logits),
                "op_types": sorted(op_types(quantized)),
            }
            report["weight_bytes"]["int8"] = weight_bytes(quantized)
            report["weight_bytes_int8_measured"] = True
            report["int8_onnx"] = str(paths.int8)
            report["file_bytes"]["int8"] = (tmp / "int8.onnx").stat().st_size
            moves.append((tmp / "int8.onnx", paths.int8))
            if streaming:
                step_q = quantize_weights(tmp / "step.onnx")
                n = report["streaming"]["examples"]
                step_q_path = tmp / "step_int8.onnx"
                step_q_logits = write_checked(
                    step_q, INT8_OPS, step_q_path, paths.step_int8.name, x[:n]
                )
                report["streaming"]["int8"] = {
                    "max_abs_diff_vs_float": float(np.abs(step_q_logits - stream_logits).max()),
                    "top1_agreement_vs_float": agreement(step_q_logits, stream_logits),
                    "weight_bytes": weight_bytes(step_q),
                }
                report["step_int8_onnx"] = str(paths.step_int8)
                report["file_bytes"]["step_int8"] = step_q_path.stat().st_size
                moves.append((step_q_path, paths.step_int8))

        if extra:
            report.update(extra)
        paths.move_into_place(moves)
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
            graph = torch_to_onnx(
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

    A CNN run (``model.arch`` in ``CNN_ARCHS``) goes to ``cnn_export.export_cnn_run``, which
    refuses ``streaming`` and ``loop="scan"`` and writes the CNN report.
    """
    from edge_str.cnn.build import CNN_ARCHS
    from edge_str.run import BEST_CHECKPOINT, load_run_info, load_trained_model

    validate_options(out, opset, fixed_batch, loop)
    if load_run_info(run_dir).config.model.arch in CNN_ARCHS:
        from edge_str.export.cnn_export import export_cnn_run

        return export_cnn_run(
            run_dir,
            out,
            x,
            y,
            heldout=heldout,
            checkpoint=checkpoint,
            streaming=streaming,
            int8=int8,
            opset=opset,
            fixed_batch=fixed_batch,
            loop=loop,
            heldout_source=heldout_source,
            random_examples=random_examples,
            seed=seed,
        )
    info, model = load_trained_model(run_dir, checkpoint or BEST_CHECKPOINT)
    if not isinstance(model, FastGRNNClassifier):
        raise EdgeStrError(f"{run_dir}: export supports FastGRNN runs only")
    refuse_unexportable(model)
    if loop == "scan" and model.effective_ranks()["W"] == 0:
        raise EdgeStrError("--loop scan: W has rank 0; export the unrolled graph")
    if len(info.input_shape) != 2:
        raise EdgeStrError(f"{run_dir}: input_shape {info.input_shape} is not (T, F)")
    x, y, heldout_source, reason = resolve_heldout(
        run_dir,
        info,
        x,
        y,
        heldout,
        heldout_source,
        lambda: random_heldout(model, random_examples, int(info.input_shape[0]), seed),
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
        front_end=front_end_of(info),
    )
    return report


def summary_line(report: dict[str, Any]) -> str:
    """The one-line summary the command prints (for a FastGRNN or a CNN report)."""
    if "ranks" not in report:
        from edge_str.export.cnn_export import cnn_summary_line

        return cnn_summary_line(report)
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
