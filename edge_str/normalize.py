"""Per-feature normalisation whose statistics travel with the model (and into ONNX)."""

from __future__ import annotations

import torch
from torch import nn


class FeatureNormalizer(nn.Module):
    """(x - mean) / std over the last dimension, with statistics from the training split.

    Stored as buffers so they are saved in every checkpoint and exported in the graph: a
    deployed model takes raw features.
    """

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(num_features))
        self.register_buffer("std", torch.ones(num_features))

    @torch.no_grad()
    def set_statistics(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        if mean.shape != self.mean.shape or std.shape != self.std.shape:
            raise ValueError(
                f"statistics of shape {tuple(mean.shape)}/{tuple(std.shape)} do not match "
                f"{self.mean.numel()} features"
            )
        self.mean.copy_(mean)
        self.std.copy_(std.clamp_min(1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std
