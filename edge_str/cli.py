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

# Subcommand modules, in the order `edge-str --help` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "data",
    "train",
    "evaluate",
    "export",
    "compare",
    "predict",
    "detect",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-str",
        description="Learned sparsity and learned low rank (STR) for tiny RNNs and CNNs.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"edge_str.commands.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except EdgeStrError as error:
        print(f"edge-str: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("edge-str: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
