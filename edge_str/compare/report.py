"""What the study writes: compare.csv, compare.md (table and a short reading), compare.png.

All three are written atomically. ``pareto_front`` and ``best_at_size`` define the marks.
"""

from __future__ import annotations

import csv
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edge_str.atomic import write_atomic
from edge_str.compare.result import StudyResult

COLUMNS = (
    "method",
    "setting",
    "run",
    "rank_w",
    "rank_u",
    "params",
    "target_params",
    "bytes",
    "macs_per_step",
    "val_accuracy",
    "test_accuracy",
    "train_seconds",
    "status",
    "error",
)
# Two runs are "the same size" when their parameter counts are within this factor.
SIZE_TOLERANCE = 1.10
MARKERS = {
    "dense": ("D", "black"),
    "fixed": ("s", "tab:blue"),
    "str": ("*", "tab:red"),
    "budget": ("P", "tab:orange"),
    "svd": ("v", "tab:gray"),
    "svd+finetune": ("^", "tab:green"),
    "gru": ("o", "tab:purple"),
    "lstm": ("X", "tab:brown"),
}
LEARNED_RANKS = ("str", "budget")  # methods whose ranks STR chose (annotated on the plot)


def _cell(value: Any, column: str) -> str:
    if value is None:
        return ""
    if column.endswith("accuracy"):
        return f"{value:.4f}"
    if column == "train_seconds":
        return f"{value:.1f}"
    return str(value)


def write_csv(rows: Sequence[dict[str, Any]], path: str | Path) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(COLUMNS)
            for row in rows:
                writer.writerow([_cell(row.get(c), c) for c in COLUMNS])

    write_atomic(path, write)


def read_csv(path: str | Path) -> list[dict[str, Any]]:
    """compare.csv back as rows (numbers as numbers, empty cells as None)."""
    ints = ("rank_w", "rank_u", "params", "target_params", "bytes", "macs_per_step")
    floats = ("val_accuracy", "test_accuracy", "train_seconds")
    rows = []
    with open(path, newline="") as handle:
        for raw in csv.DictReader(handle):
            row: dict[str, Any] = dict(raw)
            for key in ints + floats:
                text = row.get(key, "")
                row[key] = None if text == "" else (int(text) if key in ints else float(text))
            rows.append(row)
    return rows


# ----------------------------------------------------------------------------- marks


def _ok(rows: Sequence[dict[str, Any]], x: str = "params") -> list[dict[str, Any]]:
    return [
        r
        for r in rows
        if r["status"] == "ok" and r.get(x) is not None and r.get("test_accuracy") is not None
    ]


def pareto_front(rows: Sequence[dict[str, Any]], x: str = "params") -> list[dict[str, Any]]:
    """Finished runs that no other run beats: none smaller (in ``x``) is as accurate.

    Sorted by ``x``; accuracy strictly rises along the front.
    """
    front, best = [], -math.inf
    for row in sorted(_ok(rows, x), key=lambda r: (r[x], -r["test_accuracy"])):
        if row["test_accuracy"] > best:
            front.append(row)
            best = row["test_accuracy"]
    return front


def same_size(a: int, b: int, tolerance: float = SIZE_TOLERANCE) -> bool:
    return max(a, b) <= tolerance * min(a, b)


def best_at_size(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Finished runs with the best test accuracy among all runs of about their size."""
    ok = _ok(rows)
    return [
        r
        for r in ok
        if all(
            r["test_accuracy"] >= o["test_accuracy"]
            for o in ok
            if same_size(r["params"], o["params"])
        )
    ]


# ----------------------------------------------------------------------------- Markdown


def _pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.1f}%"


def _int(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    best = {id(r) for r in best_at_size(rows)}
    front = {id(r) for r in pareto_front(rows)}
    head = (
        "| | method | setting | rank W | rank U | params | bytes | MACs/step | val acc | test acc "
        "| train s | status |"
    )
    lines = [head, "|---" * 12 + "|"]
    for r in rows:
        mark = ("★" if id(r) in best else "") + ("◆" if id(r) in front else "")
        status = r["status"] + (f": {r['error']}" if r.get("error") else "")
        seconds = "" if r.get("train_seconds") is None else f"{r['train_seconds']:.0f}"
        cells = [
            mark,
            r["method"],
            r["setting"],
            "" if r.get("rank_w") is None else str(r["rank_w"]),
            "" if r.get("rank_u") is None else str(r["rank_u"]),
            _int(r.get("params")),
            _int(r.get("bytes")),
            _int(r.get("macs_per_step")),
            _pct(r.get("val_accuracy")),
            _pct(r.get("test_accuracy")),
            seconds,
            status.replace("|", "\\|"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _smaller(dense: int, params: int) -> str:
    if params >= dense:
        return " (as many as dense)" if params == dense else " (more than dense)"
    return f" ({dense / params:.1f}x fewer than dense)"


def _compare(a: float, b: float) -> str:
    return "beat" if a > b else ("tied" if a == b else "lost to")


def noise_band(rows: Sequence[dict[str, Any]], test_examples: int) -> tuple[float, float]:
    """(median test accuracy, two binomial standard errors there) of the finished runs."""
    ok = _ok(rows)
    if test_examples <= 0 or not ok:
        return math.nan, 0.0
    typical = statistics.median(r["test_accuracy"] for r in ok)
    spread = max(typical * (1 - typical), 1 / test_examples)
    return typical, 2 * math.sqrt(spread / test_examples)


def reading(rows: Sequence[dict[str, Any]], test_examples: int) -> list[str]:
    """A short, data-driven reading of the table: STR against the others at equal size.

    A difference smaller than ``noise_band`` is called out as within noise and not counted as
    a win or a loss in the tallies.
    """
    ok = _ok(rows)
    typical, noise = noise_band(rows, test_examples)
    lines = []

    def verdict(a: float, b: float, tally: list[str]) -> str:
        word = _compare(a, b)
        if word != "tied" and abs(a - b) < noise:
            tally.append("within noise")
            return f"{word} (within noise)"
        tally.append(word)
        return word

    dense = next((r for r in ok if r["method"] == "dense"), None)
    if dense is not None:
        lines.append(
            f"Dense FastGRNN: {_pct(dense['test_accuracy'])} test accuracy with "
            f"{dense['params']:,} parameters."
        )
    tallies: dict[str, list[str]] = {"svd": [], "svd+finetune": [], "fixed": []}
    for s in sorted((r for r in ok if r["method"] == "str"), key=lambda r: r["params"]):
        parts = [
            f"STR {s['setting'].split(',')[0]}: ranks W {s['rank_w']}, U {s['rank_u']}, "
            f"{s['params']:,} parameters"
            + (_smaller(dense["params"], s["params"]) if dense else "")
            + f", {_pct(s['test_accuracy'])}"
        ]
        for method, label in (("svd", "post-hoc SVD"), ("svd+finetune", "SVD + fine-tune")):
            twin = next(
                (
                    r
                    for r in ok
                    if r["method"] == method
                    and (r["rank_w"], r["rank_u"]) == (s["rank_w"], s["rank_u"])
                ),
                None,
            )
            if twin is not None:
                said = verdict(s["test_accuracy"], twin["test_accuracy"], tallies[method])
                parts.append(f"{said} {label} ({_pct(twin['test_accuracy'])})")
        fixed = [
            r for r in ok if r["method"] == "fixed" and r["params"] <= SIZE_TOLERANCE * s["params"]
        ]
        if fixed:
            rival = max(fixed, key=lambda r: r["test_accuracy"])
            said = verdict(s["test_accuracy"], rival["test_accuracy"], tallies["fixed"])
            parts.append(
                f"{said} the best fixed rank of no more parameters "
                f"(W {rival['rank_w']}, U {rival['rank_u']}, {rival['params']:,}: "
                f"{_pct(rival['test_accuracy'])})"
            )
        else:
            parts.append("no fixed-rank run is that small")
        lines.append("; ".join(parts) + ".")
    names = {
        "svd": "post-hoc SVD",
        "svd+finetune": "SVD + fine-tune",
        "fixed": "fixed rank (same size or smaller)",
    }
    counts = [
        f"{names[m]}: {v.count('beat')} won, {v.count('lost to')} lost, "
        f"{v.count('tied') + v.count('within noise')} tied or within noise"
        for m, v in tallies.items()
        if v
    ]
    if counts:
        lines.append("STR against " + "; ".join(counts) + ".")
    for b in sorted((r for r in ok if r["method"] == "budget"), key=lambda r: r["params"]):
        target = b.get("target_params")
        off = f" ({100 * (b['params'] / target - 1):+.1f}% off the target)" if target else ""
        lines.append(
            f"Budget {b['setting']}: reached {b['params']:,} parameters{off}, ranks W "
            f"{b['rank_w']}, U {b['rank_u']}, {_pct(b['test_accuracy'])}."
        )
    for r in sorted((r for r in ok if r["method"] in ("gru", "lstm")), key=lambda r: r["params"]):
        versus = ""
        if dense is not None:
            gap = 100 * (dense["test_accuracy"] - r["test_accuracy"])
            versus = (
                f"; dense FastGRNN {gap:+.1f} points against it with "
                f"{dense['params'] / r['params']:.2f}x its parameters"
            )
        lines.append(
            f"nn.{r['method'].upper()} {r['setting']}: {_pct(r['test_accuracy'])} with "
            f"{r['params']:,} parameters, {r['macs_per_step']:,} MACs per step{versus}."
        )
    front = pareto_front(rows)
    if front:
        by_method = ", ".join(
            f"{sum(r['method'] == m for r in front)} {m}"
            for m in MARKERS
            if any(r["method"] == m for r in front)
        )
        lines.append(f"Pareto front (test accuracy against parameters): {by_method}.")
    if test_examples > 0 and ok:
        lines.append(
            f"Noise: the test split has {test_examples:,} examples (one example = "
            f"{100 / test_examples:.2f} points); differences under about {100 * noise:.1f} points "
            f"(two binomial standard errors at the median accuracy, {_pct(typical)}) are within "
            "noise, and every setting ran with one seed."
        )
    failed = [r for r in rows if r["status"] != "ok"]
    if failed:
        lines.append(
            f"{len(failed)} run(s) did not finish: "
            + "; ".join(f"{r['method']} {r['setting']}: {r['status']}" for r in failed)
            + "."
        )
    return lines


def markdown(result: StudyResult) -> str:
    cfg, settings = result.config, result.settings
    full = result.full_ranks
    text = [
        f"# Rank against accuracy: {cfg.task}",
        "",
        f"FastGRNN, hidden {cfg.model.hidden} (full ranks W {full['W']}, U {full['U']}); data "
        f"`{cfg.data_dir}` ({result.test_examples:,} test examples); {settings.epochs} epochs "
        f"(fine-tunes {settings.finetune_epochs}), seed {cfg.seed}, weight decay "
        f"{cfg.optim.weight_decay:g} for dense and fixed rank, STR s_init "
        f"{cfg.model.s_init if settings.str_s_init is None else settings.str_s_init:g}; "
        f"nn.GRU / nn.LSTM baselines with the same features, head and recipe. "
        "Params and bytes after compaction (float32), MACs per time step.",
        "",
        markdown_table(result.rows),
        "",
        f"★ best test accuracy among the runs within ±{100 * (SIZE_TOLERANCE - 1):.0f}% of its "
        "parameter count; ◆ on the Pareto front (no smaller run is as accurate). Validation "
        "accuracy chose each run's kept epoch; test accuracy is of that model.",
        "",
        "## Reading",
        "",
        *[f"- {line}" for line in reading(result.rows, result.test_examples)],
        "",
    ]
    return "\n".join(text)


# ----------------------------------------------------------------------------- plot


def log_count_axis(ax, subs: Sequence[float] = (1.0, 2.0, 3.0, 5.0, 7.0)) -> None:
    """A log x axis of counts (parameters, MACs) labelled 2,000 / 5,000 / 10,000 at ``subs`` of
    each decade: matplotlib's own labels of a narrow range are minor ticks in 10^x form that
    run into each other."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=subs))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def plot(rows: Sequence[dict[str, Any]], path: str | Path, title: str = "") -> None:
    """Test accuracy against parameters and against MACs per step, with the Pareto fronts."""
    # A bare Figure on the Agg canvas: no pyplot, so the caller's backend (a notebook's inline
    # one, say) and its open figures are left alone.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4.8))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2, sharey=True)
    for ax, x, label in (
        (axes[0], "params", "parameters (after compaction)"),
        (axes[1], "macs_per_step", "MACs per time step"),
    ):
        ok = _ok(rows, x)
        front = pareto_front(rows, x)
        if front:
            xs = [r[x] for r in front]
            ys = [100 * r["test_accuracy"] for r in front]
            ax.step(xs, ys, where="post", color="0.6", linestyle="--", zorder=1)
            ax.plot(xs, ys, "o", markersize=13, markerfacecolor="none", color="0.6", zorder=1)
        for method, (marker, colour) in MARKERS.items():
            points = [r for r in ok if r["method"] == method]
            if not points:
                continue
            ax.scatter(
                [r[x] for r in points],
                [100 * r["test_accuracy"] for r in points],
                marker=marker,
                color=colour,
                s=110 if marker == "*" else 50,
                label=method,
                zorder=4 if method == "dense" else 3,
            )
            if method in LEARNED_RANKS:
                for r in points:
                    ax.annotate(
                        f"W{r['rank_w']} U{r['rank_u']}",
                        (r[x], 100 * r["test_accuracy"]),
                        textcoords="offset points",
                        xytext=(5, -11),
                        fontsize=7,
                        color=colour,
                    )
        if ok:
            log_count_axis(ax)
        ax.set_xlabel(label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("test accuracy (%)")
    axes[0].plot([], [], color="0.6", linestyle="--", marker="o", markerfacecolor="none",
                 label="Pareto front")  # fmt: skip
    axes[0].legend(loc="best", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()

    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))


def write_reports(result: StudyResult) -> dict[str, Path]:
    """compare.csv, compare.md and compare.png in ``result.out``."""
    out = Path(result.out)
    paths = {
        "csv": out / "compare.csv",
        "md": out / "compare.md",
        "png": out / "compare.png",
    }
    write_csv(result.rows, paths["csv"])
    text = markdown(result)
    write_atomic(paths["md"], lambda tmp: tmp.write_text(text))
    cfg = result.config
    plot(
        result.rows,
        paths["png"],
        f"{cfg.task}: FastGRNN hidden {cfg.model.hidden}, {result.settings.epochs} epochs",
    )
    return paths
