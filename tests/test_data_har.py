"""UCI HAR loader on tiny trees written here in the data set's own text format."""

from pathlib import Path

import numpy as np
import pytest
import torch
from _data_trees import HAR_SIGNALS, build_har_tree, har_number

from edge_str.data import ACTIVITIES, HAR2_CLASSES, DataConfig, load_task
from edge_str.data import har as har_module
from edge_str.data.har import har2_labels, read_table, validation_subjects
from edge_str.errors import EdgeStrError


def config(tmp_path: Path, **settings) -> DataConfig:
    return DataConfig(cache_dir=str(tmp_path / "cache"), **settings)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    # train subjects 1 3 5 6 7, test subjects 2 4; one window per (subject, activity)
    return build_har_tree(tmp_path / "UCI HAR Dataset")


def test_shapes_and_channel_order(tree, tmp_path):
    data = load_task("har2", tree, config(tmp_path))
    assert data.task == "har2" and data.input_shape == (128, 9)
    x, y = data.split_tensors("test")
    assert x.shape == (12, 128, 9) and x.dtype == torch.float32 and y.dtype == torch.int64
    # value = channel + 10 * label + 100 * subject (+ noise 0.01): channel c is file c
    channel = x.round().long() % 10
    assert torch.equal(channel, torch.arange(9).expand_as(channel))
    assert data.summary()["channels"] == HAR_SIGNALS


def test_har2_label_mapping_and_names(tree, tmp_path):
    assert har2_labels(np.arange(1, 7)).tolist() == [0, 1, 0, 1, 0, 1]
    data = load_task("har2", tree, config(tmp_path))
    assert data.class_names == HAR2_CLASSES
    assert data.class_names[1] == "WALKING_UPSTAIRS|SITTING|LAYING"
    x, y = data.split_tensors("test")
    label = x[:, 0, 0].round().long() % 100 // 10  # the activity label written into the values
    assert torch.equal(y, (label % 2 == 0).long())
    assert data.summary()["splits"]["test"]["per_class"] == dict.fromkeys(HAR2_CLASSES, 6)


def test_all_six_activities(tree, tmp_path):
    data = load_task("har6", tree, config(tmp_path))
    assert data.task == "har6" and data.class_names == ACTIVITIES
    x, y = data.split_tensors("train")
    assert torch.equal(y, x[:, 0, 0].round().long() % 100 // 10 - 1)
    same = load_task("har2", tree, config(tmp_path, har_classes=6))
    assert same.class_names == ACTIVITIES


def test_validation_split_is_by_subject(tree, tmp_path):
    assert validation_subjects(np.array([1, 3, 5, 6, 7]), 0.2) == [5]
    real_train_subjects = [1, 3, 5, 6, 7, 8, 11, 14, 15, 16, 17, 19, 21, 22, 23, 25, 26, 27, 28, 29]
    real_train_subjects.append(30)  # the 21 training subjects of UCI HAR
    assert validation_subjects(np.array(real_train_subjects), 0.2) == [6, 15, 22, 28]
    data = load_task("har2", tree, config(tmp_path))
    subject = {s: data.split_tensors(s)[0][:, 0, 0].round().long() // 100 for s in ("train", "val")}
    assert set(subject["val"].tolist()) == {5}
    assert set(subject["train"].tolist()) == {1, 3, 6, 7}
    assert data.summary()["validation_subjects"] == [5]
    assert data.example_sources("val")[0] == "train:13 (subject 5)"  # rows 13-18 of train/
    assert all(src.endswith("(subject 5)") for src in data.example_sources("val"))
    assert data.num_examples("val") == 6 and data.num_examples("train") == 24
    halves = load_task("har2", tree, config(tmp_path, val_subject_fraction=0.4))
    assert halves.summary()["validation_subjects"] == [3, 7]  # positions 1 and 4 of 5


def test_statistics_from_the_training_split_only(tree, tmp_path):
    data = load_task("har2", tree, config(tmp_path))
    x_train, _ = data.split_tensors("train")
    assert torch.allclose(data.mean, x_train.mean(dim=(0, 1)), rtol=1e-5)
    assert torch.allclose(data.std, x_train.std(dim=(0, 1), unbiased=False), rtol=1e-4)
    x_val, _ = data.split_tensors("val")
    both = torch.cat([x_train, x_val]).mean(dim=(0, 1))
    assert not torch.allclose(data.mean, both, rtol=1e-3)


def test_the_real_number_format_is_read_exactly(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("  2.8858451e-001 -2.0294171e-002\n  1.0000000e+000  3.5e-3\n\n")
    table = read_table(path, 2)
    assert table.tolist() == [[0.28858451, -0.020294171], [1.0, 0.0035]]
    assert har_number(0.28858451) == "  2.8858451e-001"
    assert har_number(-0.020294171) == " -2.0294171e-002"


def test_val_test_identical_and_batches_deterministic(tree, tmp_path):
    a = load_task("har2", tree, config(tmp_path / "a"))
    b = load_task("har2", tree, config(tmp_path / "b"))
    for split in ("val", "test"):
        assert torch.equal(a.split_tensors(split)[0], b.split_tensors(split)[0])
    x, y = a.split_tensors("train")
    batches = list(a.train_batches(epoch=2, batch_size=10, seed=5))
    order = torch.from_numpy(np.random.default_rng([5, 2]).permutation(len(y)))
    assert torch.equal(torch.cat([bx for bx, _ in batches]), x[order])  # not augmented
    assert torch.equal(torch.cat([by for _, by in batches]), y[order])
    again = list(b.train_batches(epoch=2, batch_size=10, seed=5))
    assert all(torch.equal(p[0], q[0]) for p, q in zip(batches, again))
    assert not torch.equal(batches[0][0], next(a.train_batches(3, 10, 5))[0])


def test_cache_is_reused_and_invalidated(tree, tmp_path, monkeypatch):
    first = load_task("har2", tree, config(tmp_path))
    assert first.summary()["cache"]["reused"] is False

    def fail(*args, **kwargs):
        raise AssertionError("a text file was parsed")

    monkeypatch.setattr(har_module, "read_table", fail)
    second = load_task("har2", tree, config(tmp_path))
    assert second.summary()["cache"]["reused"] is True
    assert torch.equal(first.split_tensors("test")[0], second.split_tensors("test")[0])
    monkeypatch.undo()
    y_test = tree / "test" / "y_test.txt"
    y_test.write_text(y_test.read_text().replace("1\n", "2\n", 1))  # first label 1 -> 2
    third = load_task("har2", tree, config(tmp_path))
    assert third.summary()["cache"]["reused"] is False
    assert third.split_tensors("test")[1][0] == 1  # label 2 -> HAR-2 class 1


def test_parent_folder_holding_the_dataset_folder_works(tree, tmp_path):
    data = load_task("har2", tree.parent, config(tmp_path))
    assert data.summary()["data_dir"] == str(tree)


# ---------------------------------------------------------------- bad input
def test_missing_file_names_it(tree, tmp_path):
    gone = tree / "test" / "Inertial Signals" / "body_gyro_z_test.txt"
    gone.unlink()
    with pytest.raises(EdgeStrError, match=f"{gone}: file not found"):
        load_task("har2", tree, config(tmp_path))


def test_missing_layout_folder(tmp_path):
    root = build_har_tree(tmp_path / "har")
    for path in sorted((root / "test").rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    (root / "test").rmdir()
    with pytest.raises(EdgeStrError, match=r"har/test: missing folder"):
        load_task("har2", root, config(tmp_path))
    with pytest.raises(EdgeStrError, match="data folder not found"):
        load_task("har2", tmp_path / "nothing", config(tmp_path))


def test_wrong_number_of_values_names_file_and_line(tree, tmp_path):
    path = tree / "train" / "Inertial Signals" / "total_acc_y_train.txt"
    lines = path.read_text().splitlines(keepends=True)
    lines[2] = lines[2].rsplit(" ", 1)[0] + "\n"  # drop the last value of line 3
    path.write_text("".join(lines))
    with pytest.raises(EdgeStrError, match=f"{path}:3: expected 128 values, found 127"):
        load_task("har2", tree, config(tmp_path))


def test_a_non_number_names_file_and_line(tree, tmp_path):
    path = tree / "train" / "Inertial Signals" / "body_acc_x_train.txt"
    lines = path.read_text().splitlines(keepends=True)
    lines[4] = lines[4].replace("e+", "x+", 1)
    path.write_text("".join(lines))
    with pytest.raises(EdgeStrError, match=f"{path}:5: '.*x\\+.*' is not a number"):
        load_task("har2", tree, config(tmp_path))


def test_disagreeing_row_counts(tree, tmp_path):
    path = tree / "train" / "subject_train.txt"
    path.write_text(path.read_text() + "7\n")
    with pytest.raises(EdgeStrError, match=r"row counts disagree \(y_train.txt: 30, subject_train"):
        load_task("har2", tree, config(tmp_path))


def test_bad_label_names_file_and_line(tree, tmp_path):
    path = tree / "test" / "y_test.txt"
    lines = path.read_text().splitlines(keepends=True)
    lines[1] = "7\n"
    path.write_text("".join(lines))
    with pytest.raises(EdgeStrError, match=f"{path}:2: 7 is not an activity label from 1 to 6"):
        load_task("har2", tree, config(tmp_path))


def test_too_few_subjects_for_a_validation_split(tmp_path):
    root = build_har_tree(tmp_path / "har", train=[(1, a) for a in range(1, 7)])
    with pytest.raises(EdgeStrError, match="1 training subject"):
        load_task("har2", root, config(tmp_path))
