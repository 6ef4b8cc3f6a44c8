"""``edge-str data synth google12``: a demo-sized Speech Commands tree spoken by espeak-ng.

The speech comes from libespeak-ng of the ``espeakng-loader`` wheel, or the espeak-ng program
where the wheel is missing (``edge_str.data.espeak``).

A "speaker" is an espeak-ng voice + variant with its own base speed and pitch; each utterance
jitters speed and pitch, is trimmed, resampled from espeak's 22,050 Hz to 16 kHz (torchaudio),
placed at a random offset in a 1 s int16 clip at a random level, with a little white or pink
noise. ``validation_list.txt`` / ``testing_list.txt`` split by speaker, so validation and test
speakers are unseen in training. ``_background_noise_/`` gets a few generated recordings.
Everything random is drawn from generators seeded by (seed, what, index): the same seed gives
the same tree, whatever the thread scheduling.

``Difficulty`` makes harder variants (``--difficulty hard``): unknown words that sound like the
commands ("yet" for "yes", "town" for "down"), a speaker per clip word instead of one per two,
wider pitch and speed, and the tree's own background recordings mixed in at 0-15 dB SNR (the
easy default: white or pink noise at 15-40 dB). Each part can be set alone.
"""

from __future__ import annotations

import hashlib
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF
from tqdm import tqdm

from edge_str.data.audio import from_int16
from edge_str.data.espeak import Speech, open_speech
from edge_str.data.speech_commands import BACKGROUND_DIR, COMMAND_WORDS, LIST_FILES
from edge_str.data.staging import check_free, staged_folder
from edge_str.errors import EdgeStrError

SAMPLE_RATE = 16000
DEFAULT_PER_WORD = 100  # demo size: see datasets/README.md for the measurements
# Words of Speech Commands v0.02 that are not commands: the "_unknown_" pool.
OTHER_WORDS = (
    "bed", "bird", "cat", "dog", "eight", "five", "four", "happy", "house", "marvin",
    "nine", "one", "seven", "sheila", "six", "three", "tree", "two", "wow", "zero",
)  # fmt: skip
BASE_VOICES = (
    "en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
    "en-029", "en-us-nyc",
)  # fmt: skip
VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "Alex", "Andy",
    "Annie", "Denis", "Gene", "Jacky", "Lee", "Mario", "Michael", "Mike", "anika", "aunty",
    "belinda", "boris", "david", "ed", "edward", "grandma", "grandpa", "iven", "john", "klatt",
    "klatt2", "linda", "max", "michel", "norbert", "paul", "pedro", "quincy", "rob", "robert",
    "shelby", "steph", "travis", "victor", "zac", "whisper",
)  # fmt: skip
# Unknown words that sound like a command (two per command; no homophones such as "know", which
# espeak-ng says exactly as "no" and no model could tell apart).
CONFUSABLE_WORDS = (
    "yet", "yeah", "now", "nose", "cup", "pup", "town", "dawn", "lift", "loft",
    "bright", "ride", "in", "own", "cough", "oft", "shop", "step", "goat", "toe",
)  # fmt: skip
NOISE_SOURCES = ("coloured", "recordings")
NOISE_SECONDS = 12.0  # >= 10 s: the loader can cut each into disjoint train/val/test regions
MAX_SPEAKERS = len(BASE_VOICES) * len(VARIANTS)


@dataclass(frozen=True)
class Difficulty:
    """How hard the tree is; ``DIFFICULTIES`` holds the presets, any field can be replaced."""

    confusable: bool = False  # add CONFUSABLE_WORDS to the unknown words
    speakers_per_clip: float = 0.5  # speakers = ceil(per_word * this), at least 3
    speakers: int | None = None  # a number of speakers instead of speakers_per_clip
    snr_db: tuple[float, float] = (15.0, 40.0)  # speech-to-noise ratio, uniform in this range
    noise: str = "coloured"  # coloured: white/pink per clip; recordings: the background ones
    speed: tuple[int, int] = (125, 196)  # words per minute of a speaker, [low, high)
    pitch: tuple[int, int] = (25, 76)  # espeak-ng pitch of a speaker, [low, high)

    def check(self) -> None:
        low, high = self.snr_db
        if not (math.isfinite(low) and math.isfinite(high) and low <= high):
            raise EdgeStrError(f"--snr-db needs LOW <= HIGH (finite dB), got {low:g} {high:g}")
        if self.speakers is not None and not 3 <= self.speakers <= MAX_SPEAKERS:
            raise EdgeStrError(f"--speakers must be in 3..{MAX_SPEAKERS}, got {self.speakers}")
        if self.noise not in NOISE_SOURCES:
            raise EdgeStrError(f"noise must be one of {', '.join(NOISE_SOURCES)}")

    def speaker_count(self, per_word: int) -> int:
        if self.speakers is not None:
            return self.speakers
        return min(MAX_SPEAKERS, max(3, math.ceil(per_word * self.speakers_per_clip)))

    def describe(self) -> str:
        """The options as `data synth` flags (for the tree's README)."""
        low, high = self.snr_db
        return (
            f"{'--confusable' if self.confusable else '--no-confusable'} --snr-db {low:g} "
            f"{high:g} (noise: {self.noise}), speed {self.speed[0]}-{self.speed[1] - 1} wpm, "
            f"pitch {self.pitch[0]}-{self.pitch[1] - 1}"
        )


DIFFICULTIES: dict[str, Difficulty] = {
    "easy": Difficulty(),
    "hard": Difficulty(
        confusable=True,
        speakers_per_clip=1.0,
        snr_db=(0.0, 15.0),
        noise="recordings",
        speed=(100, 241),
        pitch=(5, 96),
    ),
}


@dataclass(frozen=True)
class Speaker:
    id: str  # 8 hex digits, as in Speech Commands file names
    voice: str  # espeak-ng voice+variant
    speed: int  # words per minute
    pitch: int  # 0..99


@dataclass(frozen=True)
class Utterance:
    word: str
    speaker: Speaker
    repeat: int
    seed: tuple[int, ...]

    @property
    def path(self) -> str:
        return f"{self.word}/{self.speaker.id}_nohash_{self.repeat}.wav"


def make_speakers(count: int, seed: int, difficulty: Difficulty = Difficulty()) -> list[Speaker]:
    rng = np.random.default_rng([seed, 0])
    combos = [(b, v) for b in BASE_VOICES for v in VARIANTS]
    chosen = rng.permutation(len(combos))[:count]
    speakers = []
    for number, pick in enumerate(chosen):
        base, variant = combos[pick]
        digest = hashlib.sha1(f"{seed}/{number}/{base}+{variant}".encode()).hexdigest()[:8]
        speed, pitch = int(rng.integers(*difficulty.speed)), int(rng.integers(*difficulty.pitch))
        speakers.append(Speaker(digest, f"{base}+{variant}", speed, pitch))
    return speakers


def unknown_words(difficulty: Difficulty) -> tuple[str, ...]:
    return OTHER_WORDS + (CONFUSABLE_WORDS if difficulty.confusable else ())


def plan(
    per_word: int, seed: int, difficulty: Difficulty = Difficulty()
) -> tuple[list[Speaker], list[Utterance]]:
    """Who says what: by default each speaker says each command word about twice, some unknown
    words once."""
    n_speakers = difficulty.speaker_count(per_word)
    speakers = make_speakers(n_speakers, seed, difficulty)
    utterances = []
    for w, word in enumerate(COMMAND_WORDS):
        for i in range(per_word):
            k = (i + w) % n_speakers  # every speaker says some command words, even when few
            utterances.append(Utterance(word, speakers[k], i // n_speakers, (seed, 1, w, i)))
    per_other = max(1, math.ceil(per_word / 4))
    for w, word in enumerate(unknown_words(difficulty)):
        for i in range(per_other):
            k = (i + 7 * w) % n_speakers  # spread the unknown words over all speakers
            utterances.append(Utterance(word, speakers[k], i // n_speakers, (seed, 2, w, i)))
    return speakers, utterances


def split_speakers(speakers: list[Speaker], seed: int) -> dict[str, set[str]]:
    """10% of the speakers for validation, 10% for test (at least one each)."""
    rng = np.random.default_rng([seed, 3])
    order = [speakers[i].id for i in rng.permutation(len(speakers))]
    n = max(1, round(0.1 * len(speakers)))
    return {"val": set(order[:n]), "test": set(order[n : 2 * n])}


def render(
    utterance: Utterance,
    speech: Speech,
    difficulty: Difficulty = Difficulty(),
    recordings: dict[str, np.ndarray] | None = None,
) -> np.ndarray:
    """One utterance as a 1 s float32 clip at 16 kHz; ``recordings``: for noise="recordings"."""
    rng = np.random.default_rng(list(utterance.seed))
    speaker = utterance.speaker
    speed = int(np.clip(speaker.speed + rng.integers(-15, 16), 80, 260))
    pitch = int(np.clip(speaker.pitch + rng.integers(-8, 9), 0, 99))
    pcm, rate = speech.speak(utterance.word, speaker.voice, speed, pitch)
    raw = from_int16(pcm).numpy()
    voiced = np.flatnonzero(np.abs(raw) > 0.02 * max(np.abs(raw).max(), 1e-6))
    if voiced.size == 0:
        raise EdgeStrError(f"espeak-ng produced silence for {utterance.word!r} ({speaker.voice})")
    margin = int(0.02 * rate)
    speech = raw[max(0, voiced[0] - margin) : voiced[-1] + margin]
    speech = AF.resample(torch.from_numpy(np.ascontiguousarray(speech)), rate, SAMPLE_RATE).numpy()
    speech = speech[:SAMPLE_RATE]
    speech *= rng.uniform(0.1, 0.8) / max(np.abs(speech).max(), 1e-6)  # random level
    clip = np.zeros(SAMPLE_RATE, np.float32)
    start = int(rng.integers(0, SAMPLE_RATE - len(speech) + 1))
    clip[start : start + len(speech)] = speech
    snr_db = rng.uniform(*difficulty.snr_db)  # easy: a little noise, not trivially clean
    if difficulty.noise == "recordings" and recordings:
        noise = noise_excerpt(recordings, rng)
    else:
        noise = coloured_noise(SAMPLE_RATE, rng, "pink" if rng.random() < 0.5 else "white")
    rms = math.sqrt(float(np.mean(speech**2)) + 1e-12)
    clip += noise * (rms / 10 ** (snr_db / 20)) / max(float(np.std(noise)), 1e-9)
    return np.clip(clip, -1.0, 1.0)


def coloured_noise(n: int, rng: np.random.Generator, colour: str) -> np.ndarray:
    """White, pink (1/f power) or brown (1/f^2 power) noise, shaped in the frequency domain."""
    white = rng.standard_normal(n)
    if colour == "white":
        return white.astype(np.float32)
    spectrum = np.fft.rfft(white)
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    freqs[0] = freqs[1]
    exponent = {"pink": 0.5, "brown": 1.0}[colour]
    shaped = np.fft.irfft(spectrum / freqs**exponent, n)
    return (shaped / np.std(shaped)).astype(np.float32)


def noise_excerpt(recordings: dict[str, np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """A random 1 s excerpt of a random background recording (the hard trees' noise)."""
    names = sorted(recordings)
    sound = recordings[names[int(rng.integers(len(names)))]]
    start = int(rng.integers(0, len(sound) - SAMPLE_RATE + 1))
    return sound[start : start + SAMPLE_RATE]


def background_recordings(seed: int) -> dict[str, np.ndarray]:
    """A few noise recordings like those of the real ``_background_noise_`` folder."""
    n = int(NOISE_SECONDS * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    rng = np.random.default_rng([seed, 4])
    sounds = {
        "white_noise": coloured_noise(n, rng, "white"),
        "pink_noise": coloured_noise(n, rng, "pink"),
        "brown_noise": coloured_noise(n, rng, "brown"),
    }
    hum = sum(np.sin(2 * np.pi * 50 * k * t + rng.uniform(0, 6.3)) / k for k in range(1, 6))
    sounds["electric_hum"] = hum + 0.3 * coloured_noise(n, rng, "pink")
    band = np.fft.rfft(coloured_noise(n, rng, "white"))
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    band[(freqs < 800) | (freqs > 4000)] = 0  # a running tap: band-limited, slowly fluctuating
    tap = np.fft.irfft(band, n) * (1 + 0.5 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6.3)))
    sounds["running_tap"] = tap
    levels = {"white_noise": 0.25, "pink_noise": 0.3, "brown_noise": 0.4}
    return {
        name: (x / np.abs(x).max() * levels.get(name, 0.5)).astype(np.float32)
        for name, x in sounds.items()
    }


def synth_google12(
    out: str | Path,
    seed: int = 0,
    per_word: int = DEFAULT_PER_WORD,
    workers: int | None = None,
    difficulty: Difficulty = Difficulty(),
) -> dict[str, int | str]:
    """Write the tree to ``out`` (which must not exist or be empty); returns a short summary."""
    if per_word < 1:
        raise EdgeStrError(f"--per-word must be at least 1, got {per_word}")
    difficulty.check()
    speech = open_speech()
    target = Path(out).expanduser()
    check_free(target)
    speakers, utterances = plan(per_word, seed, difficulty)
    held_out = split_speakers(speakers, seed)
    noises = background_recordings(seed)
    with staged_folder(target) as staging:
        for word in {u.word for u in utterances}:
            (staging / word).mkdir()

        def make(utterance: Utterance) -> None:
            clip = render(utterance, speech, difficulty, noises)
            sf.write(str(staging / utterance.path), clip, SAMPLE_RATE, subtype="PCM_16")

        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # parallelism comes from the thread pool
        try:
            with ThreadPoolExecutor(workers or min(8, (os.cpu_count() or 1) * 2)) as pool:
                jobs = pool.map(make, utterances)
                bar = tqdm(
                    jobs, total=len(utterances), desc="synth google12", unit="clip", disable=None
                )
                for _ in bar:
                    pass
        finally:
            torch.set_num_threads(threads)
        for split, name in LIST_FILES.items():
            listed = sorted(u.path for u in utterances if u.speaker.id in held_out[split])
            (staging / name).write_text("".join(f"{p}\n" for p in listed))
        (staging / BACKGROUND_DIR).mkdir()
        for name, sound in noises.items():
            path = staging / BACKGROUND_DIR / f"{name}.wav"
            sf.write(str(path), sound, SAMPLE_RATE, subtype="PCM_16")
        (staging / "README.txt").write_text(
            f"Synthetic Speech Commands-layout data made by `edge-str data synth google12 "
            f"--seed {seed} --per-word {per_word}` with espeak-ng ({len(speakers)} voices, "
            f"spoken by {speech.name}; {difficulty.describe()}).\n"
            "Demo data only: not the real Speech Commands data set.\n"
        )
    return {
        "out": str(target),
        "clips": len(utterances),
        "speakers": len(speakers),
        "val_speakers": len(held_out["val"]),
        "test_speakers": len(held_out["test"]),
        "background_recordings": len(noises),
        "speech": speech.name,
        "unknown_words": len(unknown_words(difficulty)),
    }
