"""Builders of tiny data trees in the exact real layouts, for the data tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

COMMANDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
OTHERS = ("bed", "cat", "happy")
SR = 16000


def tone(freq: float, seconds: float = 1.0, sr: int = SR, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_wav(path: Path, samples: np.ndarray, sr: int = SR) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), samples, sr, subtype="PCM_16")
    return path


def speaker(i: int) -> str:
    return f"{0x1000_0000 + i * 7919:08x}"


def build_speech_tree(
    root: Path,
    speakers: int | list[int] = 10,
    words: tuple[str, ...] = COMMANDS + OTHERS,
    lists: bool = True,
    background: bool = True,
    val_speakers: tuple[int, ...] = (0,),
    test_speakers: tuple[int, ...] = (1,),
) -> Path:
    """Every speaker (a count, or speaker numbers) says every word once: a word-pitched tone."""
    rng = np.random.default_rng(0)
    val, test = [], []
    numbers = range(speakers) if isinstance(speakers, int) else speakers
    for w, word in enumerate(words):
        for s in numbers:
            name = f"{word}/{speaker(s)}_nohash_0.wav"
            clip = tone(200 + 50 * w + 3 * s) + 0.01 * rng.standard_normal(SR).astype(np.float32)
            write_wav(root / name, clip)
            if s in val_speakers:
                val.append(name)
            elif s in test_speakers:
                test.append(name)
    if lists:
        (root / "validation_list.txt").write_text("\n".join(val) + "\n")
        (root / "testing_list.txt").write_text("\n".join(test) + "\n")
    if background:
        noise = np.random.default_rng(1).uniform(-0.5, 0.5, 12 * SR).astype(np.float32)
        write_wav(root / "_background_noise_" / "white_noise.wav", noise)
        write_wav(root / "_background_noise_" / "hum.wav", tone(50, 3.0, amp=0.2))
    return root


HAR_SIGNALS = [f"{k}_{a}" for k in ("body_acc", "body_gyro", "total_acc") for a in "xyz"]


def har_number(value: float) -> str:
    """The UCI HAR text format of one value: `` 2.8858451e-001`` (3-digit exponent)."""
    mantissa, exponent = f"{value:.7e}".split("e")
    return " " + f"{mantissa}e{int(exponent):+04d}".rjust(15)


def build_har_tree(
    root: Path,
    train: list[tuple[int, int]] | None = None,
    test: list[tuple[int, int]] | None = None,
    seed: int = 0,
) -> Path:
    """A UCI HAR tree. ``train``/``test``: (subject, activity label) per window.

    Channel c of a window holds ``c + 10 * label + 100 * subject`` plus small noise, so tests can
    see which file, label and subject each value came from.
    """
    if train is None:
        train = [(s, a) for s in (1, 3, 5, 6, 7) for a in range(1, 7)]
    if test is None:
        test = [(s, a) for s in (2, 4) for a in range(1, 7)]
    rng = np.random.default_rng(seed)
    for split, rows in (("train", train), ("test", test)):
        folder = root / split
        (folder / "Inertial Signals").mkdir(parents=True, exist_ok=True)
        (folder / f"y_{split}.txt").write_text("".join(f"{a}\n" for _, a in rows))
        (folder / f"subject_{split}.txt").write_text("".join(f"{s:d}\n" for s, _ in rows))
        for c, name in enumerate(HAR_SIGNALS):
            lines = []
            for s, a in rows:
                values = c + 10 * a + 100 * s + 0.01 * rng.standard_normal(128)
                lines.append("".join(har_number(v) for v in values) + "\n")
            (folder / "Inertial Signals" / f"{name}_{split}.txt").write_text("".join(lines))
    return root
