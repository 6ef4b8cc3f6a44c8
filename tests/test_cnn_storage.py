"""Weight storage in bytes: dense float32, values + indices, values + bitmask."""

import math

import torch
from torch import nn

from edge_str.cnn.sparsity import bake_sparsity
from edge_str.cnn.storage import index_bytes, weight_storage
from edge_str.config import ModelConfig
from edge_str.models import build_model


def test_index_width():
    assert [index_bytes(n) for n in (1, 256, 257, 65_536, 65_537)] == [1, 1, 2, 2, 4]


def test_bytes_by_hand():
    linear = nn.Linear(10, 20)  # 200 weights -> 1-byte indices
    conv = nn.Conv2d(8, 16, 3, bias=False)  # 1152 weights -> 2-byte indices
    with torch.no_grad():
        linear.weight.copy_(torch.zeros(20, 10))
        linear.weight[:5, :6] = 1.0  # 30 nonzero
        conv.weight.copy_(torch.ones(16, 8, 3, 3))
        conv.weight[:, :4] = 0.0  # 576 nonzero
    model = nn.Sequential(conv, nn.BatchNorm2d(16), nn.Flatten(), linear)
    report = weight_storage(model)
    by_name = {layer["layer"]: layer for layer in report["layers"]}
    c, lin = by_name["0"], by_name["3"]
    assert (c["numel"], c["nonzero"], c["index_bytes"]) == (1152, 576, 2)
    assert c["dense_bytes"] == 4608
    assert c["indices_bytes"] == 576 * 6 == 3456
    assert c["bitmask_bytes"] == 576 * 4 + 144 == 2448
    assert c["best_format"] == "bitmask"
    assert (lin["numel"], lin["nonzero"], lin["index_bytes"]) == (200, 30, 1)
    assert (lin["dense_bytes"], lin["indices_bytes"], lin["bitmask_bytes"]) == (800, 150, 145)
    assert report["weights"]["dense_bytes"] == 5408
    assert report["weights"]["best_bytes"] == 2448 + 145
    # batch norm: weight, bias, running mean and var (16 each); linear bias 20
    assert report["other_floats"] == 4 * 16 + 20
    assert report["total_dense_bytes"] == 5408 + 4 * 84


def test_str_model_before_and_after_baking():
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="dscnn", width=0.25, cnn_s_init=-3.0), (49, 10), 12)
    before = weight_storage(model)
    nonzero = before["weights"]["nonzero"]
    assert 0 < nonzero < before["weights"]["numel"]
    # thresholds and the original (pre-threshold) weights are not counted twice
    floats = sum(p.numel() for p in model.parameters()) + sum(
        b.numel() for b in model.buffers() if b.is_floating_point()
    )
    thresholds = 8  # one per sparsified layer (DS-CNN-S: 8 of 10 conv/linear)
    assert before["weights"]["numel"] + before["other_floats"] == floats - thresholds
    bake_sparsity(model)
    after = weight_storage(model)
    assert after == before
    assert after["weights"]["bitmask_bytes"] == 4 * nonzero + sum(
        math.ceil(layer["numel"] / 8) for layer in after["layers"]
    )
