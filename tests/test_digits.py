"""The digits task: stratified, disjoint, deterministic split; train statistics; batches."""

import numpy as np
import pytest
import torch

from edge_str.data import DataConfig
from edge_str.data.digits import load_digits_task, stratified_split


def task_labels():
    from sklearn.datasets import load_digits

    return load_digits().target


@pytest.fixture(scope="module")
def task():
    return load_digits_task(DataConfig())


def test_contract(task):
    assert task.class_names == [str(d) for d in range(10)]
    assert task.input_shape == (8, 8, 1)
    assert [task.num_examples(s) for s in ("train", "val", "test")] == [1257, 270, 270]
    x, y = task.split_tensors("train")
    assert x.shape == (1257, 8, 8, 1) and x.dtype == torch.float32
    assert y.shape == (1257,) and y.dtype == torch.int64
    assert float(x.min()) == 0.0 and float(x.max()) == 16.0  # raw pixels, not normalised
    assert task.mean.shape == (1,) == task.std.shape
    summary = task.summary()
    assert summary["splits"]["val"]["examples"] == 270 and summary["input_shape"] == [8, 8, 1]
    with pytest.raises(ValueError):
        task.split_tensors("dev")


def test_split_is_stratified_disjoint_and_fixed(task):
    indices = stratified_split(np.asarray(task_labels()), 0.15, 0.15, 0)
    assert task.example_sources("val") == [f"digits[{i}]" for i in indices["val"]]
    parts = [set(indices[s].tolist()) for s in ("train", "val", "test")]
    assert sum(len(p) for p in parts) == 1797 and set.union(*parts) == set(range(1797))
    assert all(not (a & b) for i, a in enumerate(parts) for b in parts[i + 1 :])
    totals = np.bincount(
        np.concatenate([task.split_tensors(s)[1].numpy() for s in ("train", "val", "test")])
    )
    assert totals.sum() == 1797 and totals.min() == 174 and totals.max() == 183
    for split in ("train", "val", "test"):
        size = task.num_examples(split)
        counts = np.bincount(task.split_tensors(split)[1].numpy(), minlength=10)
        # every class within 1.5 images of its share (a random split strays by ~5 in val)
        assert np.abs(counts - totals * size / 1797).max() <= 1.5
    again = load_digits_task()
    for split in ("train", "val", "test"):
        assert again.example_sources(split) == task.example_sources(split)
        assert torch.equal(again.split_tensors(split)[0], task.split_tensors(split)[0])
    other = load_digits_task(split_seed=1)
    assert other.example_sources("test") != task.example_sources("test")


def test_statistics_come_from_train(task):
    x, _ = task.split_tensors("train")
    assert float(task.mean) == pytest.approx(float(x.mean()), rel=1e-5)
    assert float(task.std) == pytest.approx(float(x.std()), rel=1e-5)
    val_mean = float(task.split_tensors("val")[0].mean())
    assert float(task.mean) != pytest.approx(val_mean, rel=1e-6)


def test_batches_are_deterministic_in_seed_and_epoch(task):
    def labels(epoch, seed, batch_size=100):
        return torch.cat([y for _, y in task.train_batches(epoch, batch_size, seed)])

    first = list(task.train_batches(0, 100, 7))
    assert len(first) == 13 == task.num_batches(100)
    assert [len(y) for _, y in first] == [100] * 12 + [57]
    assert torch.equal(labels(0, 7), labels(0, 7))
    assert not torch.equal(labels(0, 7), labels(1, 7))
    assert not torch.equal(labels(0, 7), labels(0, 8))
    # every epoch is a permutation of the training set
    x_train, y_train = task.split_tensors("train")
    xs = torch.cat([x for x, _ in first])
    assert torch.equal(xs.sum(dim=0), x_train.sum(dim=0))
    assert torch.equal(torch.sort(labels(3, 1)).values, torch.sort(y_train).values)
    # 1257 = 4 * 314 + 1: the one-example tail is dropped
    assert task.num_batches(4) == 314 == len(list(task.train_batches(0, 4, 0)))
