"""benchmarks/quality.py on one tiny tree with 1 epoch: its table, CSV, JSON, plot, resume."""

from __future__ import annotations

import csv
import json

import pytest
from _data_trees import build_har_tree

from benchmarks import quality
from edge_str.config import make_config

TITLES = [
    "nn.GRU(64)",
    "nn.LSTM(64)",
    "FastGRNN dense",
    "FastGRNN STR",
    "STR budget 0.5 x dense",
    "STR budget 0.25 x dense",
]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("quality")
    tree = quality.Tree("tiny-har", "har2", path=str(build_har_tree(root / "UCI HAR Dataset")))
    results = quality.main(root / "out", root / "work", [tree], jobs=1, epochs=1)
    return root, tree, results


def test_table_has_a_row_per_tree_and_a_column_per_method(tiny_run):
    root, _, results = tiny_run
    lines = (root / "out" / "quality.md").read_text().splitlines()
    header = next(line for line in lines if line.startswith("| tree | data |"))
    titles = [cell.strip() for cell in header.strip("|").split("|")]
    assert titles == ["tree", "data", "test ex.", "epochs", *TITLES]
    body = [line for line in lines if line.startswith("| tiny-har |")]
    cells = [cell.strip() for cell in body[0].strip("|").split("|")]
    assert len(cells) == len(titles) and cells[3] == "1"
    dense = next(r for r in results["trees"][0]["rows"] if r["method"] == "dense")
    ranks = f"W{dense['rank_w']} U{dense['rank_u']}"
    assert (dense["rank_w"], dense["rank_u"]) == (9, 80)  # har2: 9 channels, hidden 80
    assert cells[6] == f"{100 * dense['test_accuracy']:.1f}% @ {dense['params']:,}, {ranks}"

    with open(root / "out" / "quality.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["method"] for r in rows] == ["gru", "lstm", "dense", "str", "budget", "budget"]
    assert {r["tree"] for r in rows} == {"tiny-har"}
    assert set(quality.CSV_COLUMNS) == set(rows[0])
    assert (root / "out" / "quality.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_targets_are_judged_per_tree_and_written(tiny_run):
    root, _, results = tiny_run
    (tree,) = results["trees"]
    names = [t["target"] for t in tree["targets"]]
    assert names == [
        "dense >= GRU(64) - 1",
        "STR >= dense - 2 at <= 0.5 x dense params",
        "budget 0.5 within +-10%",
        "budget 0.25 within +-10%",
    ]
    saved = json.loads((root / "out" / "quality.json").read_text())
    assert saved["targets_total"] == 4 and saved["targets_met"] == sum(
        t["passed"] for t in tree["targets"]
    )
    rows = {r["run"]: r for r in tree["rows"]}
    dense, gru = rows["runs/dense"], rows["runs/gru-h64"]
    gap = 100 * (dense["test_accuracy"] - gru["test_accuracy"])
    assert tree["targets"][0]["passed"] == (gap >= -1)
    assert rows["runs/budget-0.5"]["target_params"] == round(0.5 * tree["dense_params"])
    assert saved["defaults"]["har2"] == make_config("har2").to_dict()
    text = (root / "out" / "quality.md").read_text()
    assert "## Targets" in text and text.count("| tiny-har |") == 1 + 4


def test_every_run_is_the_defaults_and_finished_runs_are_reused(tiny_run):
    root, tree, results = tiny_run
    runs = root / "work" / "runs" / "tiny-har" / "runs"
    for name, arch, hidden in (("gru-h64", "gru", 64), ("dense", "fastgrnn", 80)):
        saved = json.loads((runs / name / "config.json").read_text())
        assert (saved["model"]["arch"], saved["model"]["hidden"]) == (arch, hidden)
        assert saved["optim"] == {**make_config("har2").to_dict()["optim"], "epochs": 1}
    stamps = {p: p.stat().st_mtime_ns for p in runs.glob("*/final.json")}
    again = quality.main(root / "out2", root / "work", [tree], jobs=1, epochs=1)
    assert {p: p.stat().st_mtime_ns for p in runs.glob("*/final.json")} == stamps
    assert again["trees"][0]["rows"] == results["trees"][0]["rows"]


def test_a_run_that_is_not_the_defaults_is_refused(tmp_path, monkeypatch):
    tree = quality.Tree("tiny", "har2", path=str(build_har_tree(tmp_path / "UCI HAR Dataset")))
    real = quality.study_settings

    def with_other_mu(epochs):
        settings = real(epochs)
        settings.str_weight_decays = [0.5]
        return settings

    monkeypatch.setattr(quality, "study_settings", with_other_mu)
    with pytest.raises(quality.EdgeStrError, match="run str-mu0.5 is not the defaults"):
        quality.main(tmp_path / "out", tmp_path / "work", [tree], jobs=1, epochs=1)
    assert not (tmp_path / "work" / "runs" / "tiny" / "runs").exists()
