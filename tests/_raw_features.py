"""Raw-feature data for the export tests: a known class rule around a known mean and std, so the
exported normaliser has something to undo."""

from __future__ import annotations

import torch


def raw_features(
    n: int, seed: int, mean: torch.Tensor, std: torch.Tensor, steps: int, classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, steps, features) around (mean, std); the class is which of the first ``classes``
    features is largest on average."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, steps, mean.numel(), generator=g)
    y = z[:, :, :classes].mean(1).argmax(1)
    return (mean + std * z).float(), y


def feature_stats(features: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """A mean far from 0 and a std far from 1, per feature."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(features, generator=g) * 3, torch.rand(features, generator=g) * 2 + 0.5
