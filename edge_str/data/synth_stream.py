"""``edge-str data synth google12 --stream``: a long test recording with a ground truth.

In the manner of TensorFlow's speech_commands ``generate_streaming_test_wav``: 1 s clips are
placed at known times over a background of noise at volume 0.1, one clip slot every
``WORD_GAP_S`` + 1 s (jittered); a slot holds a command word (80%), an unknown word (10%) or
nothing (10%, TF's silence share). The clips are spoken by espeak-ng exactly as the synthetic
Google-12 tree's are (``synth_google12.render``) but by speakers of their own. The ground truth
CSV has one row per word, ``time_s,label``: the start of its 1 s clip (TF's convention; the
word lies inside that second).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from edge_str.atomic import write_atomic
from edge_str.data.espeak import open_speech
from edge_str.data.speech_commands import COMMAND_WORDS
from edge_str.data.synth_google12 import (
    OTHER_WORDS,
    SAMPLE_RATE,
    Utterance,
    background_recordings,
    make_speakers,
    render,
)
from edge_str.errors import EdgeStrError
from edge_str.inference.stream_eval import UNKNOWN, TruthWord, write_truth

WORD_GAP_S = 2.0  # TF's word_gap_ms default: silence between clip slots
JITTER_S = 0.25  # each slot starts up to this much later than its grid time
BACKGROUND_VOLUME = 0.1  # TF's background_volume default
KEYWORD_SHARE, UNKNOWN_SHARE = 0.8, 0.1  # the rest of the slots stay empty (silence)
STREAM_SPEAKERS = 12
MAX_MINUTES = 600.0


def synth_stream(out: str | Path, minutes: float, seed: int = 0) -> dict:
    """Write ``out`` (a .wav) and its ground truth beside it (.csv); returns a summary."""
    out = Path(out).expanduser()
    if out.suffix.lower() != ".wav":
        raise EdgeStrError(f"--out {out}: with --stream, --out is the WAV file to write (.wav)")
    if not 0 < minutes <= MAX_MINUTES:
        raise EdgeStrError(
            f"--minutes {minutes:g}: must be more than 0 and at most {MAX_MINUTES:g}"
        )
    if not out.parent.is_dir():
        raise EdgeStrError(f"--out {out}: folder {out.parent} does not exist")
    truth_path = out.with_suffix(".csv")
    speech = open_speech()
    total = int(round(minutes * 60 * SAMPLE_RATE))
    rng = np.random.default_rng([seed, 7])
    signal = _background(total, seed, rng)
    speakers = make_speakers(STREAM_SPEAKERS, seed + 1_000_003)  # not the tree's speakers
    slot = WORD_GAP_S + 1.0
    words: list[TruthWord] = []
    for number in range(int((total / SAMPLE_RATE - 1.0 - JITTER_S) // slot)):
        draw = rng.random()
        if draw >= KEYWORD_SHARE + UNKNOWN_SHARE:
            continue  # a silent slot: background only
        pool = COMMAND_WORDS if draw < KEYWORD_SHARE else OTHER_WORDS
        word = pool[int(rng.integers(len(pool)))]
        speaker = speakers[int(rng.integers(len(speakers)))]
        clip = render(Utterance(word, speaker, number, (seed, 8, number)), speech)
        start_s = number * slot + WORD_GAP_S / 2 + rng.uniform(0.0, JITTER_S)
        start = int(round(start_s * SAMPLE_RATE))
        signal[start : start + SAMPLE_RATE] += clip
        words.append(TruthWord(start / SAMPLE_RATE, word if pool is COMMAND_WORDS else UNKNOWN))
    signal = np.clip(signal, -1.0, 1.0)
    write_atomic(out, lambda tmp: sf.write(str(tmp), signal, SAMPLE_RATE, "PCM_16", format="WAV"))
    write_truth(truth_path, words)
    return {
        "wav": str(out),
        "truth": str(truth_path),
        "seconds": total / SAMPLE_RATE,
        "words": len(words),
        "keywords": sum(w.label != UNKNOWN for w in words),
    }


def _background(total: int, seed: int, rng: np.random.Generator) -> np.ndarray:
    """The demo tree's noise recordings, one after another (random order and level), looped."""
    recordings = list(background_recordings(seed + 1).values())
    pieces, length = [], 0
    while length < total:
        noise = recordings[int(rng.integers(len(recordings)))]
        pieces.append(noise * rng.uniform(0.3, 1.0))
        length += len(noise)
    return (BACKGROUND_VOLUME * np.concatenate(pieces)[:total]).astype(np.float32)
