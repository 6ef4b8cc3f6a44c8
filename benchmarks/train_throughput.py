"""Training throughput (samples/s) of FastGRNN against torch.nn.GRU and LSTM, in one process.

One training step = forward + cross-entropy + backward + Adam step on one batch of random data,
for every model at the Google-12 shape (batch 100, 99 steps, 32 features, hidden 100) and the
HAR-2 shape (batch 100, 128 steps, 9 features, hidden 80), each model with a linear head:

  fastgrnn_dense        FastGRNN, dense W and U, fused sequence (C++ kernel where available)
  fastgrnn_fixed        fixed low rank (the paper's ranks: 16/25 for Google-12, 5/40 for HAR-2)
  fastgrnn_str          STR low rank (full-rank factors with learned thresholds), fused
  fastgrnn_str_torch    STR low rank, the PyTorch fused path (no C++), for context
  fastgrnn_str_ref      STR low rank, the reference Python loop recorded by autograd, for context
  gru, lstm             torch.nn.GRU / torch.nn.LSTM of the same hidden size (batch first)

Models alternate inside every repeat (in a rotating order) so that a change in machine load hits
all of them; the figure per model is the median over repeats of the mean step time of a few
steps, and its ratio to nn.GRU is the median over repeats of the paired per-repeat ratio (the
headline). Also reported: the ratio of the best step times (each model's least disturbed
repeat), which on a shared machine is the steadier estimate of the unloaded ratio.
A shape stops early (after at least 3 repeats) once it has used its time budget (60 s).
Threads: ``torch.set_num_threads(2)`` by default (the 2-core target machine; both FastGRNN's
per-step product and nn.GRU's run their gemms on 2 threads); ``--threads`` changes it.

    python -m benchmarks.train_throughput [--out FILE.json] [--threads N] [--repeats R]
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from benchmarks.reporting import run_and_report, script_parser
from benchmarks.timing import time_interleaved
from edge_str import fused_ext
from edge_str.fastgrnn import FastGRNNClassifier

# name: (batch, steps, features, hidden, classes, (rank_w, rank_u) of the fixed model)
SHAPES: dict[str, tuple[int, int, int, int, int, tuple[int, int]]] = {
    "google12": (100, 99, 32, 100, 12, (16, 25)),
    "har2": (100, 128, 9, 80, 2, (5, 40)),
}
MODELS = (
    "fastgrnn_dense",
    "fastgrnn_fixed",
    "fastgrnn_str",
    "fastgrnn_str_torch",
    "fastgrnn_str_ref",
    "gru",
    "lstm",
)
HEADLINE = "fastgrnn_str"  # the figure reported as train_speedup_vs_gru


class TorchRNNClassifier(nn.Module):
    """nn.GRU / nn.LSTM (batch first) with a linear head on the last output."""

    def __init__(self, kind: str, features: int, hidden: int, classes: int) -> None:
        super().__init__()
        cls = {"gru": nn.GRU, "lstm": nn.LSTM}[kind]
        self.rnn = cls(features, hidden, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


def build_model(name: str, shape: str) -> nn.Module:
    _, _, features, hidden, classes, (rank_w, rank_u) = SHAPES[shape]
    if name in ("gru", "lstm"):
        return TorchRNNClassifier(name, features, hidden, classes)
    kwargs: dict = {}
    if name == "fastgrnn_dense":
        kwargs = {"w_mode": "dense", "u_mode": "dense"}
    elif name == "fastgrnn_fixed":
        kwargs = {"w_mode": "fixed", "u_mode": "fixed", "rank_w": rank_w, "rank_u": rank_u}
    elif name == "fastgrnn_str":
        kwargs = {"w_mode": "str", "u_mode": "str"}
    elif name == "fastgrnn_str_torch":
        kwargs = {"w_mode": "str", "u_mode": "str", "backend": "torch"}
    elif name == "fastgrnn_str_ref":
        kwargs = {"w_mode": "str", "u_mode": "str", "backend": "loop"}
    else:
        raise ValueError(f"unknown model {name!r}")
    return FastGRNNClassifier(features, hidden, classes, **kwargs)


def batch(shape: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    b, t, f, _, classes, _ = SHAPES[shape]
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(b, t, f, generator=gen), torch.randint(0, classes, (b,), generator=gen)


def train_step_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    """One optimiser step on (x, y): zero grads, forward, cross-entropy, backward, Adam."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()

    return step


def summarise(shape: str, times: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    b = SHAPES[shape][0]
    gru = times["gru"]
    rows = {}
    for name, seconds in times.items():
        ratios = [g / s for g, s in zip(gru, seconds, strict=True)]
        step = statistics.median(seconds)
        rows[name] = {
            "step_ms": step * 1e3,
            "step_ms_min": min(seconds) * 1e3,
            "samples_per_s": b / step,
            "ratio_vs_gru": statistics.median(ratios),
            "ratio_vs_gru_min": min(ratios),
            "ratio_vs_gru_max": max(ratios),
            # best step time over best step time: each model's least disturbed repeat
            "ratio_vs_gru_best": min(gru) / min(seconds),
        }
    return rows


def run(
    *,
    threads: int = 2,
    repeats: int = 11,
    steps_per_repeat: int = 3,
    budget_s: float | None = 60.0,
    shapes: tuple[str, ...] = tuple(SHAPES),
    models: tuple[str, ...] = MODELS,
) -> dict:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    start = time.perf_counter()
    kernel = fused_ext.load_extension()  # builds once per machine (cached), see fused_ext
    kernel_seconds = time.perf_counter() - start
    results: dict = {
        "threads": threads,
        "repeats": repeats,
        "steps_per_repeat": steps_per_repeat,
        "budget_s_per_shape": budget_s,
        "cpp_kernel": kernel,
        "cpp_kernel_load_s": kernel_seconds,
        "cpp_kernel_build_s": fused_ext.extension_info()["build_seconds"],
        "load_average_before": os.getloadavg()[0],
        "shapes": {},
    }
    for shape in shapes:
        x, y = batch(shape)
        steps = {name: train_step_fn(build_model(name, shape), x, y) for name in models}
        times = time_interleaved(
            {name: [step] for name, step in steps.items()},
            budget_s=budget_s,
            max_repeats=repeats,
            calls=steps_per_repeat,
        )
        b, t, f, h, c, _ = SHAPES[shape]
        results["shapes"][shape] = {
            "repeats_done": len(times["gru"]),
            "batch": b,
            "steps": t,
            "features": f,
            "hidden": h,
            "classes": c,
            "models": summarise(shape, times),
        }
    results["load_average_after"] = os.getloadavg()[0]
    results["train_speedup_vs_gru"] = {
        shape: r["models"][HEADLINE]["ratio_vs_gru"] for shape, r in results["shapes"].items()
    }
    return results


def table(results: dict) -> str:
    lines = [
        f"training throughput, forward+backward+Adam, {results['threads']} threads, "
        f"median of up to {results['repeats']} repeats x {results['steps_per_repeat']} steps "
        f"(C++ kernel: {'yes' if results['cpp_kernel'] else 'NO, PyTorch fused path'}; "
        f"load average {results['load_average_before']:.1f} -> "
        f"{results['load_average_after']:.1f})"
    ]
    for shape, r in results["shapes"].items():
        lines.append(
            f"\n{shape}: batch {r['batch']}, {r['steps']} steps, {r['features']} features, "
            f"hidden {r['hidden']} ({r['repeats_done']} repeats)"
        )
        lines.append(
            f"  {'model':<20} {'ms/step':>9} {'samples/s':>10} {'x GRU':>7} {'(min..max)':>14}"
            f" {'best ms':>8} {'x GRU best':>10}"
        )
        for name, m in r["models"].items():
            spread = f"{m['ratio_vs_gru_min']:.2f}..{m['ratio_vs_gru_max']:.2f}"
            lines.append(
                f"  {name:<20} {m['step_ms']:>9.2f} {m['samples_per_s']:>10.0f} "
                f"{m['ratio_vs_gru']:>7.2f} {spread:>14} {m['step_ms_min']:>8.2f} "
                f"{m['ratio_vs_gru_best']:>10.2f}"
            )
    return "\n".join(lines)


def main(out_json: Path | None = None, **kwargs) -> dict:
    return run_and_report(run, table, out_json, **kwargs)


if __name__ == "__main__":
    parser = script_parser(__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--steps-per-repeat", type=int, default=3)
    parser.add_argument(
        "--budget", type=float, default=60.0, help="seconds per shape before stopping early"
    )
    args = parser.parse_args()
    main(
        args.out,
        threads=args.threads,
        repeats=args.repeats,
        steps_per_repeat=args.steps_per_repeat,
        budget_s=args.budget,
    )
