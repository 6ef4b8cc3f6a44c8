"""Streaming keyword detection on a recording, and its evaluation against a ground truth.

from edge_str import detect_keywords, load_predictor
result = detect_keywords(load_predictor("runs/kws"), "stream.wav", truth="stream.csv",
                         det_png="det.png")
result["detections"]      # [{"time_s": 3.03, "label": "yes", "score": 0.91}, ...]
result["evaluation"]      # matched / wrong / false positives, fa_per_hour, frr, sweep
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from edge_str.errors import EdgeStrError
from edge_str.inference.predictor import Predictor
from edge_str.inference.smoothing import SmoothingSettings, detect_commands, smooth_posteriors
from edge_str.inference.stream import DEFAULT_DECAY, stream_posteriors
from edge_str.inference.stream_eval import (
    TOLERANCE_MS,
    det_points,
    plot_det,
    read_truth,
    score_detections,
)


def detect_keywords(
    predictor: Predictor,
    wav: str | Path,
    settings: SmoothingSettings | None = None,
    *,
    reset: str = "window",
    decay: float = DEFAULT_DECAY,
    truth: str | Path | None = None,
    det_png: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Detections in ``wav``; with ``truth`` (a ground-truth CSV) also the stream evaluation
    and, with ``det_png``, the DET curve of the threshold sweep with the operating point."""
    settings = settings or SmoothingSettings()
    truth_words = read_truth(truth, predictor.class_names) if truth is not None else None
    samples = predictor.front_end.read(wav)
    duration_s = len(samples) / predictor.front_end.sample_rate
    if len(samples) < predictor.front_end.clip_samples:
        raise EdgeStrError(
            f"{wav}: {duration_s:.2f} s long, shorter than the model's 1 s clip; nothing to detect"
        )
    times_ms, posteriors, state = stream_posteriors(
        predictor, samples, settings, reset, decay, progress
    )
    averaged, valid = smooth_posteriors(times_ms, posteriors, settings)
    detections = detect_commands(times_ms, averaged, valid, predictor.class_names, settings)
    result: dict[str, Any] = {
        "model": predictor.source,
        "wav": str(wav),
        "duration_s": duration_s,
        "decisions": len(times_ms),
        "settings": asdict(settings),
        "reset": reset,
        "decay": decay if reset == "decay" else None,
        "state": state,
        "detections": [d.to_dict() for d in detections],
        "evaluation": None,
    }
    if truth_words is not None:
        stats = score_detections(detections, truth_words, duration_s)
        sweep = det_points(
            times_ms, averaged, valid, predictor.class_names, truth_words, duration_s, settings
        )
        operating = {
            "threshold": settings.threshold,
            "fa_per_hour": stats.fa_per_hour,
            "frr": stats.frr,
        }
        result["evaluation"] = {
            "truth": str(truth),
            "tolerance_ms": TOLERANCE_MS,
            **stats.to_dict(),
            "sweep": sweep,
            "det_png": None,
        }
        if det_png is not None:
            title = f"DET: {Path(predictor.source).name} on {Path(wav).name}"
            result["evaluation"]["det_png"] = str(plot_det(sweep, operating, det_png, title))
    return result
