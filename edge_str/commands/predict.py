"""`edge-str predict MODEL FILE.wav...`: the top classes of each WAV file, one line each."""

from __future__ import annotations

import argparse
import json


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "predict",
        help="classify WAV files with a trained run or an exported ONNX file",
        description=(
            "Class probabilities of each WAV file (any sample rate, mono or stereo; fitted to "
            "the model's 1 s clip as in training), with the model's own front end."
        ),
    )
    p.add_argument("model", help="run folder made by `edge-str train`, or an exported .onnx")
    p.add_argument("wavs", nargs="+", metavar="FILE.wav", help="WAV files to classify")
    p.add_argument("--top", type=int, default=3, metavar="K", help="classes shown (default 3)")
    p.add_argument("--json", action="store_true", help="print JSON instead of one line a file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edge_str.errors import EdgeStrError
    from edge_str.inference import load_predictor

    if args.top < 1:
        raise EdgeStrError(f"--top {args.top}: must be at least 1")
    predictor = load_predictor(args.model)
    results = [{"wav": wav, "top": predictor.top(wav, k=args.top)} for wav in args.wavs]
    if args.json:
        payload = [
            {"wav": r["wav"], "top": [{"label": n, "probability": p} for n, p in r["top"]]}
            for r in results
        ]
        print(json.dumps({"model": predictor.source, "predictions": payload}, indent=2))
    else:
        for r in results:
            print(f"{r['wav']}: " + ", ".join(f"{n} {p:.3f}" for n, p in r["top"]))
    return 0
