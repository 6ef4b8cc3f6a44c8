"""ResNet with BasicBlock and Bottleneck, a width multiplier and two stems.

He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016, Table 1; the
bottleneck strides in its 3x3 convolution (the "v1.5" layout of torchvision and of the official
STR code, whose ResNet50 costs 4.09 G multiply-adds at 224x224 -- the paper's "4.09G FLOPs").

    block(x) = relu(F(x) + shortcut(x)),  shortcut = 1x1 conv + BN where the shape changes
    BasicBlock:  F = conv3x3 -> BN -> ReLU -> conv3x3 -> BN                    (expansion 1)
    Bottleneck:  F = conv1x1 -> BN -> ReLU -> conv3x3 -> BN -> ReLU -> conv1x1 -> BN  (x4)

Stages of 64, 128, 256, 512 (x width) planes, strides 1, 2, 2, 2. Stems:
    imagenet  conv 7x7 stride 2 -> BN -> ReLU -> max pool 3x3 stride 2   (224x224 inputs)
    cifar     conv 3x3 stride 1 -> BN -> ReLU                            (small inputs, e.g. 8x8)
    auto      imagenet when the smaller image side is at least 64, else cifar
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from edge_str.cnn.blocks import ConvBNReLU, ImageClassifier, scale_width

STEMS = ("auto", "imagenet", "cifar")


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_planes, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out_planes = planes * self.expansion
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_planes, out_planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


def _shortcut(in_planes: int, out_planes: int, stride: int) -> nn.Module | None:
    if stride == 1 and in_planes == out_planes:
        return None
    return nn.Sequential(
        nn.Conv2d(in_planes, out_planes, 1, stride, bias=False), nn.BatchNorm2d(out_planes)
    )


# depth -> (block, blocks per stage)
RESNET_DEPTHS: dict[int, tuple[type[nn.Module], tuple[int, int, int, int]]] = {
    10: (BasicBlock, (1, 1, 1, 1)),
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}


def resolve_stem(stem: str, image_size: tuple[int, int]) -> str:
    if stem not in STEMS:
        raise ValueError(f"stem must be one of {STEMS}, got {stem!r}")
    if stem == "auto":
        return "imagenet" if min(image_size) >= 64 else "cifar"
    return stem


class ResNet(ImageClassifier):
    """ResNet-{10,18,34,50,101,152} for (T, F) features or (H, W, C) images."""

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        *,
        depth: int = 18,
        width: float = 1.0,
        stem: str = "auto",
    ) -> None:
        super().__init__(input_shape)
        if depth not in RESNET_DEPTHS:
            raise ValueError(f"ResNet depth must be one of {sorted(RESNET_DEPTHS)}, got {depth}")
        block, counts = RESNET_DEPTHS[depth]
        self.depth, self.stem_kind = depth, resolve_stem(stem, self.image_size)
        planes = [scale_width(p, width) for p in (64, 128, 256, 512)]
        if self.stem_kind == "imagenet":
            self.stem = nn.Sequential(
                OrderedDict(
                    conv=nn.Conv2d(self.in_channels, planes[0], 7, 2, 3, bias=False),
                    bn=nn.BatchNorm2d(planes[0]),
                    relu=nn.ReLU(inplace=True),
                    pool=nn.MaxPool2d(3, 2, 1),
                )
            )
        else:
            self.stem = ConvBNReLU(self.in_channels, planes[0], 3, 1, 1)
        in_planes = planes[0]
        for index, (p, count) in enumerate(zip(planes, counts)):
            stride = 1 if index == 0 else 2
            blocks = []
            for i in range(count):
                blocks.append(block(in_planes, p, stride if i == 0 else 1))
                in_planes = p * block.expansion
            self.add_module(f"layer{index + 1}", nn.Sequential(*blocks))
        self.head = nn.Linear(in_planes, num_classes)
        self.init_weights()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))
