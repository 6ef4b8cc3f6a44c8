"""`edge-str train`: train a model on a task, with checkpoints and resume."""

from __future__ import annotations

import argparse

from edge_str.cnn.sparsity import SPARSITY_MODES
from edge_str.config import OPTIMIZERS, TASKS, make_config
from edge_str.families import ARCHS, family_of
from edge_str.fastgrnn import GATES, LOOP_BACKENDS
from edge_str.lowrank import RANK_MODES
from edge_str.parametrization import GRANULARITIES


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a model (STR low-rank FastGRNN by default)",
        description="Train a model; writes RUN/config.json, metrics.jsonl, checkpoints, final.json",
    )
    p.add_argument("--task", choices=TASKS, help="task (default google12, or the config's)")
    p.add_argument("--data", help="data directory in the task's layout")
    p.add_argument("--out", required=True, help="run directory to write")
    p.add_argument("--config", help="YAML config (command-line flags override it)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    # no argparse choices: a bad value is one EdgeStrError line, as it is from a YAML file
    p.add_argument("--optimizer", help=f"{' | '.join(OPTIMIZERS)} (default adam; sgd: Nesterov)")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", choices=("cpu", "cuda"))
    p.add_argument("--threads", type=int, help="CPU threads for torch (0, the default: torch's)")
    p.add_argument("--hidden", type=int, help="hidden size of FastGRNN, GRU or LSTM")
    p.add_argument("--rank-mode", choices=RANK_MODES, help="FastGRNN W/U: learned, fixed or dense")
    p.add_argument("--rank-w", type=int, help="rank of W in fixed mode")
    p.add_argument("--rank-u", type=int, help="rank of U in fixed mode")
    p.add_argument("--weight-decay", type=float, help="mu: decay of weights and thresholds")
    p.add_argument("--threshold-decay", type=float, help="decay of thresholds, if not mu")
    p.add_argument("--s-init", type=float, help="initial STR threshold parameter s")
    p.add_argument("--gates", choices=GATES, help="FastGRNN sigmoid/tanh: exact or piecewise")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument(
        "--target-params",
        type=int,
        metavar="N",
        help="budget mode: the compacted FastGRNN lands within ±10%% of N parameters",
    )
    budget.add_argument(
        "--target-kb",
        type=float,
        metavar="K",
        help="budget mode: ... of K KiB of float32 weights (1 KiB = 256 parameters)",
    )
    p.add_argument(
        "--int8",
        action="store_true",
        default=None,
        help="budget mode: count --target-kb at int8 weights (1 KiB = 1,024 parameters)",
    )
    p.add_argument(
        "--backend",
        choices=LOOP_BACKENDS,
        help="FastGRNN time loop: auto (C++ kernel where it builds), cpp, torch, loop (reference)",
    )
    cnn = p.add_argument_group("CNN path")
    cnn.add_argument(
        "--model",
        "--arch",
        dest="arch",
        choices=ARCHS,
        help="architecture (gru, lstm: nn.GRU / nn.LSTM baselines with the same head)",
    )
    cnn.add_argument("--sparsity", choices=SPARSITY_MODES, help="CNN weight sparsity")
    cnn.add_argument("--str-granularity", choices=GRANULARITIES, help="thresholds per ...")
    cnn.add_argument("--cnn-s-init", type=float, help="initial s of the CNN thresholds (sigmoid)")
    cnn.add_argument("--gmp-target", type=float, help="GMP target sparsity (uniform per layer)")
    cnn.add_argument("--budget-from", help="GMP: per-layer targets from this STR run")
    cnn.add_argument("--width", type=float, help="CNN width multiplier")
    cnn.add_argument("--depth", type=int, help="ResNet depth")
    cnn.add_argument(
        "--sparsify-first-last",
        action="store_true",
        default=None,
        help="also sparsify the first and last layers",
    )
    p.add_argument("--resume", action="store_true", help="continue RUN from its last checkpoint")
    p.add_argument(
        "--ddp",
        type=int,
        metavar="N",
        help="train on N processes of this machine (DistributedDataParallel, as torchrun "
        "--nproc-per-node N -m edge_str train ...); --batch-size is then the global batch",
    )
    p.set_defaults(func=run)


def overrides_from_args(args: argparse.Namespace) -> dict:
    """Command-line flags as a nested override of the config (None = not given)."""
    return {
        "data_dir": args.data,
        "out": args.out,
        "seed": args.seed,
        "device": args.device,
        "threads": args.threads,
        "model": {
            "hidden": args.hidden,
            "rank_mode": args.rank_mode,
            "rank_w": args.rank_w,
            "rank_u": args.rank_u,
            "s_init": args.s_init,
            "gates": args.gates,
            "target_params": args.target_params,
            "target_kb": args.target_kb,
            "target_int8": args.int8,
            "backend": args.backend,
            "arch": args.arch,
            "sparsity": args.sparsity,
            "str_granularity": args.str_granularity,
            "cnn_s_init": args.cnn_s_init,
            "gmp_target": args.gmp_target,
            "budget_from": args.budget_from,
            "width": args.width,
            "depth": args.depth,
            "sparsify_first_last": args.sparsify_first_last,
        },
        "optim": {
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "optimizer": args.optimizer,
            "lr": args.lr,
            "weight_decay": args.weight_decay,
            "threshold_decay": args.threshold_decay,
        },
    }


def run(args: argparse.Namespace) -> int:
    from edge_str.errors import EdgeStrError
    from edge_str.run import resume_config
    from edge_str.training import train
    from edge_str.training.distributed import launch, launched_rank, without_flag

    if args.resume:  # the run's own settings; what the user gave is checked against them
        overrides = {**overrides_from_args(args), "task": args.task}
        cfg = resume_config(args.out, args.config, overrides)
    else:
        cfg = make_config(args.task, args.config, overrides_from_args(args))
    if not cfg.data_dir and not args.resume and cfg.task != "digits":
        raise EdgeStrError("--data is required (or data_dir in the --config file)")
    if args.ddp is not None:  # the settings are checked here, before any process starts
        return launch(args.ddp, without_flag(args.argv, "--ddp"), cfg.device)
    final = train(cfg, resume=args.resume)
    if launched_rank() != 0:
        return 0
    shape = family_of(final["arch"]).final_text(final)
    print(
        f"trained {final['task']} {final['arch']}: test {final['test_accuracy']:.2%} "
        f"(val {final['val_accuracy']:.2%}), {shape}, {final['params']:,} params "
        f"-> {args.out}/final.json"
    )
    if "size_budget" in final:
        budget = final["size_budget"]
        print(
            f"budget {budget['target_params']:,} params: reached {budget['reached_params']:,} "
            f"({budget['relative_error']:+.1%}), W {budget['split']['W']['params']:,} "
            f"U {budget['split']['U']['params']:,}"
        )
    return 0
