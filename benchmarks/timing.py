"""The one timing harness of the benchmarks: cases timed in interleaved, rotating repeats.

A shared machine slows some stretches of time down; interleaving the cases (in an order rotated
every repeat) spreads a slow stretch over all of them, so the ratios between cases measured in
the same repeat stay fair. ``paired_ratio`` takes the median of those per-repeat ratios.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence


def time_interleaved(
    cases: dict[str, Sequence[Callable[[], object]]],
    *,
    budget_s: float | None = None,
    min_repeats: int = 3,
    max_repeats: int | None = None,
    calls: int | None = None,
    target_s: float = 0.002,
) -> dict[str, list[float]]:
    """Seconds per call of every case, one entry per repeat, cases interleaved.

    Each case is a list of equivalent callables (e.g. one per identical session); repeat r uses
    alternative r mod n. Every callable runs twice first (first-call allocations, lazy init).
    Each timing runs ``calls`` consecutive calls, or, with ``calls`` None, as many as last
    ~``target_s`` (calibrated per case, at least one). Stops after ``max_repeats``, or after the
    repeat that exhausts ``budget_s`` (never before ``min_repeats``).
    """
    names = list(cases)
    per_timing = {}
    for name, fns in cases.items():
        for fn in fns:
            fn()
            fn()
        if calls is None:
            start = time.perf_counter()
            fns[0]()
            per_timing[name] = max(1, round(target_s / max(time.perf_counter() - start, 1e-7)))
        else:
            per_timing[name] = calls
    times: dict[str, list[float]] = {name: [] for name in names}
    start_all = time.perf_counter()
    r = 0
    while _more(r, time.perf_counter() - start_all, budget_s, min_repeats, max_repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            fn = cases[name][r % len(cases[name])]
            n = per_timing[name]
            start = time.perf_counter()
            for _ in range(n):
                fn()
            times[name].append((time.perf_counter() - start) / n)
        r += 1
    return times


def _more(
    r: int, spent: float, budget_s: float | None, min_repeats: int, max_repeats: int | None
) -> bool:
    if max_repeats is not None and r >= max_repeats:
        return False
    return r < min_repeats or budget_s is None or spent < budget_s


def paired_ratio(times: dict[str, list[float]], a: str, b: str) -> float:
    """Median over repeats of time(a) / time(b), each pair measured in the same repeat."""
    return statistics.median(x / y for x, y in zip(times[a], times[b], strict=True))
