"""DataConfig: the defaults of the brief, JSON round trip, clear errors for bad settings."""

import dataclasses
import json

import pytest

from edge_str.data import DataConfig
from edge_str.errors import EdgeStrError


def test_defaults_are_the_reference_settings():
    c = DataConfig()
    assert (c.silence_percentage, c.unknown_percentage) == (10.0, 10.0)
    assert (c.background_frequency, c.background_volume, c.time_shift_ms) == (0.8, 0.1, 100.0)
    assert (c.n_mels, c.window_ms, c.hop_ms, c.frames, c.sample_rate) == (32, 25.0, 10.0, 99, 16000)
    assert (c.on_other_sample_rate, c.skip_bad_wavs) == ("resample", False)
    assert (c.har_classes, c.val_subject_fraction, c.cache_dir) == (2, 0.2, None)
    # derived sample counts: 400-sample window, 160 hop, 99 frames need 16,080 samples
    assert (c.window_samples, c.hop_samples, c.framed_samples) == (400, 160, 16080)
    assert c.time_shift_samples == 1600


def test_json_round_trip_and_from_dict():
    c = DataConfig(silence_percentage=5, n_mels=40, cache_dir="/tmp/x", har_classes=6)
    text = json.dumps(dataclasses.asdict(c))
    back = DataConfig.from_dict(json.loads(text))
    assert back == c
    assert isinstance(back.silence_percentage, float)  # int from JSON accepted for a float


def test_path_cache_dir_is_stored_as_text(tmp_path):
    c = DataConfig(cache_dir=tmp_path)
    assert c.cache_dir == str(tmp_path)
    json.dumps(c.to_dict())


def test_unknown_key_is_an_error_naming_it():
    with pytest.raises(EdgeStrError, match="n_mel"):
        DataConfig.from_dict({"n_mel": 40})


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("on_other_sample_rate", "drop", "resample, error"),
        ("har_classes", 3, "2 .*or 6"),
        ("val_subject_fraction", 1.0, "between 0 and 1"),
        ("silence_percentage", -1, "0 to 100"),
        ("background_frequency", 1.5, "probability"),
        ("time_shift_ms", 1000, "shorter than the 1 s clip"),
        ("frames", 0, "at least 1"),
    ],
)
def test_bad_values_are_clear_errors(field, value, words):
    with pytest.raises(EdgeStrError, match=f"{field}=.*{words}"):
        DataConfig(**{field: value})


def test_overrides_parse_command_line_values():
    c = DataConfig().with_overrides(["n_mels=40", "skip_bad_wavs=true", "hop_ms=12.5"])
    assert (c.n_mels, c.skip_bad_wavs, c.hop_ms) == (40, True, 12.5)
    with pytest.raises(EdgeStrError, match="key=value"):
        DataConfig().with_overrides(["n_mels"])


def test_cache_dir_default_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGE_STR_CACHE", str(tmp_path / "c"))
    assert DataConfig().resolved_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("EDGE_STR_CACHE")
    assert DataConfig().resolved_cache_dir().parts[-2:] == (".cache", "edge_str")
    assert DataConfig(cache_dir=str(tmp_path)).resolved_cache_dir() == tmp_path
