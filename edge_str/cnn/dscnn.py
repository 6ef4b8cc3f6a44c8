"""DS-CNN for keyword spotting.

Zhang, Suda, Lai, Chandra, "Hello Edge: Keyword Spotting on Microcontrollers", 2017, sec. 3 and
the ARM ML-KWS-for-MCU reference layouts:

    conv k_t x k_f, stride (s_t, s_f), 'SAME'   -> BN -> ReLU                    (B, C, T', F')
    N x [ depthwise 3x3 (stride) -> BN -> ReLU,  pointwise 1x1 -> BN -> ReLU ]  (B, C, T'', F'')
    global average pool -> linear                                                (B, classes)

Sizes (C channels, first conv, first depthwise stride; ``width`` multiplies C):
    S: C=64,  10x4 stride (2, 2), 4 blocks, all stride 1
    M: C=172, 10x4 stride (2, 1), 4 blocks, first block stride 2
    L: C=276, 10x4 stride (2, 1), 5 blocks, first block stride 2
The first convolution pads exactly like TensorFlow's 'SAME' (possibly asymmetric), so on Hello
Edge's 49x10 MFCC input DS-CNN-S has its published cost, 2.66 M multiply-adds (5.4 M ops).
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from edge_str.cnn.blocks import ConvBNReLU, ImageClassifier, same_padding, scale_width

# size -> (channels, first-conv kernel, first-conv stride, number of blocks, first-block stride)
DSCNN_SIZES: dict[str, tuple[int, tuple[int, int], tuple[int, int], int, int]] = {
    "s": (64, (10, 4), (2, 2), 4, 1),
    "m": (172, (10, 4), (2, 1), 4, 2),
    "l": (276, (10, 4), (2, 1), 5, 2),
}


class DepthwiseSeparable(nn.Module):
    """Depthwise 3x3 (one filter per channel) -> BN -> ReLU, then pointwise 1x1 -> BN -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.depthwise = ConvBNReLU(in_channels, in_channels, 3, stride, 1, groups=in_channels)
        self.pointwise = ConvBNReLU(in_channels, out_channels, 1)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))


class DSCNN(ImageClassifier):
    """Hello Edge DS-CNN on (T, F) features (or an (H, W, C) image)."""

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        *,
        size: str = "s",
        width: float = 1.0,
    ) -> None:
        super().__init__(input_shape)
        if size not in DSCNN_SIZES:
            raise ValueError(f"DS-CNN size must be one of {sorted(DSCNN_SIZES)}, got {size!r}")
        base, kernel, stride, blocks, first_stride = DSCNN_SIZES[size]
        channels = scale_width(base, width)
        pad_t = same_padding(self.image_size[0], kernel[0], stride[0])
        pad_f = same_padding(self.image_size[1], kernel[1], stride[1])
        self.stem = nn.Sequential(
            OrderedDict(
                pad=nn.ZeroPad2d((pad_f[0], pad_f[1], pad_t[0], pad_t[1])),
                conv=nn.Conv2d(self.in_channels, channels, kernel, stride, bias=False),
                bn=nn.BatchNorm2d(channels),
                relu=nn.ReLU(inplace=True),
            )
        )
        self.blocks = nn.Sequential(
            *(
                DepthwiseSeparable(channels, channels, first_stride if i == 0 else 1)
                for i in range(blocks)
            )
        )
        self.head = nn.Linear(channels, num_classes)
        self.init_weights()

    def features(self, x):
        return self.blocks(self.stem(x))
