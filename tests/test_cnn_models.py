"""The CNN classifiers: shapes, parameter counts against the published architectures, the input
convention (normaliser first, head last), stems and width multipliers."""

import pytest
import torch
from torch import nn

from edge_str.cnn import DSCNN, MobileNetV1, ResNet
from edge_str.cnn.blocks import same_padding, scale_width
from edge_str.config import ModelConfig
from edge_str.errors import EdgeStrError
from edge_str.models import build_model
from edge_str.normalize import FeatureNormalizer


def _count(model, kind):
    return sum(1 for m in model.modules() if isinstance(m, kind))


def _params(model):
    return sum(p.numel() for p in model.parameters())


def _meta(cls, *args, **kwargs):
    with torch.device("meta"):
        return cls(*args, **kwargs)


@pytest.mark.parametrize(
    "model, batch",
    [
        (DSCNN((99, 32), 12, width=0.25), (3, 99, 32)),
        (DSCNN((99, 32), 12, size="m", width=0.1), (3, 99, 32)),
        (ResNet((8, 8, 1), 10, depth=10, width=0.125), (3, 8, 8, 1)),
        (ResNet((8, 8, 1), 10, depth=50, width=0.125), (3, 8, 8, 1)),
        (ResNet((99, 32), 12, depth=18, width=0.125), (3, 99, 32)),
        (MobileNetV1((8, 8, 1), 10, width=0.125), (3, 8, 8, 1)),
        (MobileNetV1((64, 64, 3), 5, width=0.125), (3, 64, 64, 3)),
    ],
)
def test_forward_shape_and_layout(model, batch):
    children = list(model.named_children())
    assert children[0][0] == "normalizer" and isinstance(children[0][1], FeatureNormalizer)
    assert children[-1][0] == "head" and isinstance(children[-1][1], nn.Linear)
    assert model.normalizer.mean.shape == (batch[-1],)  # statistics over the last dimension
    logits = model(torch.randn(batch))
    assert logits.shape == (3, model.head.out_features)
    assert torch.isfinite(logits).all()


def test_registration_order_is_forward_order():
    # First/last layer selection relies on it (stem conv first, head last).
    for model in (
        ResNet((8, 8, 1), 10, depth=18, width=0.125),
        ResNet((8, 8, 1), 10, depth=50, width=0.125),
        MobileNetV1((8, 8, 1), 10, width=0.125),
        DSCNN((49, 10), 12, width=0.25),
    ):
        called = []
        layers = {
            m: name for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))
        }

        def record(module, inputs, output, called=called, layers=layers):
            called.append(layers[module])

        hooks = [m.register_forward_hook(record) for m in layers]
        model.eval()(torch.randn(2, *model.input_shape))
        for h in hooks:
            h.remove()
        assert called == list(layers.values())
        assert called[0].startswith("stem") and called[-1] == "head"


def test_normalizer_makes_model_take_raw_input():
    torch.manual_seed(0)
    model = ResNet((8, 8, 3), 4, depth=10, width=0.125).eval()
    x = torch.randn(5, 8, 8, 3)
    reference = model(x)
    mean, std = torch.tensor([10.0, -2.0, 0.5]), torch.tensor([3.0, 0.5, 8.0])
    model.normalizer.set_statistics(mean, std)
    # per-channel statistics over the channels-last dimension
    assert torch.allclose(model(x * std + mean), reference, atol=1e-5)


def test_published_parameter_counts():
    # torchvision / the papers: ResNet18 11,689,512, ResNet50 25,557,032, MobileNetV1 4.2 M
    assert _params(_meta(ResNet, (224, 224, 3), 1000, depth=18)) == 11_689_512
    resnet50 = _meta(ResNet, (224, 224, 3), 1000, depth=50)
    assert _params(resnet50) == 25_557_032
    assert _count(resnet50, nn.Conv2d) == 53 and _count(resnet50, nn.Linear) == 1
    mobilenet = _meta(MobileNetV1, (224, 224, 3), 1000)
    assert _params(mobilenet) == 4_231_976
    assert _count(mobilenet, nn.Conv2d) == 27
    assert resnet50.stem_kind == "imagenet" and mobilenet.stem_kind == "imagenet"


def test_dscnn_small_by_hand():
    # Hello Edge DS-CNN-S on 49x10 MFCCs: conv 10x4 s2 'SAME' -> 25x5x64, 4 DS blocks, FC.
    model = DSCNN((49, 10), 12)
    conv = model.stem.conv
    assert conv.kernel_size == (10, 4) and conv.stride == (2, 2) and conv.out_channels == 64
    stem_out = model.stem(torch.zeros(1, 1, 49, 10))
    assert stem_out.shape == (1, 64, 25, 5)
    first_conv = 64 * 10 * 4 + 2 * 64
    block = 64 * 9 + 2 * 64 + 64 * 64 + 2 * 64  # depthwise + BN + pointwise + BN
    assert _params(model) == first_conv + 4 * block + 64 * 12 + 12 == 23_180
    depthwise = model.blocks[0].depthwise.conv
    assert depthwise.groups == 64 and depthwise.weight.shape == (64, 1, 3, 3)
    large = DSCNN((99, 32), 12, size="l")
    assert len(large.blocks) == 5 and large.head.in_features == 276


def test_same_padding_and_width():
    assert same_padding(49, 10, 2) == (4, 5)  # 25 outputs
    assert same_padding(10, 4, 2) == (1, 1)  # 5 outputs
    assert same_padding(8, 3, 1) == (1, 1)
    assert scale_width(64, 0.25) == 16 and scale_width(3, 0.1) == 1
    with pytest.raises(ValueError):
        scale_width(64, 0.0)


def test_width_multiplier_and_stems():
    model = ResNet((8, 8, 1), 10, depth=18, width=0.5)
    assert model.stem_kind == "cifar" and model.stem.conv.kernel_size == (3, 3)
    assert [model.layer1[0].conv1.out_channels, model.layer4[0].conv1.out_channels] == [32, 256]
    # a cifar stem keeps 8x8 resolution into stage 1; the imagenet stem divides it by 4
    assert model.eval().features(torch.zeros(1, 1, 8, 8)).shape == (1, 256, 1, 1)
    forced = ResNet((8, 8, 1), 10, depth=18, width=0.5, stem="imagenet")
    assert forced.stem.conv.kernel_size == (7, 7)
    mobile = MobileNetV1((8, 8, 1), 10, width=0.5)
    assert mobile.stem.conv.stride == (1, 1) and mobile.head.in_features == 512


def test_build_model_dispatch_and_errors():
    cfg = ModelConfig(arch="resnet", depth=10, width=0.125, sparsity="dense")
    assert isinstance(build_model(cfg, (8, 8, 1), 10), ResNet)
    cfg = ModelConfig(arch="dscnn-m", width=0.1, sparsity="dense")
    model = build_model(cfg, (99, 32), 12)
    assert isinstance(model, DSCNN) and model.stem.conv.stride == (2, 1)
    cfg = ModelConfig(arch="mobilenetv1", width=0.125, sparsity="dense")
    assert isinstance(build_model(cfg, (8, 8, 1), 10), MobileNetV1)
    for bad in (
        ModelConfig(arch="resnet", depth=19),
        ModelConfig(arch="resnet", width=0.0),
        ModelConfig(arch="resnet", stem="tiny"),
        ModelConfig(arch="vgg"),
    ):
        with pytest.raises(EdgeStrError):
            build_model(bad, (8, 8, 1), 10)
    with pytest.raises(EdgeStrError):
        build_model(ModelConfig(arch="dscnn"), (8,), 10)
