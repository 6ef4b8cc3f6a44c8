"""``TaskData``: what the trainer sees of a data set, whatever its source.

Splits are held as raw (unnormalised) feature tensors; ``mean``/``std`` come from the training
split only and travel with the model (``FeatureNormalizer``). Training batches are a
deterministic function of (seed, epoch, batch_size), so a resumed run reproduces exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

SPLITS = ("train", "val", "test")

# (indices into the training split, generator) -> augmented features [B, T, F]
Augment = Callable[[np.ndarray, np.random.Generator], torch.Tensor]


class TaskData:
    def __init__(
        self,
        task: str,
        class_names: list[str],
        splits: dict[str, tuple[torch.Tensor, torch.Tensor]],
        augment: Augment | None = None,
        info: dict[str, Any] | None = None,
        sources: dict[str, list[str]] | None = None,
        min_last_batch: int = 1,
    ) -> None:
        missing = [s for s in SPLITS if s not in splits]
        if missing:
            raise ValueError(f"splits missing: {missing}")
        self.task = task
        self.class_names = list(class_names)
        self._splits = {s: (x.to(torch.float32), y.to(torch.int64)) for s, (x, y) in splits.items()}
        x_train = self._splits["train"][0]
        # (T, F) for sequences, (H, W, C) for channels-last images; statistics per last dim
        self.input_shape: tuple[int, ...] = tuple(int(d) for d in x_train.shape[1:])
        self.mean, self.std = feature_statistics(
            x_train.reshape(len(x_train), -1, x_train.shape[-1])
        )
        # A one-example last batch breaks batch norm on 1x1 maps (CNNs): such tasks drop it.
        self.min_last_batch = min_last_batch
        self._augment = augment
        self._info = dict(info or {})
        self._sources = sources

    def split_tensors(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(x float32 [N, T, F] raw features, y int64 [N]); "train" is un-augmented."""
        return self._splits[_check_split(split)]

    def example_sources(self, split: str) -> list[str]:
        """Where each example of ``split`` came from (e.g. its WAV path), in tensor order."""
        if self._sources is None:
            raise NotImplementedError(f"{self.task} data does not record example sources")
        return list(self._sources[_check_split(split)])

    def num_examples(self, split: str) -> int:
        return int(self._splits[_check_split(split)][1].shape[0])

    def num_batches(self, batch_size: int) -> int:
        """Training batches per epoch (what ``train_batches`` yields)."""
        full, rest = divmod(self.num_examples("train"), batch_size)
        return full + (1 if rest >= self.min_last_batch and rest > 0 else 0)

    def train_batches(
        self, epoch: int, batch_size: int, seed: int
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Shuffled (and, where the task has it, augmented) training batches.

        Everything random comes from one generator seeded by (seed, epoch), so the same
        arguments give the same batches in any process; the last batch may be smaller (a last
        batch under ``min_last_batch`` examples is dropped).
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        x, y = self._splits["train"]
        rng = np.random.default_rng([_u64(seed), _u64(epoch)])
        order = rng.permutation(len(y))
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            if len(idx) < self.min_last_batch:
                return
            batch = self._augment(idx, rng) if self._augment else x[torch.from_numpy(idx)]
            yield batch, y[torch.from_numpy(idx)]

    def summary(self) -> dict[str, Any]:
        """Per split: examples and count per class; input shape; class names; source details."""
        splits = {}
        for split in SPLITS:
            counts = torch.bincount(self._splits[split][1], minlength=len(self.class_names))
            splits[split] = {
                "examples": self.num_examples(split),
                "per_class": {n: int(c) for n, c in zip(self.class_names, counts.tolist())},
            }
        return {
            "task": self.task,
            "input_shape": list(self.input_shape),
            "class_names": self.class_names,
            "splits": splits,
            **self._info,
        }


def feature_statistics(x: torch.Tensor, chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-feature mean and (population) std over examples and time, accumulated in float64."""
    count = x.shape[0] * x.shape[1]
    if count == 0:
        raise ValueError("no training examples to compute statistics from")
    total = torch.zeros(x.shape[2], dtype=torch.float64)
    squares = torch.zeros(x.shape[2], dtype=torch.float64)
    for start in range(0, x.shape[0], chunk):
        part = x[start : start + chunk].to(torch.float64)
        total += part.sum(dim=(0, 1))
        squares += part.square().sum(dim=(0, 1))
    mean = total / count
    var = (squares / count - mean.square()).clamp_min(0)
    return mean.to(torch.float32), var.sqrt().to(torch.float32)


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return split


def _u64(value: int) -> int:
    return int(value) & 0xFFFF_FFFF_FFFF_FFFF  # SeedSequence wants non-negative integers
