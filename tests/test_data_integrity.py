"""Data that went wrong on disk: list files naming absent clips, damaged feature caches."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from _data_trees import build_speech_tree, speaker

from edge_str.cli import main
from edge_str.data import DataConfig, load_task
from edge_str.errors import EdgeStrError
from tests._cli import refused


def config(tmp_path: Path, **settings) -> DataConfig:
    return DataConfig(cache_dir=str(tmp_path / "cache"), **settings)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return build_speech_tree(tmp_path / "sc", speakers=4)  # speaker 0: val list, 1: test list


@pytest.mark.parametrize("name", ["testing_list.txt", "validation_list.txt"])
def test_a_listed_clip_missing_from_the_tree_names_list_line_and_file(tree, tmp_path, name):
    listed = (tree / name).read_text().splitlines()
    gone = listed[2]
    (tree / gone).unlink()
    with pytest.raises(EdgeStrError) as caught:
        load_task("google12", tree, config(tmp_path))
    message = str(caught.value)
    assert message.startswith(f"{tree / name}:3: lists {gone}, which is not in the tree")
    assert "1 listed clip(s) missing" in message and "skip_missing_listed=true" in message

    data = load_task("google12", tree, config(tmp_path, skip_missing_listed=True))
    split = "test" if name == "testing_list.txt" else "val"
    assert data.summary()["skipped_missing_listed"] == 1
    assert gone not in data.example_sources(split)


def test_missing_listed_clip_is_one_line_from_the_command_line(tree, tmp_path, capsys):
    (tree / f"yes/{speaker(1)}_nohash_0.wav").unlink()
    line = refused(["data", "info", "google12", "--data", str(tree)], capsys)
    assert "testing_list.txt:" in line and f"yes/{speaker(1)}_nohash_0.wav" in line
    argv = ["data", "info", "google12", "--data", str(tree), "--set", "skip_missing_listed=true"]
    assert main(argv) == 0
    assert '"skipped_missing_listed": 1' in capsys.readouterr().out


def _features_file(tmp_path: Path) -> Path:
    (path,) = (tmp_path / "cache").glob("google12-*/*/train_features.npy")
    return path


@pytest.mark.parametrize("damage", ["random bytes", "zeroed data"])
def test_a_damaged_cache_entry_is_found_and_rebuilt(tree, tmp_path, capsys, damage):
    first = load_task("google12", tree, config(tmp_path))
    path = _features_file(tmp_path)
    raw = bytearray(path.read_bytes())
    if damage == "random bytes":  # the same size, so only a checksum can tell
        raw[:] = np.random.default_rng(0).integers(0, 256, len(raw), dtype=np.uint8).tobytes()
    else:  # the .npy header intact, the data region zeroed
        header = len(raw) - first.split_tensors("train")[0].numel() * 4
        raw[header:] = bytes(len(raw) - header)
    path.write_bytes(bytes(raw))
    capsys.readouterr()
    second = load_task("google12", tree, config(tmp_path))
    err = capsys.readouterr().err
    assert "feature cache" in err and "is damaged" in err and "rebuilding it" in err
    assert second.summary()["cache"]["reused"] is False
    assert (first.split_tensors("train")[0] == second.split_tensors("train")[0]).all()
    third = load_task("google12", tree, config(tmp_path))  # the rebuilt entry is good again
    assert third.summary()["cache"]["reused"] is True and capsys.readouterr().err == ""


def test_cache_info_and_clean(tree, tmp_path, capsys):
    cache = tmp_path / "cache"
    other = build_speech_tree(tmp_path / "other", speakers=4)
    load_task("google12", tree, config(tmp_path))
    load_task("google12", other, config(tmp_path))
    (cache / "mine").mkdir()  # not a cache entry: never touched
    assert main(["cache", "info", "--cache-dir", str(cache)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{cache}: 2 entries, ") and lines[0].endswith(" MB")
    assert any(str(tree.resolve()) in line for line in lines[1:])
    shutil.rmtree(other)
    assert main(["cache", "info", "--cache-dir", str(cache), "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)["entries"]
    assert sorted(e["data_exists"] for e in entries) == [False, True]
    assert main(["cache", "clean", "--stale", "--cache-dir", str(cache)]) == 0
    assert "removed 1 entries" in capsys.readouterr().out
    assert load_task("google12", tree, config(tmp_path)).summary()["cache"]["reused"] is True
    assert main(["cache", "clean", "--cache-dir", str(cache)]) == 0
    assert "removed 1 entries" in capsys.readouterr().out
    assert sorted(p.name for p in cache.iterdir()) == ["mine"]


@pytest.mark.parametrize("task", ["har2", "google12"])
def test_synth_into_a_folder_under_a_file_is_one_line(tmp_path, capsys, task):
    (tmp_path / "plain").write_text("a file")
    line = refused(["data", "synth", task, "--out", str(tmp_path / "plain" / "tree")], capsys)
    assert f"{tmp_path / 'plain'} is a file, not a folder" in line
