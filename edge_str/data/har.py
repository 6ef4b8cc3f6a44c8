"""UCI HAR loader: the raw inertial signals as [N, 128, 9] windows (50 Hz, 2.56 s).

Channels, in this order: body_acc_{x,y,z}, body_gyro_{x,y,z}, total_acc_{x,y,z}. HAR-2 (the
FastGRNN paper's binary task) maps the labels 1..6 to two classes:

    0  WALKING|WALKING_DOWNSTAIRS|STANDING   (labels 1, 3, 5)
    1  WALKING_UPSTAIRS|SITTING|LAYING       (labels 2, 4, 6)

The validation split is taken from ``train/`` by subject, never by window (windows of one
subject overlap by 50%, so a window split would leak): of the sorted training subjects,
``k = round(val_subject_fraction * n)`` evenly spaced ones (positions ``round((i + 0.5) * n / k)``)
are held out — a fixed rule that needs no seed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from edge_str.data.cache import ArrayCache, cache_key, describe, file_stats
from edge_str.data.config import DataConfig
from edge_str.data.task import TaskData
from edge_str.errors import EdgeStrError

ACTIVITIES = [
    "WALKING",
    "WALKING_UPSTAIRS",
    "WALKING_DOWNSTAIRS",
    "SITTING",
    "STANDING",
    "LAYING",
]  # labels 1..6 of the data set, in order
HAR2_CLASSES = ["WALKING|WALKING_DOWNSTAIRS|STANDING", "WALKING_UPSTAIRS|SITTING|LAYING"]
SIGNALS = [f"{kind}_{axis}" for kind in ("body_acc", "body_gyro", "total_acc") for axis in "xyz"]
WINDOW = 128
HAR_FOLDER = "UCI HAR Dataset"
HAR_FORMAT_VERSION = 1  # bump when the cached arrays change; it is part of the cache key
FILE_SPLITS = ("train", "test")  # of the data set; validation is carved out of train


def find_har_root(data_dir: str | Path) -> Path:
    """The folder holding ``train/`` and ``test/`` (``data_dir`` or its ``UCI HAR Dataset``)."""
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise EdgeStrError(f"{root}: data folder not found (expected the UCI HAR Dataset layout)")
    if not (root / "train").is_dir() and (root / HAR_FOLDER / "train").is_dir():
        root = root / HAR_FOLDER
    for split in FILE_SPLITS:
        if not (root / split).is_dir():
            raise EdgeStrError(
                f"{root / split}: missing folder (the UCI HAR Dataset layout has train/ and "
                "test/, each with y_<split>.txt, subject_<split>.txt and 'Inertial Signals/'; "
                "get it with `edge-str data fetch har2` or `edge-str data synth har2`)"
            )
    return root


def split_files(root: Path, split: str) -> list[Path]:
    """The 11 files of one split: labels, subjects, then the 9 signals in channel order."""
    folder = root / split
    signals = [folder / "Inertial Signals" / f"{name}_{split}.txt" for name in SIGNALS]
    return [folder / f"y_{split}.txt", folder / f"subject_{split}.txt", *signals]


def read_table(path: Path, width: int) -> np.ndarray:
    """A whitespace-separated text table with ``width`` numbers per row -> float64 [rows, width].

    Accepts the data set's own number format (`` 2.8858451e-001``, several spaces between
    values); a row with another number of values or a non-number names the file and line.
    """
    if not path.is_file():
        raise EdgeStrError(f"{path}: file not found (part of the UCI HAR Dataset layout)")
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as error:
        raise EdgeStrError(f"{path}: cannot read this text file ({error})") from None
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()  # a trailing newline or blank lines at the end are fine
    if not lines:
        raise EdgeStrError(f"{path}: file is empty")
    for number, line in enumerate(lines, start=1):
        count = len(line.split())
        if count != width:
            raise EdgeStrError(f"{path}:{number}: expected {width} values, found {count}")
    try:
        values = np.array(" ".join(lines).split(), dtype=np.float64)
    except ValueError:
        for number, line in enumerate(lines, start=1):
            for token in line.split():
                try:
                    float(token)
                except ValueError:
                    raise EdgeStrError(f"{path}:{number}: {token!r} is not a number") from None
        raise  # unreachable: some token failed above
    if not np.isfinite(values).all():
        row = int(np.flatnonzero(~np.isfinite(values))[0]) // width + 1
        raise EdgeStrError(f"{path}:{row}: value is NaN or infinite")
    return values.reshape(len(lines), width)


def read_split(root: Path, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x float32 [N, 128, 9], activity labels int64 [N] in 1..6, subjects int64 [N])."""
    files = split_files(root, split)
    for path in files:  # report a missing file before spending time parsing the others
        if not path.is_file():
            raise EdgeStrError(f"{path}: file not found (part of the UCI HAR Dataset layout)")
    tables = [
        read_table(path, 1 if i < 2 else WINDOW)
        for i, path in enumerate(
            tqdm(files, desc=f"har: reading {split}", unit="file", disable=None)
        )
    ]
    rows = {path.name: len(table) for path, table in zip(files, tables)}
    if len(set(rows.values())) > 1:
        listing = ", ".join(f"{name}: {n}" for name, n in rows.items())
        raise EdgeStrError(f"{root / split}: the files' row counts disagree ({listing})")
    labels = _integers(tables[0][:, 0], files[0], 1, 6, "activity label from 1 to 6")
    subjects = _integers(tables[1][:, 0], files[1], 1, None, "subject number >= 1")
    x = np.stack(tables[2:], axis=-1).astype(np.float32)  # [N, 128, 9]
    return x, labels, subjects


def har2_labels(activity: np.ndarray) -> np.ndarray:
    """Labels 1..6 -> HAR-2 classes: 1 for {2, 4, 6}, 0 for {1, 3, 5}."""
    return (np.asarray(activity) % 2 == 0).astype(np.int64)


def validation_subjects(subjects: np.ndarray, fraction: float) -> list[int]:
    """Evenly spaced subjects of the sorted training subjects (see the module docstring)."""
    unique = sorted(int(s) for s in np.unique(subjects))
    n = len(unique)
    k = max(1, round(fraction * n))
    if n < 2 or k >= n:
        raise EdgeStrError(
            f"cannot hold out {k} of {n} training subject(s) for validation: need at least one "
            "subject left for training (the validation split is by subject)"
        )
    return [unique[min(n - 1, round((i + 0.5) * n / k))] for i in range(k)]


def load_har(data_dir: str | Path, config: DataConfig) -> TaskData:
    root = find_har_root(data_dir)
    files = split_files(root, "train") + split_files(root, "test")
    for path in files:
        if not path.is_file():
            raise EdgeStrError(f"{path}: file not found (part of the UCI HAR Dataset layout)")
    key = cache_key(
        {
            "task": "har",
            "root": str(root.resolve()),
            "files": file_stats(root, files),
            "version": HAR_FORMAT_VERSION,
        }
    )
    cache = ArrayCache(config.resolved_cache_dir(), "har", root)
    loaded = cache.load(
        key, required=[f"{s}_{a}" for s in FILE_SPLITS for a in ("x", "y", "subject")]
    )
    if loaded is None:
        arrays = {}
        for split in FILE_SPLITS:
            x, labels, subjects = read_split(root, split)
            arrays.update({f"{split}_x": x, f"{split}_y": labels, f"{split}_subject": subjects})
        cache.save(key, arrays, {})
    else:
        arrays = loaded[0]
    held_out = validation_subjects(arrays["train_subject"], config.val_subject_fraction)
    in_val = np.isin(arrays["train_subject"], held_out)
    source = {
        "train": (arrays["train_x"][~in_val], arrays["train_y"][~in_val]),
        "val": (arrays["train_x"][in_val], arrays["train_y"][in_val]),
        "test": (arrays["test_x"], arrays["test_y"]),
    }
    if config.har_classes == 2:
        classes, mapping = HAR2_CLASSES, har2_labels
    else:
        classes, mapping = ACTIVITIES, lambda activity: np.asarray(activity, np.int64) - 1
    splits = {
        s: (torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(mapping(y)))
        for s, (x, y) in source.items()
    }
    rows = {  # where each example is: the line of the split's files, and the subject
        s: [
            f"{s}:{i + 1} (subject {int(subject)})"
            for i, subject in enumerate(arrays[f"{s}_subject"])
        ]
        for s in FILE_SPLITS
    }
    sources = {
        "train": [r for r, v in zip(rows["train"], in_val) if not v],
        "val": [r for r, v in zip(rows["train"], in_val) if v],
        "test": rows["test"],
    }
    info = {
        "data_dir": str(root),
        "channels": SIGNALS,
        "validation_subjects": held_out,
        "test_subjects": sorted(int(s) for s in np.unique(arrays["test_subject"])),
        "cache": {"folder": describe(cache.entry(key)), "reused": loaded is not None},
    }
    return TaskData(f"har{config.har_classes}", classes, splits, info=info, sources=sources)


def _integers(values: np.ndarray, path: Path, low: int, high: int | None, what: str) -> np.ndarray:
    bad = (values != np.round(values)) | (values < low)
    if high is not None:
        bad |= values > high
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise EdgeStrError(f"{path}:{row + 1}: {values[row]:g} is not an {what}")
    return values.astype(np.int64)
