"""edge-str train / evaluate end to end on tiny trees in the real layouts."""

import json

import pytest
import torch

from edge_str.cli import main
from edge_str.data import load_task
from edge_str.data.task import TaskData
from edge_str.run import load_trained_model
from edge_str.training.trainer import TIMING_FIELDS
from tests._cli import one_error_line
from tests._data_trees import build_har_tree, build_speech_tree

RANK_MODES = ("str", "fixed", "dense")
FINAL_KEYS = {
    "task",
    "test_accuracy",
    "val_accuracy",
    "ranks",
    "full_ranks",
    "params",
    "macs_per_step",
}


@pytest.fixture(scope="module")
def har_tree(tmp_path_factory):
    return build_har_tree(tmp_path_factory.mktemp("har"))


@pytest.fixture(scope="module")
def speech_tree(tmp_path_factory):
    return build_speech_tree(tmp_path_factory.mktemp("speech"), speakers=6)


def _train(task, data, out, *extra):
    argv = ["train", "--task", task, "--data", str(data), "--out", str(out), "--epochs", "2"]
    argv += ["--hidden", "8", "--batch-size", "16", *extra]
    return main(argv)


def _metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _without_timing(records):
    return [{k: v for k, v in r.items() if k not in TIMING_FIELDS} for r in records]


@pytest.mark.slow  # an end-to-end run: skipped by make test-fast
@pytest.mark.parametrize("mode", RANK_MODES)
@pytest.mark.parametrize("task", ["har2", "google12"])
def test_tiny_end_to_end_run(task, mode, har_tree, speech_tree, tmp_path, capsys):
    data = har_tree if task == "har2" else speech_tree
    extra = ["--rank-mode", mode] + (["--rank-w", "2", "--rank-u", "3"] if mode == "fixed" else [])
    assert _train(task, data, tmp_path / "run", *extra) == 0
    final = json.loads((tmp_path / "run" / "final.json").read_text())
    assert set(final) >= FINAL_KEYS
    features, classes = (9, 2) if task == "har2" else (32, 12)
    assert final["full_ranks"] == {"W": min(8, features), "U": 8}
    if mode == "fixed":
        assert final["ranks"] == {"W": 2, "U": 3}
    assert 0.0 <= final["test_accuracy"] <= 1.0 and final["epochs"] == 2
    records = _metrics(tmp_path / "run")
    assert [r["epoch"] for r in records] == [1, 2]
    assert {"train_loss", "val_accuracy", "ranks", "thresholds", "params", "seconds"} <= set(
        records[0]
    )
    assert final["val_accuracy"] == max(r["val_accuracy"] for r in records)
    info, model = load_trained_model(tmp_path / "run")
    assert info.class_names[:2] == (
        ["_silence_", "_unknown_"] if task == "google12" else info.class_names[:2]
    )
    assert model.head.out_features == classes
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith(f"trained {task} fastgrnn: test ")


@pytest.mark.slow  # an end-to-end run: skipped by make test-fast
def test_same_seed_gives_identical_metrics(har_tree, tmp_path):
    assert _train("har2", har_tree, tmp_path / "a", "--seed", "3") == 0
    assert _train("har2", har_tree, tmp_path / "b", "--seed", "3") == 0
    assert _without_timing(_metrics(tmp_path / "a")) == _without_timing(_metrics(tmp_path / "b"))
    assert _train("har2", har_tree, tmp_path / "c", "--seed", "4") == 0
    assert _without_timing(_metrics(tmp_path / "a")) != _without_timing(_metrics(tmp_path / "c"))


@pytest.mark.slow  # an end-to-end run: skipped by make test-fast
def test_resume_after_interrupt_equals_uninterrupted(speech_tree, tmp_path, monkeypatch, capsys):
    args = ("--epochs", "3", "--seed", "1")
    assert _train("google12", speech_tree, tmp_path / "full", *args) == 0

    original = TaskData.train_batches

    def interrupted(self, epoch, batch_size, seed):
        for i, batch in enumerate(original(self, epoch, batch_size, seed)):
            if epoch == 1 and i == 2:
                raise KeyboardInterrupt  # Ctrl-C in the middle of the second epoch
            yield batch

    monkeypatch.setattr(TaskData, "train_batches", interrupted)
    assert _train("google12", speech_tree, tmp_path / "cut", *args) == 130
    assert "continue with --resume" in capsys.readouterr().err
    assert len(_metrics(tmp_path / "cut")) == 1  # the first epoch was kept
    monkeypatch.setattr(TaskData, "train_batches", original)
    assert _train("google12", speech_tree, tmp_path / "cut", *args, "--resume") == 0

    assert _without_timing(_metrics(tmp_path / "cut")) == _without_timing(
        _metrics(tmp_path / "full")
    )
    full = json.loads((tmp_path / "full" / "final.json").read_text())
    cut = json.loads((tmp_path / "cut" / "final.json").read_text())
    for key in ("test_accuracy", "val_accuracy", "ranks", "params", "best_epoch"):
        assert cut[key] == full[key]
    a = torch.load(tmp_path / "full" / "best.pt")["model"]
    b = torch.load(tmp_path / "cut" / "best.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_divergence_stops_with_a_clear_message(har_tree, tmp_path, capsys):
    code = _train("har2", har_tree, tmp_path / "nan", "--lr", "1e30", "--rank-mode", "dense")
    err = one_error_line(capsys)
    assert code == 2
    assert "diverged in epoch" in err and "lower --lr or --weight-decay" in err


def test_refusals_are_one_line(har_tree, tmp_path, capsys):
    assert _train("har2", har_tree, tmp_path / "r") == 0
    capsys.readouterr()
    assert _train("har2", har_tree, tmp_path / "r") == 2  # would overwrite a run
    assert "--resume" in capsys.readouterr().err
    assert _train("har2", tmp_path / "missing", tmp_path / "r2") == 2
    assert "missing" in capsys.readouterr().err
    assert _train("har2", har_tree, tmp_path / "r3", "--rank-mode", "fixed", "--rank-u", "99") == 2
    assert "rank of U must be in 1..8" in capsys.readouterr().err
    assert main(["train", "--task", "har2", "--out", str(tmp_path / "r4"), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_evaluate_on_its_own_and_on_a_second_tree(speech_tree, tmp_path, capsys):
    assert _train("google12", speech_tree, tmp_path / "run", "--epochs", "1") == 0
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "run"), "--json"]) == 0
    own = json.loads(capsys.readouterr().out)
    final = json.loads((tmp_path / "run" / "final.json").read_text())
    assert own["accuracy"] == pytest.approx(final["test_accuracy"])
    assert len(own["confusion_matrix"]) == 12 and len(own["confusion_matrix"][0]) == 12
    assert sum(map(sum, own["confusion_matrix"])) == own["examples"]
    assert set(own["per_class"]) == set(own["class_names"])

    # two validation speakers: twice the clips of the run's own test split, so the count alone
    # shows which tree was read (a 1-epoch model may give both the same confusion matrix)
    second = build_speech_tree(
        tmp_path / "second", speakers=4, val_speakers=(1, 2), test_speakers=(3,)
    )
    argv = ["evaluate", str(tmp_path / "run"), "--data", str(second), "--split", "val", "--json"]
    assert main(argv) == 0
    other = json.loads(capsys.readouterr().out)
    assert other["data"] == str(second) and other["split"] == "val"
    assert other["examples"] == 2 * own["examples"]
    assert sum(map(sum, other["confusion_matrix"])) == other["examples"]
    assert json.loads((tmp_path / "run" / "eval.json").read_text()) == other
    # the model's own statistics are used, not the second tree's (which differ)
    info, model = load_trained_model(tmp_path / "run")
    data = load_task("google12", second, info.config.data)
    assert not torch.allclose(data.mean, model.normalizer.mean)
    x, y = data.split_tensors("val")
    with torch.no_grad():
        expected = (model(x).argmax(1) == y).float().mean().item()
    assert other["accuracy"] == pytest.approx(expected)


def test_ties_in_validation_accuracy_keep_the_later_smaller_epoch(har_tree, tmp_path, monkeypatch):
    import edge_str.training.trainer as trainer

    monkeypatch.setattr(trainer, "accuracy", lambda *args, **kwargs: 0.5)  # every epoch ties
    assert _train("har2", har_tree, tmp_path / "tie", "--epochs", "3") == 0
    final = json.loads((tmp_path / "tie" / "final.json").read_text())
    assert final["best_epoch"] == 3
    assert torch.load(tmp_path / "tie" / "best.pt")["epoch"] == 2  # counted from 0


def _factors(run):
    _, model = load_trained_model(run, checkpoint="last.pt")
    return model.rnn.cell.U


@pytest.mark.slow  # an end-to-end run: skipped by make test-fast
@pytest.mark.parametrize("svd_each_epoch", [True, False])
def test_str_matrices_end_every_epoch_in_svd_form(svd_each_epoch, har_tree, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(f"model:\n  svd_each_epoch: {str(svd_each_epoch).lower()}\n")
    assert _train("har2", har_tree, tmp_path / "r", "--config", str(config)) == 0
    u = _factors(tmp_path / "r")
    gram = u.w1.T @ u.w1  # identity exactly when W1 has orthonormal columns
    orthonormal = torch.allclose(gram, torch.eye(gram.shape[0]), atol=1e-4)
    assert orthonormal == svd_each_epoch
    sigma = u.raw_sigma().detach()
    singular = torch.linalg.svdvals((u.w1 * sigma) @ u.w2).detach()
    assert torch.allclose(sigma, singular, atol=1e-4) == svd_each_epoch


def test_restoring_svd_form_keeps_the_optimizer_moments_of_the_factors():
    """The refactor carries Adam's state into the new basis (tests/test_refactor.py checks
    how); nothing is dropped, and only STR matrices are refactored."""
    from edge_str import LowRankMatrix
    from edge_str.config import OptimConfig
    from edge_str.training.optim import build_optimizer, restore_svd_forms

    model = torch.nn.ModuleList(
        [LowRankMatrix(6, 4, mode="str", s_init=-5.0), LowRankMatrix(6, 4, mode="fixed", rank=2)]
    )
    optimizer = build_optimizer(model, OptimConfig())
    sum(m(torch.randn(3, 4)).square().sum() for m in model).backward()
    optimizer.step()
    assert len(optimizer.state) == 7  # W1, sigma, W2, s of the STR matrix; W1, sigma, W2
    before = {id(p): {k: v.clone() for k, v in st.items()} for p, st in optimizer.state.items()}
    assert restore_svd_forms(model, optimizer) == 1  # fixed rank has no threshold to help
    assert {id(p) for p in optimizer.state} == set(before)
    for p, state in optimizer.state.items():
        assert set(state) == set(before[id(p)]) and state["exp_avg_sq"].abs().sum() > 0
    for p in model[1].parameters():  # the fixed-rank matrix is left alone
        assert torch.equal(optimizer.state[p]["exp_avg"], before[id(p)]["exp_avg"])
