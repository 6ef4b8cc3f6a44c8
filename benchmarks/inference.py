"""Inference latency and throughput of STR FastGRNN (torch eager, onnxruntime) against GRU.

At the Google-12 shape (99 steps, 32 features, hidden 100, 12 classes), on ONE thread
(``torch.set_num_threads(1)``; onnxruntime ``intra_op_num_threads=1``, ``ORT_ENABLE_ALL``,
sequential execution):
  latency     time per sequence at batch 1 (a device answering one utterance)
  throughput  sequences per second at batch 100
of these models (random weights with random biases, zeta and nu: speed, not accuracy):
  fastgrnn_dense    W 32/32, U 100/100, stored dense
  fastgrnn_compact  STR thresholds set between the 8th/9th singular value of W and the
                    20th/21st of U, so W keeps 8/32 and U 20/100 ranks: ~0.4x the dense MACs
  fastgrnn_half     W 16/32, U 22/100: ~0.5x the dense MACs
  gru               torch.nn.GRU(32, 100) + linear head; in ONNX the single standard GRU op
Runtimes: torch eager (``CompactFastGRNN``, the compacted module the exporter exports; nn.GRU);
onnxruntime on the files ``edge_str.export.export_model`` writes: the sequence graph unrolled
(the default) and as one ONNX Scan loop (``loop="scan"``), the compact model's int8 file and its
single-step streaming graph (per frame); and on the ONNX GRU. For the record also: the int8 file
with onnxruntime's QDQ rewrites left on, and the compact graph under onnxruntime's lower graph
optimisation levels.
Features: Google-12 feature extraction (decode + log-mel + cache write, then a cached load) by
``benchmarks/data_load.py``'s ``measure`` on a synth tree it makes in a temporary folder.

Cases alternate inside every repeat (rotating order) so that changes in machine load hit all of
them; each onnxruntime case rotates over 3 identical sessions, because on a shared machine two
identical sessions can differ by ~10% (where their buffers land). A figure is the median over
repeats; a ratio is the median over repeats of the paired per-repeat ratio.

    python -m benchmarks.inference [--out FILE.json] [--budget S] [--no-features]
"""

from __future__ import annotations

import math
import platform
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from benchmarks.reporting import report, script_parser
from benchmarks.timing import paired_ratio, time_interleaved
from edge_str.export import export_model, run_onnx
from edge_str.export.compact_model import compact_fastgrnn
from edge_str.export.fastgrnn_adapter import graph_nodes_per_step, random_heldout
from edge_str.export.pipeline import PARITY_TOLERANCE
from edge_str.fastgrnn import FastGRNNClassifier
from edge_str.lowrank import LowRankMatrix

STEPS, FEATURES, HIDDEN, CLASSES = 99, 32, 100, 12
# name: (rank of W, rank of U); None = dense
RANKS: dict[str, tuple[int, int] | None] = {
    "fastgrnn_dense": None,
    "fastgrnn_compact": (8, 20),
    "fastgrnn_half": (16, 22),
}
HEADLINE = "fastgrnn_compact"
THROUGHPUT_BATCH = 100
SESSIONS_PER_CASE = 3
OPSET = 13
# Targets of the issue (inference part).
TARGET_HALF_MACS_LATENCY = 0.6  # at ~half the MACs, at most 0.6x the dense model's time
TARGET_VS_GRU = 0.5  # batch-1 sequence latency at most half the ONNX GRU's


# ----------------------------------------------------------------------------- models


def force_rank(matrix: LowRankMatrix, keep: int) -> None:
    """Set the STR threshold exp(s) between the keep-th and (keep+1)-th largest |sigma|.

    What STR training leaves behind: the smaller singular values are thresholded to exactly 0
    (and the kept ones shrink by exp(s)), so exactly ``keep`` ranks survive baking.
    """
    sigma = matrix.parametrizations.sigma.original.detach().abs().sort(descending=True).values
    if keep < len(sigma):
        cut = math.sqrt(float(sigma[keep - 1]) * float(sigma[keep]))
    else:
        cut = float(sigma[-1]) / 2
    with torch.no_grad():
        matrix.parametrizations.sigma[0].s.fill_(math.log(cut))


def build_fastgrnn(
    ranks: tuple[int, int] | None,
    seed: int = 0,
    *,
    features: int = FEATURES,
    hidden: int = HIDDEN,
    classes: int = CLASSES,
) -> FastGRNNClassifier:
    """The benchmarks' FastGRNN: dense (``ranks`` None) or STR with exactly ``ranks`` (W, U)
    surviving (``force_rank``), trained-looking statistics and biases."""
    torch.manual_seed(seed)
    mode = "dense" if ranks is None else "str"
    model = FastGRNNClassifier(features, hidden, classes, w_mode=mode, u_mode=mode).eval()
    gen = torch.Generator().manual_seed(seed + 1)
    cell = model.rnn.cell
    with torch.no_grad():
        mean = torch.randn(features, generator=gen) * 3
        std = torch.rand(features, generator=gen) * 2 + 0.5
        model.normalizer.set_statistics(mean, std)
        cell.bias_gate.copy_(torch.randn(hidden, generator=gen) * 0.5)
        cell.bias_update.copy_(torch.randn(hidden, generator=gen) * 0.5)
        cell.zeta.fill_(1.2)
        cell.nu.fill_(-3.5)
    if ranks is not None:
        for name, keep in zip(("W", "U"), ranks):
            force_rank(getattr(cell, name), keep)
        assert model.effective_ranks() == {"W": ranks[0], "U": ranks[1]}
    return model


class GRUClassifier(nn.Module):
    """torch.nn.GRU (batch first) + a linear head on the last state: the baseline."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(FEATURES, HIDDEN, batch_first=True)
        self.head = nn.Linear(HIDDEN, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, h = self.rnn(x)  # h (1, B, H)
        return self.head(h[-1])


def export_gru(model: GRUClassifier, path: Path, x: torch.Tensor) -> dict:
    """ONNX file of ``model``: one standard GRU node (checked), parity with torch checked."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (x[:1],),
            str(path),
            dynamo=False,
            input_names=["features"],
            output_names=["logits"],
            dynamic_axes={"features": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=OPSET,
        )
    graph = onnx.load(str(path)).graph
    kinds = [n.op_type for n in graph.node]
    if kinds.count("GRU") != 1:
        raise RuntimeError(f"the GRU export has no single GRU node: {kinds}")
    with torch.no_grad():
        diff = float(np.abs(run_onnx(path, x) - model(x).numpy()).max())
    if diff > PARITY_TOLERANCE:
        raise RuntimeError(f"ONNX GRU disagrees with torch: {diff:.3g}")
    return {
        "graph_nodes": len(kinds),
        "op_types": sorted(set(kinds)),
        "max_abs_diff": diff,
        "file_bytes": path.stat().st_size,
        # 3 gates: W (3H x F) x_t and R (3H x H) h, plus ~3H elementwise products
        "macs_per_step": 3 * HIDDEN * (FEATURES + HIDDEN) + 3 * HIDDEN,
        "params": sum(p.numel() for p in model.parameters()),
    }


# ----------------------------------------------------------------------------- running


_LEVELS = {
    "all": "ORT_ENABLE_ALL",
    "extended": "ORT_ENABLE_EXTENDED",
    "basic": "ORT_ENABLE_BASIC",
    "none": "ORT_DISABLE_ALL",
}


def ort_session(model: str | Path | bytes, level: str = "all", qdq: bool = False):
    """One-thread, sequential onnxruntime CPU session at graph optimisation ``level``.

    As ``edge_str.export.onnx_session`` (what ``run_onnx`` uses): onnxruntime's QDQ rewrites
    off, so an int8 file's weights are dequantized once at load; ``qdq=True`` leaves them on.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    if not qdq:
        options.add_session_config_entry("session.disable_quant_qdq", "1")
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _LEVELS[level])
    options.log_severity_level = 3
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def ort_calls(
    model, feeds: dict[str, np.ndarray], level: str = "all", qdq: bool = False
) -> list[Callable]:
    """``SESSIONS_PER_CASE`` callables, one per identical session, each one session.run."""
    sessions = [ort_session(model, level, qdq) for _ in range(SESSIONS_PER_CASE)]
    return [lambda s=s: s.run(None, feeds) for s in sessions]


def median_us(values: list[float]) -> float:
    return statistics.median(values) * 1e6


def p10_us(values: list[float]) -> float:
    return float(np.percentile(values, 10)) * 1e6


# ----------------------------------------------------------------------------- main


def export_fastgrnns(tmp: Path) -> tuple[dict, dict, dict]:
    """Export every FastGRNN (unrolled, and as a Scan loop); their facts, torch modules, files."""
    models: dict[str, dict] = {}
    modules: dict[str, nn.Module] = {}
    files: dict[str, Path] = {}
    for name, ranks in RANKS.items():
        model = build_fastgrnn(ranks)
        heldout = random_heldout(model, 64, STEPS, seed=1)
        headline = name == HEADLINE
        report = export_model(
            model, tmp / f"{name}.onnx", heldout, streaming=headline, int8=headline
        )
        scan = export_model(model, tmp / f"{name}.scan.onnx", heldout, loop="scan")
        modules[name], _ = compact_fastgrnn(model)
        files[name] = tmp / f"{name}.onnx"
        files[f"{name}_scan"] = tmp / f"{name}.scan.onnx"
        models[name] = {
            "ranks": {k: f"{v['kept']}/{v['full']}" for k, v in report["ranks"].items()},
            "stored_as": {k: v["stored_as"] for k, v in report["ranks"].items()},
            "params": report["params"],
            "macs_per_step": report["macs_per_step"],
            "macs_per_sequence": report["macs_per_step"] * STEPS + report["head_macs"],
            "nodes_per_step": graph_nodes_per_step(model),
            "graph_nodes": report["graph_nodes"],
            "file_bytes": report["file_bytes"]["onnx"],
            "max_abs_diff": report["max_abs_diff"],
            "scan_graph_nodes": scan["graph_nodes"],
            "scan_body_nodes": scan["loop_body_nodes"],
            "scan_file_bytes": scan["file_bytes"]["onnx"],
            "scan_max_abs_diff": scan["max_abs_diff"],
        }
        if headline:
            files[f"{name}_int8"] = tmp / f"{name}.int8.onnx"
            files[f"{name}_step"] = tmp / f"{name}.step.onnx"
            models[name]["int8_file_bytes"] = report["file_bytes"]["int8"]
            models[name]["int8_max_abs_diff_vs_float"] = report["int8"]["max_abs_diff_vs_float"]
            models[name]["step_graph_nodes"] = report["streaming"]["graph_nodes"]
    dense_macs = models["fastgrnn_dense"]["macs_per_step"]
    for m in models.values():
        m["macs_ratio_vs_dense"] = m["macs_per_step"] / dense_macs
    return models, modules, files


def run(budget_s: float = 40.0, features: bool = True, synth_per_word: int = 20) -> dict:
    torch.set_num_threads(1)
    import onnxruntime as ort

    started = time.perf_counter()
    h = HEADLINE
    with tempfile.TemporaryDirectory(prefix="edge_str-inference-") as tmp:
        tmp = Path(tmp)
        models, modules, files = export_fastgrnns(tmp)
        # inputs like real features: around the models' normalisation statistics
        rng = np.random.default_rng(0)
        noise = torch.from_numpy(rng.normal(size=(THROUGHPUT_BATCH, STEPS, FEATURES)))
        xb = (modules[h].mean + modules[h].std * noise.float()).contiguous()
        x1 = xb[:1].contiguous()
        torch.manual_seed(0)
        modules["gru"] = GRUClassifier().eval()
        files["gru"] = tmp / "gru.onnx"
        gru_info = export_gru(modules["gru"], files["gru"], xb[:16])

        f1, fb = {"features": x1.numpy()}, {"features": xb.numpy()}
        step_feeds = {"x_t": x1[:, 0].numpy(), "h": np.zeros((1, HIDDEN), np.float32)}
        names = list(RANKS)
        latency: dict[str, list[Callable]] = {}
        throughput: dict[str, list[Callable]] = {}
        for name in names + [f"{n}_scan" for n in names] + [f"{h}_int8", "gru"]:
            latency[f"ort:{name}"] = ort_calls(files[name], f1)
        for name in names + [f"{h}_scan", f"{h}_int8", "gru"]:
            throughput[f"ort:{name}"] = ort_calls(files[name], fb)
        # for the record: onnxruntime's own QDQ handling of the int8 file, lower optimisation
        latency[f"ort:{h}_int8@qdq"] = ort_calls(files[f"{h}_int8"], f1, qdq=True)
        for level in ("basic", "none"):
            latency[f"ort:{h}@{level}"] = ort_calls(files[h], f1, level)
        latency[f"ort:{h}_step"] = ort_calls(files[f"{h}_step"], step_feeds)
        for name in names + ["gru"]:
            module = modules[name]
            latency[f"torch:{name}"] = [lambda m=module: m(x1)]
            throughput[f"torch:{name}"] = [lambda m=module: m(xb)]
        with torch.inference_mode():
            print(f"timing {len(latency)} cases at batch 1 (~{budget_s:.0f} s) ...", flush=True)
            t1 = time_interleaved(latency, budget_s=budget_s, min_repeats=10)
            print(
                f"timing {len(throughput)} cases at batch {THROUGHPUT_BATCH} "
                f"(~{budget_s:.0f} s) ...",
                flush=True,
            )
            tb = time_interleaved(throughput, budget_s=budget_s, min_repeats=5, target_s=0.0)

    def r1(a: str, b: str) -> float:
        return paired_ratio(t1, a, b)

    def rb(a: str, b: str) -> float:
        return paired_ratio(tb, a, b)

    dense = "fastgrnn_dense"
    ratios = {
        "onnx_compact_vs_dense_b1": r1(f"ort:{h}", f"ort:{dense}"),
        "onnx_half_vs_dense_b1": r1("ort:fastgrnn_half", f"ort:{dense}"),
        "onnx_compact_vs_gru_b1": r1(f"ort:{h}", "ort:gru"),
        "onnx_dense_vs_gru_b1": r1(f"ort:{dense}", "ort:gru"),
        "onnx_scan_compact_vs_gru_b1": r1(f"ort:{h}_scan", "ort:gru"),
        "onnx_scan_compact_vs_dense_b1": r1(f"ort:{h}_scan", f"ort:{dense}_scan"),
        "onnx_scan_half_vs_dense_b1": r1("ort:fastgrnn_half_scan", f"ort:{dense}_scan"),
        "onnx_scan_vs_unrolled_compact_b1": r1(f"ort:{h}_scan", f"ort:{h}"),
        "onnx_scan_vs_unrolled_dense_b1": r1(f"ort:{dense}_scan", f"ort:{dense}"),
        "onnx_int8_vs_float_b1": r1(f"ort:{h}_int8", f"ort:{h}"),
        "onnx_int8_qdq_vs_float_b1": r1(f"ort:{h}_int8@qdq", f"ort:{h}"),
        "onnx_opt_basic_vs_all_b1": r1(f"ort:{h}@basic", f"ort:{h}"),
        "onnx_opt_none_vs_all_b1": r1(f"ort:{h}@none", f"ort:{h}"),
        "torch_compact_vs_dense_b1": r1(f"torch:{h}", f"torch:{dense}"),
        "torch_half_vs_dense_b1": r1("torch:fastgrnn_half", f"torch:{dense}"),
        "torch_compact_vs_gru_b1": r1(f"torch:{h}", "torch:gru"),
        "onnx_compact_vs_dense_b100": rb(f"ort:{h}", f"ort:{dense}"),
        "onnx_half_vs_dense_b100": rb("ort:fastgrnn_half", f"ort:{dense}"),
        "onnx_compact_vs_gru_b100": rb(f"ort:{h}", "ort:gru"),
        "onnx_scan_vs_unrolled_compact_b100": rb(f"ort:{h}_scan", f"ort:{h}"),
        "onnx_int8_vs_float_b100": rb(f"ort:{h}_int8", f"ort:{h}"),
        "torch_compact_vs_dense_b100": rb(f"torch:{h}", f"torch:{dense}"),
        "torch_half_vs_dense_b100": rb("torch:fastgrnn_half", f"torch:{dense}"),
        "torch_compact_vs_gru_b100": rb(f"torch:{h}", "torch:gru"),
    }
    half_ratio = ratios["onnx_half_vs_dense_b1"]
    vs_gru = ratios["onnx_compact_vs_gru_b1"]
    step = t1.pop(f"ort:{h}_step")
    result: dict = {
        "shape": {"steps": STEPS, "features": FEATURES, "hidden": HIDDEN, "classes": CLASSES},
        "threads": 1,
        "versions": {"torch": torch.__version__, "onnxruntime": ort.__version__},
        "machine": {"platform": platform.platform(), "processor": platform.processor()},
        "session_options": {
            "intra_op_num_threads": 1,
            "graph_optimization_level": "ORT_ENABLE_ALL",
            "execution_mode": "ORT_SEQUENTIAL",
            "session.disable_quant_qdq": "1",
            "sessions_per_case": SESSIONS_PER_CASE,
        },
        "models": models,
        "gru": gru_info,
        "batch1": {
            "repeats": len(t1[f"ort:{h}"]),
            "us_per_sequence": {k: median_us(v) for k, v in t1.items()},
            "us_per_sequence_p10": {k: p10_us(v) for k, v in t1.items()},
        },
        f"batch{THROUGHPUT_BATCH}": {
            "repeats": len(tb[f"ort:{h}"]),
            "sequences_per_s": {k: THROUGHPUT_BATCH / statistics.median(v) for k, v in tb.items()},
            "us_per_sequence": {k: median_us(v) / THROUGHPUT_BATCH for k, v in tb.items()},
        },
        "streaming": {
            "model": h,
            "us_per_frame": median_us(step),
            "us_per_frame_p10": p10_us(step),
            "us_per_sequence_frame_by_frame": median_us(step) * STEPS,
            "step_graph_nodes": models[h]["step_graph_nodes"],
        },
        "ratios": ratios,
        "onnx_latency_ratio_vs_gru": vs_gru,
        "onnx_compact_vs_dense_latency_ratio": ratios["onnx_compact_vs_dense_b1"],
        "onnx_compact_vs_dense_macs_ratio": models[h]["macs_ratio_vs_dense"],
        "onnx_half_vs_dense_latency_ratio": half_ratio,
        "onnx_half_vs_dense_macs_ratio": models["fastgrnn_half"]["macs_ratio_vs_dense"],
        "targets": {
            "half_macs_latency_vs_dense": {
                "target": f"<= {TARGET_HALF_MACS_LATENCY}",
                "measured": half_ratio,
                "met": half_ratio <= TARGET_HALF_MACS_LATENCY,
            },
            "batch1_latency_vs_onnx_gru": {
                "target": f"<= {TARGET_VS_GRU}",
                "measured": vs_gru,
                "met": vs_gru <= TARGET_VS_GRU,
            },
        },
        "features": feature_figures(synth_per_word) if features else None,
    }
    result["seconds"] = time.perf_counter() - started
    return result


def feature_figures(synth_per_word: int) -> dict:
    """Google-12 feature extraction, first pass and cached, via data_load.measure."""
    import data_load

    print(f"feature extraction on a synth tree ({synth_per_word} clips per word) ...", flush=True)
    figures = data_load.measure(None, synth_per_word)
    figures["first_pass_clips_per_s"] = figures["examples"] / figures["first_load_s"]
    figures["cached_clips_per_s"] = figures["examples"] / figures["cached_load_s"]
    return figures


def table(result: dict) -> str:
    b1 = result["batch1"]["us_per_sequence"]
    bb = result[f"batch{THROUGHPUT_BATCH}"]["sequences_per_s"]
    h = HEADLINE

    def cell(values: dict, key: str, fmt: str = ".0f") -> str:
        return format(values[key], fmt) if key in values else ""

    lines = [
        f"one thread; batch 1: median us per sequence over {result['batch1']['repeats']} "
        f"repeats; batch {THROUGHPUT_BATCH}: sequences/s over "
        f"{result[f'batch{THROUGHPUT_BATCH}']['repeats']} repeats",
        "| model | ranks W, U | MACs/step | x dense | nodes/step | ORT us b1 | ORT Scan us b1 "
        f"| torch us b1 | ORT seq/s b{THROUGHPUT_BATCH} | torch seq/s b{THROUGHPUT_BATCH} |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in result["models"].items():
        lines.append(
            f"| {name} | {m['ranks']['W']}, {m['ranks']['U']} | {m['macs_per_step']:,} "
            f"| {m['macs_ratio_vs_dense']:.2f} | {m['nodes_per_step']} "
            f"| {cell(b1, f'ort:{name}')} | {cell(b1, f'ort:{name}_scan')} "
            f"| {cell(b1, f'torch:{name}')} | {cell(bb, f'ort:{name}')} "
            f"| {cell(bb, f'torch:{name}')} |"
        )
    m = result["models"][h]
    gru = result["gru"]
    dense_macs = result["models"]["fastgrnn_dense"]["macs_per_step"]
    lines += [
        f"| {h}, int8 file | {m['ranks']['W']}, {m['ranks']['U']} | | | {m['nodes_per_step']} "
        f"| {cell(b1, f'ort:{h}_int8')} | | | {cell(bb, f'ort:{h}_int8')} | |",
        f"| gru (ONNX GRU op / nn.GRU) | | {gru['macs_per_step']:,} "
        f"| {gru['macs_per_step'] / dense_macs:.2f} | 1 GRU node | {b1['ort:gru']:.0f} | "
        f"| {b1['torch:gru']:.0f} | {bb['ort:gru']:.0f} | {bb['torch:gru']:.0f} |",
    ]
    r = result["ratios"]
    t = result["targets"]
    s = result["streaming"]

    def met(key: str) -> str:
        return "met" if t[key]["met"] else "NOT met"

    lines += [
        "",
        f"ORT b1 {h} / dense: latency {r['onnx_compact_vs_dense_b1']:.2f}x at "
        f"{result['onnx_compact_vs_dense_macs_ratio']:.2f}x the MACs; half / dense: "
        f"{r['onnx_half_vs_dense_b1']:.2f}x at {result['onnx_half_vs_dense_macs_ratio']:.2f}x "
        f"the MACs (target <= {TARGET_HALF_MACS_LATENCY}: {met('half_macs_latency_vs_dense')}); "
        f"as Scan: {r['onnx_scan_compact_vs_dense_b1']:.2f}x and "
        f"{r['onnx_scan_half_vs_dense_b1']:.2f}x",
        f"ORT b1 {h} / ONNX GRU: {r['onnx_compact_vs_gru_b1']:.2f}x (target <= {TARGET_VS_GRU}: "
        f"{met('batch1_latency_vs_onnx_gru')}); as Scan {r['onnx_scan_compact_vs_gru_b1']:.2f}x; "
        f"dense / ONNX GRU {r['onnx_dense_vs_gru_b1']:.2f}x",
        f"ORT b{THROUGHPUT_BATCH} {h} / dense {r['onnx_compact_vs_dense_b100']:.2f}x, half / "
        f"dense {r['onnx_half_vs_dense_b100']:.2f}x, {h} / ONNX GRU "
        f"{r['onnx_compact_vs_gru_b100']:.2f}x; torch b{THROUGHPUT_BATCH} {h} / dense "
        f"{r['torch_compact_vs_dense_b100']:.2f}x, half / dense "
        f"{r['torch_half_vs_dense_b100']:.2f}x, {h} / nn.GRU {r['torch_compact_vs_gru_b100']:.2f}x",
        f"torch b1 {h} / dense {r['torch_compact_vs_dense_b1']:.2f}x, / nn.GRU "
        f"{r['torch_compact_vs_gru_b1']:.2f}x",
        f"ORT {h}: Scan / unrolled b1 {r['onnx_scan_vs_unrolled_compact_b1']:.2f}x (dense "
        f"{r['onnx_scan_vs_unrolled_dense_b1']:.2f}x), b{THROUGHPUT_BATCH} "
        f"{r['onnx_scan_vs_unrolled_compact_b100']:.2f}x; int8 / float b1 "
        f"{r['onnx_int8_vs_float_b1']:.2f}x (with onnxruntime's QDQ rewrites "
        f"{r['onnx_int8_qdq_vs_float_b1']:.2f}x); ORT_ENABLE_BASIC / ALL "
        f"{r['onnx_opt_basic_vs_all_b1']:.2f}x, ORT_DISABLE_ALL / ALL "
        f"{r['onnx_opt_none_vs_all_b1']:.2f}x",
        f"streaming step graph ({s['step_graph_nodes']} nodes): {s['us_per_frame']:.1f} us per "
        f"frame; {STEPS} frames {s['us_per_sequence_frame_by_frame']:.0f} us",
    ]
    f = result["features"]
    if f is not None:
        lines.append(
            f"features ({f['data_dir']}, {f['examples']} clips): first pass "
            f"{f['first_pass_clips_per_s']:.0f} clips/s (decode + log-mel + cache write), cached "
            f"{f['cached_clips_per_s']:.0f} clips/s"
        )
    return "\n".join(lines)


def main(
    out_json: Path | None = None,
    budget_s: float = 40.0,
    features: bool = True,
    synth_per_word: int = 20,
) -> dict:
    threads = torch.get_num_threads()
    try:
        result = run(budget_s, features, synth_per_word)
    finally:
        torch.set_num_threads(threads)
    return report(result, table(result), out_json)


if __name__ == "__main__":
    parser = script_parser(__doc__)
    parser.add_argument(
        "--budget", type=float, default=40.0, help="seconds of timing per batch size"
    )
    parser.add_argument("--no-features", action="store_true", help="skip the features section")
    parser.add_argument("--synth-per-word", type=int, default=20)
    args = parser.parse_args()
    main(args.out, args.budget, not args.no_features, args.synth_per_word)
