"""``edge-str export RUN --out FILE.onnx``: bake STR in, write standard ONNX, check and report.

One pipeline (``export.pipeline``) for both families. FastGRNN runs: pruned ranks dropped
(``export.fastgrnn_adapter``). CNN runs (DS-CNN, ResNet, MobileNetV1): sparse weights baked in,
BatchNorm folded, storage and budget figures in FILE.json (``export.cnn_adapter``);
``--streaming`` and ``--loop scan`` are refused for them. ``--c DIR`` (FastGRNN) also writes C99 for
microcontrollers, checked with the ONNX files and moved into place with them (``export.c``);
without ``--out`` the ONNX files and FILE.json go to DIR/NAME.onnx and DIR/NAME.json.

Held-out inputs for the parity checks and the accuracies come from the test split through the
data-loader contract:
    edge_str.data.load_task(task, data_dir, config.data).split_tensors("test") -> (x, y)
(``digits`` is bundled with scikit-learn and needs no folder). Where no data can be read (no
--data and the run's data folder is gone, or no loader in this build) the checks run on random
inputs around the model's normalisation statistics and the accuracies are null; the summary
line and a note on stderr say so.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from edge_str.errors import EdgeStrError
from edge_str.export.c.cli import add_c_arguments, c_request, c_summary
from edge_str.export.fastgrnn_adapter import LOOP_FORMS
from edge_str.export.options import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET
from edge_str.run import RunInfo

BUNDLED_TASKS = ("digits",)  # data shipped with a dependency: no --data folder needed


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a trained run to ONNX (sparsity / pruned ranks baked in)",
        description=(
            "Bake STR in and write FILE.onnx (raw input -> logits) and FILE.json. FastGRNN: "
            "every low-rank matrix compacted to its surviving ranks; the report gives ranks, "
            "params, bytes, MACs. CNNs: sparse weights baked in, BatchNorm folded; the report "
            "gives per-layer bytes stored dense and sparse, the sparsity budget and MACs. Both: "
            "max |onnxruntime - torch| and accuracies on the test split."
        ),
    )
    parser.add_argument("run", metavar="RUN", help="run directory written by `edge-str train`")
    parser.add_argument(
        "--out", metavar="FILE.onnx", help="ONNX file to write (default with --c: DIR/NAME.onnx)"
    )
    parser.add_argument(
        "--int8", action="store_true", help="also write FILE.int8.onnx (8-bit weights)"
    )
    parser.add_argument(
        "--streaming",
        action="store_true",
        help=(
            "FastGRNN: also write FILE.step.onnx, one frame per call, (x_t, h) -> (h_next, "
            "logits); the state starts at 0 and is h / sigmoid(zeta) (state_scale in FILE.json)"
        ),
    )
    parser.add_argument(
        "--opset",
        type=int,
        default=DEFAULT_OPSET,
        metavar="N",
        help=f"ONNX opset, {MIN_OPSET}..{MAX_OPSET} (default {DEFAULT_OPSET})",
    )
    parser.add_argument(
        "--data", metavar="DIR", help="data folder for the test split (default: the run's)"
    )
    parser.add_argument(
        "--fixed-batch",
        type=int,
        default=None,
        metavar="N",
        help="fixed batch size in the graph (default: dynamic; the step graph uses 1)",
    )
    parser.add_argument(
        "--loop",
        choices=LOOP_FORMS,
        default="unrolled",
        help=(
            "FastGRNN: time loop of FILE.onnx, unrolled (default; plain ops, for microcontroller "
            "converters) or scan (one ONNX Scan: faster under onnxruntime at batch 1)"
        ),
    )
    parser.add_argument(
        "--checkpoint", default=None, metavar="NAME", help="checkpoint in RUN (default best.pt)"
    )
    add_c_arguments(parser)
    parser.set_defaults(func=run)


def heldout_split(
    info: RunInfo, data: str | None
) -> tuple[torch.Tensor | None, torch.Tensor | None, str]:
    """(x, y, source) of the run's test split, or (None, None, reason) when none can be read."""
    data_dir = data or info.config.data_dir
    bundled = info.config.task in BUNDLED_TASKS and not data
    if not bundled and (not data_dir or not Path(data_dir).is_dir()):
        return None, None, "no data folder (pass --data DIR)"
    try:
        from edge_str.data import load_task
    except ImportError:
        return None, None, "this build has no data loader"
    task = load_task(info.config.task, data_dir, info.config.data)
    x, y = task.split_tensors("test")
    if bundled:
        return x, y, f"test split of {info.config.task}"
    return x, y, f"test split of {data_dir}"


def run(args: argparse.Namespace) -> int:
    from edge_str.export import export_run, summary_line

    if args.data is not None and not Path(args.data).is_dir():
        raise EdgeStrError(f"--data {args.data}: no such folder")
    out, extensions = c_request(args)
    report = export_run(
        args.run,
        out,
        heldout=lambda info: heldout_split(info, args.data),
        checkpoint=args.checkpoint,
        streaming=args.streaming,
        int8=args.int8,
        opset=args.opset,
        fixed_batch=args.fixed_batch,
        loop=args.loop,
        extensions=extensions,
    )
    note = report["heldout"]["note"]
    if note:  # printed after success, so a refusal stays a single line on stderr
        print(
            f"edge-str: note: {note}; parity checked on random inputs, no accuracy", file=sys.stderr
        )
    c_text = c_summary(report)
    print(summary_line(report) + (f", {c_text}" if c_text else ""))
    return 0
