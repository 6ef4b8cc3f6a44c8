"""Peak memory of a training epoch: FastGRNN (fused C++, fused PyTorch, reference loop) vs GRU/LSTM.

Every model runs in a fresh Python subprocess (torch's allocator and the interpreter keep memory
once touched, so models cannot share a process): it imports torch, builds the model, the Adam
optimizer and the data of one epoch (N random batches), records its resident set (VmRSS),
resets the kernel's peak mark (``/proc/self/clear_refs``), trains the epoch and reads the peak
(VmHWM). Reported: the peak RSS during training and its growth over the RSS before training
(what the steps' saved activations, gradients, optimizer state and workspaces add), plus
``ru_maxrss``. ru_maxrss is not used for the growth because Linux carries it over fork + exec:
a child of a large parent (run_all.py) starts with the parent's peak. Off Linux the script
falls back to ru_maxrss. tracemalloc would not see torch's allocations. One thread by default:
the memory does not depend on it and a contended 2-core machine runs small 2-thread ops slowly.

For scale, the saved activations per batch: the fused C++ node keeps h_{t-1}, z_t, c_t (3 T B H
floats), the PyTorch fused node 4 T B H; the reference loop keeps what autograd records for ~8
ops per step.

    python -m benchmarks.memory [--out FILE.json] [--batches N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks import train_throughput as tt
from benchmarks.reporting import run_and_report, script_parser

ROOT = Path(__file__).resolve().parents[1]

MODELS = ("fastgrnn_str", "fastgrnn_str_torch", "fastgrnn_str_ref", "gru", "lstm")
SHAPES = ("google12", "har2")


def _status_mb(field: str) -> float | None:
    """A ``VmHWM`` / ``VmRSS`` line of /proc/self/status in MB (None off Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _maxrss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def child(model: str, shape: str, batches: int, threads: int) -> dict:
    """Runs inside the subprocess: one training epoch of ``batches`` batches."""
    import torch

    from edge_str import fused_ext

    torch.set_num_threads(threads)
    fused_ext.load_extension()
    torch.manual_seed(0)
    net = tt.build_model(model, shape)
    data = [tt.batch(shape, seed=i) for i in range(batches)]
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)

    def step(x, y):
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(net(x), y).backward()
        optimizer.step()

    # Model, optimizer, data and the C++ kernel are in place. ru_maxrss alone cannot give the
    # peak of this phase: Linux carries a process's ru_maxrss over fork + exec, so a child of a
    # big parent starts with the parent's peak. VmHWM belongs to the new address space and can
    # be reset to the current RSS, so it is what is reported where it exists.
    before = _status_mb("VmRSS")
    reset = _reset_peak()
    for x, y in data:
        step(x, y)
    peak = _status_mb("VmHWM") if reset else None
    if before is None or peak is None:  # not Linux: fall back to ru_maxrss
        before, peak, source = 0.0, _maxrss_mb(), "ru_maxrss"
    else:
        source = "VmHWM"
    return {
        "peak_rss_mb": peak,
        "training_growth_mb": peak - before,
        "before_rss_mb": before,
        "ru_maxrss_mb": _maxrss_mb(),
        "source": source,
    }


def run(*, batches: int = 5, threads: int = 1) -> dict:
    results: dict = {"batches": batches, "shapes": {}}
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    for shape in SHAPES:
        rows = {}
        for model in MODELS:
            cmd = [sys.executable, "-m", "benchmarks.memory", "--child", model, shape]
            cmd += ["--batches", str(batches), "--threads", str(threads)]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
            if proc.returncode != 0:
                raise RuntimeError(f"memory child {model}/{shape} failed:\n{proc.stderr}")
            rows[model] = json.loads(proc.stdout.strip().splitlines()[-1])
        b, t, _, h = tt.SHAPES[shape][:4]
        buffer_mb = t * b * h * 4 / 2**20  # one (T, B, H) float32 buffer
        results["shapes"][shape] = {
            "models": rows,
            "saved_by_fused_node_mb": {"cpp": 3 * buffer_mb, "torch": 4 * buffer_mb},
        }
    return results


def table(results: dict) -> str:
    lines = [
        f"peak memory of a training epoch ({results['batches']} batches), fresh process per model"
    ]
    for shape, r in results["shapes"].items():
        rows = r["models"]
        saved = r["saved_by_fused_node_mb"]
        lines.append(
            f"\n{shape}: (the fused node saves {saved['cpp']:.1f} MB per batch in C++, "
            f"{saved['torch']:.1f} MB in PyTorch)"
        )
        lines.append(f"  {'model':<20} {'peak RSS MB':>11} {'training growth MB':>18}")
        for model, m in rows.items():
            lines.append(
                f"  {model:<20} {m['peak_rss_mb']:>11.1f} {m['training_growth_mb']:>18.1f}"
            )
    return "\n".join(lines)


def main(out_json: Path | None = None, **kwargs) -> dict:
    return run_and_report(run, table, out_json, **kwargs)


if __name__ == "__main__":
    parser = script_parser(__doc__)
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--child", nargs=2, metavar=("MODEL", "SHAPE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child, args.batches, args.threads)))
    else:
        main(args.out, batches=args.batches, threads=args.threads)
