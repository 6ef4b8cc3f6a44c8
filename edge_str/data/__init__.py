"""Data loaders (placeholder for the config contract; replaced by the data branch)."""

from dataclasses import dataclass


@dataclass
class DataConfig:
    silence_percentage: float = 10.0
    unknown_percentage: float = 10.0
    background_frequency: float = 0.8
    background_volume: float = 0.1
    time_shift_ms: int = 100
    on_other_sample_rate: str = "resample"
    skip_bad_wavs: bool = False
    n_mels: int = 32
    window_ms: float = 25.0
    hop_ms: float = 10.0
    frames: int = 99
    sample_rate: int = 16000
    har_classes: int = 2
    val_subject_fraction: float = 0.2
    cache_dir: str | None = None
