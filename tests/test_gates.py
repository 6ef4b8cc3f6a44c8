"""Piecewise-linear gates (model.gates: piecewise): the functions, training, config, export."""

from __future__ import annotations

import pytest
import torch

from edge_str.config import make_config
from edge_str.errors import EdgeStrError
from edge_str.fastgrnn import FastGRNNClassifier, piecewise_sigmoid, piecewise_tanh
from edge_str.models import build_model


def test_piecewise_functions_are_the_clamped_lines():
    x = torch.linspace(-5, 5, 101)
    assert torch.equal(piecewise_tanh(x), x.clamp(-1, 1))
    assert torch.equal(piecewise_sigmoid(x), (x / 4 + 0.5).clamp(0, 1))
    # the same identity as sigmoid(x) = (tanh(x / 2) + 1) / 2, and the slopes at 0 of the smooth
    assert torch.allclose(piecewise_sigmoid(x), (piecewise_tanh(x / 2) + 1) / 2)


def test_piecewise_model_runs_its_gates_and_trains():
    torch.manual_seed(0)
    model = FastGRNNClassifier(4, 8, 3, gates="piecewise")
    x = torch.randn(5, 7, 4) * 3
    cell = model.rnn.cell
    h = torch.zeros(5, 8)
    for t in range(7):
        wx = cell.W(model.normalizer(x)[:, t])
        pre = wx + h @ cell.U.matrix().T
        z = (pre + cell.bias_gate).div(4).add(0.5).clamp(0, 1)
        c = (pre + cell.bias_update).clamp(-1, 1)
        h = z * h + (torch.sigmoid(cell.zeta) * (1 - z) + torch.sigmoid(cell.nu)) * c
    assert torch.allclose(model.rnn(model.normalizer(x)), h, atol=1e-6)
    loss = torch.nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 2, 0, 1]))
    loss.backward()
    assert cell.U.w1.grad is not None and cell.U.w1.grad.abs().sum() > 0


def test_gates_setting_is_validated_and_built():
    cfg = make_config("google12", overrides={"model": {"hidden": 8, "gates": "piecewise"}})
    assert build_model(cfg.model, (5, 4), 3).rnn.cell.gates == "piecewise"
    cfg.model.gates = "hard"
    with pytest.raises(EdgeStrError, match=r"unknown gates 'hard'; choose from exact, piecewise"):
        build_model(cfg.model, (5, 4), 3)


def test_onnx_export_computes_the_piecewise_gates(tmp_path):
    from edge_str.export import export_model
    from edge_str.export.compact_model import compact_fastgrnn
    from edge_str.export.scan_graph import scan_sequence_graph

    torch.manual_seed(0)
    model = FastGRNNClassifier(4, 8, 3, gates="piecewise").eval()
    x = torch.randn(16, 6, 4) * 3
    report = export_model(model, tmp_path / "m.onnx", x, streaming=True)
    assert "Clip" in report["op_types"] and "Sigmoid" not in report["op_types"]
    assert report["max_abs_diff"] <= 1e-4 and report["streaming"]["max_abs_diff"] <= 1e-4
    with pytest.raises(EdgeStrError, match="--loop scan: the model was trained with piecewise"):
        scan_sequence_graph(compact_fastgrnn(model)[0], 6, None, 13)
