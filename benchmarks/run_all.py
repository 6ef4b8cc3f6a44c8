"""Run every benchmark, merge their results and write benchmarks/results.json (atomically).

Sections (each a script of this folder with a ``main(out_json)`` returning a dict):
  train_throughput  training samples/s of FastGRNN vs nn.GRU / nn.LSTM (ratios in one process)
  roofline          measured matmul rates vs the MAC/s each model's training step achieves
  memory            peak RSS of a training epoch, one fresh process per model
  inference         onnxruntime / torch latency (batch 1, one thread) and throughput (batch 100)
                    of dense, compacted and int8 exports vs an ONNX GRU; streaming step latency;
                    feature extraction clips/s, first pass and cached
  c_inference       per-frame latency of the generated C (gcc -O2 / -Os, one thread) of the
                    compacted and dense FastGRNN vs a C GRU; flash / RAM for Cortex-M4
The headlines: ``train_speedup_vs_gru`` ({shape: ratio}), STR low-rank FastGRNN's training
throughput over nn.GRU's, and ``onnx_latency_ratio_vs_gru``, the compacted FastGRNN's batch-1
sequence latency in onnxruntime over an ONNX GRU's, and ``c_latency_ratio_vs_gru`` /
``c_latency_ratio_vs_dense`` ({"-O2": ratio, "-Os": ratio}), the compacted FastGRNN's per-frame
time in generated C over a C GRU's and over the dense FastGRNN's. Each section's own table is
printed as it finishes; a summary follows.

    python -m benchmarks.run_all [--out benchmarks/results.json]      (or: make bench)
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch

from benchmarks import c_inference, inference, memory, roofline, train_throughput
from benchmarks.reporting import report

DEFAULT_OUT = Path(__file__).resolve().parent / "results.json"


def run() -> dict:
    results: dict = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "seconds": {},
    }
    sections = [
        ("train_throughput", lambda: train_throughput.main(None)),
        ("roofline", lambda: roofline.main(None, throughput=results["train_throughput"])),
        ("memory", lambda: memory.main(None)),
        ("inference", lambda: inference.main(None)),
        ("c_inference", lambda: c_inference.main(None)),
    ]
    for name, section in sections:
        print(f"\n== {name} ==", flush=True)
        start = time.perf_counter()
        results[name] = section()
        results["seconds"][name] = time.perf_counter() - start
    results["train_speedup_vs_gru"] = results["train_throughput"]["train_speedup_vs_gru"]
    results["onnx_latency_ratio_vs_gru"] = results["inference"]["onnx_latency_ratio_vs_gru"]
    results["c_latency_ratio_vs_gru"] = results["c_inference"]["c_latency_ratio_vs_gru"]
    results["c_latency_ratio_vs_dense"] = results["c_inference"]["c_latency_ratio_vs_dense"]
    return results


def summary(results: dict) -> str:
    lines = ["\n== summary =="]
    throughput = results["train_throughput"]["shapes"]
    for shape, speedup in results["train_speedup_vs_gru"].items():
        models = throughput[shape]["models"]
        rf = results["roofline"]["shapes"][shape]["models"]["fastgrnn_str"]
        mem = results["memory"]["shapes"][shape]["models"]
        lines.append(
            f"{shape}: STR FastGRNN trains {speedup:.2f}x nn.GRU "
            f"(best steps {models['fastgrnn_str']['ratio_vs_gru_best']:.2f}x; "
            f"{models['fastgrnn_str']['samples_per_s']:.0f} vs "
            f"{models['gru']['samples_per_s']:.0f} samples/s), "
            f"{rf['achieved_gmacs']:.1f} GMAC/s with {rf['matmul_share']:.0%} of the step in "
            f"matrix products; training memory +{mem['fastgrnn_str']['training_growth_mb']:.0f} "
            f"MB vs +{mem['gru']['training_growth_mb']:.0f} MB for GRU"
        )
    infer = results["inference"]
    lines.append(
        f"onnxruntime batch 1: compacted FastGRNN {infer['onnx_latency_ratio_vs_gru']:.2f}x "
        f"the ONNX GRU's latency; compacted/dense latency "
        f"{infer['onnx_compact_vs_dense_latency_ratio']:.2f}x"
    )
    c, g, d = (
        results["c_inference"],
        results["c_latency_ratio_vs_gru"],
        results["c_latency_ratio_vs_dense"],
    )
    lines.append(
        f"generated C per frame: compacted FastGRNN {g['-O2']:.3f}x / {g['-Os']:.3f}x a C GRU "
        f"(-O2 / -Os), {d['-O2']:.3f}x / {d['-Os']:.3f}x dense at "
        f"{c['mac_ratio_compact_vs_dense']:.3f}x its MACs"
    )
    took = ", ".join(f"{k} {v:.0f} s" for k, v in results["seconds"].items())
    lines.append(f"time: {took}")
    return "\n".join(lines)


def main(out_json: Path | None = DEFAULT_OUT) -> dict:
    results = run()
    return report(results, summary(results), out_json)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    main(parser.parse_args().out)
