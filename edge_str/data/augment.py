"""Google-12 training augmentation on a whole batch at once (TF speech_commands reference).

Each clip is shifted in time by a random amount up to ``time_shift_ms`` (the gap zero-filled),
then, with probability ``background_frequency``, a random 1 s slice of a background-noise
recording is added at a volume drawn from [0, background_volume], and the sum is clipped to
[-1, 1]. The input is the cached int16 waveforms; features come from the same batched log-mel
as the clean ones, so nothing is decoded again.
"""

from __future__ import annotations

import numpy as np
import torch

from edge_str.data.audio import from_int16
from edge_str.data.features import LogMel


class WaveAugmenter:
    def __init__(
        self,
        waves: np.ndarray,
        noise: np.ndarray,
        noise_bounds: np.ndarray,
        extractor: LogMel,
        time_shift_samples: int,
        background_frequency: float,
        background_volume: float,
    ) -> None:
        self.waves = waves  # [N, S] int16, the training clips
        self.noise = from_int16(noise)  # [M] recordings' training regions, concatenated
        self.noise_bounds = np.asarray(noise_bounds, dtype=np.int64).reshape(-1, 2)  # [R, 2]
        self.extractor = extractor
        self.shift = int(time_shift_samples)
        self.frequency = float(background_frequency)
        self.volume = float(background_volume)

    @torch.no_grad()
    def __call__(self, idx: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        waves = from_int16(self.waves[idx])  # [B, S]
        batch, length = waves.shape
        positions = torch.arange(length)
        if self.shift > 0:
            shifts = torch.from_numpy(rng.integers(-self.shift, self.shift + 1, size=batch))
            source = positions[None, :] - shifts[:, None]  # out[t] = in[t - shift]
            inside = (source >= 0) & (source < length)
            waves = torch.where(inside, waves.gather(1, source.clamp(0, length - 1)), 0.0)
        if len(self.noise_bounds) and self.frequency > 0 and self.volume > 0:
            use = rng.random(batch) < self.frequency
            volume = rng.uniform(0.0, self.volume, size=batch) * use
            which = rng.integers(0, len(self.noise_bounds), size=batch)
            lo, hi = self.noise_bounds[which, 0], self.noise_bounds[which, 1]
            starts = torch.from_numpy(rng.integers(lo, hi - length + 1))  # hi - lo >= length
            noise = self.noise[starts[:, None] + positions[None, :]]  # [B, S]
            volume = torch.from_numpy(volume).to(torch.float32)
            waves = (waves + volume[:, None] * noise).clamp(-1.0, 1.0)
        return self.extractor(waves)
