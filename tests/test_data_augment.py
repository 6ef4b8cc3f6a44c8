"""WaveAugmenter: time shift and background noise on a whole batch, as the TF reference does."""

import numpy as np
import torch

from edge_str.data import DataConfig
from edge_str.data.audio import from_int16, to_int16
from edge_str.data.augment import WaveAugmenter
from edge_str.data.features import log_mel_for


class Identity(torch.nn.Module):
    def forward(self, waves):
        return waves


def impulses(n: int, at: int) -> np.ndarray:
    waves = np.zeros((n, 16000), np.float32)
    waves[:, at] = 0.5
    return to_int16(waves)


def test_time_shift_moves_each_clip_by_its_own_amount_and_zero_fills():
    waves = impulses(64, 8000)
    augmenter = WaveAugmenter(
        waves, np.zeros(0, np.int16), np.zeros((0, 2)), Identity(), 1600, 0.8, 0.1
    )
    out = augmenter(np.arange(64), np.random.default_rng(0))
    positions = out.abs().argmax(dim=1) - 8000
    assert torch.all(out.abs().amax(dim=1) == 0.5)  # moved, not lost or scaled
    assert positions.abs().max() <= 1600 and len(set(positions.tolist())) > 50
    assert torch.count_nonzero(out, dim=1).eq(1).all()  # the gap is zero-filled
    # the shifts are exactly those of the generator, drawn first
    expected = np.random.default_rng(0).integers(-1600, 1601, size=64)
    assert positions.tolist() == expected.tolist()


def test_noise_is_added_with_the_configured_probability_and_volume():
    silent = np.zeros((400, 16000), np.int16)
    noise = to_int16(np.full(40000, 0.5, np.float32))  # constant "noise": easy to measure
    bounds = np.array([[0, 40000]])
    augmenter = WaveAugmenter(silent, noise, bounds, Identity(), 0, 0.8, 0.1)
    out = augmenter(np.arange(400), np.random.default_rng(1))
    level = out[:, 0] / 0.5  # the volume each clip got
    assert torch.all(out == out[:, :1])  # one volume per clip over the whole clip
    assert 0.7 < float((level > 0).float().mean()) < 0.9  # background_frequency 0.8
    assert float(level.max()) <= 0.1 + 1e-4 and float(level.max()) > 0.09


def test_noise_comes_only_from_the_given_regions():
    silent = np.zeros((50, 16000), np.int16)
    noise = np.concatenate([np.full(20000, 1000, np.int16), np.full(20000, -1000, np.int16)])
    augmenter = WaveAugmenter(silent, noise, np.array([[20000, 40000]]), Identity(), 0, 1.0, 1.0)
    out = augmenter(np.arange(50), np.random.default_rng(2))
    assert torch.all(out <= 0)  # only the second (negative) region is used


def test_features_of_unaugmented_clips_match_the_clean_ones():
    rng = np.random.default_rng(3)
    waves = to_int16(rng.uniform(-0.3, 0.3, (5, 16000)).astype(np.float32))
    extractor = log_mel_for(DataConfig())
    augmenter = WaveAugmenter(
        waves, np.zeros(0, np.int16), np.zeros((0, 2)), extractor, 0, 0.8, 0.1
    )
    got = augmenter(np.array([4, 0, 2]), np.random.default_rng(0))
    assert got.shape == (3, 99, 32)
    assert torch.allclose(got, extractor(from_int16(waves[[4, 0, 2]])), atol=1e-5)
