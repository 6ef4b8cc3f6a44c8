"""`edge-str compare`: learned rank (STR) against fixed rank and post-hoc SVD, in one study."""

from __future__ import annotations

import argparse

from edge_str.compare.settings import COMPARE_TASKS
from edge_str.scheduling import BACKENDS


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "compare",
        help="rank-vs-accuracy study: dense, fixed rank, STR, truncated SVD (+ fine-tune)",
        description=(
            "Train dense, fixed-rank and STR FastGRNNs on the same data, splits, epochs and seed, "
            "cut the dense model to the ranks each STR run learned (truncated SVD, with and "
            "without a short fine-tune), and write OUT/compare.csv, compare.md and compare.png. "
            "Each run goes to OUT/runs/<name>/; run the same command again to resume."
        ),
    )
    p.add_argument("--task", choices=COMPARE_TASKS, help="task (default google12, or the config's)")
    p.add_argument("--data", help="data directory in the task's layout")
    p.add_argument("--out", required=True, help="study directory to write (or resume)")
    p.add_argument("--quick", action="store_true", help="a small grid and few epochs")
    p.add_argument("--epochs", type=int, help="epochs of every trained run (default: the preset)")
    p.add_argument(
        "--jobs",
        type=int,
        help="parallel runs (default: the cores; with --backend ray and no --address, the CPUs "
        "of the local Ray cluster started)",
    )
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default="local",
        help="local: worker processes on this machine (default); ray: every run a Ray task "
        "(pip install 'edge_str[ray]'), OUT then on a path every node sees",
    )
    p.add_argument(
        "--address",
        help="Ray cluster to run on (e.g. auto or ray://HEAD:10001); default: start a local one",
    )
    p.add_argument("--seed", type=int, help="training seed of every run")
    p.add_argument(
        "--config",
        help="YAML: training settings, and the grids in a `compare:` section",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edge_str.compare import load_study_config, run_study

    cfg, settings = load_study_config(
        args.task,
        args.config,
        {"data_dir": args.data, "seed": args.seed},
        quick=args.quick,
        epochs=args.epochs,
    )
    result = run_study(
        cfg, settings, args.out, args.jobs, backend=args.backend, address=args.address
    )
    print(result.summary_line())
    return 0
