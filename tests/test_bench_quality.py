"""benchmarks/quality.py on one tiny tree with 1 epoch and two seeds: its table, CSV, JSON, plot,
resume; and its targets on the means over seeds."""

from __future__ import annotations

import csv
import json
import statistics

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
    results = quality.main(root / "out", root / "work", [tree], jobs=1, epochs=1, seeds=SEEDS)
    return root, tree, results


SEEDS = (0, 1)


def test_table_has_a_row_per_tree_and_a_column_per_method(tiny_run):
    root, _, results = tiny_run
    lines = (root / "out" / "quality.md").read_text().splitlines()
    header = next(line for line in lines if line.startswith("| tree | data |"))
    titles = [cell.strip() for cell in header.strip("|").split("|")]
    assert titles == ["tree", "data", "test ex.", "epochs", *TITLES]
    body = [line for line in lines if line.startswith("| tiny-har |")]
    cells = [cell.strip() for cell in body[0].strip("|").split("|")]
    assert len(cells) == len(titles) and cells[3] == "1"
    dense = [r for r in results["trees"][0]["rows"] if r["method"] == "dense"]
    assert [(r["seed"], r["rank_w"], r["rank_u"]) for r in dense] == [(0, 9, 80), (1, 9, 80)]
    accuracies = [100 * r["test_accuracy"] for r in dense]
    mean, sd = statistics.mean(accuracies), statistics.stdev(accuracies)
    assert cells[6] == f"{mean:.1f} +- {sd:.1f}% @ {dense[0]['params']:,}, W9 U80"
    lstm = next(r for r in results["trees"][0]["rows"] if r["method"] == "lstm")
    assert cells[5] == f"{100 * lstm['test_accuracy']:.1f}% @ {lstm['params']:,}"  # one seed

    with open(root / "out" / "quality.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    methods = ["gru", "gru", "lstm", "dense", "dense", "str", "str", "budget", "budget"]
    assert [r["method"] for r in rows] == methods
    assert [r["seed"] for r in rows] == ["0", "1", "0", "0", "1", "0", "1", "0", "0"]
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
    rows = {(r["run"], r["seed"]): r for r in tree["rows"]}
    gaps = [
        100 * (rows["runs/dense", s]["test_accuracy"] - rows["runs/gru-h64", s]["test_accuracy"])
        for s in SEEDS
    ]
    assert tree["targets"][0]["passed"] == (statistics.mean(gaps) >= -1)
    assert rows["runs/budget-0.5", 0]["target_params"] == round(0.5 * tree["dense_params"])
    assert saved["defaults"]["har2"] == make_config("har2").to_dict()
    text = (root / "out" / "quality.md").read_text()
    assert "## Targets" in text and text.count("| tiny-har |") == 1 + 4


def test_every_run_is_the_defaults_and_finished_runs_are_reused(tiny_run):
    root, tree, results = tiny_run
    studies = root / "work" / "runs" / "tiny-har"
    for seed in SEEDS:
        runs = studies / f"seed-{seed}" / "runs"
        for name, arch, hidden in (("gru-h64", "gru", 64), ("dense", "fastgrnn", 80)):
            saved = json.loads((runs / name / "config.json").read_text())
            assert (saved["model"]["arch"], saved["model"]["hidden"]) == (arch, hidden)
            assert saved["optim"] == {**make_config("har2").to_dict()["optim"], "epochs": 1}
            assert saved["seed"] == seed
    extra = sorted(p.name for p in (studies / "seed-1" / "runs").iterdir())
    assert extra == ["dense", "gru-h64", "str-default"]  # the repeated methods only
    stamps = {p: p.stat().st_mtime_ns for p in studies.glob("*/runs/*/final.json")}
    assert len(stamps) == 6 + 3
    # Again through the pool of study processes (jobs=2): the same rows, nothing retrained.
    again = quality.main(root / "out2", root / "work", [tree], jobs=2, epochs=1, seeds=SEEDS)
    assert {p: p.stat().st_mtime_ns for p in studies.glob("*/runs/*/final.json")} == stamps
    assert again["trees"][0]["rows"] == results["trees"][0]["rows"]


def test_a_run_that_is_not_the_defaults_is_refused(tmp_path, monkeypatch):
    tree = quality.Tree("tiny", "har2", path=str(build_har_tree(tmp_path / "UCI HAR Dataset")))
    real = quality.study_settings

    def with_other_mu(epochs, every_method=True):
        settings = real(epochs, every_method)
        settings.str_weight_decays = [0.5]
        return settings

    monkeypatch.setattr(quality, "study_settings", with_other_mu)
    with pytest.raises(quality.EdgeStrError, match="run str-mu0.5 is not the defaults"):
        quality.main(tmp_path / "out", tmp_path / "work", [tree], jobs=1, epochs=1)
    assert not (tmp_path / "work" / "runs" / "tiny" / "seed-0" / "runs").exists()


def _row(method: str, seed: int, accuracy: float, params: int, ranks=(None, None), **more):
    run = {"gru": "gru-h64", "dense": "dense", "str": "str-default"}.get(method, method)
    return {
        "method": method,
        "seed": seed,
        "run": f"runs/{run}",
        "status": "ok",
        "test_accuracy": accuracy,
        "params": params,
        "rank_w": ranks[0],
        "rank_u": ranks[1],
        **more,
    }


def test_accuracy_targets_compare_means_over_seeds():
    # One seed alone fails the STR margin (seed 1: -4 points), the mean over three meets it.
    rows = [
        *(_row("gru", s, a, 19_596) for s, a in ((0, 0.90), (1, 0.88), (2, 0.89))),
        *(_row("dense", s, a, 14_614, (32, 100)) for s, a in ((0, 0.89), (1, 0.90), (2, 0.87))),
        _row("str", 0, 0.90, 5_000, (12, 10)),
        _row("str", 1, 0.86, 4_000, (10, 8)),
        _row("str", 2, 0.88, 4_600, (11, 9)),
    ]
    gru, strs, budget = quality.check_targets(rows)[:3] + [None]
    assert gru["passed"] and "dense 88.7% vs GRU 89.0% (-0.3 +- " in gru["detail"]
    assert strs["passed"], strs["detail"]
    assert "STR 88.0% (-0.7 +- 1.7 points over 3 seeds) at 4,533 params" in strs["detail"]
    assert "ranks W10-12 U8-10" in strs["detail"]
    assert budget is None  # no budget rows, no budget targets

    worse = [r if r["method"] != "str" else {**r, "test_accuracy": r["test_accuracy"] - 0.03}
             for r in rows]  # fmt: skip
    assert not quality.check_targets(worse)[1]["passed"]  # mean gap -3.7 points
    # A seed STR did not finish is left out of the pairing, not counted as 0.
    unfinished = [r for r in rows if (r["method"], r["seed"]) != ("str", 1)]
    assert "over 2 seeds" in quality.check_targets(unfinished)[1]["detail"]


@pytest.mark.parametrize("seeds", [(), (0, 0)])
def test_seeds_must_be_one_or_more_different_ones(tmp_path, seeds):
    tree = quality.Tree("tiny", "har2", path=str(tmp_path / "never-read"))
    with pytest.raises(quality.EdgeStrError, match="--seeds must be one or more different"):
        quality.main(tmp_path / "out", tmp_path / "work", [tree], jobs=1, epochs=1, seeds=seeds)
    assert not (tmp_path / "work").exists()
