"""nn.GRU / nn.LSTM baselines: cost model, forward, and the normal trainer end to end."""

import json

import pytest
import torch

from edge_str.baselines import LSTM_FORGET_BIAS, RNNClassifier
from edge_str.cli import main
from edge_str.config import ModelConfig
from edge_str.models import build_model
from edge_str.run import load_trained_model
from tests._cli import refused
from tests._data_trees import build_har_tree


@pytest.mark.parametrize("kind, gates", [("gru", 3), ("lstm", 4)])
def test_cost_counts_every_parameter_and_the_gate_products(kind, gates):
    model = RNNClassifier(kind, 32, 64, 12)
    cost = model.cost()
    layer = {"gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[kind](32, 64)
    expected = sum(p.numel() for p in layer.parameters()) + 64 * 12 + 12
    assert cost.params_compact == cost.params_trained == expected
    assert cost.params_trained == sum(p.numel() for p in model.parameters())
    assert cost.macs_per_step_compact == gates * 64 * (32 + 64) + 3 * 64
    assert cost.head_macs == 64 * 12


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_forward_uses_the_normaliser_and_the_last_state(kind):
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch=kind, hidden=5), (7, 3), 4).eval()
    x = torch.randn(2, 7, 3)
    logits = model(x)
    assert logits.shape == (2, 4)
    out, _ = model.rnn(model.normalizer(x))
    torch.testing.assert_close(logits, model.head(out[:, -1]))
    model.normalizer.set_statistics(torch.ones(3), 2 * torch.ones(3))
    assert not torch.allclose(model(x), logits)  # raw features go in: the stats matter


def test_lstm_starts_with_an_open_forget_gate():
    torch.manual_seed(0)
    lstm = RNNClassifier("lstm", 5, 8, 3).rnn
    h = 8
    total = lstm.bias_ih_l0 + lstm.bias_hh_l0  # PyTorch adds the two biases
    assert torch.equal(total[h : 2 * h], torch.full((h,), LSTM_FORGET_BIAS))
    # the input, cell and output gates keep PyTorch's uniform init, inside +-1/sqrt(h)
    others = torch.cat([total[:h], total[2 * h :]])
    assert others.abs().max() <= 2 / h**0.5 and others.std() > 0
    torch.manual_seed(0)
    gru = RNNClassifier("gru", 5, 8, 3).rnn
    assert gru.bias_ih_l0.abs().max() <= 1 / h**0.5  # the GRU is PyTorch's as it is


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_trains_through_the_normal_trainer_and_evaluates(kind, tmp_path, capsys):
    tree = build_har_tree(tmp_path / "har")
    run = tmp_path / "run"
    argv = ["train", "--task", "har2", "--data", str(tree), "--out", str(run), "--arch", kind]
    assert main([*argv, "--hidden", "6", "--epochs", "2", "--batch-size", "8"]) == 0
    line = capsys.readouterr().out
    assert f"trained har2 {kind}: test" in line and "MACs/step" in line
    final = json.loads((run / "final.json").read_text())
    _, model = load_trained_model(run)
    assert isinstance(model, RNNClassifier) and model.hidden_size == 6
    assert final["method"] == kind and final["params"] == model.cost().params_compact
    assert final["macs_per_step"] == model.cost().macs_per_step_compact
    assert final["bytes"] == 4 * final["params"] and "ranks" not in final
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2
    assert main(["evaluate", str(run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == pytest.approx(final["test_accuracy"])
    refusal = refused(["export", str(run), "--out", str(tmp_path / "m.onnx")], capsys)
    assert "FastGRNN" in refusal  # one clear line, no traceback


def test_fastgrnn_settings_on_a_baseline_are_refused_in_one_line(tmp_path, capsys):
    tree = build_har_tree(tmp_path / "har")
    argv = ["train", "--task", "har2", "--data", str(tree), "--out", str(tmp_path / "r")]
    refusal = refused([*argv, "--arch", "gru", "--rank-mode", "fixed"], capsys)
    assert (
        "model.rank_mode is a setting of FastGRNN models; model.arch 'gru' is GRU/LSTM" in refusal
    )
    assert "model.hidden must be at least 1" in refused(
        [*argv, "--arch", "lstm", "--hidden", "0"], capsys
    )
    assert not (tmp_path / "r").exists()
