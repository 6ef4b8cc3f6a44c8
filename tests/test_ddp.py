"""Training on two processes (DDP, gloo): the single-process model, thresholds and ranks in sync."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from _data_trees import build_har_tree

from edge_str.config import ModelConfig, make_config
from edge_str.errors import EdgeStrError
from edge_str.models import build_model
from edge_str.training import train
from edge_str.training.distributed import Replicas, without_flag
from edge_str.training.optim import build_optimizer, restore_svd_forms
from tests._cli import refused

# 7 does not divide the training split: uneven shards (4 + 3) and a short last batch.
FLAGS = ["--task", "har2", "--hidden", "8", "--batch-size", "7", "--s-init", "-1", "--seed", "2"]


@pytest.fixture(scope="module")
def har(tmp_path_factory) -> Path:
    return build_har_tree(tmp_path_factory.mktemp("har") / "UCI HAR Dataset")


def _config(har: Path, out: Path, epochs: int = 2):
    overrides = {"data_dir": str(har), "out": str(out), "seed": 2}
    overrides |= {"model": {"hidden": 8, "s_init": -1.0}}
    overrides |= {"optim": {"epochs": epochs, "batch_size": 7}}
    return make_config("har2", None, overrides)


@pytest.fixture(scope="module")
def single(har, tmp_path_factory) -> Path:
    """The reference: the same run on one process."""
    out = tmp_path_factory.mktemp("single") / "run"
    train(_config(har, out), log=lambda line: None)
    return out


@pytest.fixture(scope="module")
def single_resumed(har, tmp_path_factory) -> Path:
    """The reference of a resumed run: one epoch (its schedule set for one), then --resume to
    two, on one process."""
    out = tmp_path_factory.mktemp("single_resumed") / "run"
    train(_config(har, out, epochs=1), log=lambda line: None)
    train(_config(har, out, epochs=2), resume=True, log=lambda line: None)
    return out


def _assert_same_run(ddp: Path, single: Path) -> None:
    a = torch.load(single / "last.pt", weights_only=False)["model"]
    b = torch.load(ddp / "last.pt", weights_only=False)["model"]
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-5, msg=key)
    ours = json.loads((ddp / "final.json").read_text())
    theirs = json.loads((single / "final.json").read_text())
    assert ours["ranks"] == theirs["ranks"] and ours["test_accuracy"] == theirs["test_accuracy"]
    for key in ("W", "U"):
        assert ours["thresholds"][key] == pytest.approx(theirs["thresholds"][key], rel=1e-4)
    lines = [json.loads(x) for x in (ddp / "metrics.jsonl").read_text().splitlines()]
    reference = [json.loads(x) for x in (single / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2]
    for mine, theirs in zip(lines, reference):
        assert mine["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-5)
        assert mine["train_accuracy"] == theirs["train_accuracy"]  # over the global batch
        assert mine["ranks"] == theirs["ranks"]
    assert sorted(p.name for p in ddp.iterdir()) == sorted(p.name for p in single.iterdir())


@pytest.mark.slow
def test_ddp_flag_launches_two_processes_that_train_the_single_process_model(
    har, single, tmp_path, capfd
):
    from edge_str.cli import main

    ddp = tmp_path / "ddp"
    argv = ["train", *FLAGS, "--data", str(har), "--out", str(ddp), "--epochs", "2"]
    assert main([*argv, "--ddp", "2"]) == 0
    out = capfd.readouterr().out
    assert out.count("trained har2 fastgrnn") == 1 and out.count("epoch 2/2") == 1  # rank 0's
    _assert_same_run(ddp, single)


def _rank(rank: int, world: int, port: int, har: str, out: str) -> None:
    """One rank as torchrun starts it: a run interrupted after epoch 1 and resumed; then its
    replica put out of sync, checked, refactored and broadcast."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world))
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    # One process group for the whole process, as under torchrun (train() joins it, and
    # leaves it to its owner).
    dist.init_process_group("gloo")
    run = Path(out) / "ddp"
    train(_config(Path(har), run, epochs=1), log=lambda line: None)
    train(_config(Path(har), run, epochs=2), resume=True, log=lambda line: None)

    replicas = Replicas.from_environment("cpu")
    torch.manual_seed(0)
    model = build_model(ModelConfig(hidden=8, s_init=-1.0), (5, 9), 2)
    optimizer = build_optimizer(model, make_config("har2", None, {}).optim, steps_per_epoch=1)
    errors = []
    replicas.check_in_sync(model, {}, 0)  # identical replicas: no error
    if rank == 1:  # as a different device's SVD or a missed step would leave it
        with torch.no_grad():
            model.rnn.cell.W.raw_sigma().mul_(1.001)
    try:
        replicas.check_in_sync(model, {}, 0)
    except EdgeStrError as error:
        errors.append(str(error))
    restore_svd_forms(model, optimizer)  # on each rank, from its own factors
    replicas.broadcast_model(model)  # then rank 0's everywhere
    replicas.check_in_sync(model, {"ranks": model.effective_ranks()}, 1)
    result = {"errors": errors, "thresholds": model.thresholds(), "ranks": model.effective_ranks()}
    Path(out, f"rank{rank}.json").write_text(json.dumps(result))
    assert dist.is_initialized()  # train() left the group it did not start
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_resumed_two_process_run_and_replicas_in_sync(har, single_resumed, tmp_path):
    args = (2, _free_port(), str(har), str(tmp_path))
    mp.start_processes(_rank, args=args, nprocs=2, start_method="spawn")
    _assert_same_run(tmp_path / "ddp", single_resumed)  # --resume as on one process
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for result in results:  # every rank saw rank 1 differ ...
        assert len(result["errors"]) == 1 and "rank 1's model differs" in result["errors"][0]
    # ... and after the refactor and the broadcast, thresholds and ranks agree
    assert results[0]["thresholds"] == results[1]["thresholds"]
    assert results[0]["ranks"] == results[1]["ranks"]


def test_ddp_flag_refusals_and_argv(har, tmp_path, capsys):
    base = ["train", *FLAGS, "--data", str(har), "--out", str(tmp_path / "r")]
    assert "--ddp must be at least 1" in refused([*base, "--ddp", "0"], capsys)
    assert not (tmp_path / "r").exists()
    argv = ["train", "--ddp", "2", "--out", "x", "--ddp=3", "--dd", "4", "--data", "d"]
    assert without_flag(argv, "--ddp") == ["train", "--out", "x", "--data", "d"]
