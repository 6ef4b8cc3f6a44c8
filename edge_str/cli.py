"""The ``edge-str`` console script: one parser, one module per subcommand.

Each module in ``edge_str.commands`` has ``register(subparsers)``, which adds its parser and sets
``func`` (taking the parsed args, returning an exit code). User errors (``EdgeStrError``) are
one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from edge_str.errors import EdgeStrError
from edge_str.training.distributed import launched_rank

# Subcommand modules, in the order `edge-str --help` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "data",
    "train",
    "evaluate",
    "export",
    "compare",
    "predict",
    "detect",
    "cache",
)


def version_line() -> str:
    """``edge-str X.Y.Z (torch A.B.C)``: torch's build decides what runs, so it is shown too."""
    import torch

    from edge_str import __version__

    return f"edge-str {__version__} (torch {torch.__version__})"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-str",
        description="Learned sparsity and learned low rank (STR) for tiny RNNs and CNNs.",
    )
    parser.add_argument("--version", action="version", version=version_line())
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"edge_str.commands.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else list(argv)  # for `train --ddp` to relaunch
    try:
        return int(args.func(args) or 0)
    except EdgeStrError as error:
        if launched_rank() == 0:  # under torchrun every rank meets the same error: one says it
            print(f"edge-str: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("edge-str: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
