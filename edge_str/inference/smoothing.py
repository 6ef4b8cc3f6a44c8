"""Posterior smoothing and suppression, as in TensorFlow's speech_commands streaming evaluation.

TensorFlow's ``RecognizeCommands`` (speech_commands/recognize_commands.py, used by
test_streaming_accuracy): the model is run on the last 1 s of audio every 30 ms; each decision
averages the class posteriors of the results within the last 500 ms (inclusive), and says
nothing while that window holds fewer than 3 results or spans under a quarter of 500 ms. A
command fires when the top averaged score is above 0.7 and 1,500 ms have passed since the last
command fired:

    p̄_j = mean{ p_i : t_j - W <= t_i <= t_j }              W = 500 ms averaging window
    fire at t_j  if  max_c p̄_j[c] > θ  and  t_j - t_last > S   θ = 0.7, S = 1,500 ms

Two choices differ from the Python reference and are deliberate: the suppression applies after
any command (the Python class also never fires the same word twice in a row, so "yes ... yes"
would count once), and ``_silence_`` never fires (there it fires and then lifts suppression).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SILENCE = "_silence_"


@dataclass(frozen=True)
class SmoothingSettings:
    """TensorFlow's streaming defaults (test_streaming_accuracy / recognize_commands)."""

    clip_ms: float = 1000.0  # audio each decision is about
    stride_ms: float = 30.0  # between decisions
    average_window_ms: float = 500.0
    threshold: float = 0.7
    suppression_ms: float = 1500.0
    minimum_count: int = 3  # results in the averaging window before any decision


@dataclass(frozen=True)
class Detection:
    time_s: float  # start of the 1 s window at the decision (TF's time convention)
    label: str
    score: float  # the averaged posterior of ``label``

    def to_dict(self) -> dict:
        return {"time_s": round(self.time_s, 3), "label": self.label, "score": self.score}


def smooth_posteriors(
    times_ms: np.ndarray, posteriors: np.ndarray, settings: SmoothingSettings
) -> tuple[np.ndarray, np.ndarray]:
    """Averaged posteriors (D, C) over each decision's window, and whether each decision is
    made at all (D,) (enough results, a long enough span). ``times_ms`` must increase."""
    times_ms = np.asarray(times_ms, dtype=np.float64)
    posteriors = np.asarray(posteriors, dtype=np.float64)
    if times_ms.ndim != 1 or posteriors.shape[:1] != times_ms.shape or posteriors.ndim != 2:
        raise ValueError(f"times {times_ms.shape} and posteriors {posteriors.shape} disagree")
    if np.any(np.diff(times_ms) < 0):
        raise ValueError("decision times must not decrease")
    # First result inside each window (t_i >= t_j - W) by binary search; sums by cumsum.
    first = np.searchsorted(times_ms, times_ms - settings.average_window_ms, side="left")
    cumulative = np.vstack([np.zeros((1, posteriors.shape[1])), np.cumsum(posteriors, axis=0)])
    last = np.arange(1, len(times_ms) + 1)
    counts = last - first
    averaged = (cumulative[last] - cumulative[first]) / np.maximum(counts, 1)[:, None]
    span = times_ms - times_ms[first] if len(times_ms) else times_ms
    valid = (counts >= settings.minimum_count) & (span >= settings.average_window_ms / 4)
    return averaged, valid


def detect_commands(
    times_ms: np.ndarray,
    averaged: np.ndarray,
    valid: np.ndarray,
    class_names: list[str],
    settings: SmoothingSettings,
    threshold: float | None = None,
) -> list[Detection]:
    """The commands that fire, in time order (``threshold`` overrides the settings' one)."""
    threshold = settings.threshold if threshold is None else threshold
    top = averaged.argmax(axis=1) if len(averaged) else np.zeros(0, int)
    score = averaged[np.arange(len(top)), top] if len(top) else np.zeros(0)
    silence = class_names.index(SILENCE) if SILENCE in class_names else -1
    candidates = np.flatnonzero(valid & (score > threshold) & (top != silence))
    detections: list[Detection] = []
    last_ms = -np.inf
    for j in candidates:  # few: only decisions above the threshold
        if times_ms[j] - last_ms > settings.suppression_ms:
            last_ms = times_ms[j]
            time_s = (times_ms[j] - settings.clip_ms) / 1000.0
            detections.append(Detection(time_s, class_names[top[j]], float(score[j])))
    return detections
