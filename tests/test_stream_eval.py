"""Scoring detections against a ground truth (TF's matching, FA/h, FRR) and the DET sweep."""

import numpy as np
import pytest

from edge_str.errors import EdgeStrError
from edge_str.inference.smoothing import Detection, SmoothingSettings, smooth_posteriors
from edge_str.inference.stream_eval import (
    TruthWord,
    det_points,
    plot_det,
    read_truth,
    score_detections,
    write_truth,
)

CLASSES = ["_silence_", "_unknown_", "yes", "no", "up"]
TRUTH = [TruthWord(1.0, "yes"), TruthWord(4.0, "no"), TruthWord(7.0, "_unknown_")]


def test_matched_wrong_false_positive_and_missed_as_tf_counts_them():
    found = [
        Detection(1.6, "yes", 0.9),  # within 750 ms of yes: matched
        Detection(2.2, "yes", 0.9),  # 1.2 s from yes, 1.8 s from no: false positive
        Detection(3.4, "up", 0.9),  # the first word within 750 ms is "no": wrong
        Detection(4.5, "no", 0.9),  # "no" was taken by the wrong one: wrong again (as TF)
        Detection(7.7, "_unknown_", 0.8),  # matched, but not a keyword
    ]
    stats = score_detections(found, TRUTH, duration_s=36.0)
    assert (stats.matched, stats.wrong, stats.false_positives) == (2, 2, 1)
    assert stats.missed == 0 and stats.truth_words == 3 and stats.keyword_truths == 2
    # keyword false accepts: the false positive and both wrong ones; 36 s = 0.01 h
    assert stats.false_accepts == 3 and stats.fa_per_hour == pytest.approx(300.0)
    assert stats.frr == pytest.approx(0.5)  # "no" never matched
    report = stats.to_dict()
    assert report["matched_percent"] == pytest.approx(200 / 3)
    assert report["false_positive_percent"] == pytest.approx(100 / 3)


def test_det_points_of_a_hand_made_stream():
    times = np.arange(0.0, 36000.0, 30.0)  # decision times (ms): the window ends
    averaged = np.zeros((len(times), len(CLASSES)))
    averaged[:, 0] = 1.0
    for start_ms, label, score in ((2000, "yes", 0.9), (5000, "no", 0.6), (8500, "up", 0.75)):
        rows = (times >= start_ms) & (times < start_ms + 100)  # window start = time - 1 s
        averaged[rows] = 0.0
        averaged[rows, CLASSES.index(label)] = score
        averaged[rows, 0] = 1 - score
    valid = np.ones(len(times), bool)
    points = det_points(
        times, averaged, valid, CLASSES, TRUTH, 36.0, SmoothingSettings(), (0.5, 0.7, 0.8, 0.95)
    )
    # 0.5: yes and no matched, "up" near the unknown word is wrong; 0.7: "no" lost too;
    # 0.8: only yes; 0.95: nothing fires
    assert [(p["threshold"], p["fa_per_hour"], p["frr"]) for p in points] == [
        (0.5, pytest.approx(100.0), pytest.approx(0.0)),
        (0.7, pytest.approx(100.0), pytest.approx(0.5)),
        (0.8, pytest.approx(0.0), pytest.approx(0.5)),
        (0.95, pytest.approx(0.0), pytest.approx(1.0)),
    ]
    averaged_again, _ = smooth_posteriors(times, averaged, SmoothingSettings())
    assert averaged_again.shape == averaged.shape


def test_det_png_is_written(tmp_path):
    points = [{"threshold": t, "fa_per_hour": 10 * (1 - t), "frr": t} for t in (0.2, 0.5, 0.9)]
    path = plot_det(points, points[1], tmp_path / "det.png", "hand-made")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_truth_csv_round_trips_and_refuses_bad_files(tmp_path):
    path = tmp_path / "truth.csv"
    write_truth(path, TRUTH)
    assert read_truth(path, CLASSES) == TRUTH
    (tmp_path / "bad.csv").write_text("label,time\nyes,1000\n")
    with pytest.raises(EdgeStrError, match="header time_s,label"):
        read_truth(tmp_path / "bad.csv")
    (tmp_path / "word.csv").write_text("time_s,label\n1.0,cat\n")
    with pytest.raises(EdgeStrError, match="'cat' is not a class"):
        read_truth(tmp_path / "word.csv", CLASSES)
    (tmp_path / "time.csv").write_text("time_s,label\nsoon,yes\n")
    with pytest.raises(EdgeStrError, match="line 2"):
        read_truth(tmp_path / "time.csv", CLASSES)
    with pytest.raises(EdgeStrError, match="cannot read"):
        read_truth(tmp_path / "missing.csv")
