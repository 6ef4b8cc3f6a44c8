"""Bytes, MACs and onnxruntime latency of exported FastGRNNs: dense vs compacted low rank.

    python -m benchmarks.export_size_latency [--hidden 100] [--features 32] [--steps 99]
        [--rank-w 8] [--rank-u 20] [--runs 300] [--out results.json]

Builds a dense FastGRNN and an STR FastGRNN whose singular values beyond ranks (rank_w, rank_u)
are thresholded to 0 (``inference.build_fastgrnn``: what STR training leaves behind), exports
both with ``edge_str.export.export_model`` (parity-checked against torch on random inputs),
and times onnxruntime on one CPU thread at batch 1: the whole-sequence graph per sequence, and
the single-step graph per frame (x T); and, for contrast, the sequence graph per sequence at
batch 64, where the products rather than the per-node overhead dominate.
Random weights: this measures size and speed, not accuracy.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch

from benchmarks.inference import build_fastgrnn
from benchmarks.timing import time_interleaved
from edge_str.export import export_model, onnx_session


def timed(session, feeds: dict[str, np.ndarray], calls: int = 1) -> list:
    """One case for ``time_interleaved``: ``calls`` consecutive session.run calls."""
    return [lambda: [session.run(None, feeds) for _ in range(calls)]]


def medians_ms(cases: dict[str, list], divisors: dict[str, int], runs: int) -> dict[str, float]:
    """Median ms per case (divided by its divisor), cases interleaved (``benchmarks.timing``)."""
    times = time_interleaved(cases, min_repeats=runs, max_repeats=runs, calls=1)
    return {name: 1000 * statistics.median(t) / divisors[name] for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=100)
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--steps", type=int, default=99)
    parser.add_argument("--classes", type=int, default=12)
    parser.add_argument("--rank-w", type=int, default=8)
    parser.add_argument("--rank-u", type=int, default=20)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--out", type=Path, default=None, help="also write the rows as JSON")
    args = parser.parse_args()

    torch.set_num_threads(1)
    x = torch.randn(128, args.steps, args.features)
    rows, cases, batched = [], {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, ranks in (("dense", None), ("compacted", (args.rank_w, args.rank_u))):
            model = build_fastgrnn(
                ranks, features=args.features, hidden=args.hidden, classes=args.classes
            )
            out = Path(tmp) / f"{label}.onnx"
            report = export_model(model, out, x, streaming=True, int8=True)
            rows.append(
                {
                    "model": label,
                    "ranks": {k: f"{v['kept']}/{v['full']}" for k, v in report["ranks"].items()},
                    "params": report["params"],
                    "weight_bytes_float32": report["weight_bytes"]["float32"],
                    "weight_bytes_int8": report["weight_bytes"]["int8"],
                    "file_bytes": report["file_bytes"],
                    "macs_per_step": report["macs_per_step"],
                    "macs_per_sequence": report["macs_per_step"] * args.steps + report["head_macs"],
                    "max_abs_diff": report["max_abs_diff"],
                }
            )
            seq = {"features": x[:1].numpy()}
            step = {"x_t": x[:1, 0].numpy(), "h": np.zeros((1, args.hidden), np.float32)}
            session = onnx_session(out, threads=1)
            cases[f"{label}/seq"] = timed(session, seq)
            int8_path = Path(tmp) / f"{label}.int8.onnx"
            cases[f"{label}/int8"] = timed(onnx_session(int8_path, threads=1), seq)
            # T calls of the step graph = one sequence, as a device runs it (plus Python overhead)
            step_path = Path(tmp) / f"{label}.step.onnx"
            cases[f"{label}/step"] = timed(onnx_session(step_path, threads=1), step, args.steps)
            batched[f"{label}/seq64"] = timed(session, {"features": x[:64].numpy()})
        ms = medians_ms(cases, dict.fromkeys(cases, 1), args.runs)
        ms.update(medians_ms(batched, dict.fromkeys(batched, 64), max(args.runs // 10, 20)))
    for r in rows:
        label = r["model"]
        r["ms_per_sequence"] = ms[f"{label}/seq"]
        r["ms_per_sequence_int8"] = ms[f"{label}/int8"]
        r["ms_per_sequence_step_graph"] = ms[f"{label}/step"]
        r["ms_per_sequence_batch64"] = ms[f"{label}/seq64"]

    print(
        "| model | ranks W, U | params | weights f32 / int8 (B) | files seq / int8 / step (B) "
        "| MACs/step | MACs/seq | ms/seq | ms/seq int8 | ms/seq step graph | ms/seq at batch 64 |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        f = r["file_bytes"]
        print(
            f"| {r['model']} | {r['ranks']['W']}, {r['ranks']['U']} | {r['params']:,} "
            f"| {r['weight_bytes_float32']:,} / {r['weight_bytes_int8']:,} "
            f"| {f['onnx']:,} / {f['int8']:,} / {f['step']:,} "
            f"| {r['macs_per_step']:,} | {r['macs_per_sequence']:,} "
            f"| {r['ms_per_sequence']:.3f} | {r['ms_per_sequence_int8']:.3f} "
            f"| {r['ms_per_sequence_step_graph']:.3f} | {r['ms_per_sequence_batch64']:.4f} |"
        )
    if args.out is not None:
        args.out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
