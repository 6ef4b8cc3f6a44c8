"""STR's learned layer-wise budget vs GMP, at the same overall sparsity, on a small CNN.

    python -m benchmarks.cnn_budget_study [--task digits] [--model resnet --depth 10 --width 0.25]
        [--epochs 30] [--weight-decay 2e-3] [--cnn-s-init -6] [--seeds 0 1 2]
        [--optimizer adam|sgd] [--lr LR] [--sparsify-first-last] [--methods str gmp-uniform ...]
        [--jobs N] [--backend local|ray [--address ADDR]] [--out runs/budget_study]
        [--json results.json]
    python -m benchmarks.cnn_budget_study --task google12 --data /tmp/g12 --model dscnn --width 0.5

For each seed, five training runs (``edge-str train``'s trainer, scheduled by
``edge_str.scheduling``: in this process, worker processes or Ray tasks) with the same task,
model, epochs and optimizer settings (STR paper, sec. 5.1 and Fig. 2/3 -- "STR's budget with GMP"):

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
(mean and spread over seeds of sparsity, MACs, test accuracy) and the run folders (each with its
config.json), and writes every run's figures as JSON. Finished runs are reused and half-finished
ones resumed when the command is run again. Each run uses one intra-op thread (small models:
fastest on a busy CPU).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from edge_str.config import OPTIMIZERS, make_config
from edge_str.errors import EdgeStrError
from edge_str.scheduling import BACKENDS, Job, Outcome, Scheduler, make_backend

METHODS = ("dense", "str", "gmp-uniform", "gmp-uniform-flops", "gmp-budget")


def run_job(args: argparse.Namespace, seed: int, out: Path, sparsity: str, **model: Any) -> Job:
    """The training run of one method: the study's shared settings and ``model`` overrides."""
    overrides = {
        "data_dir": str(args.data) if args.data else None,
        "out": str(out),
        "seed": seed,
        "threads": args.threads,
        "model": {
            "arch": args.model,
            "width": args.width,
            "depth": args.depth if args.model == "resnet" else None,
            "sparsity": sparsity,
            "sparsify_first_last": True if args.sparsify_first_last else None,
            **model,
        },
        "optim": {
            "epochs": args.epochs,
            "weight_decay": args.weight_decay,
            "lr": args.lr,
            "batch_size": args.batch_size,
            "optimizer": args.optimizer,
        },
    }
    return Job(str(out), make_config(args.task, None, overrides).to_dict())


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


class BudgetStudy:
    """The runs of every seed and what each one's outcome makes possible (the GMP runs need
    STR's); the rows of the finished ones, and the failures."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rows: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.failures: list[str] = []
        self._methods: dict[str, tuple[int, list[str]]] = {}  # job name -> (seed, its rows)

    def _job(self, seed: int, methods: list[str], folder: str, sparsity: str, **model) -> Job:
        job = run_job(self.args, seed, self.args.out / f"seed{seed}" / folder, sparsity, **model)
        self._methods[job.name] = (seed, methods)
        return job

    def first_jobs(self) -> list[Job]:
        jobs = []
        for seed in self.args.seeds:
            if "dense" in self.args.methods:
                jobs.append(self._job(seed, ["dense"], "dense", "dense"))
            if set(self.args.methods) != {"dense"}:
                jobs.append(self._job(seed, ["str"], "str", "str", cnn_s_init=self.args.cnn_s_init))
        return jobs

    def done(self, job: Job, outcome: Outcome) -> list[Job]:
        seed, methods = self._methods[job.name]
        if outcome.status != "ok":
            self.failures.append(f"{', '.join(methods)} (seed {seed}): {outcome.error}")
            return []
        self.rows += [row(method, seed, outcome.final) for method in methods]
        return self._gmp_jobs(seed, job, outcome.final) if methods == ["str"] else []

    def _gmp_jobs(self, seed: int, str_job: Job, learned: dict[str, Any]) -> list[Job]:
        """gmp-uniform (STR's sparsity in every sparsified layer), gmp-uniform-flops (STR's
        MACs) and gmp-budget (STR's per-layer sparsities)."""
        wanted = self.args.methods
        target = round(learned["budget"]["sparsified_sparsity"], 6)
        flops_target = round(flops_matched_target(learned), 6)
        runs: list[tuple[list[str], str, float]] = []  # (methods it serves, folder, GMP target)
        if "gmp-uniform" in wanted:
            runs.append((["gmp-uniform"], "gmp_uniform", target))
        if "gmp-uniform-flops" in wanted:
            if runs and flops_target == target:
                # Every sparsified layer costs the same MACs per weight (the DS-CNN: all blocks
                # at one resolution), so the same target: gmp-uniform's run serves both.
                runs[0][0].append("gmp-uniform-flops")
                self.notes.append(
                    f"gmp-uniform-flops, seed {seed}: target {target} = gmp-uniform's"
                )
            else:
                runs.append((["gmp-uniform-flops"], "gmp_uniform_flops", flops_target))
        jobs = [self._job(seed, m, folder, "gmp", gmp_target=t) for m, folder, t in runs]
        if "gmp-budget" in wanted:
            jobs.append(
                self._job(seed, ["gmp-budget"], "gmp_budget", "gmp", budget_from=str_job.name)
            )
        return jobs


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
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (default 1)")
    parser.add_argument("--backend", choices=BACKENDS, default="local")
    parser.add_argument("--address", help="Ray cluster (--backend ray); default: a local one")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("runs/budget_study"))
    parser.add_argument("--json", type=Path, default=None, help="default: OUT/study.json")
    args = parser.parse_args()
    if args.task == "google12" and args.data is None:
        parser.error("--task google12 needs --data DIR (e.g. from `edge-str data synth google12`)")

    args.out = args.out.resolve()  # run folders every worker (or Ray node) finds
    started = time.perf_counter()
    study = BudgetStudy(args)
    try:
        backend = make_backend(args.backend, args.jobs, address=args.address, folder=args.out)
        Scheduler(backend, study.done).run(study.first_jobs())
    except EdgeStrError as error:
        sys.exit(f"cnn_budget_study: error: {error}")
    if study.failures:
        sys.exit("cnn_budget_study: runs failed:\n  " + "\n  ".join(study.failures))
    rows = sorted(study.rows, key=lambda r: (r["seed"], METHODS.index(r["method"])))
    runs = sorted({str(args.out / f"seed{r['seed']}") for r in rows})

    result = {
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "runs": runs,
        "notes": study.notes,
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
    print("run folders (each run's settings in its config.json):")
    for folder in runs + study.notes:
        print("  " + folder)
    print(f"\n{len(rows)} runs in {result['seconds']:.0f} s; figures in {json_path}")


if __name__ == "__main__":
    main()
