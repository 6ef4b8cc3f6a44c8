"""Detections against a ground truth: TF's streaming accuracy, false accepts per hour, DET curve.

Matching follows TensorFlow's ``StreamingAccuracyStats`` (speech_commands/accuracy_utils): each
detection, in time order, takes the first ground-truth word within ±750 ms of it; it is
"matched" when the labels agree and that word was not matched before, else "wrong"; a detection
with no word within the tolerance is a "false positive". Ground-truth words no detection took
are "missed". Percentages are of the ground-truth words, as TF prints them.

Keyword figures (the industry's): a false accept is a detection of a command word that is not
matched (wrong or false positive), counted per hour of audio; the false reject rate is the share
of command-word occurrences that no detection matched. ``_unknown_`` detections are neither.
A DET curve is FRR against FA/h over a sweep of thresholds (the smoothing is computed once).
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edge_str.atomic import write_atomic
from edge_str.errors import EdgeStrError
from edge_str.inference.smoothing import SILENCE, Detection, SmoothingSettings, detect_commands

UNKNOWN = "_unknown_"
TOLERANCE_MS = 750.0
TRUTH_COLUMNS = ("time_s", "label")
SWEEP = tuple(np.round(np.linspace(0.05, 0.99, 48), 4).tolist())  # thresholds of the DET curve


@dataclass(frozen=True)
class TruthWord:
    time_s: float  # start of the 1 s clip the word was placed in
    label: str


@dataclass
class StreamStats:
    truth_words: int
    matched: int
    wrong: int
    false_positives: int
    missed: int
    keyword_truths: int
    keyword_matched: int
    false_accepts: int
    hours: float

    @property
    def fa_per_hour(self) -> float:
        return self.false_accepts / self.hours if self.hours > 0 else float("nan")

    @property
    def frr(self) -> float:
        if self.keyword_truths == 0:
            return float("nan")
        return 1.0 - self.keyword_matched / self.keyword_truths

    def to_dict(self) -> dict:
        n = max(self.truth_words, 1)
        return {
            **asdict(self),
            "matched_percent": 100.0 * self.matched / n,
            "wrong_percent": 100.0 * self.wrong / n,
            "false_positive_percent": 100.0 * self.false_positives / n,
            "fa_per_hour": self.fa_per_hour,
            "frr": self.frr,
        }


def is_keyword(label: str) -> bool:
    return label not in (SILENCE, UNKNOWN)


def read_truth(path: str | Path, class_names: list[str] | None = None) -> list[TruthWord]:
    """The ground-truth CSV (header ``time_s,label``) that ``data synth --stream`` writes."""
    path = Path(path)
    try:
        with open(path, newline="") as handle:
            rows = list(csv.reader(handle))
    except OSError as error:
        raise EdgeStrError(f"{path}: cannot read the ground truth ({error.strerror})") from None
    if not rows or tuple(c.strip() for c in rows[0]) != TRUTH_COLUMNS:
        raise EdgeStrError(f"{path}: expected a CSV with the header {','.join(TRUTH_COLUMNS)}")
    words = []
    for number, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        try:
            time_s, label = float(row[0]), row[1].strip()
        except (ValueError, IndexError):
            raise EdgeStrError(f"{path}: line {number} is not time_s,label: {row}") from None
        if not np.isfinite(time_s) or time_s < 0:
            raise EdgeStrError(f"{path}: line {number}: time {row[0]} is not a time >= 0")
        if class_names is not None and label not in class_names:
            raise EdgeStrError(f"{path}: line {number}: {label!r} is not a class of the model")
        words.append(TruthWord(time_s, label))
    return sorted(words, key=lambda w: w.time_s)


def write_truth(path: Path, words: list[TruthWord]) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as handle:
            out = csv.writer(handle)
            out.writerow(TRUTH_COLUMNS)
            out.writerows((f"{w.time_s:.3f}", w.label) for w in words)

    write_atomic(path, write)


def score_detections(
    detections: list[Detection],
    truth: list[TruthWord],
    duration_s: float,
    tolerance_ms: float = TOLERANCE_MS,
) -> StreamStats:
    """TF's matched / wrong / false positive counts, and FA/h and FRR (see the module doc)."""
    tolerance = tolerance_ms / 1000.0
    taken = [False] * len(truth)
    times = np.array([w.time_s for w in truth])
    matched = wrong = false_positives = false_accepts = keyword_matched = 0
    for found in detections:
        j = int(np.searchsorted(times, found.time_s - tolerance, side="left"))
        if j < len(truth) and truth[j].time_s <= found.time_s + tolerance:
            if truth[j].label == found.label and not taken[j]:
                matched += 1
                keyword_matched += is_keyword(found.label)
            else:
                wrong += 1
                false_accepts += is_keyword(found.label)
            taken[j] = True
        else:
            false_positives += 1
            false_accepts += is_keyword(found.label)
    return StreamStats(
        truth_words=len(truth),
        matched=matched,
        wrong=wrong,
        false_positives=false_positives,
        missed=taken.count(False),
        keyword_truths=sum(is_keyword(w.label) for w in truth),
        keyword_matched=keyword_matched,
        false_accepts=false_accepts,
        hours=duration_s / 3600.0,
    )


def det_points(
    times_ms: np.ndarray,
    averaged: np.ndarray,
    valid: np.ndarray,
    class_names: list[str],
    truth: list[TruthWord],
    duration_s: float,
    settings: SmoothingSettings,
    thresholds: tuple[float, ...] = SWEEP,
) -> list[dict]:
    """(threshold, FA/h, FRR) for each threshold, lowest threshold first."""
    points = []
    for threshold in thresholds:
        found = detect_commands(times_ms, averaged, valid, class_names, settings, threshold)
        stats = score_detections(found, truth, duration_s)
        points.append(
            {"threshold": float(threshold), "fa_per_hour": stats.fa_per_hour, "frr": stats.frr}
        )
    return points


def plot_det(points: list[dict], operating: dict, path: str | Path, title: str) -> Path:
    """FRR against false accepts per hour, the operating point marked; written atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    fa = [p["fa_per_hour"] for p in points]
    frr = [100 * p["frr"] for p in points]
    ax.plot(fa, frr, "o-", markersize=3, label="threshold sweep")
    ax.plot(
        [operating["fa_per_hour"]],
        [100 * operating["frr"]],
        "r*",
        markersize=14,
        label=f"operating point (threshold {operating['threshold']:g})",
    )
    ax.set_xscale("symlog", linthresh=1.0)  # FA/h is often exactly 0 at high thresholds
    ax.set_xlabel("false accepts per hour")
    ax.set_ylabel("false reject rate (%)")
    ax.set_ylim(-2, 102)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper right")
    fig.tight_layout()
    path = Path(path)
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    return path
