"""Bytes, MACs and onnxruntime latency of exported FastGRNNs: dense vs compacted low rank.

    python benchmarks/export_size_latency.py [--hidden 100] [--features 32] [--steps 99]
        [--rank-w 8] [--rank-u 20] [--runs 300] [--out results.json]

Builds a dense FastGRNN and an STR FastGRNN whose singular values beyond ranks (rank_w, rank_u)
are zeroed (what STR training leaves behind), exports both with ``edge_str.export.export_model``
(parity-checked against torch on random inputs), and times onnxruntime on one CPU thread at
batch 1: the whole-sequence graph per sequence, and the single-step graph per frame (x T); and,
for contrast, the sequence graph per sequence at batch 64, where the products rather than the
per-node overhead dominate.
Random weights: this measures size and speed, not accuracy.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from edge_str.export import export_model, onnx_session
from edge_str.fastgrnn import FastGRNNClassifier


def build(hidden: int, features: int, classes: int, ranks: tuple[int, int] | None):
    torch.manual_seed(0)
    mode = "dense" if ranks is None else "str"
    model = FastGRNNClassifier(features, hidden, classes, w_mode=mode, u_mode=mode).eval()
    with torch.no_grad():
        model.normalizer.set_statistics(torch.randn(features), torch.rand(features) + 0.5)
        if ranks is not None:
            for name, keep in zip(("W", "U"), ranks):
                getattr(model.rnn.cell, name).parametrizations.sigma.original[keep:] = 0
    return model


def timed_ms(session, feeds: dict[str, np.ndarray], calls: int = 1) -> float:
    """Wall time of ``calls`` consecutive session.run calls, in ms."""
    start = time.perf_counter()
    for _ in range(calls):
        session.run(None, feeds)
    return 1000 * (time.perf_counter() - start)


def interleaved_medians(cases: dict[str, tuple], runs: int) -> dict[str, float]:
    """Median ms per case; the cases take turns (order alternating) so load drift hits all alike.

    ``cases``: name -> (session, feeds, calls, divisor).
    """
    times: dict[str, list[float]] = {name: [] for name in cases}
    order = list(cases)
    for _ in range(max(5, runs // 10)):  # warm-up
        for session, feeds, calls, _ in cases.values():
            timed_ms(session, feeds, calls)
    for i in range(runs):
        for name in order if i % 2 else order[::-1]:
            session, feeds, calls, divisor = cases[name]
            times[name].append(timed_ms(session, feeds, calls) / divisor)
    return {name: statistics.median(values) for name, values in times.items()}


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
            model = build(args.hidden, args.features, args.classes, ranks)
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
            cases[f"{label}/seq"] = (onnx_session(out, threads=1), seq, 1, 1)
            cases[f"{label}/int8"] = (
                onnx_session(Path(tmp) / f"{label}.int8.onnx", threads=1),
                seq,
                1,
                1,
            )
            # T calls of the step graph = one sequence, as a device runs it (plus Python overhead)
            cases[f"{label}/step"] = (
                onnx_session(Path(tmp) / f"{label}.step.onnx", threads=1),
                step,
                args.steps,
                1,
            )
            batched[f"{label}/seq64"] = (
                cases[f"{label}/seq"][0],
                {"features": x[:64].numpy()},
                1,
                64,
            )
        ms = interleaved_medians(cases, args.runs)
        ms.update(interleaved_medians(batched, max(args.runs // 10, 20)))
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
