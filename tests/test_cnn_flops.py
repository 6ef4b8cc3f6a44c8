"""FLOP (multiply-accumulate) counting against hand counts and published totals; the budget
report and its plot."""

import json

import pytest
import torch
from torch import nn

from edge_str.cnn import DSCNN, MobileNetV1, ResNet
from edge_str.cnn.flops import budget_report, layer_costs, plot_budget
from edge_str.cnn.sparsity import overall_sparsity
from edge_str.config import ModelConfig
from edge_str.models import build_model
from edge_str.parametrization import threshold_parameters


def _only(model, input_shape):
    (cost,) = layer_costs(model, input_shape)
    return cost


def test_plain_conv_by_hand():
    cost = _only(nn.Conv2d(3, 8, 3, padding=1), (3, 10, 12))
    assert cost.type == "conv" and cost.output_shape == [8, 10, 12]
    assert cost.params == 8 * 3 * 3 * 3 and cost.bias == 8
    assert cost.dense_macs == 10 * 12 * 8 * 3 * 3 * 3 == 25_920
    # strided, rectangular kernel, padding: (9 + 2 - 3) // 2 + 1 = 5, (11 + 4 - 5) // 2 + 1 = 6
    cost = _only(nn.Conv2d(4, 6, (3, 5), stride=2, padding=(1, 2), bias=False), (4, 9, 11))
    assert cost.output_shape == [6, 5, 6] and cost.stride == [2, 2] and cost.kernel == [3, 5]
    assert cost.dense_macs == 5 * 6 * 6 * 4 * 3 * 5 == 10_800


def test_depthwise_and_grouped_conv_by_hand():
    cost = _only(nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False), (16, 8, 8))
    assert cost.type == "depthwise" and cost.params == 16 * 9
    assert cost.dense_macs == 8 * 8 * 16 * 9 == 9_216  # C_in / groups = 1
    cost = _only(nn.Conv2d(8, 12, 3, groups=4, bias=False), (8, 6, 6))
    assert cost.type == "grouped" and cost.dense_macs == 4 * 4 * 12 * 2 * 9 == 3_456


def test_linear_and_sparse_macs_by_hand():
    linear = nn.Linear(20, 7)
    assert _only(linear, (5, 20)).dense_macs == 5 * 20 * 7
    conv = nn.Conv2d(2, 4, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.arange(72, dtype=torch.float32).view(4, 2, 3, 3) % 3)  # 24 zeros
    cost = _only(conv, (2, 5, 5))
    assert cost.nonzero == 48 and cost.sparsity == pytest.approx(1 / 3)
    assert cost.sparse_macs == 25 * 48 and cost.dense_macs == 25 * 72


def test_dscnn_small_matches_hello_edge():
    # 49x10 MFCC: stem 25x5x64 (10x4 kernel), 4 x (depthwise 3x3 + pointwise 64x64), FC 64x12.
    costs = layer_costs(DSCNN((49, 10), 12).eval())
    expected = 25 * 5 * 64 * 40 + 4 * (125 * 64 * 9 + 125 * 64 * 64) + 64 * 12
    assert sum(c.dense_macs for c in costs) == expected == 2_656_768  # Hello Edge: 5.4 M ops
    assert [c.type for c in costs[:3]] == ["conv", "depthwise", "conv"] and len(costs) == 10


def test_published_macs_at_224():
    with torch.device("meta"):
        resnet50 = ResNet((224, 224, 3), 1000, depth=50)
        resnet18 = ResNet((224, 224, 3), 1000, depth=18)
        mobilenet = MobileNetV1((224, 224, 3), 1000)
    report = budget_report(resnet50)
    assert report["dense_macs"] == pytest.approx(4.09e9, rel=0.02)  # the paper's 4.09G FLOPs
    assert report["params"] + report["other_params"] == 25_557_032
    assert len(report["layers"]) == 54 and report["layers"][0]["output_shape"] == [64, 112, 112]
    assert budget_report(resnet18)["dense_macs"] == pytest.approx(1.82e9, rel=0.01)
    assert budget_report(mobilenet)["dense_macs"] == pytest.approx(569e6, rel=0.01)  # Table 1


def test_budget_report_of_a_sparse_model():
    torch.manual_seed(0)
    cfg = ModelConfig(arch="resnet", depth=10, width=0.25, cnn_s_init=-2.5)
    model = build_model(cfg, (8, 8, 1), 10)
    model.train()
    report = budget_report(model)
    assert model.training  # restored after the eval-mode dummy forward
    json.dumps(report)  # goes into final.json as is
    layers = report["layers"]
    assert [e["layer"] for e in layers][:2] == ["stem.conv", "layer1.0.conv1"]
    assert layers[0]["sparsified"] is False and layers[-1]["sparsified"] is False
    assert layers[0]["sparsity"] == 0.0 and layers[0]["threshold"] is None
    assert all(e["sparsified"] for e in layers[1:-1])
    assert layers[1]["threshold"] == pytest.approx(torch.sigmoid(torch.tensor(-2.5)).item())
    modules = dict(model.named_modules())
    for entry in layers:
        weight = modules[entry["layer"]].weight
        zeros = int((weight == 0).sum())
        assert entry["params"] == weight.numel() and entry["nonzero"] == weight.numel() - zeros
        assert entry["sparse_macs"] * entry["params"] == entry["dense_macs"] * entry["nonzero"]
    assert 0.05 < report["sparsity"] < report["sparsified_sparsity"] < 1.0
    assert report["sparsity"] == pytest.approx(overall_sparsity(model))
    assert report["sparse_macs"] == sum(e["sparse_macs"] for e in layers) < report["dense_macs"]
    assert report["mac_fraction"] == pytest.approx(report["sparse_macs"] / report["dense_macs"])
    batch_norm = sum(
        p.numel() for m in model.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters()
    )
    assert report["other_params"] == batch_norm + model.head.bias.numel()  # convs have no bias
    assert len(threshold_parameters(model)) == len(layers) - 2


def test_budget_plot_is_a_png(tmp_path):
    model = build_model(ModelConfig(arch="dscnn", width=0.25, cnn_s_init=-3.0), (49, 10), 12)
    path = plot_budget(budget_report(model), tmp_path / "plots" / "budget.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000
    import matplotlib.image

    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 300
    assert sorted(p.name for p in path.parent.iterdir()) == ["budget.png"]  # no temp left
    assert float(image[..., :3].std()) > 0.05  # something is drawn
