"""`edge-str detect MODEL LONG.wav [--truth CSV]`: streaming keyword detection."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(subparsers) -> None:
    from edge_str.inference.smoothing import SmoothingSettings
    from edge_str.inference.stream import DEFAULT_DECAY, RESETS

    d = SmoothingSettings()
    p = subparsers.add_parser(
        "detect",
        help="detect keywords in a long recording (streaming, with posterior smoothing)",
        description=(
            "Runs the model over the recording frame by frame through its streaming step (the "
            "torch step of a run, or the ONNX step graph of `export --streaming`), a decision "
            "every stride, posteriors averaged and detections suppressed as in TensorFlow's "
            "speech_commands streaming evaluation. With --truth: matched / wrong / false "
            "positives (±750 ms), false accepts per hour, false reject rate, a threshold sweep "
            "and its DET curve (PNG)."
        ),
    )
    p.add_argument("model", help="run folder, or an exported .onnx (its .step.onnx is used)")
    p.add_argument("wav", metavar="LONG.wav", help="the recording")
    p.add_argument("--truth", metavar="CSV", help="ground truth (time_s,label), for scoring")
    p.add_argument(
        "--det-png",
        metavar="FILE",
        help="DET curve with --truth (default: LONG.det.png beside the recording)",
    )
    p.add_argument("--threshold", type=float, default=d.threshold, help="default %(default)s")
    p.add_argument(
        "--stride-ms", type=float, default=d.stride_ms, help="between decisions (%(default)s)"
    )
    p.add_argument(
        "--average-window-ms", type=float, default=d.average_window_ms, help="(%(default)s)"
    )
    p.add_argument("--suppression-ms", type=float, default=d.suppression_ms, help="(%(default)s)")
    p.add_argument(
        "--reset",
        choices=RESETS,
        default="window",
        help="recurrent state over the stream: window (a fresh state for every 1 s window, "
        "the default), never, or decay (see README)",
    )
    p.add_argument("--decay", type=float, default=DEFAULT_DECAY, help="per frame, --reset decay")
    p.add_argument("--json", action="store_true", help="print the whole result as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edge_str.errors import EdgeStrError
    from edge_str.inference import SmoothingSettings, detect_keywords, load_predictor

    if not 0 < args.threshold < 1:
        raise EdgeStrError(f"--threshold {args.threshold}: must be between 0 and 1")
    if not args.stride_ms > 0:
        raise EdgeStrError(f"--stride-ms {args.stride_ms}: must be > 0")
    for name in ("average_window_ms", "suppression_ms"):
        if not getattr(args, name) >= 0:
            raise EdgeStrError(f"--{name.replace('_', '-')} {getattr(args, name)}: must be >= 0")
    if args.det_png and not args.truth:
        raise EdgeStrError("--det-png needs --truth (the curve is scored against it)")
    settings = SmoothingSettings(
        stride_ms=args.stride_ms,
        average_window_ms=args.average_window_ms,
        threshold=args.threshold,
        suppression_ms=args.suppression_ms,
    )
    predictor = load_predictor(args.model)
    det_png = args.det_png or (Path(args.wav).with_suffix(".det.png") if args.truth else None)
    result = detect_keywords(
        predictor,
        args.wav,
        settings,
        reset=args.reset,
        decay=args.decay,
        truth=args.truth,
        det_png=det_png,
    )
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for found in result["detections"]:
            print(f"{found['time_s']:9.2f} s  {found['label']:<10} {found['score']:.3f}")
    print(summary_line(result), file=sys.stderr if args.json else sys.stdout)
    return 0


def summary_line(result: dict) -> str:
    """One line: detections, and with a ground truth TF's percentages, FA/h, FRR and the PNG."""
    text = (
        f"{len(result['detections'])} detections in {result['duration_s']:.1f} s of "
        f"{result['wav']} (reset: {result['reset']})"
    )
    ev = result["evaluation"]
    if ev is None:
        return text
    return (
        f"{text}; {ev['truth_words']} words: matched {ev['matched_percent']:.1f}%, wrong "
        f"{ev['wrong_percent']:.1f}%, false positives {ev['false_positive_percent']:.1f}%; "
        f"at threshold {result['settings']['threshold']:g}: FA/h {ev['fa_per_hour']:.1f}, "
        f"FRR {ev['frr']:.1%}" + (f"; DET curve {ev['det_png']}" if ev["det_png"] else "")
    )
