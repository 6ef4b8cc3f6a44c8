"""A tiny keyword model trained in the tests: tone "words" in the Speech Commands layout.

Each command word is a tone burst of its own pitch (300 Hz to 4.8 kHz, a factor 1.36 apart) at
a random place in each 1 s clip, the unknown word "bed" a two-tone chord, over noise of a random
level. A FastGRNN with 16 hidden units learns them in 30 short epochs; streams of the same
bursts at known times test the detector end to end.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_str.cli import main
from edge_str.inference.stream_eval import TruthWord, write_truth
from tests._data_trees import SR, speaker, write_wav

COMMANDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
PITCH = {word: 300.0 * 16 ** (i / 9) for i, word in enumerate(COMMANDS)}
UNKNOWN_WORD, CHORD = "bed", (450.0, 2000.0)
BURST_S = 0.7
NOISE = 0.01


def burst(word: str, rng: np.random.Generator) -> np.ndarray:
    """A 0.4 s tone burst of the word's pitch (a little off per utterance), faded in and out."""
    n = int(BURST_S * SR)
    t = np.arange(n) / SR
    pitches = CHORD if word == UNKNOWN_WORD else (PITCH[word],)
    jitter = rng.uniform(0.97, 1.03)
    wave = sum(np.sin(2 * np.pi * f * jitter * t) for f in pitches) / len(pitches)
    envelope = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.03)
    return (rng.uniform(0.2, 0.4) * envelope * wave).astype(np.float32)


def tone_clip(word: str, rng: np.random.Generator) -> np.ndarray:
    clip = rng.uniform(0.003, 0.02) * rng.standard_normal(SR).astype(np.float32)
    start = int(rng.integers(int(0.1 * SR), int(0.2 * SR)))
    clip[start : start + int(BURST_S * SR)] += burst(word, rng)
    return clip


def build_tone_tree(root: Path, speakers: int = 16) -> Path:
    rng = np.random.default_rng(0)
    val, test = [], []
    for word in (*COMMANDS, UNKNOWN_WORD):
        for s in range(speakers):
            name = f"{word}/{speaker(s)}_nohash_0.wav"
            write_wav(root / name, tone_clip(word, rng))
            (val if s < 2 else test if s < 4 else []).append(name)
    (root / "validation_list.txt").write_text("\n".join(val) + "\n")
    (root / "testing_list.txt").write_text("\n".join(test) + "\n")
    noise = (0.1 * rng.standard_normal(12 * SR)).astype(np.float32)  # mixed in at <= 0.1
    write_wav(root / "_background_noise_" / "white_noise.wav", noise)
    return root


def train_tone_model(data: Path, out: Path, epochs: int = 30) -> Path:
    # Shifts of up to 300 ms teach the word also when the 1 s window cuts into the burst.
    config = out.parent / f"{out.name}.yaml"
    config.write_text("data:\n  time_shift_ms: 300\n")
    argv = ["train", "--task", "google12", "--data", str(data), "--out", str(out)]
    argv += ["--config", str(config)]
    argv += [
        "--epochs",
        str(epochs),
        "--hidden",
        "16",
        "--batch-size",
        "16",
        "--seed",
        "0",
        "--rank-mode",
        "dense",
    ]
    assert main(argv) == 0
    return out


def build_tone_stream(
    wav: Path, words: list[tuple[float, str]], seconds: float, seed: int = 1
) -> list[TruthWord]:
    """A recording of ``seconds`` with each (clip start, word) planted; truth CSV beside it."""
    rng = np.random.default_rng(seed)
    signal = NOISE * rng.standard_normal(int(seconds * SR)).astype(np.float32)
    truth = []
    for start_s, word in words:
        start = int(round(start_s * SR))
        signal[start : start + SR] += tone_clip(word, rng)
        truth.append(TruthWord(start / SR, "_unknown_" if word == UNKNOWN_WORD else word))
    write_wav(wav, signal)
    write_truth(wav.with_suffix(".csv"), truth)
    return truth
