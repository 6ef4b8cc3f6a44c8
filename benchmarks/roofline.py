"""Roofline of RNN training on this CPU: measured matmul rates against what each model achieves.

1. The machine's matmul rate (torch.mm, i.e. MKL/oneDNN, ``torch.set_num_threads(2)``) at the
   sizes a training step uses, per shape and for 1, 3 and 4 stacked gate blocks (FastGRNN,
   nn.GRU, nn.LSTM): the per-step recurrent product [B, H] x [H, gH], the input projection of
   all steps at once [B*T, F] x [F, gH] and the weight-gradient products [gH, B*T] x [B*T, H]
   and [gH, B*T] x [B*T, F]; plus a large square product as the machine's peak.
2. Each model's training step (its best step time from train_throughput.py, best-of like the
   matmul rates): MACs of one step counted as 3 x the forward MACs (forward + about twice that
   in backward), forward MACs = B * T * (MACs per sample per time step) + the head.
   Achieved MAC/s = that / step time.
3. The matmul bound: the time the step's matrix products alone would take at the measured rates
   (T recurrent products forward, T backward, one input projection, the two weight-gradient
   products) and its share of the measured step time. A share near 1 means the step runs at the
   matmul limit; the rest is per-step elementwise work, dispatch, Python and the optimizer.
   (For nn.GRU/LSTM this is the bound of an ideal implementation with the same structure.)

    python -m benchmarks.roofline [--out FILE.json] [--threads N]
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from benchmarks import train_throughput as tt
from benchmarks.reporting import run_and_report, script_parser

PEAK_SIZE = 1024


class MatmulTimer:
    """Best observed time of ``torch.mm`` for [m, k] x [k, n], sampled in short bursts."""

    def __init__(self, m: int, k: int, n: int) -> None:
        gen = torch.Generator().manual_seed(0)
        self.a, self.b = torch.randn(m, k, generator=gen), torch.randn(k, n, generator=gen)
        self.out = torch.empty(m, n)
        self.shape = [m, k, n]
        self.macs = m * k * n
        self.calls = max(1, int(1e7 // self.macs))  # ~10 M MACs per timed batch of calls
        self.best = float("inf")
        for _ in range(3):
            torch.mm(self.a, self.b, out=self.out)

    def sample(self, batches: int) -> None:
        for _ in range(batches):
            start = time.perf_counter()
            for _ in range(self.calls):
                torch.mm(self.a, self.b, out=self.out)
            self.best = min(self.best, (time.perf_counter() - start) / self.calls)

    def result(self) -> dict:
        return {"shape": self.shape, "us": self.best * 1e6, "gmacs": self.macs / self.best / 1e9}


def matmul_rates(
    sizes: dict[str, tuple[int, int, int]],
    rounds: int = 30,
    budget_s: float = 20.0,
    min_rounds: int = 5,
) -> dict[str, dict]:
    """Best rate of every size, sampled in up to ``rounds`` interleaved rounds.

    On a shared machine most samples are slowed by other work: the best one is the machine's
    rate, and interleaving the sizes keeps one busy period from spoiling all samples of one.
    Stops after ``budget_s`` (but not before ``min_rounds``): 2-thread products of this size
    slow down a hundredfold when another process holds a core.
    """
    timers = {name: MatmulTimer(*size) for name, size in sizes.items()}
    start = time.perf_counter()
    for r in range(rounds):
        for timer in timers.values():
            timer.sample(3)
        if r + 1 >= min_rounds and time.perf_counter() - start > budget_s:
            break
    return {name: timer.result() for name, timer in timers.items()}


def per_step_macs(model: str, f: int, h: int) -> int:
    """Forward MACs per sample per time step, as executed in training."""
    if model == "gru":
        return 3 * h * (f + h)
    if model == "lstm":
        return 4 * h * (f + h)
    # FastGRNN trains with the full (thresholded) W (H x F) and U (H x H) whatever the rank
    # mode: the low-rank factors are multiplied out once per batch. 3 elementwise MACs per unit.
    return h * f + h * h + 3 * h


GATES = {"fastgrnn": 1, "gru": 3, "lstm": 4}  # gate blocks stacked in one weight matrix


def step_sizes(shape: str) -> dict[str, tuple[int, int, int]]:
    """The products of a training step, for 1 (FastGRNN), 3 (GRU) and 4 (LSTM) gate blocks."""
    b, t, f, h, _, _ = tt.SHAPES[shape]
    sizes = {}
    for g in sorted(set(GATES.values())):
        sizes[f"recurrent_x{g}"] = (b, h, g * h)  # h_{t-1} U^T, every step
        sizes[f"projection_x{g}"] = (b * t, f, g * h)  # W x_t, all steps at once
        sizes[f"wgrad_hidden_x{g}"] = (g * h, b * t, h)  # dU over all steps
        sizes[f"wgrad_input_x{g}"] = (g * h, b * t, f)  # dW over all steps
    return sizes


def matmul_bound_seconds(kind: str, shape: str, rates: dict[str, dict]) -> float:
    """Seconds the matrix products of one training step take at the measured rates.

    T recurrent products forward and T backward (d h_{t-1} = dpre_t U, same MACs), one input
    projection for all steps, one weight-gradient product each for U and W (the input gradient
    is not needed: the data does not require grad).
    """
    t = tt.SHAPES[shape][1]
    g = GATES[kind]

    def us(name: str) -> float:
        return rates[f"{name}_x{g}"]["us"] * 1e-6

    return 2 * t * us("recurrent") + us("projection") + us("wgrad_hidden") + us("wgrad_input")


def run(*, threads: int = 2, throughput: dict | None = None) -> dict:
    torch.set_num_threads(threads)
    if throughput is None:
        throughput = tt.run(threads=threads, repeats=5, steps_per_repeat=2, budget_s=30.0)
    sizes = {"peak": (PEAK_SIZE, PEAK_SIZE, PEAK_SIZE)}
    for shape in throughput["shapes"]:
        sizes.update({f"{shape}/{name}": size for name, size in step_sizes(shape).items()})
    measured = matmul_rates(sizes)
    peak = measured["peak"]
    results: dict = {"threads": threads, "peak_matmul": peak, "shapes": {}}
    for shape, r in throughput["shapes"].items():
        b, t, f, h, c, _ = tt.SHAPES[shape]
        prefix = f"{shape}/"
        rates = {k[len(prefix) :]: v for k, v in measured.items() if k.startswith(prefix)}
        models = {}
        for name, m in r["models"].items():
            kind = name if name in GATES else "fastgrnn"
            fwd = b * t * per_step_macs(kind, f, h) + b * h * c
            step_s = m["step_ms_min"] * 1e-3  # best observed, like the matmul rates
            bound = matmul_bound_seconds(kind, shape, rates)
            models[name] = {
                "train_macs_per_step": 3 * fwd,
                "achieved_gmacs": 3 * fwd / step_s / 1e9,
                "matmul_bound_ms": bound * 1e3,
                "step_ms_best": m["step_ms_min"],
                "matmul_share": bound / step_s,
            }
        results["shapes"][shape] = {"matmul_rates": rates, "models": models}
    return results


def table(results: dict) -> str:
    peak = results["peak_matmul"]
    lines = [
        f"roofline, {results['threads']} threads; peak matmul "
        f"[{PEAK_SIZE}]^3: {peak['gmacs']:.1f} GMAC/s = {2 * peak['gmacs']:.1f} GFLOP/s"
    ]
    for shape, r in results["shapes"].items():
        lines.append(f"\n{shape}: measured matmul rates")
        for name, rate in r["matmul_rates"].items():
            dims = "x".join(str(d) for d in rate["shape"])
            lines.append(
                f"  {name:<16} [{dims:>13}] {rate['us']:>9.1f} us {rate['gmacs']:>7.1f} GMAC/s "
                f"{2 * rate['gmacs']:>7.1f} GFLOP/s"
            )
        lines.append(
            f"  {'model':<20} {'GMAC/step':>9} {'best ms':>8} {'GMAC/s':>7} "
            f"{'mm-bound ms':>11} {'mm share':>8}"
        )
        for name, m in r["models"].items():
            lines.append(
                f"  {name:<20} {m['train_macs_per_step'] / 1e9:>9.3f} {m['step_ms_best']:>8.2f} "
                f"{m['achieved_gmacs']:>7.1f} {m['matmul_bound_ms']:>11.2f} "
                f"{m['matmul_share']:>8.0%}"
            )
    return "\n".join(lines)


def main(out_json: Path | None = None, *, throughput: dict | None = None, **kwargs) -> dict:
    return run_and_report(run, table, out_json, throughput=throughput, **kwargs)


if __name__ == "__main__":
    parser = script_parser(__doc__)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    main(args.out, threads=args.threads)
