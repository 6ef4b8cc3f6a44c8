"""What a study returns: its rows, counts and settings, and the command's one-line summary.

Its own module so that the study (which makes it) and the report (which writes it) both import
it, and neither imports the other's caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_str.compare.settings import CompareSettings
from edge_str.config import TrainConfig


@dataclass
class StudyResult:
    rows: list[dict[str, Any]]
    out: Path
    seconds: float
    counts: dict[str, int]  # new (run now), reused (found finished), failed, skipped
    test_examples: int
    settings: CompareSettings
    config: TrainConfig
    full_ranks: dict[str, int]  # of W and U

    def summary_line(self) -> str:
        """The command's one-line summary."""
        c = self.counts
        parts = [f"{c['new']} new", f"{c['reused']} reused"]
        parts += [f"{c[k]} {k}" for k in ("failed", "skipped") if c[k]]
        ok = [r for r in self.rows if r["status"] == "ok" and r["test_accuracy"] is not None]
        text = f"compare {self.config.task}: {len(self.rows)} runs ({', '.join(parts)}) in "
        text += f"{_duration(self.seconds)}"
        best_str = max(
            (r for r in ok if r["method"] == "str"), key=lambda r: r["test_accuracy"], default=None
        )
        dense = next((r for r in ok if r["method"] == "dense"), None)
        if dense is not None:
            text += f"; dense {100 * dense['test_accuracy']:.1f}% at {dense['params']:,} params"
        if best_str is not None:
            text += (
                f"; best STR {100 * best_str['test_accuracy']:.1f}% at {best_str['params']:,} "
                f"(ranks W {best_str['rank_w']}, U {best_str['rank_u']})"
            )
        return text + f" -> {self.out / 'compare.md'}"


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"
