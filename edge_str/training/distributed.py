"""Training on several processes: DistributedDataParallel under torchrun.

``torchrun --nproc-per-node N -m edge_str train ...`` (or ``edge-str train --ddp N``, which
launches it) starts N ranks with RANK, WORLD_SIZE, LOCAL_RANK and the rendezvous in the
environment; ``Replicas.from_environment`` joins the process group (gloo on CPU, nccl on CUDA,
one GPU per rank). Every rank draws the same global batch from ``TaskData.train_batches``
(a function of seed and epoch) and trains on its share, examples ``rank::world``: the union of
the shares is the batch a single process would train on. torch's ``DistributedSampler`` is not
used, on purpose: it draws its own permutation per epoch (and pads or drops examples to even
shares), so a run on N processes would not be the run on one; sharding each global batch keeps
the order, the augmentation and so the model of the single-process run (to float rounding).

DDP averages gradients over ranks; each rank scales its mean loss by (its examples * world /
global batch), so the averaged gradient is that of the global batch's mean loss, also when the
shares differ in size. Everything that changes weights outside the optimizer step (the STR
low-rank SVD refactor after each epoch) runs on every rank and rank 0's result is then
broadcast, so the replicas stay identical whatever the SVD's rounding on each device;
``check_in_sync`` verifies that each epoch. Only rank 0 writes the run folder.
"""

from __future__ import annotations

import gc
import logging
import math
import os
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from edge_str.errors import EdgeStrError


def launched_rank() -> int:
    """This process's rank as torchrun set it (0 outside torchrun)."""
    return int(os.environ.get("RANK", "0"))


@dataclass
class Replicas:
    """This process's place among the training processes; one process when ``world_size`` is 1."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # whether this object joined the process group (and leaves it)

    @classmethod
    def from_environment(cls, device: str) -> Replicas:
        """Join the process group torchrun describes; a single process outside torchrun."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        if device == "cuda":
            if not torch.cuda.is_available() or torch.cuda.device_count() <= local:
                raise EdgeStrError(
                    f"--device cuda on {world} processes: rank {rank} needs GPU {local}, and "
                    f"this machine has {torch.cuda.device_count()}"
                )
            torch.cuda.set_device(local)
        owns = not dist.is_initialized()
        if owns:
            dist.init_process_group("nccl" if device == "cuda" else "gloo")
        return cls(rank, world, local, owns)

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes the run folder and prints."""
        return self.rank == 0

    def device(self, device: torch.device) -> torch.device:
        """This rank's device: its own GPU under DDP on CUDA."""
        if self.distributed and device.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return device

    def wrap(self, model: nn.Module) -> nn.Module:
        """The module to run training steps through: DDP around ``model`` when distributed."""
        if not self.distributed:
            return model
        on_gpu = next(model.parameters()).is_cuda
        if on_gpu:  # batch norm over the global batch, as on one process (nccl only)
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return nn.parallel.DistributedDataParallel(
            model, device_ids=[self.local_rank] if on_gpu else None
        )

    def shard(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's share of a global batch."""
        if not self.distributed:
            return x, y
        return x[self.rank :: self.world_size], y[self.rank :: self.world_size]

    def batch_loss(
        self, loss_fn: Callable, logits: torch.Tensor, y: torch.Tensor, batch: int
    ) -> torch.Tensor:
        """The loss to back-propagate: ``loss_fn`` (a mean) scaled so that DDP's average over
        ranks is the mean over the ``batch`` examples of the global batch."""
        if not self.distributed:
            return loss_fn(logits, y)
        if len(y) == 0:  # a last batch smaller than the ranks: this one still joins the step
            return logits.sum() * 0.0
        return loss_fn(logits, y) * (len(y) * self.world_size / batch)

    def batch_totals(self, loss: torch.Tensor, correct: torch.Tensor) -> tuple[float, int]:
        """(mean loss, correct predictions) over the global batch, the same on every rank."""
        if not self.distributed:
            return loss.item(), int(correct)
        totals = torch.stack([loss.detach().double() / self.world_size, correct.double()])
        dist.all_reduce(totals)
        return float(totals[0]), int(round(float(totals[1])))

    @torch.no_grad()
    def broadcast_model(self, model: nn.Module) -> None:
        """Rank 0's parameters and buffers on every rank."""
        if self.distributed:
            for tensor in [*model.parameters(), *model.buffers()]:
                dist.broadcast(tensor.data, 0)

    def from_main(self, value: Any) -> Any:
        """Rank 0's ``value`` (any picklable object) on every rank."""
        if not self.distributed:
            return value
        box = [value if self.is_main else None]
        dist.broadcast_object_list(box, 0)
        return box[0]

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    @torch.no_grad()
    def check_in_sync(self, model: nn.Module, summary: dict[str, Any], epoch: int) -> None:
        """Raise unless every rank holds rank 0's weights, STR thresholds and ranks."""
        if not self.distributed:
            return
        mine = fingerprint(model, summary)
        device = next(model.parameters()).device
        local = torch.tensor(mine, dtype=torch.float64, device=device)
        gathered = [torch.empty_like(local) for _ in range(self.world_size)]
        dist.all_gather(gathered, local)
        for rank, theirs in enumerate(gathered[1:], start=1):
            if not torch.equal(theirs, gathered[0]):
                raise EdgeStrError(
                    f"epoch {epoch + 1}: rank {rank}'s model differs from rank 0's (weights, "
                    "STR thresholds or ranks); the replicas went out of sync"
                )

    def finish(self) -> None:
        """The end of a run that went well on every rank: no rank leaves the group while
        another may still be in a collective, and no finished collective's work object (they
        hold tensors) outlives the group into interpreter shutdown, where gloo's worker threads
        freeing it can abort the process (SIGABRT once in CI, on rank 1 after a finished run)."""
        if self.distributed:
            gc.collect()
            dist.barrier()

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()
            self.owns_group = False


def fingerprint(model: nn.Module, summary: dict[str, Any]) -> list[float]:
    """Numbers that differ when two replicas do: each tensor's sum and sum of squares, and the
    summary's numbers (FastGRNN's ranks and thresholds, a CNN's sparsity and MACs)."""
    values: list[float] = []
    for tensor in [*model.parameters(), *model.buffers()]:
        data = tensor.detach().double()
        values += [float(data.sum()), float((data * data).sum())]
    values += _numbers(summary)
    return [v if math.isfinite(v) else 0.0 for v in values]


def _numbers(value: Any) -> list[float]:
    if isinstance(value, bool):
        return [float(value)]
    if isinstance(value, int | float):
        return [float(value)]
    if isinstance(value, dict):
        return [n for key in sorted(value) for n in _numbers(value[key])]
    if isinstance(value, list | tuple):
        return [n for item in value for n in _numbers(item)]
    return []


def without_flag(argv: list[str], flag: str) -> list[str]:
    """``argv`` less ``flag VALUE`` (or ``flag=VALUE``, or an abbreviation argparse accepted)."""
    kept, skip = [], False
    for token in argv:
        if skip:
            skip = False
            continue
        name = token.split("=", 1)[0]
        if len(name) > 2 and flag.startswith(name) and name.startswith("--"):
            skip = "=" not in token
            continue
        kept.append(token)
    return kept


def launch(nproc: int, argv: list[str], device: str = "cpu") -> int:
    """``edge-str ARGV`` on ``nproc`` processes of this machine, started as torchrun starts them.

    A rank's user error is printed by rank 0 (every rank meets the same one) and the exit code
    is 2; another rank's failure alone is one line naming it.
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    if nproc < 1:
        raise EdgeStrError(f"--ddp must be at least 1, got {nproc}")
    if "WORLD_SIZE" in os.environ:
        raise EdgeStrError("--ddp: this is already a torchrun process; drop --ddp")
    if device == "cuda" and nproc > torch.cuda.device_count():
        raise EdgeStrError(
            f"--ddp {nproc} --device cuda: one GPU per process, and this machine has "
            f"{torch.cuda.device_count()}"
        )
    logging.getLogger("torch.distributed.elastic").setLevel(logging.ERROR)
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # as torchrun sets it: one thread per rank
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=f"edge-str-{uuid.uuid4().hex[:8]}",
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",  # a free port: torchrun --standalone
        max_restarts=0,
        monitor_interval=0.2,
    )
    try:
        elastic_launch(config, sys.executable)("-m", "edge_str", *argv)
    except ChildFailedError as error:
        failures = error.failures
        main_failure = next((f for f in failures.values() if f.local_rank == 0), None)
        if main_failure is not None and main_failure.exitcode == 2:
            return 2  # rank 0 has printed the error
        rank, failure = error.get_first_failure()
        raise EdgeStrError(
            f"--ddp {nproc}: rank {rank} exited with code {failure.exitcode}; run it under "
            "torchrun to see every rank's messages"
        ) from None
    return 0
