"""The Speech Commands layout: find the clips, assign splits, choose the examples (no decoding).

Splits come from ``validation_list.txt`` / ``testing_list.txt`` when the tree has them; otherwise
from TensorFlow's speaker-hash rule, so one speaker never lands in two splits. The examples of a
split are all its clips of the ten command words, plus ``_unknown_`` clips drawn (with a fixed
seed) from the other words and a number of ``_silence_`` slots, each ``ceil(pct% * n_words)`` as
in TensorFlow's ``prepare_data_index``.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_str.data.config import DataConfig
from edge_str.errors import EdgeStrError

SILENCE = "_silence_"
UNKNOWN = "_unknown_"
BACKGROUND_DIR = "_background_noise_"
COMMAND_WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
GOOGLE12_CLASSES = [SILENCE, UNKNOWN, *COMMAND_WORDS]  # fixed order: index = label
SPLITS = ("train", "val", "test")
LIST_FILES = {"val": "validation_list.txt", "test": "testing_list.txt"}

MAX_NUM_WAVS_PER_CLASS = 2**27 - 1  # TF's constant in which_set (~134M)
_NOHASH = re.compile(r"_nohash_.*$")
_LIST_ENTRY = re.compile(r"^[^/\\]+/[^/\\]+\.wav$", re.IGNORECASE)


@dataclass
class Layout:
    root: Path
    words: dict[str, list[str]]  # word folder -> clip paths relative to root (posix, sorted)
    background: list[str]  # background-noise recordings, relative to root
    has_lists: bool

    def all_files(self) -> list[Path]:
        """Every file whose change must invalidate the cache."""
        rel = [p for clips in self.words.values() for p in clips] + self.background
        if self.has_lists:
            rel += list(LIST_FILES.values())
        return [self.root / p for p in rel]

    @property
    def num_clips(self) -> int:
        return sum(len(clips) for clips in self.words.values())


@dataclass
class SplitIndex:
    clips: list[tuple[str, int]] = field(default_factory=list)  # (relative path, label)
    num_silence: int = 0
    unknown_available: int = 0
    missing_listed: int = 0  # clips its list file names that the tree lacks (skipped)


def scan_layout(data_dir: str | Path) -> Layout:
    """Find the word folders and background noise; error if it is not a Speech Commands tree."""
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise EdgeStrError(f"{root}: data folder not found (expected a Speech Commands tree)")
    words: dict[str, list[str]] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if folder.name.startswith((".", "_")):
            continue  # _background_noise_, hidden folders
        clips = sorted(f"{folder.name}/{p.name}" for p in folder.glob("*.wav") if p.is_file())
        if clips:
            words[folder.name] = clips
    missing = [w for w in COMMAND_WORDS if w not in words]
    if missing:
        raise EdgeStrError(
            f"{root / missing[0]}: missing folder of .wav clips for the command word "
            f"'{missing[0]}' (a Speech Commands tree has one folder per word; "
            f"missing: {', '.join(missing)}; get the data with `edge-str data fetch google12` "
            "or `edge-str data synth google12`)"
        )
    bg_dir = root / BACKGROUND_DIR
    background = (
        sorted(f"{BACKGROUND_DIR}/{p.name}" for p in bg_dir.glob("*.wav") if p.is_file())
        if bg_dir.is_dir()
        else []
    )
    present = [name for name in LIST_FILES.values() if (root / name).is_file()]
    if len(present) == 1:
        absent = next(n for n in LIST_FILES.values() if n not in present)
        raise EdgeStrError(
            f"{root / absent}: not found, but {present[0]} is there; the split needs both list "
            "files (or neither, for the speaker-hash rule)"
        )
    return Layout(root, words, background, has_lists=len(present) == 2)


def which_set(filename: str, validation_percentage: float, testing_percentage: float) -> str:
    """TensorFlow's rule: a stable hash of the speaker part of the name picks the split."""
    speaker = _NOHASH.sub("", Path(filename).name)
    digest = int(hashlib.sha1(speaker.encode()).hexdigest(), 16)
    percentage = (digest % (MAX_NUM_WAVS_PER_CLASS + 1)) * (100.0 / MAX_NUM_WAVS_PER_CLASS)
    if percentage < validation_percentage:
        return "val"
    if percentage < validation_percentage + testing_percentage:
        return "test"
    return "train"


def speaker_of(filename: str) -> str:
    return _NOHASH.sub("", Path(filename).name)


def read_list_file(path: Path) -> list[tuple[str, int]]:
    """Entries ``word/file.wav`` of a split list, with their line numbers."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise EdgeStrError(f"{path}: cannot read the list file ({error})") from None
    entries = []
    for number, line in enumerate(lines, start=1):
        entry = line.strip().replace("\\", "/")
        if not entry:
            continue
        if not _LIST_ENTRY.match(entry):
            raise EdgeStrError(
                f"{path}:{number}: expected an entry like 'yes/0a7c2a8d_nohash_0.wav', "
                f"got {line.strip()!r}"
            )
        entries.append((entry, number))
    return entries


def assign_splits(layout: Layout, config: DataConfig) -> tuple[dict[str, str], dict[str, int]]:
    """Split of every clip (relative path -> 'train' | 'val' | 'test'), and per split the
    listed clips missing from the tree (an error unless ``skip_missing_listed``)."""
    clips = [p for paths in layout.words.values() for p in paths]
    missing = dict.fromkeys(SPLITS, 0)
    if not layout.has_lists:
        rule = {
            p: which_set(p, config.validation_percentage, config.testing_percentage) for p in clips
        }
        return rule, missing
    listed: dict[str, tuple[str, str, int]] = {}  # path -> (split, list file, line)
    for split, name in LIST_FILES.items():
        for entry, number in read_list_file(layout.root / name):
            if entry in listed and listed[entry][0] != split:
                other = listed[entry]
                raise EdgeStrError(
                    f"{layout.root / name}:{number}: {entry} is also in {other[1]} "
                    f"(line {other[2]}); a clip can be in one split only"
                )
            listed[entry] = (split, name, number)
    present = set(clips)
    absent = [(entry, *where) for entry, where in listed.items() if entry not in present]
    if absent and not config.skip_missing_listed:
        entry, _, name, number = absent[0]
        raise EdgeStrError(
            f"{layout.root / name}:{number}: lists {entry}, which is not in the tree "
            f"({len(absent)} listed clip(s) missing in all); restore the files, or set "
            "skip_missing_listed=true to leave them out (counted in the data summary)"
        )
    for _, split, _, _ in absent:
        missing[split] += 1
    return {p: listed[p][0] if p in listed else "train" for p in clips}, missing


def build_index(layout: Layout, config: DataConfig) -> dict[str, SplitIndex]:
    """The examples of each split: command clips, sampled unknown clips, silence count."""
    splits, missing = assign_splits(layout, config)
    label = {word: GOOGLE12_CLASSES.index(word) for word in COMMAND_WORDS}
    index = {s: SplitIndex(missing_listed=missing[s]) for s in SPLITS}
    unknown: dict[str, list[str]] = {s: [] for s in SPLITS}
    for word, clips in layout.words.items():
        for path in clips:
            if word in label:
                index[splits[path]].clips.append((path, label[word]))
            else:
                unknown[splits[path]].append(path)
    for number, split in enumerate(SPLITS):
        entry = index[split]
        n_words = len(entry.clips)
        entry.num_silence = math.ceil(n_words * config.silence_percentage / 100)
        n_unknown = math.ceil(n_words * config.unknown_percentage / 100)
        pool = sorted(unknown[split])
        rng = np.random.default_rng([config.seed, 1, number])  # fixed: same clips every run
        chosen = [pool[i] for i in rng.permutation(len(pool))[:n_unknown]]
        entry.clips.extend((p, GOOGLE12_CLASSES.index(UNKNOWN)) for p in sorted(chosen))
        entry.unknown_available = len(pool)
    return index
