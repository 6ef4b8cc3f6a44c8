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

from pathlib import Path
from typing import Any

import numpy as np
import torch

from edge_str.data.task import TaskData


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
) -> TaskData:
    """The digits task as ``TaskData``: raw pixels (N, 8, 8, 1), per-channel statistics.

    ``config`` (a DataConfig) and ``data_dir`` are accepted for the common ``load_task``
    signature and unused: the data ship with scikit-learn.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    labels = np.asarray(bunch.target, dtype=np.int64)
    split = stratified_split(labels, val_fraction, test_fraction, split_seed)
    x = torch.from_numpy(np.asarray(bunch.images, dtype=np.float32)).unsqueeze(-1)  # (N, 8, 8, 1)
    y = torch.from_numpy(labels)
    return TaskData(
        "digits",
        [str(d) for d in range(10)],
        {name: (x[torch.from_numpy(idx)], y[torch.from_numpy(idx)]) for name, idx in split.items()},
        info={"source": "sklearn.datasets.load_digits", "split_seed": split_seed},
        sources={name: [f"digits[{i}]" for i in idx] for name, idx in split.items()},
        min_last_batch=2,
    )


__all__ = ["load_digits_task", "stratified_split"]
