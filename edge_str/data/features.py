"""Log-mel filterbank energies, batched in torch (one code path for extraction and augmentation).

Framing follows python_speech_features, as used for the FastGRNN paper's Google-12 features: the
clip is zero-padded at the end so that ``frames = 1 + ceil((S - window) / hop)`` frames of
``window`` samples fit (99 for 1 s at 16 kHz with 25 ms / 10 ms); each frame is windowed,
zero-padded to the next power of two for the FFT, and its power spectrum is pooled by an HTK-mel
triangular filterbank; the log has a small floor so digital silence stays finite.
"""

from __future__ import annotations

import torch
import torchaudio.functional as AF
from torch import nn

from edge_str.data.config import DataConfig

LOG_FLOOR = 1e-6  # added to the mel energies before the log (as TF's speech_commands does)
FEATURE_VERSION = 1  # bump when the computation below changes: it is part of the cache key


class LogMel(nn.Module):
    """waveforms [N, S] float in [-1, 1] -> log-mel features [N, frames, n_mels] float32."""

    def __init__(
        self, sample_rate: int, window_samples: int, hop_samples: int, n_mels: int, frames: int
    ) -> None:
        super().__init__()
        self.window_samples = window_samples
        self.hop_samples = hop_samples
        self.frames = frames
        self.n_fft = 1 << (window_samples - 1).bit_length()  # next power of two >= window
        self.register_buffer("window", torch.hann_window(window_samples, dtype=torch.float32))
        fbank = AF.melscale_fbanks(
            self.n_fft // 2 + 1,
            f_min=0.0,
            f_max=sample_rate / 2,
            n_mels=n_mels,
            sample_rate=sample_rate,
            norm=None,
            mel_scale="htk",
        )
        self.register_buffer("fbank", fbank.to(torch.float32))  # [n_fft/2+1, n_mels]

    @property
    def needed_samples(self) -> int:
        return (self.frames - 1) * self.hop_samples + self.window_samples

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        waves = waves.to(torch.float32)
        need = self.needed_samples
        if waves.shape[-1] < need:  # zero-pad at the end so exactly `frames` frames fit
            waves = nn.functional.pad(waves, (0, need - waves.shape[-1]))
        else:
            waves = waves[..., :need]
        frames = waves.unfold(-1, self.window_samples, self.hop_samples)  # [N, T, window]
        spectrum = torch.fft.rfft(frames * self.window, n=self.n_fft)  # [N, T, n_fft/2+1]
        power = spectrum.real.square() + spectrum.imag.square()
        return torch.log(power @ self.fbank + LOG_FLOOR)  # [N, T, n_mels]


def log_mel_for(config: DataConfig) -> LogMel:
    """The feature extractor that a data config describes."""
    return LogMel(
        config.sample_rate, config.window_samples, config.hop_samples, config.n_mels, config.frames
    )


@torch.no_grad()
def extract(extractor: LogMel, waves: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """Features of many clips in fixed-size chunks (bounded memory, same result every run)."""
    out = torch.empty((waves.shape[0], extractor.frames, extractor.fbank.shape[1]))
    for start in range(0, waves.shape[0], chunk):
        out[start : start + chunk] = extractor(waves[start : start + chunk])
    return out
