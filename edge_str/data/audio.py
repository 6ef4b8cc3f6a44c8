"""WAV decoding through soundfile (torchaudio.load needs torchcodec, which this package avoids).

Every clip becomes mono float32 in [-1, 1] at the configured sample rate; a file that cannot be
used is one ``EdgeStrError`` naming it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from edge_str.errors import EdgeStrError

INT16_SCALE = 32768.0  # soundfile's float <-> PCM16 convention, so PCM16 clips round-trip exactly


class BadWavError(EdgeStrError):
    """The file cannot be decoded at all (corrupt, empty, not audio): what skip_bad_wavs skips."""


class Decoded:
    """A decoded recording and what was done to it (counted in the data summary)."""

    __slots__ = ("samples", "resampled", "mixed_down")

    def __init__(self, samples: np.ndarray, resampled: bool, mixed_down: bool) -> None:
        self.samples = samples  # (S,) float32
        self.resampled = resampled
        self.mixed_down = mixed_down


def read_wav(path: str | Path, sample_rate: int, on_other_sample_rate: str = "resample") -> Decoded:
    """Decode ``path`` to mono float32 at ``sample_rate``.

    Stereo (or more channels) is averaged; another rate is resampled with torchaudio, or
    rejected when ``on_other_sample_rate == "error"``.
    """
    path = Path(path)
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError, TypeError) as error:
        raise BadWavError(f"{path}: cannot read this WAV file ({_short(error)})") from None
    if data.shape[0] == 0:
        raise BadWavError(f"{path}: WAV file contains no samples")
    if not np.isfinite(data).all():
        raise BadWavError(f"{path}: WAV file contains NaN or infinite samples")
    mixed_down = data.shape[1] > 1
    samples = data.mean(axis=1, dtype=np.float32) if mixed_down else data[:, 0]
    resampled = rate != sample_rate
    if resampled:
        if on_other_sample_rate == "error":
            raise EdgeStrError(
                f"{path}: sample rate is {rate} Hz, expected {sample_rate} Hz "
                "(set on_other_sample_rate=resample to convert it)"
            )
        samples = AF.resample(torch.from_numpy(np.ascontiguousarray(samples)), rate, sample_rate)
        samples = samples.numpy()
    return Decoded(np.ascontiguousarray(samples, dtype=np.float32), resampled, mixed_down)


def fit_length(samples: np.ndarray, length: int) -> np.ndarray:
    """Zero-pad at the end or cut at the end to ``length`` samples (as TF's decode_wav does)."""
    if samples.shape[0] >= length:
        return samples[:length]
    return np.pad(samples, (0, length - samples.shape[0]))


def to_int16(samples: np.ndarray) -> np.ndarray:
    """float in [-1, 1] -> int16 (half the memory/disk of float32 for the waveform cache)."""
    scaled = np.rint(np.asarray(samples, dtype=np.float64) * INT16_SCALE)
    return np.clip(scaled, -32768, 32767).astype(np.int16)


def from_int16(samples: np.ndarray | torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(samples).to(torch.float32) / INT16_SCALE


def _short(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= 160 else text[:157] + "..."
