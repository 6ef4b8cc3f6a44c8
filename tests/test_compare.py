"""The rank-vs-accuracy study on a tiny HAR tree: files, methods, resume, failures, the CLI."""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import pytest
from _data_trees import build_har_tree

import edge_str.training
from edge_str import EdgeStrError
from edge_str.baselines import RNNClassifier
from edge_str.cli import main
from edge_str.compare import (
    METHODS,
    CompareSettings,
    load_study_config,
    pareto_front,
    plan_base_jobs,
    preset,
    read_csv,
    run_study,
)
from edge_str.compare.report import best_at_size, reading
from edge_str.config import TrainConfig
from tests._cli import one_error_line

TINY = """\
model: {hidden: 8}
compare:
  fixed_ranks: [[2, 3], [20, 4]]   # W of a 9-feature input has full rank 8: the second fails
  str_weight_decays: [0.001]
  str_s_init: -3.0
  finetune_epochs: 1
  baselines: [gru, lstm]
  baseline_hidden: [4]
  budget_fractions: []             # budget runs: test_budget_runs_at_fractions_of_dense
  epochs: 2
"""
# Every method but the budget runs, which have their own test.
TINY_METHODS = set(METHODS) - {"budget"}


@pytest.fixture(scope="module")
def har(tmp_path_factory) -> Path:
    return build_har_tree(tmp_path_factory.mktemp("har") / "UCI HAR Dataset")


def _study(har: Path, tmp_path: Path, text: str = TINY, **kwargs):
    path = tmp_path / "study.yaml"
    path.write_text(text)
    return load_study_config("har2", path, {"data_dir": str(har)}, **kwargs)


def _finals(out: Path) -> dict[str, str]:
    return {p.parent.name: p.read_text() for p in sorted((out / "runs").glob("*/final.json"))}


@pytest.mark.slow  # an end-to-end run: skipped by make test-fast
def test_study_in_worker_processes_writes_every_method(har, tmp_path):
    cfg, settings = _study(har, tmp_path)
    out = tmp_path / "study"
    result = run_study(cfg, settings, out, jobs=2, progress=False)

    for name in ("compare.csv", "compare.md", "compare.png"):
        assert (out / name).is_file()
    assert (out / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = read_csv(out / "compare.csv")
    assert rows == read_csv(out / "compare.csv")  # (parses twice the same)
    with open(out / "compare.csv", newline="") as handle:
        header = next(csv.reader(handle))
    for column in ("method", "setting", "rank_w", "rank_u", "params", "bytes", "macs_per_step"):
        assert column in header
    for column in ("val_accuracy", "test_accuracy", "train_seconds", "status", "error"):
        assert column in header
    assert {r["method"] for r in rows} == TINY_METHODS
    by_run = {r["run"]: r for r in rows}

    # the failing configuration is recorded with its error; everything else finished
    failed = by_run["runs/fixed-w20-u4"]
    assert failed["status"] == "failed" and "rank of W must be in 1..8, got 20" in failed["error"]
    assert failed["params"] is None and failed["test_accuracy"] is None
    assert "Traceback" in (out / "runs/fixed-w20-u4/error.log").read_text()
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) == len(rows) - 1 == 7
    assert result.counts == {"new": 7, "reused": 0, "failed": 1, "skipped": 0}

    dense, fixed = by_run["runs/dense"], by_run["runs/fixed-w2-u3"]
    strs = [r for r in ok if r["method"] == "str"]
    assert len(strs) == 1
    (str_row,) = strs
    assert (dense["rank_w"], dense["rank_u"]) == (8, 8)
    assert (fixed["rank_w"], fixed["rank_u"]) == (2, 3)
    # hidden 8, 9 features, 2 classes: W 72 + U 64 + biases 16 + zeta, nu 2 + head 18
    assert dense["params"] == 172
    assert fixed["params"] == 2 * (8 + 9) + 3 * 16 + 16 + 2 + 18
    for r in ok:
        assert r["bytes"] == 4 * r["params"]
        assert 0 <= r["val_accuracy"] <= 1 and 0 <= r["test_accuracy"] <= 1
        assert r["macs_per_step"] > 0 and r["train_seconds"] >= 0
        final = json.loads((out / r["run"] / "final.json").read_text())
        assert final["params"] == r["params"] and final["test_accuracy"] == pytest.approx(
            r["test_accuracy"], abs=1e-4
        )
    # the SVD runs cut the dense model to the STR run's ranks
    for method in ("svd", "svd+finetune"):
        (twin,) = [r for r in ok if r["method"] == method]
        assert (twin["rank_w"], twin["rank_u"]) == (str_row["rank_w"], str_row["rank_u"])
        assert twin["params"] == str_row["params"]
        assert str_row["run"].split("/")[-1] in twin["setting"]
    # the baselines: nn.GRU / nn.LSTM of hidden 4, costed by the same model as FastGRNN
    for kind in ("gru", "lstm"):
        row = by_run[f"runs/{kind}-h4"]
        cost = RNNClassifier(kind, 9, 4, 2).cost()
        assert row["method"] == kind and row["setting"] == "hidden 4" and row["status"] == "ok"
        assert (row["params"], row["macs_per_step"]) == (
            cost.params_compact,
            cost.macs_per_step_compact,
        )
        assert row["rank_w"] is None and row["target_params"] is None
        saved = json.loads((out / row["run"] / "config.json").read_text())
        assert (saved["model"]["arch"], saved["model"]["hidden"]) == (kind, 4)
        assert saved["optim"] == json.loads((out / "runs/dense/config.json").read_text())["optim"]
    svd = next(r for r in ok if r["method"] == "svd")
    assert svd["train_seconds"] == 0
    svd_cfg = json.loads((out / svd["run"] / "config.json").read_text())
    assert svd_cfg["model"]["rank_mode"] == "fixed"
    tuned = next(r for r in ok if r["method"] == "svd+finetune")
    tuned_metrics = (out / tuned["run"] / "metrics.jsonl").read_text().splitlines()
    assert len(tuned_metrics) == 1  # finetune_epochs
    assert len((out / "runs/dense/metrics.jsonl").read_text().splitlines()) == 2

    text = (out / "compare.md").read_text()
    assert "| method | setting | rank W | rank U | params |" in text
    assert "rank of W must be in 1..8, got 20" in text and "## Reading" in text
    for method in TINY_METHODS:
        assert f"| {method} |" in text
    assert "★" in text and "◆" in text


@pytest.mark.slow  # an end-to-end run: skipped by make test-fast
def test_resume_skips_finished_runs_and_continues_half_finished_ones(har, tmp_path, monkeypatch):
    cfg, settings = _study(har, tmp_path)
    out = tmp_path / "study"
    # A dense run interrupted after its first epoch (of 2): last.pt, no final.json.
    dense_job = plan_base_jobs(
        TrainConfig.from_dict({**cfg.to_dict(), "data_dir": str(har.resolve())}), settings, out
    )[0]

    def stop_after_first_epoch(line: str) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        edge_str.training.train(TrainConfig.from_dict(dense_job.config), log=stop_after_first_epoch)
    first_epoch = (out / "runs/dense/metrics.jsonl").read_text()
    assert not (out / "runs/dense/final.json").exists()

    calls = []
    real_train = edge_str.training.train

    def spy(cfg, resume=False, log=print):
        calls.append((Path(cfg.out).name, resume))
        return real_train(cfg, resume=resume, log=log)

    monkeypatch.setattr(edge_str.training, "train", spy)
    result = run_study(cfg, settings, out, jobs=1, progress=False)
    assert ("dense", True) in calls  # continued, not restarted ...
    metrics = (out / "runs/dense/metrics.jsonl").read_text()
    assert metrics.startswith(first_epoch) and len(metrics.splitlines()) == 2  # ... from epoch 2
    assert result.counts["new"] == 7 and result.counts["reused"] == 0

    before = _finals(out)
    stamps = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/final.json")}
    calls.clear()
    again = run_study(cfg, settings, out, jobs=1, progress=False)
    # only the failing configuration runs again (and fails again)
    assert calls == [("fixed-w20-u4", False)]
    assert _finals(out) == before
    assert {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/final.json")} == stamps
    assert again.counts == {"new": 0, "reused": 7, "failed": 1, "skipped": 0}
    assert [r["test_accuracy"] for r in again.rows] == [r["test_accuracy"] for r in result.rows]

    # Other training settings in the same folder: one clear error, nothing rerun.
    cfg_other = copy.deepcopy(cfg)
    cfg_other.optim.lr = 0.5
    with pytest.raises(EdgeStrError, match="holds a study of other settings .*optim.lr"):
        run_study(cfg_other, settings, out, jobs=1, progress=False)


@pytest.mark.slow  # an end-to-end run: skipped by make test-fast
def test_interrupted_study_keeps_what_finished_and_resumes(har, tmp_path, monkeypatch):
    cfg, settings = _study(har, tmp_path)
    settings.fixed_ranks = [[2, 3]]
    out = tmp_path / "study"
    real_train = edge_str.training.train

    def interrupt_str(cfg, resume=False, log=print):
        if cfg.model.rank_mode == "str":
            raise KeyboardInterrupt
        return real_train(cfg, resume=resume, log=log)

    monkeypatch.setattr(edge_str.training, "train", interrupt_str)
    with pytest.raises(KeyboardInterrupt):
        run_study(cfg, settings, out, jobs=1, progress=False)
    rows = read_csv(out / "compare.csv")
    assert {r["run"] for r in rows} == {"runs/dense", "runs/fixed-w2-u3"}
    assert all(r["status"] == "ok" for r in rows)

    monkeypatch.setattr(edge_str.training, "train", real_train)
    result = run_study(cfg, settings, out, jobs=1, progress=False)
    assert result.counts == {"new": 5, "reused": 2, "failed": 0, "skipped": 0}
    assert {r["method"] for r in result.rows} == TINY_METHODS


@pytest.mark.slow  # an end-to-end run: skipped by make test-fast
def test_a_failing_run_is_recorded_and_the_rest_completes(har, tmp_path, monkeypatch):
    cfg, settings = _study(har, tmp_path)
    settings.fixed_ranks = [[2, 3]]
    settings.str_weight_decays = [0.01, 0.03]
    real_train = edge_str.training.train

    def fail_one(cfg, resume=False, log=print):
        if cfg.optim.weight_decay == 0.03:
            raise RuntimeError("boom\nsecond line")
        return real_train(cfg, resume=resume, log=log)

    monkeypatch.setattr(edge_str.training, "train", fail_one)
    result = run_study(cfg, settings, tmp_path / "study", jobs=1, progress=False)
    rows = {(r["method"], r["setting"]): r for r in result.rows}
    failed = rows[("str", "mu 0.03, s_init -3")]
    assert failed["status"] == "failed" and failed["error"] == "RuntimeError: boom"
    assert rows[("str", "mu 0.01, s_init -3")]["status"] == "ok"
    skipped = [r for r in result.rows if r["status"] == "skipped"]
    assert sorted(r["method"] for r in skipped) == ["svd", "svd+finetune"]
    assert all(r["error"] == "needs str-mu0.03, which failed" for r in skipped)
    ok = [r for r in result.rows if r["status"] == "ok"]
    assert sorted(r["method"] for r in ok) == [
        "dense", "fixed", "gru", "lstm", "str", "svd", "svd+finetune"
    ]  # fmt: skip
    assert result.counts == {"new": 7, "reused": 0, "failed": 1, "skipped": 2}
    assert "1 failed, 2 skipped" in result.summary_line()


@pytest.mark.slow  # an end-to-end run: skipped by make test-fast
def test_budget_runs_at_fractions_of_dense(har, tmp_path):
    cfg, settings = _study(har, tmp_path)
    settings.fixed_ranks, settings.str_weight_decays, settings.baselines = [], [], []
    settings.budget_fractions = [0.5]
    # Steps enough for the budget controller to steer the ranks (as in tests/test_budget.py).
    cfg.optim.batch_size, cfg.optim.epochs = 4, 8
    result = run_study(cfg, settings, tmp_path / "study", jobs=1, progress=False)
    rows = {r["method"]: r for r in read_csv(tmp_path / "study" / "compare.csv")}
    assert set(rows) == {"dense", "budget"}
    budget = rows["budget"]
    assert budget["target_params"] == 86 == round(0.5 * rows["dense"]["params"])
    assert budget["setting"] == "0.5 x dense: 86 params" and budget["run"] == "runs/budget-0.5"
    # Budget mode (model.target_params) steers STR to the size asked for.
    assert budget["status"] == "ok" and abs(budget["params"] / 86 - 1) <= 0.10
    saved = json.loads((tmp_path / "study" / budget["run"] / "config.json").read_text())
    assert saved["model"]["rank_mode"] == "str" and saved["model"]["target_params"] == 86
    final = json.loads((tmp_path / "study" / budget["run"] / "final.json").read_text())
    assert final["size_budget"]["target_params"] == 86
    assert final["size_budget"]["reached_params"] == budget["params"] == final["params"]
    assert "Budget 0.5 x dense: 86 params: reached" in (tmp_path / "study/compare.md").read_text()
    assert result.rows[0]["method"] == "dense"


@pytest.mark.slow  # an end-to-end run: skipped by make test-fast
def test_plan_with_the_trainers_s_init_and_without_svd_runs(har, tmp_path):
    cfg, settings = _study(har, tmp_path)
    settings.str_s_init, settings.posthoc_svd = None, False
    settings.budget_fractions = [0.5, 0.25]
    jobs = plan_base_jobs(cfg, settings, tmp_path / "study", dense_params=172)
    (str_job,) = [j for j in jobs if j.method == "str"]
    assert str_job.config["model"]["s_init"] == cfg.model.s_init
    assert str_job.setting == f"mu {settings.str_weight_decays[0]:g}, s_init {cfg.model.s_init:g}"
    budgets = [j for j in jobs if j.method == "budget"]
    assert [(j.name, j.target_params) for j in budgets] == [("budget-0.5", 86), ("budget-0.25", 43)]
    assert all(j.config["model"]["s_init"] == cfg.model.s_init for j in budgets)
    assert [j.name for j in jobs if j.method in ("gru", "lstm")] == ["gru-h4", "lstm-h4"]
    assert not [j for j in plan_base_jobs(cfg, settings, tmp_path) if j.method == "budget"]
    result = run_study(cfg, settings, tmp_path / "study", jobs=1, progress=False)
    assert not {"svd", "svd+finetune"} & {r["method"] for r in result.rows}


def test_str_default_run_is_the_training_config_as_it_is(har, tmp_path):
    cfg, settings = _study(har, tmp_path)
    settings.str_weight_decays, settings.str_default = [], True
    cfg.optim.weight_decay, cfg.optim.threshold_decay, cfg.model.s_init = 2e-4, 0.02, -4.0
    (job,) = [j for j in plan_base_jobs(cfg, settings, tmp_path / "study") if j.method == "str"]
    assert job.name == "str-default"
    assert job.setting == "defaults: mu 0.0002, threshold decay 0.02, s_init -4"
    expected = TrainConfig.from_dict({**cfg.to_dict(), "out": job.config["out"]})
    expected.model.rank_mode, expected.model.init_weights = "str", None
    expected.model.rank_w = expected.model.rank_u = None
    assert job.config == expected.to_dict()


@pytest.mark.parametrize(
    "setting, message",
    [
        ({"baselines": ["rnn"]}, "unknown baselines 'rnn'; choose from gru, lstm"),
        ({"baselines": ["gru", "gru"]}, "baselines=.*the same value twice"),
        ({"baseline_hidden": [0]}, "baseline_hidden must be at least 1, got 0"),
        ({"budget_fractions": [0.0]}, "budget_fractions must be greater than 0 and at most 1"),
        ({"budget_fractions": [1.5]}, "budget_fractions must be greater than 0 and at most 1"),
        ({"budget_fractions": [0.5, 0.5]}, "budget_fractions=.*the same value twice"),
        ({"posthoc_svd": "yes"}, "posthoc_svd must be true or false"),
    ],
)
def test_baseline_and_budget_settings_are_checked(setting, message):
    assert preset("google12").baselines == ["gru", "lstm"]
    assert preset("har2").budget_fractions == [0.5, 0.25]
    with pytest.raises(EdgeStrError, match=message):
        CompareSettings.from_dict({**preset("har2").to_dict(), **setting})


@pytest.mark.slow  # an end-to-end run: skipped by make test-fast
def test_cli(har, tmp_path, capsys):
    path = tmp_path / "study.yaml"
    path.write_text(TINY.replace("[[2, 3], [20, 4]]", "[[2, 3]]").replace("epochs: 2", "epochs: 1"))
    out = tmp_path / "study"
    argv = ["compare", "--task", "har2", "--data", str(har), "--out", str(out)]
    assert main([*argv, "--config", str(path), "--jobs", "1", "--seed", "3"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("compare har2: 7 runs (7 new, 0 reused) in ")
    assert str(out / "compare.md") in line
    saved = json.loads((out / "runs/dense/config.json").read_text())
    assert saved["seed"] == 3 and saved["optim"]["epochs"] == 1 and saved["model"]["hidden"] == 8

    assert (
        main(["compare", "--task", "har2", "--data", str(tmp_path / "nope"), "--out", str(out)])
        == 2
    )
    one_error_line(capsys)
    assert main([*argv[:-1], str(tmp_path / "other"), "--jobs", "0"]) == 2
    assert "--jobs must be at least 1" in capsys.readouterr().err


def test_settings_presets_yaml_and_precedence(tmp_path):
    full, quick = preset("har2"), preset("har2", quick=True)
    assert len(quick.fixed_ranks) < len(full.fixed_ranks)
    assert len(quick.str_weight_decays) < len(full.str_weight_decays)
    assert quick.epochs < full.epochs
    assert preset("google12").fixed_ranks != full.fixed_ranks
    with pytest.raises(EdgeStrError, match="--task must be one of"):
        preset("digits")

    path = tmp_path / "s.yaml"
    path.write_text("optim: {epochs: 7, lr: 0.02}\ncompare: {str_weight_decays: [0.5]}\n")
    cfg, settings = load_study_config("har2", path, {"seed": 4})
    assert settings.epochs == cfg.optim.epochs == 7  # the YAML's optim.epochs beats the preset
    assert settings.str_weight_decays == [0.5] and settings.fixed_ranks == full.fixed_ranks
    assert cfg.optim.lr == 0.02 and cfg.seed == 4 and cfg.model.hidden == 80
    path.write_text("optim: {epochs: 7}\ncompare: {epochs: 9}\n")
    assert load_study_config("har2", path)[1].epochs == 9
    assert load_study_config("har2", path, epochs=3)[0].optim.epochs == 3  # --epochs wins
    assert load_study_config("google12", quick=True)[1].epochs == preset("google12", True).epochs

    for text, message in [
        ("compare: {fixed_rank: [[1, 2]]}\n", "unknown setting.*fixed_rank"),
        ("compare: {fixed_ranks: [[1, 2, 3]]}\n", "fixed_ranks"),
        ("compare: {fixed_ranks: [[1, 2], [1, 2]]}\n", "same pair twice"),
        ("compare: {str_weight_decays: [-1]}\n", "str_weight_decays"),
        ("compare: {finetune_epochs: 0}\n", "finetune_epochs"),
        ("compare: [1]\n", "expected a mapping"),
        ("model: {arch: resnet}\n", "not model 'resnet'"),
        ("model: {hiden: 3}\n", "unknown setting"),
    ]:
        path.write_text(text)
        with pytest.raises(EdgeStrError, match=message) as info:
            load_study_config("har2", path)
        assert str(path) in str(info.value)
    assert CompareSettings.from_dict(full.to_dict()) == full


def _row(method, params, acc, ranks=(1, 1), status="ok"):
    return {
        "method": method,
        "setting": f"{method} {params}",
        "params": params,
        "macs_per_step": params,
        "rank_w": ranks[0],
        "rank_u": ranks[1],
        "test_accuracy": acc,
        "val_accuracy": acc,
        "status": status,
        "error": "",
    }


def test_pareto_front_marks_and_reading():
    rows = [
        _row("dense", 1000, 0.95, (9, 80)),
        _row("fixed", 300, 0.80, (2, 4)),
        _row("fixed", 500, 0.90, (3, 8)),
        _row("str", 480, 0.92, (9, 10)),
        _row("svd", 480, 0.70, (9, 10)),
        _row("svd+finetune", 480, 0.93, (9, 10)),
        _row("fixed", 700, 0.85, (5, 16)),
        _row("fixed", 100, None, status="failed"),
    ]
    front = pareto_front(rows)
    # svd+finetune beats STR at the same size; the failed run is no point
    assert [(r["method"], r["params"]) for r in front] == [
        ("fixed", 300),
        ("svd+finetune", 480),
        ("dense", 1000),
    ]
    best = {(r["method"], r["params"]) for r in best_at_size(rows)}
    # within 10% of 480..500: svd+finetune (93%) is the best; 300, 700 and 1000 stand alone
    assert best == {("svd+finetune", 480), ("fixed", 300), ("fixed", 700), ("dense", 1000)}
    text = " ".join(reading(rows, test_examples=400))
    assert "ranks W 9, U 10, 480 parameters (2.1x fewer than dense), 92.0%" in text
    assert "beat post-hoc SVD (70.0%)" in text
    # the best fixed run of at most 480 * 1.1 parameters is (3, 8) at 500 with 90%
    assert "the best fixed rank of no more parameters (W 3, U 8, 500: 90.0%)" in text
    assert "post-hoc SVD: 1 won, 0 lost, 0 tied or within noise" in text
    assert "400 examples" in text and "1 run(s) did not finish" in text
    # With 400 test examples two standard errors at the median accuracy (90%) are 3 points:
    # 92% against 93% and against 90% is noise, against 70% it is not.
    assert "lost to (within noise) SVD + fine-tune (93.0%)" in text
    assert "beat (within noise) the best fixed rank" in text
    assert "SVD + fine-tune: 0 won, 0 lost, 1 tied or within noise" in text
    assert "differences under about 3.0 points" in text


def test_plot_writes_a_png_and_leaves_the_callers_matplotlib_alone(tmp_path):
    import matplotlib
    from matplotlib import pyplot as plt

    from edge_str.compare import plot

    rows = [_row("dense", 1000, 0.95), _row("str", 480, 0.92, (9, 10)), _row("fixed", 300, 0.8)]
    backend = matplotlib.get_backend()
    matplotlib.use("svg")  # stands for a notebook's inline backend
    try:
        figures = plt.get_fignums()
        plot(rows, tmp_path / "p.png", "title")
        assert matplotlib.get_backend() == "svg" and plt.get_fignums() == figures
    finally:
        matplotlib.use(backend)
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write left no temporary file


def test_the_shipped_study_config_is_the_har2_preset():
    path = Path(__file__).resolve().parent.parent / "configs" / "compare_har2.yaml"
    cfg, settings = load_study_config(None, path)
    assert cfg.task == "har2" and settings == preset("har2")
    assert cfg.optim.epochs == 20 and cfg.model.hidden == 80
