"""``data synth google12 --stream``: a long recording with its ground truth, TF-style."""

import numpy as np
import soundfile as sf

from edge_str.cli import main
from edge_str.data.speech_commands import COMMAND_WORDS
from edge_str.data.synth_stream import WORD_GAP_S, synth_stream
from edge_str.inference.stream_eval import UNKNOWN, read_truth
from tests._cli import refused


def test_stream_has_words_at_the_truth_times_over_background(tmp_path, capsys):
    wav = tmp_path / "stream.wav"
    argv = ["data", "synth", "google12", "--stream", "--minutes", "0.25", "--out", str(wav)]
    assert main([*argv, "--seed", "3"]) == 0
    assert "stream.csv" in capsys.readouterr().out
    samples, rate = sf.read(str(wav), dtype="float32")
    assert rate == 16000 and len(samples) == 15 * 16000
    truth = read_truth(wav.with_suffix(".csv"))
    assert 2 <= len(truth) <= 4  # one slot every 3 s, 90% of them holding a word
    assert all(w.label in (*COMMAND_WORDS, UNKNOWN) for w in truth)
    assert all(b.time_s - a.time_s >= WORD_GAP_S for a, b in zip(truth, truth[1:]))
    background = np.sqrt(np.mean(samples[: int(0.4 * rate)] ** 2))  # before the first slot
    assert 0 < background < 0.1
    for word in truth:  # the word lies inside the second after its time: louder than noise
        start = int(word.time_s * rate)
        assert np.sqrt(np.mean(samples[start : start + rate] ** 2)) > 1.5 * background
    again = tmp_path / "again.wav"
    synth_stream(again, minutes=0.25, seed=3)
    assert again.with_suffix(".csv").read_text() == wav.with_suffix(".csv").read_text()


def test_the_same_seed_gives_the_same_stream_audio(tmp_path):
    first, again = tmp_path / "first.wav", tmp_path / "again.wav"
    synth_stream(first, minutes=0.25, seed=3)
    synth_stream(again, minutes=0.25, seed=3)
    assert again.read_bytes() == first.read_bytes()


def test_stream_refusals(tmp_path, capsys):
    base = ["data", "synth", "google12", "--stream"]
    assert ".wav" in refused([*base, "--out", str(tmp_path / "dir")], capsys)
    assert "--minutes" in refused(
        [*base, "--minutes", "0", "--out", str(tmp_path / "a.wav")], capsys
    )
    line = refused([*base, "--out", str(tmp_path / "no" / "a.wav")], capsys)
    assert "does not exist" in line
    assert "--stream is for google12" in refused(
        ["data", "synth", "har2", "--stream", "--out", str(tmp_path / "a.wav")], capsys
    )
