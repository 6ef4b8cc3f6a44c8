"""``data synth``: demo trees in the real layouts that the loaders read."""

import re
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from edge_str.data import ACTIVITIES, DataConfig, load_task
from edge_str.data.espeak import LibrarySpeech, open_speech
from edge_str.data.speech_commands import COMMAND_WORDS
from edge_str.data.synth_google12 import (
    CONFUSABLE_WORDS,
    DIFFICULTIES,
    Difficulty,
    background_recordings,
    make_speakers,
    plan,
    render,
    synth_google12,
)
from edge_str.data.synth_har import TEST_SUBJECTS, synth_har
from edge_str.errors import EdgeStrError
from tests._speech import hide_espeak_program, hide_espeak_wheel

HAS_ESPEAK = shutil.which("espeak-ng") is not None
ROW = re.compile(r"^( [ -]\d\.\d{7}e[+-]\d{3}){128}$")


@pytest.fixture(scope="module")
def har_tree(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "har"
    synth_har(out, seed=3, windows=1)
    return out


def test_synth_har_layout_and_number_format(har_tree):
    assert (har_tree / "activity_labels.txt").read_text().splitlines()[1] == "2 WALKING_UPSTAIRS"
    signals = har_tree / "train" / "Inertial Signals"
    assert len(list(signals.glob("*_train.txt"))) == 9
    lines = (signals / "total_acc_x_train.txt").read_text().splitlines()
    assert len(lines) == 21 * 6 and all(ROW.match(line) for line in lines)
    subjects = (har_tree / "test" / "subject_test.txt").read_text().split()
    assert sorted({int(s) for s in subjects}) == list(TEST_SUBJECTS)


def test_synth_har_loads_with_plausible_physics(har_tree, tmp_path):
    data = load_task("har6", har_tree, DataConfig(cache_dir=str(tmp_path)))
    assert data.num_examples("test") == 9 * 6 and data.num_examples("val") == 4 * 6
    x, y = data.split_tensors("train")
    gravity_x = {ACTIVITIES[c]: float(x[y == c][..., 6].mean()) for c in range(6)}
    assert gravity_x["STANDING"] > 0.9 and gravity_x["LAYING"] < 0.4  # upright vs lying
    assert gravity_x["LAYING"] < gravity_x["SITTING"] < gravity_x["STANDING"]
    motion = {ACTIVITIES[c]: float(x[y == c][..., 0].std()) for c in range(6)}  # body_acc_x
    assert min(motion[a] for a in ACTIVITIES[:3]) > 5 * max(motion[a] for a in ACTIVITIES[3:])
    assert motion["WALKING_DOWNSTAIRS"] > motion["WALKING_UPSTAIRS"]  # harder impacts


def test_synth_har_is_deterministic_per_seed(har_tree, tmp_path):
    synth_har(tmp_path / "same", seed=3, windows=1)
    synth_har(tmp_path / "other", seed=4, windows=1)
    name = "train/Inertial Signals/body_gyro_y_train.txt"
    assert (tmp_path / "same" / name).read_bytes() == (har_tree / name).read_bytes()
    assert (tmp_path / "other" / name).read_bytes() != (har_tree / name).read_bytes()


def test_synth_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(EdgeStrError, match="already exists and is not empty"):
        synth_har(tmp_path / "full")
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"


def test_synth_google12_without_espeak_says_how_to_install(tmp_path, monkeypatch):
    hide_espeak_program(monkeypatch, tmp_path / "path")
    hide_espeak_wheel(monkeypatch)
    with pytest.raises(EdgeStrError, match="apt-get install espeak-ng") as caught:
        synth_google12(tmp_path / "sc")
    message = str(caught.value)
    assert "\n" not in message and "pip install espeakng-loader" in message
    assert "espeakng-loader is not installed" in message and "no espeak-ng program" in message
    assert not (tmp_path / "sc").exists()


def _one_clip_is_speech(out: Path) -> None:
    clip = next((out / "yes").glob("*_nohash_*.wav"))
    info = sf.info(str(clip))
    assert (info.samplerate, info.frames) == (16000, 16000)  # resampled from 22,050 Hz
    samples, _ = sf.read(str(clip))
    frame_rms = np.sqrt((samples.reshape(100, 160) ** 2).mean(axis=1))  # 10 ms frames
    loud = int((frame_rms > 0.1 * frame_rms.max()).sum())
    assert 0.05 < np.abs(samples).max() < 0.95 and 10 <= loud <= 90, loud  # a word in quiet


def test_synth_google12_without_the_program_speaks_through_the_wheel(tmp_path, monkeypatch):
    hide_espeak_program(monkeypatch, tmp_path / "path")
    assert shutil.which("espeak-ng") is None
    result = synth_google12(tmp_path / "sc", seed=1, per_word=1)
    assert result["speech"] == LibrarySpeech.name and result["clips"] == 30
    _one_clip_is_speech(tmp_path / "sc")
    assert LibrarySpeech.name in (tmp_path / "sc" / "README.txt").read_text()


@pytest.mark.skipif(not HAS_ESPEAK, reason="espeak-ng program not installed")
def test_synth_google12_falls_back_to_the_program_without_the_wheel(tmp_path, monkeypatch):
    hide_espeak_wheel(monkeypatch)
    result = synth_google12(tmp_path / "sc", seed=1, per_word=1)
    assert result["speech"].startswith("the espeak-ng program")
    _one_clip_is_speech(tmp_path / "sc")


def test_library_speech_refuses_an_unknown_voice_in_one_line():
    with pytest.raises(EdgeStrError, match="espeak-ng has no voice 'xx-nowhere'"):
        LibrarySpeech.shared().speak("yes", "xx-nowhere", 150, 50)


def test_library_speech_whisper_is_the_same_after_the_clock_moves():
    """espeak_Initialize seeds the noise the whisper variant draws from with time(NULL): the
    binding reseeds it, so a later call (the clock a second on, another voice between) gives
    the same samples."""
    speech = LibrarySpeech.shared()
    first, _ = speech.speak("seven", "en+whisper", 150, 50)
    time.sleep(1.1)
    speech.speak("house", "en-us", 170, 40)
    again, _ = speech.speak("seven", "en+whisper", 150, 50)
    assert first.size > 1000 and np.array_equal(again, first)


def test_synth_google12_small_tree_loads_and_is_deterministic(tmp_path):
    out = tmp_path / "sc"
    result = synth_google12(out, seed=1, per_word=2)
    assert result["clips"] == 10 * 2 + 20 * 1 and result["speakers"] == 3
    clip = next((out / "yes").glob("*_nohash_*.wav"))
    info = sf.info(str(clip))
    assert (info.samplerate, info.channels, info.frames, info.subtype) == (
        16000,
        1,
        16000,
        "PCM_16",
    )
    samples, _ = sf.read(str(clip))
    assert 0.05 < np.abs(samples).max() < 0.95  # speech at a random level, not clipped
    val = (out / "validation_list.txt").read_text().split()
    test = (out / "testing_list.txt").read_text().split()
    speakers = {split: {p.split("/")[1].split("_")[0] for p in paths} for split, paths in
                (("val", val), ("test", test))}  # fmt: skip
    assert len(speakers["val"]) == 1 and len(speakers["test"]) == 1
    assert not speakers["val"] & speakers["test"]
    all_clips = {p.relative_to(out).as_posix() for p in out.glob("*/*_nohash_*.wav")}
    assert set(val) | set(test) < all_clips
    train_speakers = {p.split("/")[1].split("_")[0] for p in all_clips - set(val) - set(test)}
    assert not train_speakers & (speakers["val"] | speakers["test"])  # unseen speakers
    noise = sorted((out / "_background_noise_").glob("*.wav"))
    assert len(noise) >= 3 and all(sf.info(str(p)).duration >= 10 for p in noise)

    data = load_task("google12", out, DataConfig(cache_dir=str(tmp_path / "cache")))
    assert all(data.num_examples(s) > 0 for s in ("train", "val", "test"))
    x, _ = data.split_tensors("train")
    assert x.shape[1:] == (99, 32) and torch.isfinite(x).all()

    synth_google12(tmp_path / "again", seed=1, per_word=2)
    for path in sorted(out.rglob("*.wav")):  # every clip, whisper voices too
        assert path.read_bytes() == (tmp_path / "again" / path.relative_to(out)).read_bytes()
    assert (out / "testing_list.txt").read_text() == (
        tmp_path / "again/testing_list.txt"
    ).read_text()


def test_difficulty_presets_plan_more_speakers_and_sound_alike_unknown_words():
    hard = DIFFICULTIES["hard"]
    easy_speakers, easy = plan(20, seed=5)
    hard_speakers, planned = plan(20, seed=5, difficulty=hard)
    assert (len(easy_speakers), len(hard_speakers)) == (10, 20)
    words = {u.word for u in planned}
    assert set(CONFUSABLE_WORDS) <= words and not set(CONFUSABLE_WORDS) & {u.word for u in easy}
    assert not set(CONFUSABLE_WORDS) & set(COMMAND_WORDS)
    assert all(5 <= s.pitch < 96 and 100 <= s.speed < 241 for s in hard_speakers)
    assert all(25 <= s.pitch < 76 and 125 <= s.speed < 196 for s in easy_speakers)
    # the hard preset spreads wider than the easy one over many speakers
    many = make_speakers(200, seed=5, difficulty=hard)
    assert max(s.pitch for s in many) - min(s.pitch for s in many) > 60
    assert len(plan(20, seed=5, difficulty=replace(hard, speakers=7))[0]) == 7


@pytest.mark.parametrize(
    "change, message",
    [
        ({"snr_db": (10.0, 5.0)}, "--snr-db needs LOW <= HIGH"),
        ({"speakers": 2}, "--speakers must be in 3.."),
        ({"noise": "rain"}, "noise must be one of"),
    ],
)
def test_difficulty_refuses_bad_settings(tmp_path, change, message):
    with pytest.raises(EdgeStrError, match=message):
        synth_google12(tmp_path / "sc", difficulty=replace(Difficulty(), **change))
    assert not (tmp_path / "sc").exists()


def _speech_to_noise_db(utterance, difficulty, recordings) -> float:
    """SNR of a rendered clip over the whole second: the same utterance with almost no noise
    gives the speech, the difference the noise."""
    speech = open_speech()
    clean = render(utterance, speech, replace(difficulty, snr_db=(90.0, 90.0)), recordings)
    noisy = render(utterance, speech, difficulty, recordings)
    return 10 * np.log10(np.sum(clean**2) / np.sum((noisy - clean) ** 2))


def test_snr_range_sets_the_noise_level_of_each_clip():
    recordings = background_recordings(0)
    _, utterances = plan(2, seed=0, difficulty=DIFFICULTIES["hard"])
    yes = next(u for u in utterances if u.word == "yes")
    for snr in (0.0, 10.0):
        hard = replace(DIFFICULTIES["hard"], snr_db=(snr, snr))
        # the SNR is set over the speech; the noise covers the whole second (speech < 1 s)
        measured = _speech_to_noise_db(yes, hard, recordings)
        assert snr - 8 < measured <= snr + 0.5, (snr, measured)
    easy = _speech_to_noise_db(yes, Difficulty(), recordings)
    assert easy > 5  # 15-40 dB over the speech


def test_synth_google12_hard_tree_loads_with_confusable_unknown_words(tmp_path):
    out = tmp_path / "hard"
    result = synth_google12(out, seed=2, per_word=1, difficulty=DIFFICULTIES["hard"])
    assert result["clips"] == 10 + 40 and result["unknown_words"] == 40
    assert all(len(list((out / w).glob("*.wav"))) == 1 for w in CONFUSABLE_WORDS)
    assert "--confusable --snr-db 0 15 (noise: recordings)" in (out / "README.txt").read_text()
    data = load_task("google12", out, DataConfig(cache_dir=str(tmp_path / "cache")))
    assert len(data.class_names) == 12 and data.num_examples("train") > 0
    synth_google12(tmp_path / "again", seed=2, per_word=1, difficulty=DIFFICULTIES["hard"])
    for path in sorted(out.rglob("*.wav"))[::7]:
        assert path.read_bytes() == (tmp_path / "again" / path.relative_to(out)).read_bytes()
