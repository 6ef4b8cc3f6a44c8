"""``edge-str cache info|clean``: what the feature cache holds, and freeing it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "cache",
        help="show or clean the feature cache (decoded clips and features)",
        description="The cache is $EDGE_STR_CACHE, else ~/.cache/edge_str; it is rebuilt on use.",
    )
    commands = parser.add_subparsers(dest="cache_command", required=True, metavar="ACTION")
    info = commands.add_parser("info", help="entries, their data folders and sizes")
    info.add_argument("--json", action="store_true", help="print the entries as JSON")
    clean = commands.add_parser("clean", help="delete cache entries (all, or --stale ones)")
    clean.add_argument(
        "--stale", action="store_true", help="only entries whose data folder no longer exists"
    )
    for sub in (info, clean):
        sub.add_argument("--cache-dir", metavar="DIR", help="the cache (default: see above)")
    info.set_defaults(func=run_info)
    clean.set_defaults(func=run_clean)


def _cache_dir(args: argparse.Namespace) -> Path:
    from edge_str.data import DataConfig

    return (
        Path(args.cache_dir).expanduser() if args.cache_dir else DataConfig().resolved_cache_dir()
    )


def _megabytes(count: int) -> str:
    return f"{count / 1e6:.1f} MB"


def run_info(args: argparse.Namespace) -> int:
    from edge_str.data.cache import cache_entries, describe

    folder = _cache_dir(args)
    entries = cache_entries(folder)
    if args.json:
        rows = [{**e, "folder": str(e["folder"])} for e in entries]
        print(json.dumps({"cache_dir": str(folder), "entries": rows}, indent=2))
        return 0
    total = sum(e["bytes"] for e in entries)
    print(f"{describe(folder)}: {len(entries)} entries, {_megabytes(total)}")
    for e in entries:
        data = e["data_dir"] or "unknown data folder"
        state = "" if e["data_exists"] else " (data folder gone: stale)"
        state += "" if e["complete"] else " (incomplete)"
        print(f"  {e['task']:<9} {_megabytes(e['bytes']):>10}  {data}{state}")
    return 0


def run_clean(args: argparse.Namespace) -> int:
    from edge_str.data.cache import cache_entries, describe, remove_entries

    folder = _cache_dir(args)
    entries = cache_entries(folder)
    if args.stale:
        entries = [e for e in entries if not e["data_exists"]]
    freed = remove_entries(entries)
    print(f"{describe(folder)}: removed {len(entries)} entries, freed {_megabytes(freed)}")
    return 0
