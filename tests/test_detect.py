"""Streaming detection end to end: a tone-keyword model trained here, planted words, ONNX."""

import json

import numpy as np
import pytest
import soundfile as sf

from edge_str import detect_keywords, load_predictor
from edge_str.cli import main
from edge_str.inference.predictor import Predictor
from edge_str.inference.stream import stream_posteriors
from tests._cli import refused
from tests._tone_model import build_tone_stream, build_tone_tree, train_tone_model

PLANTED = [(1.0, "yes"), (4.0, "no"), (7.0, "bed"), (10.0, "up"), (13.0, "stop")]
TOLERANCE_S = 0.75


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("tones")
    run = train_tone_model(build_tone_tree(root / "tree"), root / "run")
    assert main(["export", str(run), "--out", str(root / "kws.onnx"), "--streaming"]) == 0
    return run


@pytest.fixture(scope="module")
def stream(model):
    wav = model.parent / "stream.wav"
    return wav, build_tone_stream(wav, PLANTED, seconds=16.0)


def test_the_detector_finds_the_planted_keywords_at_their_times(model, stream):
    wav, truth = stream
    result = detect_keywords(load_predictor(model), wav, truth=wav.with_suffix(".csv"))
    found = result["detections"]
    assert [d["label"] for d in found] == [w.label for w in truth]
    for detection, word in zip(found, truth):
        assert abs(detection["time_s"] - word.time_s) <= TOLERANCE_S
        assert detection["score"] > 0.7
    ev = result["evaluation"]
    assert (ev["matched"], ev["wrong"], ev["false_positives"], ev["missed"]) == (5, 0, 0, 0)
    assert ev["fa_per_hour"] == 0.0 and ev["frr"] == 0.0
    assert len(ev["sweep"]) > 10
    # the sweep runs from permissive to strict: false rejects never fall as the threshold rises
    frr = [p["frr"] for p in ev["sweep"]]
    assert all(a <= b + 1e-12 for a, b in zip(frr, frr[1:])) and frr[-1] >= frr[0]


def test_onnx_step_graph_and_torch_give_the_same_detections(model, stream):
    wav, _ = stream
    torch_result = detect_keywords(load_predictor(model), wav, progress=False)
    onnx_result = detect_keywords(load_predictor(model.parent / "kws.onnx"), wav)
    assert len(torch_result["detections"]) == len(onnx_result["detections"]) == 5
    for a, b in zip(torch_result["detections"], onnx_result["detections"]):
        assert (a["label"], a["time_s"]) == (b["label"], b["time_s"])
        assert a["score"] == pytest.approx(b["score"], abs=1e-4)
    # the sequence file streams through the step file beside it; the step file is one too
    for name in ("kws.onnx", "kws.step.onnx"):
        step = load_predictor(model.parent / name).stream_step()
        assert step.source == str(model.parent / "kws.step.onnx") and step.hidden == 16


def test_window_reset_equals_the_clip_model_on_each_window(model, stream):
    """--reset window: each decision is the model on the last 1 s, exactly (frame-aligned)."""
    wav, _ = stream
    predictor = load_predictor(model)
    samples = predictor.front_end.read(wav)
    times, posteriors, _ = stream_posteriors(predictor, samples, progress=False)
    features = predictor.front_end.stream_features(samples)
    for j in (0, 40, 200):
        end = 98 + 3 * j  # the decision's last frame: 1 s in, then every 30 ms
        assert times[j] == pytest.approx(1000 + 30 * j)  # window start + the 1 s clip
        window = features[end - 98 : end + 1][None]
        expected = np.exp(predictor.logits(window)[0])
        assert np.allclose(posteriors[j], expected / expected.sum(), atol=1e-5)
    # a model without a step (a CNN) gets the same windows from its clip form
    clip_only = Predictor(
        predictor.logits, predictor.class_names, predictor.front_end, "clip form", None
    )
    clip_times, clip_posteriors, _ = stream_posteriors(clip_only, samples, progress=False)
    assert np.array_equal(clip_times, times)
    assert np.allclose(clip_posteriors, posteriors, atol=1e-4)  # compacted step vs model


def test_detect_cli_scores_the_stream_and_writes_the_det_png(model, stream, capsys):
    wav, _ = stream
    assert main(["detect", str(model), str(wav), "--truth", str(wav.with_suffix(".csv"))]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 6 and lines[0].split()[2] == "yes"
    assert "FA/h 0.0, FRR 0.0%" in lines[-1] and "matched 100.0%" in lines[-1]
    png = wav.with_suffix(".det.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and str(png) in lines[-1]
    assert main(["detect", str(model), str(wav), "--json", "--reset", "never"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["reset"] == "never" and result["evaluation"] is None
    assert result["state"]["state_abs_max"] > 0


def test_detect_cli_refusals(model, stream, tmp_path, capsys):
    wav, _ = stream
    run = str(model)
    assert "needs --truth" in refused(["detect", run, str(wav), "--det-png", "x.png"], capsys)
    assert "--threshold" in refused(["detect", run, str(wav), "--threshold", "1.5"], capsys)
    assert "feature hops" in refused(["detect", run, str(wav), "--stride-ms", "25"], capsys)
    assert "--decay" in refused(
        ["detect", run, str(wav), "--reset", "decay", "--decay", "1"], capsys
    )
    bad_truth = tmp_path / "t.csv"
    bad_truth.write_text("time_s,label\n1.0,cat\n")
    assert "'cat' is not a class" in refused(
        ["detect", run, str(wav), "--truth", str(bad_truth)], capsys
    )
    short = tmp_path / "short.wav"
    sf.write(str(short), sf.read(str(wav))[0][:8000], 16000, subtype="PCM_16")
    assert "shorter than the model's 1 s clip" in refused(["detect", run, str(short)], capsys)
    (model.parent / "lonely.onnx").write_bytes((model.parent / "kws.onnx").read_bytes())
    line = refused(["detect", str(model.parent / "lonely.onnx"), str(wav)], capsys)
    assert "lonely.step.onnx" in line and "--streaming" in line
