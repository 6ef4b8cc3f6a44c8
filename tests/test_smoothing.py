"""Posterior smoothing and suppression (TF's RecognizeCommands) on hand-made posteriors."""

import numpy as np
import pytest

from edge_str.inference.smoothing import SmoothingSettings, detect_commands, smooth_posteriors

CLASSES = ["_silence_", "_unknown_", "yes", "no"]
SETTINGS = SmoothingSettings()  # 30 ms stride, 500 ms window, 0.7, 1,500 ms, 3 results


def _posteriors(times_ms, label_of):
    """One-hot posteriors: ``label_of(t)`` -> (class index, score), the rest to silence."""
    rows = []
    for t in times_ms:
        index, score = label_of(t)
        row = np.zeros(len(CLASSES))
        row[index] = score
        row[0] += 1.0 - score
        rows.append(row)
    return np.array(rows)


def test_average_covers_the_last_500_ms_inclusive_and_waits_for_three_results():
    times = np.array([0.0, 100.0, 200.0, 500.0, 600.0, 1200.0])
    post = np.eye(4)[[2, 2, 3, 3, 2, 3]]  # yes yes no no yes no
    averaged, valid = smooth_posteriors(times, post, SETTINGS)
    # t = 500 averages t = 0..500 (0 is exactly 500 ms back: inside); t = 600 drops t = 0;
    # t = 1200 is alone in its window.
    assert averaged[3] == pytest.approx([0, 0, 0.5, 0.5])
    assert averaged[4] == pytest.approx([0, 0, 2 / 4, 2 / 4])
    assert averaged[5] == pytest.approx([0, 0, 0, 1])
    # fewer than 3 results, or a span under 125 ms: no decision
    assert valid.tolist() == [False, False, True, True, True, False]


def test_a_steady_word_fires_once_then_again_only_after_the_suppression():
    times = np.arange(0, 6000, 30.0)
    post = _posteriors(times, lambda t: (2, 0.9) if 1000 <= t < 5000 else (0, 1.0))
    averaged, valid = smooth_posteriors(times, post, SETTINGS)
    found = detect_commands(times, averaged, valid, CLASSES, SETTINGS)
    first = times[(times >= 1000) & (averaged[:, 2] > 0.7)][0]  # average crosses 0.7
    # fires at the crossing, then at the first decision more than 1,500 ms after the last one
    second = times[times > first + 1500][0]
    expected = [first, second, times[times > second + 1500][0]]
    assert [d.label for d in found] == ["yes"] * 3
    assert [d.time_s for d in found] == pytest.approx([(t - 1000) / 1000 for t in expected])
    assert all(d.score > 0.7 for d in found)


def test_threshold_is_strict_and_silence_never_fires():
    times = np.arange(0, 3000, 30.0)
    at_threshold = _posteriors(times, lambda t: (2, 0.75))  # 0.75: exact in binary, as are
    averaged, valid = smooth_posteriors(times, at_threshold, SETTINGS)  # its running sums
    assert detect_commands(times, averaged, valid, CLASSES, SETTINGS, 0.75) == []
    assert [d.label for d in detect_commands(times, averaged, valid, CLASSES, SETTINGS, 0.74)]
    silence = _posteriors(times, lambda t: (0, 1.0))
    averaged, valid = smooth_posteriors(times, silence, SETTINGS)
    assert detect_commands(times, averaged, valid, CLASSES, SETTINGS, 0.1) == []


def test_another_word_inside_the_suppression_is_dropped_and_unknown_fires():
    times = np.arange(0, 8000, 30.0)

    def label(t):
        if 1000 <= t < 1600:
            return 2, 1.0  # yes
        if 2000 <= t < 2600:
            return 3, 1.0  # no, within 1,500 ms of the yes: suppressed
        if 5000 <= t < 5600:
            return 1, 1.0  # _unknown_, long after: fires as itself
        return 0, 1.0

    averaged, valid = smooth_posteriors(times, _posteriors(times, label), SETTINGS)
    found = detect_commands(times, averaged, valid, CLASSES, SETTINGS)
    assert [d.label for d in found] == ["yes", "_unknown_"]


def test_times_must_not_go_back():
    with pytest.raises(ValueError, match="must not decrease"):
        smooth_posteriors(np.array([0.0, 60.0, 30.0]), np.eye(3), SETTINGS)
