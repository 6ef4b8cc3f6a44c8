"""The one way every benchmark script finishes: print its table, write its JSON if asked."""

from __future__ import annotations

import argparse
from pathlib import Path

from edge_str.atomic import write_json


def report(results: dict, text: str, out_json: Path | None) -> dict:
    """Print ``text``; write ``results`` atomically to ``out_json`` when given; return them."""
    print(text, flush=True)
    if out_json is not None:
        write_json(out_json, results)
        print(f"wrote {out_json}")
    return results


def run_and_report(run, table, out_json: Path | None = None, **kwargs) -> dict:
    """``run(**kwargs)``, then ``report`` with ``table(results)``: a benchmark's ``main``."""
    results = run(**kwargs)
    return report(results, table(results), out_json)


def script_parser(doc: str) -> argparse.ArgumentParser:
    """A benchmark's command line: its docstring's first line, and ``--out FILE.json``."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="also write the results as JSON")
    return parser
