"""The one way every benchmark script finishes: print its table, write its JSON if asked."""

from __future__ import annotations

from pathlib import Path

from edge_str.atomic import write_json


def report(results: dict, text: str, out_json: Path | None) -> dict:
    """Print ``text``; write ``results`` atomically to ``out_json`` when given; return them."""
    print(text, flush=True)
    if out_json is not None:
        write_json(out_json, results)
        print(f"wrote {out_json}")
    return results
