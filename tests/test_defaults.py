"""What `edge-str train` does with no recipe flag: FastGRNN STR whose ranks fall below full."""

import json
import math

from edge_str.cli import main
from edge_str.config import ModelConfig, make_config
from edge_str.defaults import GATE_BIAS_INIT
from edge_str.defaults import LOWRANK_S_INIT as DEFAULT_S_INIT
from edge_str.fastgrnn import FastGRNNCell
from edge_str.lowrank import LowRankMatrix
from tests._data_trees import build_har_tree


def test_a_default_str_run_ends_below_full_rank(tmp_path):
    tree = build_har_tree(tmp_path / "har")
    out = tmp_path / "run"
    # only the model's size is made small for speed: epochs, batch, lr, mu, s_init are defaults
    argv = ["train", "--task", "har2", "--data", str(tree), "--out", str(out), "--hidden", "16"]
    assert main(argv) == 0
    final = json.loads((out / "final.json").read_text())
    assert final["method"] == "str"
    ranks, full = final["ranks"], final["full_ranks"]
    assert ranks["W"] + ranks["U"] < full["W"] + full["U"]


def test_each_default_has_one_home():
    """The config and the library constructors agree because they read the same constant."""
    assert ModelConfig().s_init == DEFAULT_S_INIT == make_config("google12").model.s_init
    matrix = LowRankMatrix(4, 3)
    assert matrix.threshold() is not None
    assert abs(matrix.threshold() - math.exp(DEFAULT_S_INIT)) < 1e-6
    cell = FastGRNNCell(3, 4)
    assert float(cell.bias_gate.detach()[0]) == GATE_BIAS_INIT == ModelConfig().gate_bias_init
