"""STR's learned layer-wise budget vs GMP, at the same overall sparsity, on a small CNN.

    python -m benchmarks.cnn_budget_study [--task digits] [--model resnet --depth 10 --width 0.25]
        [--epochs 30] [--weight-decay 2e-3] [--cnn-s-init -6] [--seeds 0 1 2]
        [--optimizer adam|sgd] [--lr LR] [--sparsify-first-last] [--methods str gmp-uniform ...]
        [--out runs/budget_study] [--json results.json]
    python -m benchmarks.cnn_budget_study --task google12 --data /tmp/g12 --model dscnn --width 0.5

For each seed, five runs through ``edge-str train`` with the same task, model, epochs and
optimizer settings (STR paper, sec. 5.1 and Fig. 2/3 -- "STR's budget with GMP"):

    dense        no sparsity
    str          STR, one learned threshold per layer: the budget is whatever STR learns
    gmp-uniform  GMP (Zhu & Gupta 2017) with the same target in every sparsified layer, set to
                 STR's sparsity over the sparsified layers, so the overall sparsity matches STR's
    gmp-uniform-flops
                 GMP with the same target in every sparsified layer, set so that its MACs match
                 STR's (the issue's "beat its accuracy at the same FLOPs"); where every
                 sparsified layer costs the same MACs per weight (DS-CNN: all blocks at one
                 resolution) that is gmp-uniform's target, and gmp-uniform's run is reused
    gmp-budget   GMP with STR's per-layer sparsities as targets (``--budget-from`` the STR run)

First and last layers stay dense in all of them (the package default) unless
``--sparsify-first-last``. Prints a Markdown table
(mean and spread over seeds of sparsity, MACs, test accuracy) and the exact commands, and writes
every run's figures as JSON. Runs on one intra-op thread (small models: fastest on a busy CPU).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from edge_str.config import OPTIMIZERS

METHODS = ("dense", "str", "gmp-uniform", "gmp-uniform-flops", "gmp-budget")


def train_args(args: argparse.Namespace, seed: int, out: Path) -> list[str]:
    common = ["--task", args.task, "--model", args.model, "--width", str(args.width)]
    if args.model == "resnet":
        common += ["--depth", str(args.depth)]
    if args.data:
        common += ["--data", str(args.data)]
    common += ["--epochs", str(args.epochs), "--seed", str(seed), "--out", str(out)]
    common += ["--weight-decay", str(args.weight_decay)]
    if args.lr is not None:
        common += ["--lr", str(args.lr)]
    if args.batch_size is not None:
        common += ["--batch-size", str(args.batch_size)]
    if args.optimizer is not None:
        common += ["--optimizer", args.optimizer]
    if args.sparsify_first_last:
        common += ["--sparsify-first-last"]
    return common


def flops_matched_target(final: dict[str, Any]) -> float:
    """The one per-layer sparsity whose MACs equal those of the run ``final`` describes.

    MACs = fixed + (1 - s) * sum of the sparsified layers' dense MACs, where fixed is the MACs
    of the layers left dense (first/last); solved for s. A layer's sparse MACs scale with its
    density (``edge_str.cnn.flops``), so a uniform s gives these MACs up to rounding.
    """
    layers = final["budget"]["layers"]
    fixed = sum(e["sparse_macs"] for e in layers if not e["sparsified"])
    prunable = sum(e["dense_macs"] for e in layers if e["sparsified"])
    target = 1.0 - (final["macs"] - fixed) / prunable
    return min(max(target, 0.0), 0.999)


def run_one(argv: list[str], log: list[str]) -> dict[str, Any]:
    """``edge-str train ARGV`` in this process; final.json, with the command logged."""
    from edge_str.cli import main

    out = Path(argv[argv.index("--out") + 1])
    final_path = out / "final.json"
    log.append("edge-str train " + " ".join(argv))
    if final_path.is_file():  # a finished run from before: reuse it (delete RUN to redo)
        return json.loads(final_path.read_text())
    code = main(["train", *argv])
    if code != 0:
        sys.exit(f"edge-str train {' '.join(argv)} failed with exit code {code}")
    return json.loads(final_path.read_text())


def row(method: str, seed: int, final: dict[str, Any]) -> dict[str, Any]:
    budget = final["budget"]
    return {
        "method": method,
        "seed": seed,
        "sparsity": final["sparsity"],
        "sparsified_sparsity": budget["sparsified_sparsity"],
        "nonzero_weights": budget["nonzero"],
        "weights": budget["params"],
        "macs": final["macs"],
        "macs_dense": final["macs_dense"],
        "mac_fraction": final["macs"] / final["macs_dense"],
        "test_accuracy": final["test_accuracy"],
        "val_accuracy": final["val_accuracy"],
        "bytes": final["bytes"],
        "train_seconds": final["train_seconds"],
        "layers": {e["layer"]: e["sparsity"] for e in budget["layers"]},
    }


def _mean_sd(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
    mean = statistics.fmean(values) * scale
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {statistics.stdev(values) * scale:.{digits}f}"


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| method | sparsity (%) | MACs | MACs (% of dense) | test accuracy (%) | runs |",
        "|---|---|---|---|---|---|",
    ]
    for method in METHODS:
        chosen = [r for r in rows if r["method"] == method]
        if not chosen:
            continue
        macs = statistics.fmean(r["macs"] for r in chosen)
        lines.append(
            f"| {method} | {_mean_sd([r['sparsity'] for r in chosen], 100)} | {macs:,.0f} | "
            f"{_mean_sd([r['mac_fraction'] for r in chosen], 100, 1)} | "
            f"{_mean_sd([r['test_accuracy'] for r in chosen], 100)} | {len(chosen)} |"
        )
    return "\n".join(lines)


def _train_run(
    args: argparse.Namespace,
    seed: int,
    out: Path,
    sparsity: str,
    extra: list[str],
    commands: list[str],
) -> dict[str, Any]:
    """One run of the study with ``--sparsity SPARSITY`` and its own ``extra`` flags."""
    return run_one([*train_args(args, seed, out), "--sparsity", sparsity, *extra], commands)


def _uniform_runs(
    args: argparse.Namespace, seed: int, base: Path, learned: dict[str, Any], commands: list[str]
) -> list[dict[str, Any]]:
    """gmp-uniform (STR's sparsity in every sparsified layer) and gmp-uniform-flops (STR's MACs)."""
    rows = []
    target = round(learned["budget"]["sparsified_sparsity"], 6)
    uniform = None
    if "gmp-uniform" in args.methods:
        uniform = _train_run(
            args, seed, base / "gmp_uniform", "gmp", ["--gmp-target", str(target)], commands
        )
        rows.append(row("gmp-uniform", seed, uniform))
    if "gmp-uniform-flops" not in args.methods:
        return rows
    flops_target = round(flops_matched_target(learned), 6)
    if flops_target == target and uniform is not None:
        # Every sparsified layer costs the same MACs per weight (the DS-CNN: all blocks at
        # one resolution), so the same target: the run would repeat gmp-uniform exactly.
        same_flops = uniform
        commands.append(f"# gmp-uniform-flops, seed {seed}: target {target} = gmp-uniform's")
    else:
        flags = ["--gmp-target", str(flops_target)]
        same_flops = _train_run(args, seed, base / "gmp_uniform_flops", "gmp", flags, commands)
    rows.append(row("gmp-uniform-flops", seed, same_flops))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="digits", choices=("digits", "google12"))
    parser.add_argument("--data", type=Path, help="data folder (google12)")
    parser.add_argument("--model", default="resnet", choices=("resnet", "dscnn", "mobilenetv1"))
    parser.add_argument("--depth", type=int, default=10)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--weight-decay", type=float, default=2e-3)
    parser.add_argument("--cnn-s-init", type=float, default=-6.0)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default=None)
    parser.add_argument("--sparsify-first-last", action="store_true")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--methods",
        nargs="+",
        choices=METHODS,
        default=list(METHODS),
        help="a subset to run (the GMP methods need str's run, which then runs too)",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("runs/budget_study"))
    parser.add_argument("--json", type=Path, default=None, help="default: OUT/study.json")
    args = parser.parse_args()
    if args.task == "google12" and args.data is None:
        parser.error("--task google12 needs --data DIR (e.g. from `edge-str data synth google12`)")
    torch.set_num_threads(args.threads)

    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    commands: list[str] = []
    for seed in args.seeds:
        base = args.out / f"seed{seed}"
        if "dense" in args.methods:
            dense = _train_run(args, seed, base / "dense", "dense", [], commands)
            rows.append(row("dense", seed, dense))
        if set(args.methods) == {"dense"}:
            continue
        str_run = base / "str"
        flags = ["--cnn-s-init", str(args.cnn_s_init)]
        learned = _train_run(args, seed, str_run, "str", flags, commands)
        rows.append(row("str", seed, learned))
        if "gmp-uniform" in args.methods or "gmp-uniform-flops" in args.methods:
            rows += _uniform_runs(args, seed, base, learned, commands)
        if "gmp-budget" in args.methods:
            flags = ["--budget-from", str(str_run)]
            budget = _train_run(args, seed, base / "gmp_budget", "gmp", flags, commands)
            rows.append(row("gmp-budget", seed, budget))

    result = {
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "commands": commands,
        "rows": rows,
        "table": table(rows),
        "seconds": time.perf_counter() - started,
    }
    json_path = args.json or args.out / "study.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    print(result["table"])
    print()
    print("per-layer sparsity (%), mean over seeds:")
    layers = list(rows[0]["layers"])
    sparse = [m for m in METHODS[1:] if any(r["method"] == m for r in rows)]
    print("| layer | " + " | ".join(sparse) + " |")
    print("|---|" + "---|" * len(sparse))
    for layer in layers:
        cells = [
            f"{100 * statistics.fmean(r['layers'][layer] for r in rows if r['method'] == m):.1f}"
            for m in sparse
        ]
        print(f"| {layer} | " + " | ".join(cells) + " |")
    print()
    print("commands:")
    for command in commands:
        print("  " + command)
    print(f"\n{len(rows)} runs in {result['seconds']:.0f} s; figures in {json_path}")


if __name__ == "__main__":
    main()
