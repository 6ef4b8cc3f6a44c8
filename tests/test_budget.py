"""Budget mode: --target-params / --target-kb steer STR so the compacted model lands in its band."""

import json

import pytest

from edge_str.cli import main
from edge_str.training.budget import BAND, target_params_of
from tests._cli import refused
from tests._data_trees import build_har_tree

# hidden 16 on HAR's 9 channels: W 16x9 and U 16x16 at full rank compact to 144 + 256 weights.
HIDDEN = 16
FULL_PARAMS = 144 + 256 + 2 * HIDDEN + 2 + HIDDEN * 2 + 2  # W, U, b_z b_h, zeta nu, head


@pytest.fixture(scope="module")
def har_tree(tmp_path_factory):
    return build_har_tree(tmp_path_factory.mktemp("har"))


def _budget_run(tree, out, *flags):
    argv = ["train", "--task", "har2", "--data", str(tree), "--out", str(out)]
    argv += ["--hidden", str(HIDDEN), "--batch-size", "4", "--epochs", "8", *flags]
    assert main(argv) == 0
    return json.loads((out / "final.json").read_text())


@pytest.mark.parametrize("fraction", [0.4, 0.7])
def test_a_budget_run_lands_within_its_band(fraction, har_tree, tmp_path):
    target = int(fraction * FULL_PARAMS)
    final = _budget_run(har_tree, tmp_path / "run", "--target-params", str(target))
    budget = final["size_budget"]
    assert budget["target_params"] == target
    assert abs(budget["reached_params"] - target) <= BAND * target
    assert budget["within_band"] is True
    # the one cost model: what final.json reports as the model's size, W + U + the rest
    assert budget["reached_params"] == final["params"]
    split = budget["split"]
    assert split["W"]["rank"] == final["ranks"]["W"] and split["U"]["rank"] == final["ranks"]["U"]
    assert split["W"]["rank"] < 9 or split["U"]["rank"] < HIDDEN  # it did prune


def test_target_kb_is_kib_of_float32():
    assert target_params_of(None, 2.0) == 512
    assert target_params_of(300, None) == 300


def test_target_kb_with_int8_counts_a_byte_per_weight(har_tree, tmp_path):
    assert target_params_of(None, 2.0, int8=True) == 2048
    kib = 0.6 * FULL_PARAMS / 1024  # 60% of the full model's parameters, at a byte each
    final = _budget_run(har_tree, tmp_path / "run", "--target-kb", f"{kib:.6f}", "--int8")
    budget = final["size_budget"]
    assert budget["weights"] == "int8" and budget["target_params"] == int(kib * 1024)
    assert budget["reached_bytes"] == budget["reached_params"] == final["params"]
    assert budget["within_band"] is True


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--target-params", "10"], "must lie between"),
        (["--target-params", "100000"], "must lie between"),
        (["--target-params", "-5"], "must be positive"),
        (["--target-params", "200", "--rank-mode", "dense"], "needs a FastGRNN with --rank-mode"),
        (["--target-params", "200", "--int8"], "--int8: counts a --target-kb budget at int8"),
    ],
)
def test_impossible_budgets_are_one_line(flags, message, har_tree, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--task", "har2", "--data", str(har_tree), "--out", str(out)]
    line = refused(argv + ["--hidden", str(HIDDEN), *flags], capsys)
    assert message in line
    assert not out.exists()  # nothing half-written
