"""``--task digits``: scikit-learn's bundled 8x8 handwritten digits (no download).

1,797 grey-scale images of the digits 0-9 (UCI "Optical Recognition of Handwritten Digits"),
pixel values 0..16. A small image task to exercise the CNN path (ResNet/MobileNetV1 with the
cifar stem) where the speech and HAR data are not at hand.

Layout for the models: input_shape (8, 8, 1), channels-last raw pixels; ``mean``/``std`` are
per-channel (shape (1,)) from the training split, for the model's FeatureNormalizer.
Split: stratified by class, 70% train / 15% validation / 15% test, fixed by ``split_seed``
(independent of the training seed, so runs with different seeds see the same split).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

SPLITS = ("train", "val", "test")


class DigitsTask:
    """The loaded task: split tensors, statistics and a deterministic batch iterator."""

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        split_indices: dict[str, np.ndarray],
    ) -> None:
        self.class_names = [str(d) for d in range(10)]
        self.input_shape = (8, 8, 1)
        self.split_indices = {k: np.asarray(v, dtype=np.int64) for k, v in split_indices.items()}
        x = torch.from_numpy(np.asarray(images, dtype=np.float32)).unsqueeze(-1)  # (N, 8, 8, 1)
        y = torch.from_numpy(np.asarray(labels, dtype=np.int64))
        self._tensors = {
            split: (x[torch.from_numpy(idx)], y[torch.from_numpy(idx)])
            for split, idx in self.split_indices.items()
        }
        train_x = self._tensors["train"][0]
        self.mean = train_x.mean(dim=(0, 1, 2))  # (1,)
        self.std = train_x.std(dim=(0, 1, 2))  # (1,)

    @property
    def num_examples(self) -> dict[str, int]:
        return {split: len(self._tensors[split][1]) for split in SPLITS}

    def split_tensors(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw inputs (N, 8, 8, 1) float32 and labels (N,) int64 of ``split``."""
        if split not in self._tensors:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        x, y = self._tensors[split]
        return x.clone(), y.clone()

    def num_batches(self, batch_size: int) -> int:
        n = self.num_examples["train"]
        full, rest = divmod(n, batch_size)
        return full + (1 if rest > 1 else 0)

    def train_batches(
        self, epoch: int, batch_size: int, seed: int
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Shuffled training batches, the same for the same (seed, epoch).

        A last batch of a single example is dropped (batch norm cannot train on one example
        whose feature map is 1x1, as in a ResNet's last stage on 8x8 inputs).
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        x, y = self._tensors["train"]
        generator = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))
        order = torch.randperm(len(y), generator=generator)
        for start in range(0, len(y), batch_size):
            idx = order[start : start + batch_size]
            if len(idx) == 1 and len(y) > 1:
                return
            yield x[idx], y[idx]

    def summary(self) -> str:
        n = self.num_examples
        return (
            f"digits: {n['train']} train / {n['val']} val / {n['test']} test images, "
            f"8x8x1, {len(self.class_names)} classes"
        )

    def __repr__(self) -> str:
        return f"DigitsTask({self.summary()})"


def stratified_split(
    labels: np.ndarray, val_fraction: float, test_fraction: float, seed: int
) -> dict[str, np.ndarray]:
    """Indices of a stratified train/val/test split (sklearn's train_test_split, twice)."""
    from sklearn.model_selection import train_test_split

    if min(val_fraction, test_fraction) <= 0 or val_fraction + test_fraction >= 1:
        raise ValueError("val and test fractions must be positive and sum to less than 1")
    everything = np.arange(len(labels))
    rest, test = train_test_split(
        everything, test_size=test_fraction, stratify=labels, random_state=seed
    )
    train, val = train_test_split(
        rest,
        test_size=val_fraction / (1.0 - test_fraction),
        stratify=labels[rest],
        random_state=seed,
    )
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


def load_digits_task(
    config: Any = None,
    data_dir: str | Path | None = None,
    *,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    split_seed: int = 0,
) -> DigitsTask:
    """The digits task. ``config`` (a DataConfig) and ``data_dir`` are accepted for the common
    ``load_task`` signature and unused: the data ship with scikit-learn."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    labels = np.asarray(bunch.target, dtype=np.int64)
    split = stratified_split(labels, val_fraction, test_fraction, split_seed)
    return DigitsTask(bunch.images, labels, split)


__all__ = ["DigitsTask", "load_digits_task", "stratified_split"]
