"""MobileNetV1 with a width multiplier.

Howard et al., "MobileNets: Efficient Convolutional Neural Networks for Mobile Vision
Applications", 2017, Table 1: conv 3x3 (32, stride 2), then 13 depthwise-separable blocks
(depthwise 3x3 -> BN -> ReLU, pointwise 1x1 -> BN -> ReLU), global average pool, linear.
At 224x224 and width 1: 4.2 M parameters and 569 M multiply-adds (Table 1 counts the same layers
as ``edge_str.cnn.flops``). The width multiplier alpha scales every layer's channels (sec. 3.3).

Stem: "imagenet" keeps the stride-2 first convolution; "cifar" makes it stride 1 for small images;
"auto" picks imagenet when the smaller side is at least 64.
"""

from __future__ import annotations

from torch import nn

from edge_str.cnn.blocks import ConvBNReLU, ImageClassifier, scale_width
from edge_str.cnn.dscnn import DepthwiseSeparable
from edge_str.cnn.resnet import resolve_stem

# (pointwise output channels, depthwise stride) of the 13 blocks of Table 1.
MOBILENET_V1_BLOCKS: tuple[tuple[int, int], ...] = (
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (1024, 2),
    (1024, 1),
)


class MobileNetV1(ImageClassifier):
    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        *,
        width: float = 1.0,
        stem: str = "auto",
    ) -> None:
        super().__init__(input_shape)
        self.stem_kind = resolve_stem(stem, self.image_size)
        channels = scale_width(32, width)
        stride = 2 if self.stem_kind == "imagenet" else 1
        self.stem = ConvBNReLU(self.in_channels, channels, 3, stride, 1)
        blocks = []
        for out, block_stride in MOBILENET_V1_BLOCKS:
            out = scale_width(out, width)
            blocks.append(DepthwiseSeparable(channels, out, block_stride))
            channels = out
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(channels, num_classes)
        self.init_weights()

    def features(self, x):
        return self.blocks(self.stem(x))
