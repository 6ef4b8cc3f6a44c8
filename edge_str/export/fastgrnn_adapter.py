"""The FastGRNN family's part of the export pipeline: bake STR in, drop pruned ranks, its graphs.

Method: STR (Kusupati et al., "Soft Threshold Weight Reparameterization for Learnable Sparsity",
ICML 2020) with g = exp on the singular values of FastGRNN's W = W1·diag(sigma)·W2 and U (Kusupati
et al., "FastGRNN", NeurIPS 2018): a thresholded singular value is exactly 0, so that rank can be
dropped. Export = ``bake_str`` -> ``LowRankMatrix.compact`` -> a plain torch module
(``compact_model``) -> ONNX (``torch_onnx``, or ``scan_graph`` for ``--loop scan``), then checked
against the original parametrized model by ``pipeline``.

    report = export_model(model, "kws.onnx", x, y, streaming=True, int8=True, loop="unrolled")

``x`` (N, T, F) are raw held-out features; T also fixes the unrolled length of the sequence
graph. ``loop``: "unrolled" (default: one straight line of standard ops, what microcontroller
converters take) or "scan" (the time loop as one ONNX Scan, faster under onnxruntime at batch 1;
see ``scan_graph``); the streaming step graph is the same either way.

Files: FILE.onnx (sequence graph), FILE.step.onnx (``--streaming``), FILE.int8.onnx (``--int8``;
with ``--streaming`` also FILE.step.int8.onnx) and FILE.json. The step graph's state ("h" in,
"h_next" out) is FastGRNN's h divided by sigmoid(zeta) (see ``compact_model``): a device starts
it at 0 and feeds it back; h = state_scale x state (``state_scale`` in the report's "streaming"
part).

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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from edge_str.errors import EdgeStrError
from edge_str.export.adapter import Checked, ExportAdapter, ExportJob, Fields, GraphSpec, Prepared
from edge_str.export.checks import max_abs_diff, op_types, weight_bytes
from edge_str.export.compact_model import (
    CompactFastGRNN,
    CompactFastGRNNStep,
    MatrixSummary,
    compact_fastgrnn,
    refuse_unexportable,
)
from edge_str.export.files import MAIN
from edge_str.export.heldout import random_inputs
from edge_str.export.options import DEFAULT_OPSET, ExportOptions
from edge_str.export.quantize import MATMUL_WEIGHTS
from edge_str.export.report import kb
from edge_str.export.scan_graph import loop_body, scan_sequence_graph
from edge_str.export.torch_onnx import describe, label, torch_logits, torch_to_onnx
from edge_str.fastgrnn import FastGRNNClassifier, ModelCost

if TYPE_CHECKING:
    from edge_str.run import RunInfo

STREAMING_CHECK_EXAMPLES = 256  # the step graph is checked frame by frame on this many examples
STEP = "step"  # the role of the single-step graph: FILE.step.onnx

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
        "Clip",  # piecewise-linear gates (model.gates: piecewise)
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


@dataclass
class FastGRNNPrepared(Prepared):
    compact: CompactFastGRNN
    summary: dict[str, MatrixSummary]
    cost: ModelCost
    x: torch.Tensor
    compact_logits: np.ndarray


class FastGRNNAdapter(ExportAdapter):
    family = "fastgrnn"
    extra_roles = (STEP,)

    def check_options(self, options: ExportOptions, what: str) -> None:
        if options.loop not in LOOP_FORMS:
            raise EdgeStrError(f"--loop {options.loop}: must be one of {', '.join(LOOP_FORMS)}")

    def check_model(self, model: torch.nn.Module, options: ExportOptions, what: str) -> None:
        if not isinstance(model, FastGRNNClassifier):
            raise EdgeStrError(
                f"export supports FastGRNN classifiers only, not {type(model).__name__}"
            )
        refuse_unexportable(model)
        if options.loop == "scan" and model.effective_ranks()["W"] == 0:
            raise EdgeStrError(
                "--loop scan: W has rank 0 (the logits do not depend on the input); "
                "export the unrolled graph"
            )

    def check_run(self, info: RunInfo, run_dir: str | os.PathLike) -> None:
        if len(info.input_shape) != 2:
            raise EdgeStrError(f"{run_dir}: input_shape {info.input_shape} is not (T, F)")

    def check_inputs(self, model: FastGRNNClassifier, x: torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(x, dtype=torch.float32)
        features = model.rnn.cell.input_size
        if x.dim() != 3 or x.shape[2] != features or x.shape[0] == 0 or x.shape[1] == 0:
            raise EdgeStrError(
                f"held-out inputs of shape {tuple(x.shape)}; the model takes (N, T, {features})"
            )
        return x

    def random_inputs(self, model: FastGRNNClassifier, info: RunInfo, n: int, seed: int):
        return random_heldout(model, n, int(info.input_shape[0]), seed)

    def prepare(self, model: FastGRNNClassifier, x: torch.Tensor) -> FastGRNNPrepared:
        was_training = model.training
        model.eval()
        try:
            compact, summary = compact_fastgrnn(model)
            reference = torch_logits(model, x).numpy()  # the original, parametrized model
            compact_logits = torch_logits(compact, x).numpy()
            cost = model.cost()
        finally:
            model.train(was_training)
        return FastGRNNPrepared(reference, compact, summary, cost, x, compact_logits)

    def graphs(self, prepared: FastGRNNPrepared, job: ExportJob) -> list[GraphSpec]:
        options, class_names, scratch = job.options, job.class_names, job.scratch
        compact, x = prepared.compact, prepared.x
        steps, features = x.shape[1], compact.input_size
        # Sequence graph: raw features (batch, T, F) -> logits.
        if options.loop == "scan":
            seq = scan_sequence_graph(compact, steps, options.fixed_batch, options.opset)
            label(seq)
        else:
            seq = torch_to_onnx(
                compact,
                (torch.zeros(options.batch, steps, features),),
                [SEQUENCE_INPUT],
                [SEQUENCE_OUTPUT],
                None if options.fixed_batch else _DYNAMIC_SEQUENCE,
                options.opset,
                scratch,
                strip="net.",  # the step wrapper's submodule: same names in both graphs
            )
        describe(seq, class_names, "sequence", job.front_end)
        scan = options.loop == "scan"
        specs = [
            GraphSpec(
                MAIN,
                seq,
                SCAN_OPS if scan else FLOAT_OPS,
                SCAN_INT8_OPS if scan else INT8_OPS,
                MATMUL_WEIGHTS,
                x,
                prepared.reference,
            )
        ]
        if options.streaming:
            # Step graph: (x_t (batch, F), h (batch, H)) -> (h', logits), checked frame by frame.
            step = torch_to_onnx(
                CompactFastGRNNStep(compact).eval(),
                (
                    torch.zeros(options.batch, features),
                    torch.zeros(options.batch, compact.hidden_size),
                ),
                STEP_INPUTS,
                STEP_OUTPUTS,
                None,
                options.opset,
                scratch,
                strip="net.",
            )
            describe(step, class_names, "step", job.front_end)
            n = min(len(x), STREAMING_CHECK_EXAMPLES)
            specs.append(
                GraphSpec(
                    STEP, step, FLOAT_OPS, INT8_OPS, MATMUL_WEIGHTS, x[:n], prepared.reference[:n]
                )
            )
        return specs

    def report_fields(self, prepared: FastGRNNPrepared, checked: Checked, job: ExportJob) -> Fields:
        options = job.options
        compact, cost, x = prepared.compact, prepared.cost, prepared.x
        seq = checked[MAIN]
        body = loop_body(seq.model)
        fields = {
            "steps": int(x.shape[1]),
            "features": compact.input_size,
            "hidden": compact.hidden_size,
            "classes": compact.num_classes,
            "ranks": {name: s.to_dict() for name, s in prepared.summary.items()},
            "params": cost.params_compact,
            "params_dense": cost.params_dense,
            "macs_per_step": cost.macs_per_step_compact,
            "macs_per_step_dense": cost.macs_per_step_dense,
            "head_macs": cost.head_macs,
            "loop": options.loop,
            "loop_body_nodes": None if body is None else len(body.node),
            "max_abs_diff_compact_torch": max_abs_diff(prepared.compact_logits, prepared.reference),
            "streaming": None,
            "warnings": _warnings(prepared.summary),
        }
        step = checked.get(STEP)
        if step is not None:
            n = len(step.spec.inputs)
            fields["streaming"] = {
                **step.parity,
                "examples": n,
                "max_abs_diff_vs_sequence_graph": max_abs_diff(step.logits, seq.logits[:n]),
                "batch": options.batch,
                "state_scale": float(compact.state_scale),  # h = state_scale * state
                "graph_nodes": len(step.model.graph.node),
                "op_types": sorted(op_types(step.model)),
            }
            if step.int8 is not None:
                fields["streaming"]["int8"] = {
                    **step.int8.figures,
                    "weight_bytes": weight_bytes(step.int8.model),
                }
        return fields

    def summary_parts(self, report: dict[str, Any]) -> tuple[list[str], list[str]]:
        ranks = ", ".join(f"{k} {v['kept']}/{v['full']}" for k, v in report["ranks"].items())
        head = [
            f"ranks {ranks}",
            f"{report['params']:,} params",
            f"{kb(report['weight_bytes']['float32'])} weights",
        ]
        tail = []
        if report["streaming"] is not None:
            tail.append(f"step graph {kb(report['file_bytes']['step'])}")
        return head, tail


FASTGRNN_ADAPTER = FastGRNNAdapter()
export_model = FASTGRNN_ADAPTER.export  # the family's entry point: see ExportAdapter.export
_DYNAMIC_SEQUENCE = {SEQUENCE_INPUT: {0: "batch"}, SEQUENCE_OUTPUT: {0: "batch"}}


def random_heldout(model: FastGRNNClassifier, n: int, steps: int, seed: int = 0) -> torch.Tensor:
    """Random raw features (n, T, F) drawn around the model's normalisation statistics."""
    return random_inputs(model.normalizer, (steps, model.rnn.cell.input_size), n, seed)


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
                _DYNAMIC_SEQUENCE,
                opset,
                Path(tmp) / "raw.onnx",
            )
            counts.append(len(graph.graph.node))
    return counts[1] - counts[0]


def _warnings(summary: dict[str, MatrixSummary]) -> list[str]:
    out = []
    if summary["W"].rank == 0:
        out.append("W has rank 0: the logits do not depend on the input features")
    return out
