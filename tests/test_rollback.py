"""A spiked epoch is undone and trained again at half the learning rates (training.rollback)."""

import copy
import json
import math

import pytest
import torch

from edge_str.cli import main
from edge_str.training import trainer
from edge_str.training.rollback import MAX_ROLLBACKS, MIN_RISE, SpikeGuard
from tests._data_trees import build_speech_tree

CHANCE_12 = math.log(12)
SPIKE_LOSS = 10.0  # what the patched epoch reports: far above chance and any tiny run


def _history(*losses):
    return [{"train_loss": loss} for loss in losses]


def test_a_spike_is_a_climb_back_towards_chance_not_a_ratio():
    guard = SpikeGuard(0.25, [])
    assert not guard.is_spike(1.0, [], 12)  # no epoch to compare with
    # 0.50 -> 1.31 of a quality run: 0.81 of the 1.98 nats back to chance, over a quarter.
    assert guard.is_spike(1.31, _history(0.7, 0.5, 0.55), 12)
    assert not guard.is_spike(0.9, _history(0.7, 0.5), 12)  # 0.40: a fifth of the way
    # HAR-2 near zero loss: 0.01 -> 0.05 is five times the lowest and no spike at all.
    assert not guard.is_spike(0.05, _history(0.02, 0.01), 2)
    # A run that never left chance has nothing to undo, however small the distance left.
    assert not guard.is_spike(CHANCE_12 + MIN_RISE / 2, _history(CHANCE_12 - 0.01), 12)
    assert not SpikeGuard(0.0, []).is_spike(2.4, _history(0.1), 12)  # 0: never
    spent = SpikeGuard(0.25, [{"epoch": e} for e in range(MAX_ROLLBACKS)])
    assert not spent.is_spike(2.4, _history(0.1), 12) and not spent.active  # no snapshot


@pytest.fixture(scope="module")
def speech_tree(tmp_path_factory):
    return build_speech_tree(tmp_path_factory.mktemp("speech"), speakers=6)


def _train(data, out, *extra):
    argv = ["train", "--task", "google12", "--data", str(data), "--out", str(out)]
    return main([*argv, "--hidden", "8", "--batch-size", "16", "--seed", "1", *extra])


def _metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _spike_in_second_epoch(monkeypatch):
    """The real epochs, but the first try of epoch 2 reports SPIKE_LOSS; records the model,
    optimizer and budget controller state each try of epoch 2 started from."""
    real, starts = trainer._train_epoch, []

    def epoch_with_a_spike(model, data, cfg, epoch, steps, optimizer, *rest):
        if epoch == 1:
            controller = rest[2]
            budget = None if controller is None else copy.deepcopy(controller.state_dict())
            starts.append(
                (copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict()), budget)
            )
        record = real(model, data, cfg, epoch, steps, optimizer, *rest)
        if epoch == 1 and len(starts) == 1:
            record["train_loss"] = SPIKE_LOSS
        return record

    monkeypatch.setattr(trainer, "_train_epoch", epoch_with_a_spike)
    return starts


@pytest.mark.slow
def test_a_spiked_epoch_is_undone_and_trained_again_at_half_the_rates(
    speech_tree, tmp_path, monkeypatch, capsys
):
    assert _train(speech_tree, tmp_path / "plain", "--epochs", "3") == 0
    starts = _spike_in_second_epoch(monkeypatch)
    assert _train(speech_tree, tmp_path / "spiked", "--epochs", "3") == 0
    assert "epoch 2: the training loss climbed back towards chance" in capsys.readouterr().out

    # The second try began where the first did: weights, thresholds and Adam's moments.
    (model_a, optim_a, _), (model_b, optim_b, _) = starts
    assert all(torch.equal(model_a[k], model_b[k]) for k in model_a)
    for index, moments in optim_a["state"].items():
        for key, value in moments.items():
            assert torch.equal(
                torch.as_tensor(value), torch.as_tensor(optim_b["state"][index][key])
            )
    assert [g["lr"] * 0.5 for g in optim_a["param_groups"]] == pytest.approx(
        [g["lr"] for g in optim_b["param_groups"]]
    )

    plain, spiked = _metrics(tmp_path / "plain"), _metrics(tmp_path / "spiked")
    assert [r["epoch"] for r in spiked] == [1, 2, 3]  # the undone try is not a record
    assert spiked[0]["train_loss"] == plain[0]["train_loss"]
    for mine, theirs in zip(spiked[1:], plain[1:]):  # the rest of the run at half the rate
        assert mine["lr"] == pytest.approx(0.5 * theirs["lr"])
    final = json.loads((tmp_path / "spiked" / "final.json").read_text())
    assert final["rollbacks"] == [{"epoch": 2, "train_loss": SPIKE_LOSS, "lr_scale": 0.5}]
    assert "rollbacks" not in json.loads((tmp_path / "plain" / "final.json").read_text())

    # A resumed run keeps the rollback (it is in last.pt); the patch leaves epoch 4 alone.
    assert _train(speech_tree, tmp_path / "spiked", "--epochs", "4", "--resume") == 0
    final = json.loads((tmp_path / "spiked" / "final.json").read_text())
    assert [r["epoch"] for r in final["rollbacks"]] == [2]


@pytest.mark.slow
def test_spike_rollback_0_keeps_the_spiked_epoch(speech_tree, tmp_path, monkeypatch):
    config = tmp_path / "never.yaml"
    config.write_text("optim:\n  spike_rollback: 0\n")
    _spike_in_second_epoch(monkeypatch)
    assert _train(speech_tree, tmp_path / "run", "--epochs", "2", "--config", str(config)) == 0
    assert _metrics(tmp_path / "run")[1]["train_loss"] == SPIKE_LOSS
    assert "rollbacks" not in json.loads((tmp_path / "run" / "final.json").read_text())


@pytest.mark.slow
def test_a_budget_run_undoes_its_controller_too(speech_tree, tmp_path, monkeypatch):
    starts = _spike_in_second_epoch(monkeypatch)
    assert _train(speech_tree, tmp_path / "run", "--epochs", "3", "--target-params", "300") == 0
    (_, _, budget_a), (_, _, budget_b) = starts
    assert budget_a is not None and budget_b == budget_a  # the Rprop step and sign put back
    final = json.loads((tmp_path / "run" / "final.json").read_text())
    assert [r["epoch"] for r in final["rollbacks"]] == [2] and "size_budget" in final
