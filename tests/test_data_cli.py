"""``edge-str data ...`` through ``edge_str.cli.main``: exit codes, stdout, one-line stderr."""

import json
import zipfile

import pytest
from _data_trees import build_har_tree, build_speech_tree

from edge_str.cli import main
from tests._cli import one_error_line, refused
from tests._speech import hide_espeak_program, hide_espeak_wheel


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGE_STR_CACHE", str(tmp_path / "cache"))


def test_info_har2_prints_the_summary_json(tmp_path, capsys):
    tree = build_har_tree(tmp_path / "har")
    assert main(["data", "info", "har2", "--data", str(tree)]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["input_shape"] == [128, 9]
    assert {s: v["examples"] for s, v in summary["splits"].items()} == {
        "train": 24,
        "val": 6,
        "test": 12,
    }
    line = captured.err.strip()
    assert "\n" not in line and "har2 data in" in line and "24 train / 6 val / 12 test" in line


def test_info_google12_with_a_setting_override(tmp_path, capsys):
    tree = build_speech_tree(tmp_path / "sc", speakers=4)
    args = ["data", "info", "google12", "--data", str(tree), "--set", "silence_percentage=50"]
    assert main([*args, "--cache-dir", str(tmp_path / "c2")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["splits"]["train"]["per_class"]["_silence_"] == 10  # 50% of 20 clips
    assert summary["class_names"][:3] == ["_silence_", "_unknown_", "yes"]
    assert (tmp_path / "c2").is_dir() and not (tmp_path / "cache").exists()


def test_info_on_a_missing_folder_is_one_line_exit_2(tmp_path, capsys):
    assert main(["data", "info", "google12", "--data", str(tmp_path / "none")]) == 2
    assert str(tmp_path / "none") in one_error_line(capsys)


def test_info_with_a_bad_wav_is_one_line_exit_2(tmp_path, capsys):
    tree = build_speech_tree(tmp_path / "sc", speakers=4)
    bad = tree / "go" / next(p.name for p in (tree / "go").iterdir())
    bad.write_bytes(b"garbage")
    assert main(["data", "info", "google12", "--data", str(tree)]) == 2
    assert f"{bad}: cannot read this WAV file" in one_error_line(capsys)
    assert main(["data", "info", "google12", "--data", str(tree), "--set", "nope=1"]) == 2
    assert "unknown data setting(s) nope" in one_error_line(capsys)


def test_synth_har2_then_info(tmp_path, capsys):
    out = tmp_path / "har"
    assert main(["data", "synth", "har2", "--out", str(out), "--windows", "1"]) == 0
    line = capsys.readouterr().out.strip()
    assert line == f"wrote synthetic UCI HAR data to {out}: 126 train / 54 test windows of 30 " \
        "simulated subjects"  # fmt: skip
    assert main(["data", "info", "har2", "--data", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["splits"]["test"]["examples"] == 54


def test_synth_option_for_the_other_task_is_an_error(tmp_path, capsys):
    assert main(["data", "synth", "har2", "--out", str(tmp_path / "h"), "--per-word", "3"]) == 2
    assert "--per-word is for google12" in one_error_line(capsys)


def test_synth_google12_without_espeak_is_one_line(tmp_path, capsys, monkeypatch):
    hide_espeak_program(monkeypatch, tmp_path / "path")
    hide_espeak_wheel(monkeypatch)
    assert main(["data", "synth", "google12", "--out", str(tmp_path / "sc")]) == 2
    line = one_error_line(capsys)
    assert "apt-get install espeak-ng" in line and "pip install espeakng-loader" in line
    assert not (tmp_path / "sc").exists()


def test_synth_google12_command(tmp_path, capsys):
    out = tmp_path / "sc"
    args = ["data", "synth", "google12", "--out", str(out), "--per-word", "1", "--seed", "2"]
    assert main(args) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"wrote synthetic google12 data to {out}: 30 clips by 3 espeak-ng")
    assert len(list(out.glob("*/*_nohash_*.wav"))) == 30


def test_synth_difficulty_flags_are_checked_in_one_line(tmp_path, capsys):
    out = str(tmp_path / "sc")
    refusal = refused(["data", "synth", "google12", "--out", out, "--snr-db", "15", "0"], capsys)
    assert "--snr-db needs LOW <= HIGH" in refusal
    refusal = refused(["data", "synth", "har2", "--out", out, "--difficulty", "hard"], capsys)
    assert "--difficulty is for google12" in refusal
    assert not (tmp_path / "sc").exists()


def test_synth_google12_hard_with_a_replaced_part(tmp_path, capsys):
    out = tmp_path / "sc"
    args = ["data", "synth", "google12", "--out", str(out), "--per-word", "1"]
    assert main([*args, "--difficulty", "hard", "--no-confusable", "--speakers", "4"]) == 0
    line = capsys.readouterr().out.strip()
    assert "30 clips by 4 espeak-ng speakers" in line and "20 unknown words" in line
    assert "--no-confusable --snr-db 0 15" in (out / "README.txt").read_text()


def test_fetch_with_an_archive(tmp_path, capsys):
    tree = build_har_tree(tmp_path / "src" / "UCI HAR Dataset")
    archive = tmp_path / "har.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in tree.rglob("*.txt"):
            zf.write(path, path.relative_to(tree.parent).as_posix())
    out = tmp_path / "har"
    assert main(["data", "fetch", "har2", "--out", str(out), "--archive", str(archive)]) == 0
    line = capsys.readouterr().out.strip()
    assert line == f"har2 data unpacked in {out / 'UCI HAR Dataset'}: 30 train / 12 test windows"
    assert main(["data", "fetch", "har2", "--out", str(tmp_path / "x"), "--archive", "no.zip"]) == 2
    assert "no.zip: archive not found" in one_error_line(capsys)
