"""``edge-str export RUN --c DIR [--weights float32|int8] [--integer] [--prefix NAME]``.

The flags of the C export and what they ask of the export pipeline: ``add_c_arguments`` adds them
to the export command, ``c_request`` checks them (before anything is loaded or written) and
returns the ONNX file to write (``--out``, or DIR/NAME.onnx without it, so FILE.json is
DIR/NAME.json) and the pipeline extensions to run (none without ``--c``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from edge_str.errors import EdgeStrError
from edge_str.export.c.export import DEFAULT_PREFIX, WEIGHT_CHOICES, c_mode, feature_settings
from edge_str.export.c.extension import c_extension


def add_c_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("C for microcontrollers (FastGRNN runs)")
    group.add_argument(
        "--c",
        dest="c_dir",
        metavar="DIR",
        help="also write DIR/NAME.h and DIR/NAME.c: C99, no heap, state struct owned by the caller",
    )
    group.add_argument(
        "--weights",
        choices=WEIGHT_CHOICES,
        default=None,
        help="C weights: float32 (default) or int8 with a float scale per row",
    )
    group.add_argument(
        "--integer",
        action="store_true",
        help="integer-only C: int8 weights, int16 activations, piecewise-linear gates",
    )
    group.add_argument(
        "--prefix",
        default=None,
        metavar="NAME",
        help=f"name of the C files and functions (default {DEFAULT_PREFIX})",
    )


def c_request(args: argparse.Namespace) -> tuple[str, list[Any]]:
    """(the ONNX file to write, the pipeline extensions) for the export command's flags."""
    if args.c_dir is None:
        for flag, value in (("--weights", args.weights), ("--prefix", args.prefix)):
            if value is not None:
                raise EdgeStrError(f"{flag} applies to the C export: add --c DIR")
        if args.integer:
            raise EdgeStrError("--integer applies to the C export: add --c DIR")
        if args.out is None:
            raise EdgeStrError("give --out FILE.onnx, --c DIR, or both")
        return args.out, []
    if args.integer and args.weights == "float32":
        raise EdgeStrError("--integer stores int8 weights: drop --weights float32")
    mode = c_mode(args.weights or "float32", args.integer)
    prefix = args.prefix or DEFAULT_PREFIX
    from edge_str.run import load_run_info

    info = load_run_info(args.run)
    arch = info.config.model.arch
    if arch != "fastgrnn":
        raise EdgeStrError(f"--c: C export supports FastGRNN runs only; {args.run} is a {arch} run")
    extension = c_extension(
        args.c_dir, mode, prefix, feature_settings(info.config.task, info.config.data)
    )
    out = args.out or str(Path(args.c_dir) / f"{prefix}.onnx")
    return out, [extension]


def c_summary(report: dict[str, Any]) -> str | None:
    """The C part of the summary line, or None when no C was written."""
    c = report.get("c")
    if not c:
        return None
    text = f"C {c['mode']} {c['files'][1]}: {c['weight_bytes'] / 1000:.1f} KB weights"
    if c["flash_bytes"] is not None:
        target = c["modes"][c["mode"]]["target"]
        text += f", flash {c['flash_bytes'] / 1000:.1f} KB / RAM {c['ram_bytes']} B ({target})"
    accuracy = c["accuracy"][c["mode"]]
    if accuracy is not None:
        text += f", test acc {accuracy:.2%}"
    return text
