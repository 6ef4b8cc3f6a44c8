"""Shared pieces of the CNN classifiers: input convention, conv-BN-ReLU, width scaling, init.

Input convention (one rule for spectrograms and images, so that the data loaders' ``mean``/``std``
of shape (F,) over the *last* dimension fit every model):

    input_shape (T, F)     raw features (B, T, F), e.g. 99 frames x 32 log-mel bands.
                           FeatureNormalizer over F (one mean/std per band), then a 1-channel
                           image (B, 1, T, F).
    input_shape (H, W, C)  channels-last raw image (B, H, W, C), e.g. digits (8, 8, 1), ImageNet
                           (224, 224, 3). FeatureNormalizer over C (per-channel statistics, as
                           ImageNet's mean/std), then permuted to NCHW (B, C, H, W).

Every classifier is ``normalizer -> features -> global average pool -> head (nn.Linear)``; the
normaliser's buffers travel in checkpoints and in the exported graph, so deployed models take raw
input. Convolutions carry no bias (a BatchNorm follows each); weights are He-normal (fan-in),
the initialisation of the official STR code.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import nn

from edge_str.normalize import FeatureNormalizer


def scale_width(channels: int, width: float) -> int:
    """Channels after the width multiplier: round(c * width), at least 1."""
    if width <= 0:
        raise ValueError(f"width multiplier must be positive, got {width}")
    return max(1, int(round(channels * width)))


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'SAME' padding (before, after) for one dimension: output = ceil(size / stride)."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class ConvBNReLU(nn.Sequential):
    """conv (no bias) -> BatchNorm -> ReLU; ``groups=channels`` makes it depthwise."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        groups: int = 1,
        relu: bool = True,
    ) -> None:
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        layers["conv"] = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=False
        )
        layers["bn"] = nn.BatchNorm2d(out_channels)
        if relu:
            layers["relu"] = nn.ReLU(inplace=True)
        super().__init__(layers)


class ImageClassifier(nn.Module):
    """Base of the CNNs: raw input -> normalised NCHW image; ``head`` is the last layer.

    Subclasses register ``normalizer`` first and ``head`` last and implement ``features``; the
    registration order is the forward order of the conv/linear layers, which is how the first
    and last layers are found (``edge_str.cnn.sparsity.prunable_layers``).
    """

    def __init__(self, input_shape: tuple[int, ...]) -> None:
        super().__init__()
        input_shape = tuple(int(d) for d in input_shape)
        if len(input_shape) not in (2, 3) or min(input_shape) < 1:
            raise ValueError(
                f"CNN input must be (T, F) features or an (H, W, C) image, got {input_shape}"
            )
        self.input_shape = input_shape
        self.in_channels = 1 if len(input_shape) == 2 else input_shape[2]
        self.normalizer = FeatureNormalizer(input_shape[-1])

    @property
    def image_size(self) -> tuple[int, int]:
        return self.input_shape[0], self.input_shape[1]

    def to_image(self, x: torch.Tensor) -> torch.Tensor:
        """Raw (B, T, F) or (B, H, W, C) -> normalised (B, C, H, W)."""
        x = self.normalizer(x)
        return x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2)

    def features(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C', H', W')
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw input (B, *input_shape) -> logits (B, classes)."""
        x = self.features(self.to_image(x))
        return self.head(x.mean(dim=(2, 3)))  # global average pool -> (B, C')

    def init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
