"""The optimizer choice: Adam (default) or SGD with Nesterov momentum, thresholds in their own
decay group either way; the --optimizer flag beats the YAML file; bad values are one line."""

import json

import pytest
import torch

from edge_str import EdgeStrError
from edge_str.cli import build_parser, main
from edge_str.commands.train import overrides_from_args
from edge_str.config import ModelConfig, OptimConfig, make_config
from edge_str.models import build_model
from edge_str.parametrization import threshold_parameters
from edge_str.training.optim import build_optimizer
from tests._cli import refused


@pytest.fixture
def model():
    return build_model(ModelConfig(arch="resnet", depth=10, width=0.125), (8, 8, 1), 10)


def _groups(optimizer):
    return {g["name"]: g for g in optimizer.param_groups}


def test_adam_stays_the_default(model):
    optimizer = build_optimizer(model, OptimConfig(weight_decay=3e-3))
    assert type(optimizer) is torch.optim.Adam
    groups = _groups(optimizer)
    assert groups["weights"]["weight_decay"] == groups["thresholds"]["weight_decay"] == 3e-3


def test_sgd_keeps_the_groups_and_decays(model):
    cfg = OptimConfig(optimizer="sgd", lr=0.1, weight_decay=5e-3, threshold_decay=1e-3)
    optimizer = build_optimizer(model, cfg)
    assert type(optimizer) is torch.optim.SGD
    groups = _groups(optimizer)
    assert groups["weights"]["weight_decay"] == 5e-3
    assert groups["thresholds"]["weight_decay"] == 1e-3
    thresholds = {id(p) for p in threshold_parameters(model)}
    assert {id(p) for p in groups["thresholds"]["params"]} == thresholds and thresholds
    assert not thresholds & {id(p) for p in groups["weights"]["params"]}
    n_params = sum(len(g["params"]) for g in optimizer.param_groups)
    assert n_params == len(list(model.parameters()))
    for group in optimizer.param_groups:
        assert group["lr"] == 0.1 and group["momentum"] == 0.9 and group["nesterov"] is True


def test_sgd_without_momentum_is_plain_sgd(model):
    cfg = OptimConfig(optimizer="sgd", momentum=0.0, nesterov=True)
    group = build_optimizer(model, cfg).param_groups[0]
    assert group["momentum"] == 0.0 and group["nesterov"] is False  # torch refuses Nesterov at 0


@pytest.mark.parametrize(
    "cfg, message",
    [
        (OptimConfig(optimizer="rmsprop"), "unknown optimizer 'rmsprop'; choose from adam, sgd"),
        (OptimConfig(optimizer="sgd", momentum=-0.5), "momentum must be at least 0"),
    ],
)
def test_bad_settings_are_clear_errors(model, cfg, message):
    with pytest.raises(EdgeStrError, match=message):
        build_optimizer(model, cfg)


def test_flag_overrides_the_yaml_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("task: digits\noptim:\n  optimizer: sgd\n  momentum: 0.875\n")
    assert make_config(None, path).optim.optimizer == "sgd"
    assert make_config(None, path).optim.momentum == 0.875
    for argv, expected in ((["--optimizer", "adam"], "adam"), ([], "sgd")):
        args = build_parser().parse_args(["train", "--out", "r", "--config", str(path), *argv])
        cfg = make_config(args.task, args.config, overrides_from_args(args))
        assert cfg.optim.optimizer == expected


def test_bad_flag_is_one_line_and_makes_no_run_folder(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--task", "digits", "--out", str(out), "--optimizer", "rmsprop"]
    assert "unknown optimizer 'rmsprop'" in refused(argv, capsys)
    assert not out.exists()


@pytest.mark.slow  # an end-to-end run: skipped by make test-fast
def test_sgd_end_to_end_on_digits(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--task", "digits", "--out", str(out), "--model", "resnet", "--depth", "10"]
    argv += ["--width", "0.125", "--epochs", "2", "--threads", "1", "--optimizer", "sgd"]
    assert main([*argv, "--lr", "0.1", "--weight-decay", "5e-3"]) == 0
    assert json.loads((out / "config.json").read_text())["optim"]["optimizer"] == "sgd"
    assert json.loads((out / "final.json").read_text())["test_accuracy"] > 0.5


def test_threshold_rate_sums_over_the_run_with_a_ramp_up_at_the_start(model):
    """Under threshold_rate R the thresholds' per-step lr / eps sums to R over the run; their lr
    ramps up over the first fifth of it while the weights follow the schedule alone."""
    from edge_str.training.optim import (
        THRESHOLD_SGD_EPS,
        THRESHOLD_WARMUP_FRACTION,
        build_scheduler,
        lr_factor,
    )

    cfg = OptimConfig(epochs=30, lr=1e-2, threshold_rate=1000.0, threshold_decay=0.03)
    steps = 7
    optimizer = build_optimizer(model, cfg, steps_per_epoch=steps)
    scheduler = build_scheduler(optimizer, cfg)
    summed, per_epoch, weights = 0.0, [], []
    for _ in range(cfg.epochs):
        groups = _groups(optimizer)
        per_epoch.append(groups["thresholds"]["lr"])
        weights.append(groups["weights"]["lr"])
        summed += steps * groups["thresholds"]["lr"] / THRESHOLD_SGD_EPS
        optimizer.step()
        scheduler.step()
    assert summed == pytest.approx(1000.0, rel=1e-6)
    warm = int(THRESHOLD_WARMUP_FRACTION * cfg.epochs)  # 6 epochs
    full = per_epoch[warm] / lr_factor(cfg, warm)  # the rate at factor 1
    for epoch in range(warm):
        ramp = (epoch + 1) / warm
        assert per_epoch[epoch] == pytest.approx(full * lr_factor(cfg, epoch) * ramp, rel=1e-6)
    assert weights == pytest.approx([1e-2 * lr_factor(cfg, e) for e in range(cfg.epochs)])
