"""Every data setting in one dataclass: saved with a run as JSON, rebuilt from a dict.

Defaults follow TensorFlow's speech_commands reference (silence/unknown 10% each, background
noise with probability 0.8 at volume up to 0.1, time shift up to 100 ms, hash split 10%/10%) and
the FastGRNN paper's features (32 log-mel energies, 25 ms window, 10 ms hop, 99 frames).
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from edge_str.errors import EdgeStrError

SAMPLE_RATE_MODES = ("resample", "error")

# Settings that only change training augmentation: applied per batch, never part of the cache.
AUGMENTATION_FIELDS = ("background_frequency", "background_volume", "time_shift_ms")


@dataclass
class DataConfig:
    # --- google12: which examples (TF speech_commands reference) ---
    silence_percentage: float = 10.0  # silence clips per split, % of the command-word clips
    unknown_percentage: float = 10.0  # unknown clips per split, % of the command-word clips
    validation_percentage: float = 10.0  # speaker-hash rule only (no list files)
    testing_percentage: float = 10.0  # speaker-hash rule only (no list files)
    # --- google12: training augmentation ---
    background_frequency: float = 0.8  # probability of mixing background noise into a clip
    background_volume: float = 0.1  # noise volume drawn uniformly from [0, background_volume]
    time_shift_ms: float = 100.0  # shift drawn uniformly from [-time_shift_ms, time_shift_ms]
    # --- google12: decoding ---
    sample_rate: int = 16000
    on_other_sample_rate: str = "resample"  # "resample" | "error"
    skip_bad_wavs: bool = False  # skip (and count) unreadable WAVs instead of failing
    # --- google12: features ---
    n_mels: int = 32
    window_ms: float = 25.0
    hop_ms: float = 10.0
    frames: int = 99
    # --- har ---
    har_classes: int = 2  # 2: HAR-2 of the FastGRNN paper; 6: the six activities
    val_subject_fraction: float = 0.2  # share of training subjects held out for validation
    # --- both ---
    seed: int = 59185  # data selection (unknown clips, silence slices); not the training seed
    cache_dir: str | None = None  # None: $EDGE_STR_CACHE, else ~/.cache/edge_str

    def __post_init__(self) -> None:
        if isinstance(self.cache_dir, os.PathLike):
            self.cache_dir = os.fspath(self.cache_dir)  # keep asdict() JSON-serialisable
        self._check()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> DataConfig:
        """Build from a plain dict (JSON/YAML); unknown keys are an error, not silently ignored."""
        values = dict(values or {})
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise EdgeStrError(
                f"unknown data setting(s) {', '.join(unknown)}; known: {', '.join(known)}"
            )
        return cls(**{name: _coerce(name, known[name].type, v) for name, v in values.items()})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def with_overrides(self, assignments: list[str]) -> DataConfig:
        """Apply ``key=value`` strings (command line ``--set``) on top of this config."""
        values = self.to_dict()
        for item in assignments:
            key, sep, raw = item.partition("=")
            if not sep:
                raise EdgeStrError(f"data setting {item!r} is not of the form key=value")
            values[key.strip()] = _parse_text(raw.strip())
        return DataConfig.from_dict(values)

    # ------------------------------------------------------------------ derived values
    @property
    def clip_samples(self) -> int:
        """Samples in one 1 s clip."""
        return int(self.sample_rate)

    @property
    def window_samples(self) -> int:
        return int(round(self.window_ms * self.sample_rate / 1000))

    @property
    def hop_samples(self) -> int:
        return int(round(self.hop_ms * self.sample_rate / 1000))

    @property
    def framed_samples(self) -> int:
        """Samples that give exactly ``frames`` frames (the clip zero-padded at the end)."""
        return (self.frames - 1) * self.hop_samples + self.window_samples

    @property
    def time_shift_samples(self) -> int:
        return int(round(self.time_shift_ms * self.sample_rate / 1000))

    def resolved_cache_dir(self) -> Path:
        if self.cache_dir:
            return Path(self.cache_dir).expanduser()
        env = os.environ.get("EDGE_STR_CACHE")
        if env:
            return Path(env).expanduser()
        return Path.home() / ".cache" / "edge_str"

    def google12_cache_settings(self) -> dict[str, Any]:
        """The settings that change decoded clips or clean features (the cache key)."""
        skip = {*AUGMENTATION_FIELDS, "har_classes", "val_subject_fraction", "cache_dir"}
        return {k: v for k, v in self.to_dict().items() if k not in skip}

    # ------------------------------------------------------------------ checks
    def _check(self) -> None:
        def bad(name: str, why: str) -> EdgeStrError:
            return EdgeStrError(f"data setting {name}={getattr(self, name)!r}: {why}")

        for name in (
            "silence_percentage",
            "unknown_percentage",
            "validation_percentage",
            "testing_percentage",
        ):
            value = getattr(self, name)
            if not _is_number(value) or not 0 <= value <= 100:
                raise bad(name, "must be a number from 0 to 100")
        if self.validation_percentage + self.testing_percentage >= 100:
            raise bad("testing_percentage", "validation + testing must leave room for training")
        if not _is_number(self.background_frequency) or not 0 <= self.background_frequency <= 1:
            raise bad("background_frequency", "must be a probability from 0 to 1")
        for name in ("background_volume", "time_shift_ms"):
            value = getattr(self, name)
            if not _is_number(value) or value < 0:
                raise bad(name, "must be a number >= 0")
        for name in ("sample_rate", "n_mels", "frames", "har_classes", "seed"):
            if not isinstance(getattr(self, name), int) or isinstance(getattr(self, name), bool):
                raise bad(name, "must be an integer")
        if self.sample_rate < 1000:
            raise bad("sample_rate", "must be at least 1000 Hz")
        if self.n_mels < 1 or self.frames < 1:
            raise bad("n_mels" if self.n_mels < 1 else "frames", "must be at least 1")
        for name in ("window_ms", "hop_ms"):
            value = getattr(self, name)
            if not _is_number(value) or not 0 < value <= 1000:
                raise bad(name, "must be a number > 0 and at most 1000 (the clip is 1 s)")
        if self.time_shift_ms > 1000:
            raise bad("time_shift_ms", "must be shorter than the 1 s clip")
        if self.hop_samples < 1 or self.window_samples < 2:
            raise bad("window_ms", "window and hop are shorter than one sample")
        if self.time_shift_samples >= self.clip_samples:
            raise bad("time_shift_ms", "must be shorter than the 1 s clip")
        if self.on_other_sample_rate not in SAMPLE_RATE_MODES:
            raise bad("on_other_sample_rate", f"must be one of {', '.join(SAMPLE_RATE_MODES)}")
        if not isinstance(self.skip_bad_wavs, bool):
            raise bad("skip_bad_wavs", "must be true or false")
        if self.har_classes not in (2, 6):
            raise bad("har_classes", "must be 2 (HAR-2) or 6 (all six activities)")
        if not _is_number(self.val_subject_fraction) or not 0 < self.val_subject_fraction < 1:
            raise bad("val_subject_fraction", "must be a number between 0 and 1 (exclusive)")
        if self.cache_dir is not None and not isinstance(self.cache_dir, str):
            raise bad("cache_dir", "must be a path or null")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _coerce(name: str, annotation: Any, value: Any) -> Any:
    """Accept what JSON/YAML naturally give: an int where a float is expected."""
    text = str(annotation)
    if text == "float" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _parse_text(raw: str) -> Any:
    """Command-line value: int, float, bool, null, else the string itself."""
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null", ""):
        return None
    for convert in (int, float):
        try:
            return convert(raw)
        except ValueError:
            pass
    return raw
