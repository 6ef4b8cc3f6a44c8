"""``data fetch``: archives built here stand in for the downloads (no internet on test machines)."""

import io
import tarfile
import zipfile
from pathlib import Path

import pytest
from _data_trees import build_har_tree, build_speech_tree

from edge_str.data import DataConfig, load_task
from edge_str.data.fetch import ARCHIVE_NAMES, fetch
from edge_str.errors import EdgeStrError


def speech_tar(tmp_path: Path) -> Path:
    """Like speech_commands_v0.02.tar.gz: the word folders at the top level ("./yes/...")."""
    tree = build_speech_tree(tmp_path / "src", speakers=4, words=(
        "yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "bed"))  # fmt: skip
    archive = tmp_path / "speech_commands_v0.02.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tree, arcname=".")
    return archive


def har_nested_zip(tmp_path: Path) -> Path:
    """Like the UCI download: a zip holding ``UCI HAR Dataset.zip`` (+ macOS junk)."""
    tree = build_har_tree(tmp_path / "src" / "UCI HAR Dataset")
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as zf:
        for path in sorted(tree.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(tree.parent).as_posix())
        zf.writestr("__MACOSX/UCI HAR Dataset/._y_train.txt", b"junk")
    archive = tmp_path / "human+activity+recognition+using+smartphones.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("UCI HAR Dataset.zip", inner.getvalue())
        zf.writestr("UCI HAR Dataset.names", "description\n")
    return archive


def test_fetch_google12_from_a_local_tar_gz(tmp_path):
    out = tmp_path / "data" / "speech"
    result = fetch("google12", out, archive=speech_tar(tmp_path))
    assert result["data_dir"] == str(out) and result["action"] == "unpacked"
    assert result["clips"] == 44 and result["list_files"] is True
    data = load_task("google12", out, DataConfig(cache_dir=str(tmp_path / "cache")))
    assert data.num_examples("val") == 12  # 10 command clips + 1 silence + 1 unknown
    again = fetch("google12", out, archive=tmp_path / "missing.tar.gz")  # nothing to do
    assert again["action"] == "already present"


def test_fetch_har_from_a_nested_zip(tmp_path):
    out = tmp_path / "har"
    result = fetch("har2", out, archive=har_nested_zip(tmp_path))
    assert result["data_dir"] == str(out / "UCI HAR Dataset")
    assert (result["train_windows"], result["test_windows"]) == (30, 12)
    assert not list(out.rglob("*.zip")) and not (out / "__MACOSX").exists()
    data = load_task("har2", out, DataConfig(cache_dir=str(tmp_path / "cache")))
    assert data.num_examples("test") == 12


def test_download_goes_through_a_temporary_file_and_is_removed_after_unpacking(tmp_path):
    archive = har_nested_zip(tmp_path)
    out = tmp_path / "downloaded" / "har"
    result = fetch("har2", out, url=archive.as_uri())  # file:// stands in for https://
    assert result["action"] == "unpacked" and (out / "UCI HAR Dataset" / "train").is_dir()
    assert not (out.parent / ARCHIVE_NAMES["har2"]).exists()
    assert [p.name for p in out.parent.iterdir()] == ["har"]  # no temp files left


def test_failed_download_says_how_to_use_an_archive(tmp_path):
    url = (tmp_path / "nothing.zip").as_uri()
    with pytest.raises(EdgeStrError, match=r"cannot download .*nothing.zip.*--archive FILE"):
        fetch("har2", tmp_path / "har", url=url)
    assert not (tmp_path / "har").exists()


def test_archive_with_the_wrong_layout_leaves_nothing(tmp_path):
    archive = tmp_path / "other.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("README.txt", "not the data\n")
    with pytest.raises(EdgeStrError, match="train: missing folder"):
        fetch("har2", tmp_path / "har", archive=archive)
    assert not (tmp_path / "har").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["other.zip"]


def test_unreadable_archive_and_escaping_paths_are_refused(tmp_path):
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"this is not gzip")
    with pytest.raises(EdgeStrError, match="bad.tar.gz: cannot unpack this tar.gz archive"):
        fetch("google12", tmp_path / "sc", archive=bad)
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../escaped.txt", "gotcha")
    with pytest.raises(EdgeStrError, match="refusing to unpack '../escaped.txt'"):
        fetch("har2", tmp_path / "har", archive=evil)
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "har").exists()
    with pytest.raises(EdgeStrError, match="missing.zip: archive not found"):
        fetch("har2", tmp_path / "har", archive=tmp_path / "missing.zip")
