"""Log-mel features: 99 x 32 per 1 s clip, energy where the signal is, a floor for silence."""

import math

import numpy as np
import torch
from _data_trees import (
    tone,
)

from edge_str.data import DataConfig
from edge_str.data.features import LOG_FLOOR, log_mel_for


def test_one_second_gives_99_frames_of_32_bands():
    extractor = log_mel_for(DataConfig())
    assert 1 + math.ceil((16000 - 400) / 160) == 99
    assert extractor.needed_samples == 16080
    feats = extractor(torch.zeros(3, 16000))
    assert feats.shape == (3, 99, 32) and feats.dtype == torch.float32


def test_silence_is_the_log_floor():
    feats = log_mel_for(DataConfig())(torch.zeros(1, 16000))
    assert torch.allclose(feats, torch.full_like(feats, math.log(LOG_FLOOR)))


def test_a_tone_lights_the_band_around_its_frequency():
    extractor = log_mel_for(DataConfig())
    for freq in (300.0, 1000.0, 4000.0):
        feats = extractor(torch.from_numpy(tone(freq))[None])[0]  # [99, 32]
        band = int(feats[10:80].mean(0).argmax())
        # the band whose triangle is highest at the FFT bin of the tone
        expected = int(extractor.fbank[round(freq / (16000 / 512))].argmax())
        assert band == expected
        assert feats[10:80, band].mean() > math.log(LOG_FLOOR) + 15


def test_end_padding_only_touches_the_last_frames():
    extractor = log_mel_for(DataConfig())
    half = np.concatenate([tone(700.0, 0.5), np.zeros(8000, np.float32)])
    feats = extractor(torch.from_numpy(half)[None])[0]
    # frame t covers samples [160 t, 160 t + 400): frames 50.. hold only zeros
    assert torch.all(feats[50:] == math.log(LOG_FLOOR))
    assert torch.all(feats[:49].amax(1) > math.log(LOG_FLOOR) + 10)


def test_batch_result_equals_one_by_one():
    extractor = log_mel_for(DataConfig())
    waves = torch.from_numpy(np.stack([tone(f) for f in (200.0, 900.0, 2500.0)]))
    together = extractor(waves)
    alone = torch.cat([extractor(w[None]) for w in waves])
    assert torch.allclose(together, alone, atol=1e-5)


def test_other_settings_change_the_shape():
    extractor = log_mel_for(DataConfig(n_mels=40, frames=49, hop_ms=20.0))
    assert extractor(torch.zeros(2, 16000)).shape == (2, 49, 40)
