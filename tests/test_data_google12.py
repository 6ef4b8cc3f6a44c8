"""Google-12 loader on tiny Speech Commands trees built here in the real layout."""

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from _data_trees import (
    COMMANDS,
    SR,
    build_speech_tree,
    speaker,
    tone,
    write_wav,
)

from edge_str.data import GOOGLE12_CLASSES, DataConfig, load_task
from edge_str.data import audio as audio_module
from edge_str.data.features import LOG_FLOOR, LogMel
from edge_str.data.speech_commands import speaker_of, which_set
from edge_str.errors import EdgeStrError

SPLITS = ("train", "val", "test")


def config(tmp_path: Path, **settings) -> DataConfig:
    return DataConfig(cache_dir=str(tmp_path / "cache"), **settings)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    # 4 speakers x 13 words: speaker 0 -> validation list, speaker 1 -> testing list
    return build_speech_tree(tmp_path / "sc", speakers=4)


def count_decodes(monkeypatch) -> list[str]:
    calls: list[str] = []
    real = audio_module.read_wav

    def spy(path, *args, **kwargs):
        calls.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(audio_module, "read_wav", spy)
    return calls


# ---------------------------------------------------------------- splits
def test_list_files_define_the_splits(tree, tmp_path):
    data = load_task("google12", tree, config(tmp_path))
    expected = {"val": speaker(0), "test": speaker(1)}
    seen = {}
    for split in SPLITS:
        for source in data.example_sources(split):
            if source.startswith("_background_noise_"):
                continue
            assert source not in seen, f"{source} in {seen.get(source)} and {split}"
            seen[source] = split
            who = speaker_of(source)
            if split in expected:
                assert who == expected[split]
            else:
                assert who in (speaker(2), speaker(3))
    # every command clip is used exactly once
    commands = {f"{w}/{speaker(s)}_nohash_0.wav" for w in COMMANDS for s in range(4)}
    assert commands <= set(seen)


def hash_speakers() -> dict[str, list[int]]:
    """Speaker numbers that the TF hash rule puts in each split (2 each)."""
    found: dict[str, list[int]] = {s: [] for s in SPLITS}
    i = 0
    while min(len(v) for v in found.values()) < 2:
        split = which_set(f"{speaker(i)}_nohash_0.wav", 10.0, 10.0)
        if len(found[split]) < 2:
            found[split].append(i)
        i += 1
    return found


def test_without_list_files_the_speaker_hash_rule_splits(tmp_path):
    groups = hash_speakers()
    numbers = sorted(n for group in groups.values() for n in group)
    root = tmp_path / "sc"
    build_speech_tree(root, speakers=numbers, lists=False)
    data = load_task("google12", root, config(tmp_path))
    assert data.summary()["split_rule"].startswith("speaker hash")
    split_of_speaker: dict[str, str] = {}
    for split in SPLITS:
        for source in data.example_sources(split):
            if source.startswith("_background_noise_"):
                continue
            assert which_set(source, 10.0, 10.0) == split
            who = speaker_of(source)
            assert split_of_speaker.setdefault(who, split) == split, f"{who} in two splits"
    for split in ("val", "test"):
        assert {speaker(n) for n in groups[split]} <= set(split_of_speaker)


def test_hash_rule_ignores_the_repeat_number_and_gives_10_10_80():
    assert which_set("abc_nohash_0.wav", 10, 10) == which_set("dir/abc_nohash_4.wav", 10, 10)
    rng = np.random.default_rng(0)
    names = [f"{rng.integers(2**32):08x}_nohash_0.wav" for _ in range(4000)]
    shares = {s: sum(which_set(n, 10, 10) == s for n in names) / len(names) for s in SPLITS}
    assert abs(shares["val"] - 0.1) < 0.02 and abs(shares["test"] - 0.1) < 0.02


# ---------------------------------------------------------------- counts and shapes
def test_class_counts_and_silence_unknown_percentages(tmp_path):
    root = build_speech_tree(tmp_path / "sc", speakers=6, val_speakers=(0,), test_speakers=(1,))
    data = load_task("google12", root, config(tmp_path))
    summary = data.summary()
    for split, speakers in (("train", 4), ("val", 1), ("test", 1)):
        per_class = summary["splits"][split]["per_class"]
        n_words = 10 * speakers
        assert all(per_class[w] == speakers for w in COMMANDS)
        assert per_class["_silence_"] == math.ceil(0.10 * n_words)
        available = 3 * speakers  # 3 other words in the tree
        assert per_class["_unknown_"] == min(math.ceil(0.10 * n_words), available)
        assert summary["splits"][split]["examples"] == n_words + 2 * math.ceil(0.1 * n_words)
    more = load_task(
        "google12", root, config(tmp_path, silence_percentage=25, unknown_percentage=30)
    )
    per_class = more.summary()["splits"]["train"]["per_class"]
    assert per_class["_silence_"] == 10 and per_class["_unknown_"] == 12  # of 40 command clips


def test_unknown_clips_are_the_same_every_time_and_from_other_words(tree, tmp_path):
    a = load_task("google12", tree, config(tmp_path / "a"))
    b = load_task("google12", tree, config(tmp_path / "b"))
    unknown = GOOGLE12_CLASSES.index("_unknown_")
    for split in SPLITS:
        _, y = a.split_tensors(split)
        picked = [s for s, label in zip(a.example_sources(split), y.tolist()) if label == unknown]
        assert picked and all(p.split("/")[0] in ("bed", "cat", "happy") for p in picked)
        assert a.example_sources(split) == b.example_sources(split)


def test_shapes_dtypes_and_class_order(tree, tmp_path):
    data = load_task("google12", tree, config(tmp_path))
    assert data.task == "google12" and data.input_shape == (99, 32)
    assert data.class_names == ["_silence_", "_unknown_", *COMMANDS]
    for split in SPLITS:
        x, y = data.split_tensors(split)
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert x.shape == (data.num_examples(split), 99, 32) and y.shape == (x.shape[0],)
    assert data.mean.shape == (32,) and data.std.shape == (32,)


def test_normalisation_statistics_come_from_training_only(tmp_path):
    root = build_speech_tree(tmp_path / "sc", speakers=4)
    # make the validation/test speakers much louder: their features differ from training
    for word in COMMANDS:
        for s in (0, 1):
            write_wav(root / word / f"{speaker(s)}_nohash_0.wav", tone(3000.0, amp=0.9))
    data = load_task("google12", root, config(tmp_path))
    x_train, _ = data.split_tensors("train")
    assert torch.allclose(data.mean, x_train.mean(dim=(0, 1)), atol=1e-4)
    assert torch.allclose(data.std, x_train.std(dim=(0, 1), unbiased=False), atol=1e-4)
    x_all = torch.cat([data.split_tensors(s)[0] for s in SPLITS])
    assert not torch.allclose(data.mean, x_all.mean(dim=(0, 1)), atol=1e-2)


def test_val_and_test_tensors_are_identical_across_fresh_loads(tree, tmp_path):
    a = load_task("google12", tree, config(tmp_path / "a"))
    b = load_task("google12", tree, config(tmp_path / "b"))  # separate cache: decoded again
    for split in SPLITS:
        xa, ya = a.split_tensors(split)
        xb, yb = b.split_tensors(split)
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


# ---------------------------------------------------------------- training batches
def test_train_batches_are_a_function_of_seed_and_epoch(tree, tmp_path):
    data = load_task("google12", tree, config(tmp_path))
    first = list(data.train_batches(epoch=3, batch_size=7, seed=11))
    again = list(data.train_batches(epoch=3, batch_size=7, seed=11))
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again))
    n = data.num_examples("train")
    assert [len(b[1]) for b in first] == [7] * (n // 7) + ([n % 7] if n % 7 else [])
    _, y_train = data.split_tensors("train")
    labels = torch.cat([b[1] for b in first])
    assert torch.equal(labels.sort().values, y_train.sort().values)  # each example once
    other_epoch = list(data.train_batches(epoch=4, batch_size=7, seed=11))
    other_seed = list(data.train_batches(epoch=3, batch_size=7, seed=12))
    assert not torch.equal(labels, torch.cat([b[1] for b in other_epoch]))
    assert not torch.equal(first[0][0], other_seed[0][0])
    assert first[0][0].shape == (7, 99, 32) and first[0][0].dtype == torch.float32


def test_training_batches_are_augmented_and_clean_ones_are_not(tree, tmp_path, monkeypatch):
    data = load_task("google12", tree, config(tmp_path))
    x_train, y_train = data.split_tensors("train")
    x_batch, y_batch = next(data.train_batches(epoch=0, batch_size=1000, seed=0))
    # recover which training example each batch row is, by label and clean features' order
    order = np.random.default_rng([0, 0]).permutation(len(y_train))
    assert torch.equal(y_batch, y_train[order])
    assert not torch.allclose(x_batch, x_train[order], atol=1e-3)
    quiet = load_task(
        "google12", tree, config(tmp_path, background_frequency=0.0, time_shift_ms=0.0)
    )
    monkeypatch.setattr(LogMel, "forward", lambda *a: pytest.fail("features recomputed"))
    x_plain, _ = next(quiet.train_batches(epoch=0, batch_size=1000, seed=0))
    assert torch.equal(x_plain, x_train[order])  # no augmentation: the cached clean features


# ---------------------------------------------------------------- cache
def test_second_load_reads_the_cache_and_decodes_nothing(tree, tmp_path, monkeypatch):
    first = load_task("google12", tree, config(tmp_path))
    assert first.summary()["cache"]["reused"] is False

    def fail(*args, **kwargs):
        raise AssertionError("a WAV was decoded")

    monkeypatch.setattr(audio_module, "read_wav", fail)
    monkeypatch.setattr(sf, "read", fail)
    second = load_task("google12", tree, config(tmp_path))
    assert second.summary()["cache"]["reused"] is True
    for split in SPLITS:
        assert torch.equal(first.split_tensors(split)[0], second.split_tensors(split)[0])
    assert torch.equal(first.mean, second.mean)
    batch = next(second.train_batches(0, 8, 0))[0]  # augmentation works from cached waveforms
    assert torch.equal(batch, next(first.train_batches(0, 8, 0))[0])


def test_cache_is_invalidated_by_a_new_file(tree, tmp_path, monkeypatch):
    load_task("google12", tree, config(tmp_path))
    write_wav(tree / "yes" / f"{speaker(9)}_nohash_0.wav", tone(440.0))
    calls = count_decodes(monkeypatch)
    data = load_task("google12", tree, config(tmp_path))
    assert data.summary()["cache"]["reused"] is False and len(calls) > 0
    assert f"yes/{speaker(9)}_nohash_0.wav" in data.example_sources("train")
    assert len(list((tmp_path / "cache").glob("google12-*/*"))) == 1  # the stale entry is gone


def test_cache_is_invalidated_by_a_modified_file(tree, tmp_path, monkeypatch):
    before = load_task("google12", tree, config(tmp_path))
    target = tree / "no" / f"{speaker(2)}_nohash_0.wav"
    write_wav(target, tone(2500.0, seconds=0.7))
    calls = count_decodes(monkeypatch)
    after = load_task("google12", tree, config(tmp_path))
    assert str(target) in calls
    assert not torch.equal(before.split_tensors("train")[0], after.split_tensors("train")[0])


def test_cache_follows_feature_settings_but_not_augmentation(tree, tmp_path, monkeypatch):
    load_task("google12", tree, config(tmp_path))
    calls = count_decodes(monkeypatch)
    same = load_task("google12", tree, config(tmp_path, time_shift_ms=50.0, background_volume=0.3))
    assert same.summary()["cache"]["reused"] is True and calls == []
    other = load_task("google12", tree, config(tmp_path, n_mels=20))
    assert other.summary()["cache"]["reused"] is False and calls
    assert other.input_shape == (99, 20)


# ---------------------------------------------------------------- bad input
def test_corrupt_wav_is_one_clear_error_or_skipped_and_counted(tree, tmp_path):
    bad = tree / "up" / f"{speaker(3)}_nohash_0.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio")
    with pytest.raises(EdgeStrError, match=f"{bad}: cannot read this WAV file"):
        load_task("google12", tree, config(tmp_path))
    data = load_task("google12", tree, config(tmp_path, skip_bad_wavs=True))
    summary = data.summary()
    assert summary["skipped_bad_wavs"] == 1 and str(bad) in summary["skipped_files"][0]
    assert f"up/{speaker(3)}_nohash_0.wav" not in data.example_sources("train")
    assert summary["splits"]["train"]["per_class"]["up"] == 1


def test_other_sample_rates_are_resampled_or_rejected(tree, tmp_path):
    clip = tree / "left" / f"{speaker(2)}_nohash_0.wav"
    sf.write(str(clip), tone(1000.0, sr=8000), 8000, subtype="PCM_16")
    with pytest.raises(EdgeStrError, match=f"{clip}: sample rate is 8000 Hz, expected 16000"):
        load_task("google12", tree, config(tmp_path, on_other_sample_rate="error"))
    data = load_task("google12", tree, config(tmp_path))
    assert data.summary()["resampled_wavs"] == 1
    x, _ = data.split_tensors("train")
    got = x[data.example_sources("train").index(f"left/{speaker(2)}_nohash_0.wav")]
    from edge_str.data.features import log_mel_for

    reference = log_mel_for(DataConfig())(torch.from_numpy(tone(1000.0))[None])[0]
    band = int(reference[10:80].mean(0).argmax())
    assert int(got[10:80].mean(0).argmax()) == band  # same tone, same band after resampling
    assert abs(float(got[10:80, band].mean() - reference[10:80, band].mean())) < 0.5


def test_stereo_is_mixed_down(tree, tmp_path):
    clip = tree / "right" / f"{speaker(2)}_nohash_0.wav"
    left = tone(600.0)
    sf.write(str(clip), np.stack([left, -left], axis=1), SR, subtype="PCM_16")  # cancels
    data = load_task("google12", tree, config(tmp_path))
    assert data.summary()["mixed_down_wavs"] == 1
    x, _ = data.split_tensors("train")
    got = x[data.example_sources("train").index(f"right/{speaker(2)}_nohash_0.wav")]
    assert torch.allclose(got, torch.full_like(got, math.log(LOG_FLOOR)))  # (L + R) / 2 = 0


def test_short_clips_are_zero_padded_at_the_end(tree, tmp_path):
    clip = tree / "on" / f"{speaker(2)}_nohash_0.wav"
    write_wav(clip, tone(900.0, seconds=0.5))
    data = load_task("google12", tree, config(tmp_path))
    x, _ = data.split_tensors("train")
    got = x[data.example_sources("train").index(f"on/{speaker(2)}_nohash_0.wav")]
    assert torch.all(got[50:] == math.log(LOG_FLOOR)) and torch.all(got[:45].amax(1) > -5)


def test_missing_folders_and_files_are_clear_errors(tmp_path):
    with pytest.raises(EdgeStrError, match="data folder not found"):
        load_task("google12", tmp_path / "nowhere", config(tmp_path))
    root = build_speech_tree(tmp_path / "sc", speakers=4)
    for clip in (root / "stop").iterdir():
        clip.unlink()
    (root / "stop").rmdir()
    with pytest.raises(EdgeStrError, match=r"sc/stop: missing folder .*'stop'"):
        load_task("google12", root, config(tmp_path))


def test_missing_background_noise_is_a_clear_error(tmp_path):
    root = build_speech_tree(tmp_path / "sc", speakers=4, background=False)
    with pytest.raises(EdgeStrError, match="_background_noise_: no background-noise"):
        load_task("google12", root, config(tmp_path))
    quiet = config(tmp_path, silence_percentage=0.0, background_frequency=0.0)
    data = load_task("google12", root, quiet)
    assert data.summary()["splits"]["train"]["per_class"]["_silence_"] == 0


def test_list_file_problems_name_the_file_and_line(tree, tmp_path):
    (tree / "testing_list.txt").write_text(f"yes/{speaker(1)}_nohash_0.wav\nnot an entry\n")
    with pytest.raises(EdgeStrError, match=r"testing_list.txt:2: expected an entry"):
        load_task("google12", tree, config(tmp_path))
    (tree / "testing_list.txt").unlink()
    with pytest.raises(EdgeStrError, match="testing_list.txt: not found, but validation_list"):
        load_task("google12", tree, config(tmp_path))


def test_a_split_without_clips_is_a_clear_error(tmp_path):
    root = build_speech_tree(tmp_path / "sc", speakers=3, val_speakers=(), test_speakers=(1,))
    with pytest.raises(EdgeStrError, match="the val split has no command-word clips"):
        load_task("google12", root, config(tmp_path))
