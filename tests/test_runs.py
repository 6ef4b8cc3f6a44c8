"""Run folders under mistakes: resume with other settings, two trainings at once, failures early."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from edge_str.cli import main
from edge_str.data.task import TaskData
from edge_str.run import LOCK_FILE, load_checkpoint, save_checkpoint
from tests._cli import one_error_line, refused
from tests._data_trees import build_har_tree


@pytest.fixture(scope="module")
def har_tree(tmp_path_factory):
    return build_har_tree(tmp_path_factory.mktemp("har"))


def _train(data, out, *extra):
    argv = ["train", "--task", "har2", "--data", str(data), "--out", str(out)]
    return main([*argv, "--hidden", "8", "--batch-size", "16", *extra])


def _json(path):
    return json.loads(path.read_text())


def _break_epoch(monkeypatch, epoch: int, how: str) -> None:
    """Make training fail in ``epoch`` (0-based): NaN inputs, or Ctrl-C."""
    original = TaskData.train_batches

    def batches(self, e, batch_size, seed):
        for x, y in original(self, e, batch_size, seed):
            if e == epoch and how == "interrupt":
                raise KeyboardInterrupt
            yield (x * float("nan"), y) if e == epoch else (x, y)

    monkeypatch.setattr(TaskData, "train_batches", batches)


def test_resume_without_epochs_continues_the_runs_own_epochs(har_tree, tmp_path, monkeypatch):
    run = tmp_path / "run"
    _break_epoch(monkeypatch, 1, "interrupt")
    assert _train(har_tree, run, "--epochs", "3") == 130
    monkeypatch.undo()
    assert main(["train", "--out", str(run), "--resume"]) == 0  # no --epochs: the run's 3
    assert _json(run / "config.json")["optim"]["epochs"] == 3
    final = _json(run / "final.json")
    assert final["epochs"] == 3 and "resumes" not in final


def test_resume_with_epochs_is_recorded_in_config_and_final(har_tree, tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(har_tree, run, "--epochs", "2") == 0
    assert main(["train", "--out", str(run), "--resume", "--epochs", "4"]) == 0
    assert f"resuming {run} after epoch 2: epochs 2 -> 4" in capsys.readouterr().out
    final = _json(run / "final.json")
    assert _json(run / "config.json")["optim"]["epochs"] == final["epochs"] == 4
    assert final["resumes"] == [{"after_epoch": 2, "epochs": 4, "epochs_before": 2}]
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 4
    line = refused(["train", "--out", str(run), "--resume", "--epochs", "3"], capsys)
    assert "has trained 4 epochs already" in line and "at least 4" in line


def test_resume_refuses_settings_that_change_the_run(har_tree, tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(har_tree, run, "--epochs", "1") == 0
    before = (run / "config.json").read_text()
    capsys.readouterr()
    line = refused(
        ["train", "--out", str(run), "--resume", "--hidden", "16", "--lr", "300"], capsys
    )
    assert "cannot change model.hidden 8 -> 16, optim.lr 0.01 -> 300.0" in line
    assert (run / "config.json").read_text() == before
    # the same values as the run's are not a change
    assert main(["train", "--out", str(run), "--resume", "--hidden", "8", "--task", "har2"]) == 0


def test_a_second_training_into_a_locked_run_folder_is_refused(har_tree, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from filelock import FileLock; "
         f"lock = FileLock({str(run / LOCK_FILE)!r}); lock.acquire(); print('held', flush=True); "
         "sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        line = refused(["train", "--task", "har2", "--data", str(har_tree), "--out", str(run)],
                       capsys)  # fmt: skip
        assert "another training is writing this run folder" in line
    finally:
        holder.communicate("")  # EOF: the holder exits and its lock goes with it
    assert sorted(p.name for p in run.iterdir()) == [LOCK_FILE]  # the refused one wrote nothing
    assert _train(har_tree, run, "--epochs", "1") == 0  # free again


def test_divergence_in_the_first_epoch_says_nothing_is_kept_and_leaves_no_folder(
    har_tree, tmp_path, capsys, monkeypatch
):
    _break_epoch(monkeypatch, 0, "nan")
    assert _train(har_tree, tmp_path / "nan", "--epochs", "2") == 2
    line = one_error_line(capsys)
    assert "diverged in epoch 1" in line and "no epoch had finished, so nothing is kept" in line
    assert "last.pt" not in line and not (tmp_path / "nan").exists()


def test_divergence_later_names_the_kept_epoch(har_tree, tmp_path, capsys, monkeypatch):
    run = tmp_path / "nan"
    _break_epoch(monkeypatch, 1, "nan")
    assert _train(har_tree, run, "--epochs", "3") == 2
    line = one_error_line(capsys)
    assert "diverged in epoch 2" in line and f"epoch (1) is kept in {run / 'last.pt'}" in line
    assert load_checkpoint(run / "last.pt")["epoch"] == 0


def test_interrupt_in_the_first_epoch_says_what_is_true(har_tree, tmp_path, capsys, monkeypatch):
    _break_epoch(monkeypatch, 0, "interrupt")
    assert _train(har_tree, tmp_path / "cut", "--epochs", "2") == 130
    err = capsys.readouterr().err
    assert "interrupted in epoch 1; no epoch had finished, so nothing is kept" in err
    assert "--resume" not in err and not (tmp_path / "cut").exists()


def test_a_run_refused_at_start_leaves_nothing(har_tree, tmp_path, capsys):
    assert _train(tmp_path / "missing", tmp_path / "new", "--epochs", "1") == 2
    assert "missing" in one_error_line(capsys) and not (tmp_path / "new").exists()
    (tmp_path / "empty").mkdir()
    assert _train(tmp_path / "missing", tmp_path / "empty", "--epochs", "1") == 2
    capsys.readouterr()
    assert list((tmp_path / "empty").iterdir()) == []  # an existing folder is left as it was
    line = refused(["train", "--task", "har2", "--data", str(har_tree), "--out",
                    str(tmp_path / "bad"), "--device", "cuda"], capsys) if not \
        torch.cuda.is_available() else "no CUDA"  # fmt: skip
    assert "no CUDA" in line and not (tmp_path / "bad").exists()


def test_a_run_made_with_a_relative_data_path_evaluates_from_elsewhere(
    har_tree, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(har_tree.parent)
    assert _train(har_tree.name, tmp_path / "run", "--epochs", "1") == 0
    assert _json(tmp_path / "run" / "config.json")["data_dir"] == str(har_tree.resolve())
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["evaluate", "run"]) == 0
    assert json.loads(capsys.readouterr().out)["data"] == str(har_tree.resolve())


class _Payload:
    """Unpickling this would run code: a weights-only load must refuse it."""

    def __reduce__(self):
        return (print, ("unpickled!",))


def test_checkpoints_load_weights_only(har_tree, tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(har_tree, run, "--epochs", "1") == 0
    for name in ("last.pt", "best.pt"):  # plain torch.load with weights_only works on them
        raw = torch.load(run / name, weights_only=True)
        assert raw["epoch"] == 0 and "json" not in raw
    state = load_checkpoint(run / "last.pt")
    assert state["history"][0]["epoch"] == 1
    save_checkpoint(run / "extra.pt", {"model": {}, "score": np.float64(0.5), "n": 3})
    assert torch.load(run / "extra.pt", weights_only=True)["json"] == '{"score": 0.5}'
    assert load_checkpoint(run / "extra.pt") == {"model": {}, "n": 3, "score": 0.5}
    torch.save({"model": {}, "evil": _Payload()}, run / "best.pt")
    capsys.readouterr()
    line = refused(["evaluate", str(run)], capsys)
    assert "best.pt: holds pickled objects other than tensors" in line


def test_out_under_a_file_and_a_config_that_is_not_a_file_are_one_line(har_tree, tmp_path, capsys):
    (tmp_path / "plain").write_text("a file")
    argv = ["train", "--task", "har2", "--data", str(har_tree), "--epochs", "1"]
    line = refused([*argv, "--out", str(tmp_path / "plain" / "run")], capsys)
    assert f"{tmp_path / 'plain'} is a file, not a folder" in line
    line = refused([*argv, "--out", str(tmp_path / "r"), "--config", str(tmp_path)], capsys)
    assert f"{tmp_path}: cannot read the config file" in line
    assert not (tmp_path / "r").exists()


def test_a_checkpoint_damaged_on_disk_is_found(har_tree, tmp_path, capsys):
    import struct
    import zipfile

    run = tmp_path / "run"
    assert _train(har_tree, run, "--epochs", "1") == 0
    raw = bytearray((run / "best.pt").read_bytes())
    with zipfile.ZipFile(run / "best.pt") as archive:  # zero one tensor's bytes in place
        record = next(i for i in archive.infolist() if "/data/" in i.filename and i.file_size)
    name_len, extra_len = struct.unpack(
        "<HH", raw[record.header_offset + 26 : record.header_offset + 30]
    )
    start = record.header_offset + 30 + name_len + extra_len
    raw[start : start + record.file_size] = bytes(record.file_size)
    (run / "best.pt").write_bytes(bytes(raw))
    capsys.readouterr()
    line = refused(["evaluate", str(run)], capsys)
    assert "best.pt: damaged on disk (model." in line and "fails its checksum" in line
