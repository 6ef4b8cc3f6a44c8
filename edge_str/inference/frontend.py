"""The audio front end a trained model was fed: WAV -> mono samples -> log-mel features.

Its settings are the run's (``DataConfig``: sample rate, log-mel window/hop/filters, frames per
clip); they travel with the model, in the run's config.json or the ONNX file's metadata, so a
user never re-specifies them. Decoding and clip fitting are the data loaders' own code
(``edge_str.data.audio``): stereo is averaged, another sample rate resampled, a short clip
zero-padded at the end and a long one cut to 1 s, exactly as the training clips were.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchaudio.functional as AF

from edge_str.data import audio
from edge_str.data.config import DataConfig
from edge_str.data.features import LogMel, extract
from edge_str.errors import EdgeStrError

METADATA_KEY = "edge_str.front_end"  # ONNX metadata_props entry holding the JSON of FrontEnd
STREAM_CHUNK_FRAMES = 6000  # log-mel of a long recording in chunks of 60 s (bounded memory)


@dataclass(frozen=True)
class FrontEnd:
    """The feature settings of one model (a subset of ``DataConfig``, which checks them)."""

    sample_rate: int = 16000
    n_mels: int = 32
    window_ms: float = 25.0
    hop_ms: float = 10.0
    frames: int = 99
    on_other_sample_rate: str = "resample"

    @classmethod
    def from_data_config(cls, config: DataConfig) -> FrontEnd:
        return cls(**{f.name: getattr(config, f.name) for f in fields(cls)})

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str) -> FrontEnd:
        known = {f.name for f in fields(cls)}
        if not isinstance(values, dict) or set(values) != known:
            raise EdgeStrError(
                f"{source}: front-end settings {values!r} do not have the fields {sorted(known)}"
            )
        DataConfig.from_dict(values)  # every setting is checked once, by DataConfig
        return cls(**values)

    @classmethod
    def from_json(cls, text: str, source: str) -> FrontEnd:
        try:
            return cls.from_dict(json.loads(text), source)
        except json.JSONDecodeError:
            raise EdgeStrError(f"{source}: front-end metadata is not valid JSON") from None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @property
    def data_config(self) -> DataConfig:
        return DataConfig.from_dict(self.to_dict())

    @property
    def clip_samples(self) -> int:
        return self.data_config.clip_samples

    @property
    def hop_samples(self) -> int:
        return self.data_config.hop_samples

    @property
    def window_samples(self) -> int:
        return self.data_config.window_samples

    # ------------------------------------------------------------------ audio
    def read(self, path: str | Path) -> np.ndarray:
        """A WAV file as mono float32 at the model's sample rate (the loaders' decoding)."""
        return audio.read_wav(path, self.sample_rate, self.on_other_sample_rate).samples

    def waveform(self, samples: np.ndarray | torch.Tensor, sample_rate: int) -> np.ndarray:
        """An array (S,) or (S, channels) at ``sample_rate`` -> mono float32 at the model's rate,
        as ``read`` would give for a WAV file of those samples."""
        data = np.asarray(samples, dtype=np.float32)
        if data.ndim == 2:
            data = data.mean(axis=1, dtype=np.float32)  # channels last, as soundfile gives
        if data.ndim != 1 or data.size == 0:
            raise EdgeStrError(f"waveform of shape {data.shape}: expected (samples,) or (S, C)")
        if not np.isfinite(data).all():
            raise EdgeStrError("waveform contains NaN or infinite samples")
        if sample_rate != self.sample_rate:
            if self.on_other_sample_rate == "error":
                raise EdgeStrError(
                    f"waveform at {sample_rate} Hz; the model takes {self.sample_rate} Hz"
                )
            data = AF.resample(
                torch.from_numpy(np.ascontiguousarray(data)), sample_rate, self.sample_rate
            )
            data = data.numpy()
        return np.ascontiguousarray(data, dtype=np.float32)

    # ------------------------------------------------------------------ features
    def clip_features(self, samples: np.ndarray) -> torch.Tensor:
        """One clip (fitted to 1 s as the loaders fit it) -> raw log-mel (frames, n_mels)."""
        clip = as_trained(audio.fit_length(samples, self.clip_samples))
        return extract(self._log_mel(self.frames), clip[None])[0]

    def stream_features(self, samples: np.ndarray) -> torch.Tensor:
        """Every full frame of a long recording -> raw log-mel (N, n_mels), frame i starting at
        sample i·hop (the same frames a clip starting on that grid gets)."""
        hop, window = self.hop_samples, self.window_samples
        total = 0 if len(samples) < window else 1 + (len(samples) - window) // hop
        out = torch.empty((total, self.n_mels))
        waves = as_trained(samples)
        for start in range(0, total, STREAM_CHUNK_FRAMES):
            count = min(STREAM_CHUNK_FRAMES, total - start)
            piece = waves[start * hop : (start + count - 1) * hop + window]
            out[start : start + count] = extract(self._log_mel(count), piece[None])[0]
        return out

    def _log_mel(self, frames: int) -> LogMel:
        c = self.data_config
        return LogMel(c.sample_rate, c.window_samples, c.hop_samples, c.n_mels, frames)


def as_trained(samples: np.ndarray) -> torch.Tensor:
    """Samples as the training clips were: the loaders cache waveforms as int16, so a resampled
    or float recording is rounded to PCM16 too (a no-op for a PCM16 WAV at the model's rate)."""
    return audio.from_int16(audio.to_int16(samples))
