"""`edge-str predict` and the Python inference API on WAV files and waveforms."""

import json

import numpy as np
import onnx
import pytest
import soundfile as sf
import torch

from edge_str import load_predictor
from edge_str.cli import main
from edge_str.data import load_task
from edge_str.errors import EdgeStrError
from edge_str.inference.predictor import softmax
from edge_str.run import load_trained_model
from tests._cli import refused
from tests._data_trees import SR, build_har_tree, build_speech_tree, speaker, tone, write_wav

TEST_SPEAKER = speaker(1)  # the tree's test split


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = build_speech_tree(tmp_path_factory.mktemp("speech"), speakers=4)
    # Test clips as the loaders must take them: 8 kHz, stereo, shorter than 1 s.
    clip = tone(420.0)
    write_wav(root / "yes" / f"{TEST_SPEAKER}_nohash_0.wav", clip[::2], sr=SR // 2)
    write_wav(root / "no" / f"{TEST_SPEAKER}_nohash_0.wav", np.stack([clip, 0.5 * clip], 1))
    write_wav(root / "up" / f"{TEST_SPEAKER}_nohash_0.wav", clip[: SR // 2])
    return root


@pytest.fixture(scope="module")
def run(tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "run"
    argv = ["train", "--task", "google12", "--data", str(tree), "--out", str(out)]
    assert main(argv + ["--epochs", "1", "--hidden", "8", "--batch-size", "16"]) == 0
    return out


@pytest.fixture(scope="module")
def onnx_file(run):
    path = run.parent / "model.onnx"
    assert main(["export", str(run), "--out", str(path), "--streaming"]) == 0
    return path


def _test_clips(tree, run):
    info, model = load_trained_model(run)
    data = load_task("google12", tree, info.config.data)
    x, _ = data.split_tensors("test")
    sources = data.example_sources("test")
    return model, x, {s: i for i, s in enumerate(sources) if not s.startswith("_background")}


def test_predict_on_a_wav_equals_the_model_on_its_cached_features(tree, run, onnx_file):
    model, x, index = _test_clips(tree, run)
    predictor = load_predictor(run)
    from_onnx = load_predictor(onnx_file)
    assert from_onnx.front_end == predictor.front_end and from_onnx.class_names
    # yes: 8 kHz, no: stereo, up: 0.5 s; the rest 16 kHz mono 1 s clips
    for rel in ["yes", "no", "up", "down", "left"]:
        name = f"{rel}/{TEST_SPEAKER}_nohash_0.wav"
        i = index[name]
        features = predictor.features(tree / name)
        assert torch.allclose(features, x[i], atol=1e-5), name  # as the loader made them
        with torch.no_grad():
            expected = softmax(model(x[i : i + 1]).numpy())[0]
        assert np.allclose(predictor.probabilities(tree / name), expected, atol=1e-6)
        assert np.allclose(from_onnx.probabilities(tree / name), expected, atol=1e-4)


def test_a_waveform_array_at_any_rate_is_the_same_as_its_wav(tree, run):
    predictor = load_predictor(run)
    path = tree / "yes" / f"{TEST_SPEAKER}_nohash_0.wav"  # the 8 kHz clip
    samples, rate = sf.read(str(path), dtype="float32")
    assert rate == SR // 2
    by_array = predictor.probabilities(samples, sample_rate=rate)
    assert np.allclose(by_array, predictor.probabilities(path), atol=1e-6)
    stereo = np.stack([samples, samples], axis=1)
    assert np.allclose(predictor.probabilities(stereo, sample_rate=rate), by_array, atol=1e-6)
    top = predictor.top(torch.from_numpy(samples), sample_rate=rate, k=2)
    assert len(top) == 2 and top[0][1] >= top[1][1]
    assert top[0][0] == predictor.class_names[int(by_array.argmax())]
    with pytest.raises(EdgeStrError, match="needs its sample_rate"):
        predictor.probabilities(samples)
    with pytest.raises(EdgeStrError, match="no such run folder"):
        load_predictor(tree / "missing")


def test_predict_cli_prints_one_line_a_file_and_json(tree, run, onnx_file, capsys):
    wavs = [str(tree / "yes" / f"{TEST_SPEAKER}_nohash_0.wav"), str(tree / "go" / "x.wav")]
    write_wav(tree / "go" / "x.wav", tone(900.0, 0.8))
    assert main(["predict", str(run), *wavs, "--top", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == wavs
    assert all(len(line.split(": ")[1].split(", ")) == 2 for line in lines)
    assert main(["predict", str(onnx_file), *wavs, "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert [p["wav"] for p in payload["predictions"]] == wavs
    top = payload["predictions"][0]["top"]
    assert len(top) == 3 and sum(t["probability"] for t in top) <= 1.0 + 1e-6


def test_predict_cli_refusals(tree, run, onnx_file, tmp_path, capsys):
    wav = str(tree / "yes" / f"{TEST_SPEAKER}_nohash_0.wav")
    assert "missing.wav" in refused(["predict", str(run), str(tmp_path / "missing.wav")], capsys)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not a wav file")
    assert "cannot read this WAV" in refused(["predict", str(run), str(bad)], capsys)
    bare = onnx.load(str(onnx_file))
    del bare.metadata_props[:]
    onnx.save(bare, str(tmp_path / "bare.onnx"))
    assert "no front-end settings" in refused(["predict", str(tmp_path / "bare.onnx"), wav], capsys)
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    assert "onnxruntime cannot load" in refused(
        ["predict", str(tmp_path / "junk.onnx"), wav], capsys
    )
    har = build_har_tree(tmp_path / "har")
    har_run = tmp_path / "har_run"
    argv = ["train", "--task", "har2", "--data", str(har), "--out", str(har_run), "--epochs", "1"]
    assert main(argv + ["--hidden", "4"]) == 0
    capsys.readouterr()
    assert "needs a google12 run" in refused(["predict", str(har_run), wav], capsys)


def test_evaluate_saves_a_confusion_png_and_prints_a_summary(run, capsys):
    assert main(["evaluate", str(run)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0].startswith("test accuracy ") and len(out) == 3
    assert "confusion.png" in out[-1] and "eval.json" in out[-1]
    assert (run / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads((run / "eval.json").read_text())
    assert report["confusion_png"] == str(run / "confusion.png")
