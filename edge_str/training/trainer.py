"""The training loop: epochs, validation-based model selection, checkpoints, resume.

Every epoch writes RUN/last.pt (everything needed to continue) and RUN/metrics.jsonl atomically;
the model with the best validation accuracy goes to RUN/best.pt (for GMP, among the epochs at
which the schedule has reached its target sparsities: an earlier model would not have the
sparsity asked for). The test split is evaluated once, at the end, on the kept model. Data order
and augmentation are a function of (seed, epoch), so a resumed run reproduces an uninterrupted
one exactly.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from edge_str.atomic import write_atomic, write_json
from edge_str.cnn.sparsity import SparsityController
from edge_str.config import TrainConfig, check_config
from edge_str.data import load_task
from edge_str.errors import EdgeStrError
from edge_str.families import family_of
from edge_str.models import build_model
from edge_str.normalize import FeatureNormalizer
from edge_str.run import (
    BEST_CHECKPOINT,
    FINAL_FILE,
    LAST_CHECKPOINT,
    METRICS_FILE,
    RunInfo,
    absolute_paths,
    check_resumable,
    claimed_run_dir,
    load_checkpoint,
    load_run_info,
    save_checkpoint,
    save_run_info,
)
from edge_str.training.budget import (
    BAND,
    BudgetController,
    size_budget_report,
    smallest_params,
    target_params_of,
)
from edge_str.training.distributed import Replicas
from edge_str.training.evaluation import accuracy
from edge_str.training.optim import (
    build_optimizer,
    build_scheduler,
    restore_svd_forms,
)
from edge_str.training.rollback import SpikeGuard
from edge_str.training.summary import final_summary, format_summary, model_summary

# Fields of a metrics record that measure the machine, not the training: excluded when
# comparing runs for determinism.
TIMING_FIELDS = ("seconds",)


class TrainingDiverged(EdgeStrError):
    """The loss became NaN or infinite."""


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise EdgeStrError("--device cuda: no CUDA device is available on this machine")
    if name not in ("cpu", "cuda"):
        raise EdgeStrError(f"--device must be cpu or cuda, got {name!r}")
    return torch.device(name)


def set_normalizer_statistics(model: nn.Module, mean: torch.Tensor, std: torch.Tensor) -> None:
    """Put the training split's statistics into the model's first FeatureNormalizer."""
    normalizer = next((m for m in model.modules() if isinstance(m, FeatureNormalizer)), None)
    if normalizer is None:
        raise TypeError(f"{type(model).__name__} has no FeatureNormalizer")
    normalizer.set_statistics(mean, std)


def load_init_weights(model: nn.Module, path: str) -> None:
    """Start from saved weights (a state_dict, or a checkpoint holding one under "model")."""
    state = load_checkpoint(Path(path))
    state = state.get("model", state)
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise EdgeStrError(
            f"{path}: weights do not fit the configured model ({str(error).splitlines()[0]})"
        ) from None


def check_budget_settings(cfg: TrainConfig) -> None:
    """One clear error for a budget flag that cannot apply, before any data is loaded."""
    model = cfg.model
    if model.target_int8 and model.target_kb is None:
        raise EdgeStrError("--int8: counts a --target-kb budget at int8; give --target-kb K")
    if model.target_params is None and model.target_kb is None:
        return
    if model.target_params is not None and model.target_kb is not None:
        raise EdgeStrError("--target-params and --target-kb: give one budget, not both")
    given = "--target-params" if model.target_params is not None else "--target-kb"
    value = model.target_params if model.target_params is not None else model.target_kb
    if model.arch != "fastgrnn" or model.rank_mode != "str":
        raise EdgeStrError(f"{given}: budget mode needs a FastGRNN with --rank-mode str")
    if not value > 0:
        raise EdgeStrError(f"{given} {value}: must be positive")


def sparsity_controller(
    model: nn.Module, cfg: TrainConfig
) -> SparsityController | BudgetController | None:
    """The family's controller (the CNN path's STR/GMP), or FastGRNN's budget controller in
    budget mode (plain FastGRNN STR needs none: its thresholds are parameters)."""
    target = target_params_of(cfg.model.target_params, cfg.model.target_kb, cfg.model.target_int8)
    if cfg.model.arch != "fastgrnn" or target is None:
        return family_of(cfg.model.arch).controller(model, cfg.model)
    smallest, start = smallest_params(model), model.cost().params_compact
    if not smallest < target <= start * (1 + BAND):
        raise EdgeStrError(
            f"budget {target:,} params: must lie between the model with W and U at rank 0 "
            f"({smallest:,}) and the full model ({start:,})"
        )
    return BudgetController(model, target)


def _rng_state() -> dict[str, Any]:
    """Every generator's state in types a weights-only checkpoint holds (tensor, ints)."""
    name, keys, position, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": [name, keys.tolist(), int(position), int(has_gauss), float(gauss)],
        "python": [version, list(internal), gauss_next],
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, position, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), position, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))


def _training_state(model, optimizer, scheduler, controller) -> dict[str, Any]:
    """What a resume (from last.pt) or a rollback (from memory) puts back; live tensors."""
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "sparsity": None if controller is None else controller.state_dict(),
        "rng": _rng_state(),
    }


def _restore_training_state(state: dict[str, Any], model, optimizer, scheduler, controller) -> None:
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if controller is not None:
        controller.load_state_dict(state["sparsity"])
    _set_rng_state(state["rng"])


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def _write_metrics(run_dir: Path, history: list[dict[str, Any]]) -> None:
    lines = "".join(json.dumps(record) + "\n" for record in history)
    write_atomic(run_dir / METRICS_FILE, lambda tmp: tmp.write_text(lines))


def _prepare_run_dir(cfg: TrainConfig, resume: bool) -> tuple[TrainConfig, TrainConfig | None]:
    """(the config to train, the run's saved config when resuming); checked under the lock."""
    run_dir = Path(cfg.out)
    if resume:
        if not (run_dir / LAST_CHECKPOINT).is_file():
            raise EdgeStrError(f"{run_dir}: nothing to resume (no {LAST_CHECKPOINT})")
        saved = load_run_info(run_dir).config
        check_resumable(run_dir, saved, cfg)
        return dataclasses.replace(cfg, out=str(run_dir)), saved
    if (run_dir / LAST_CHECKPOINT).exists():
        raise EdgeStrError(
            f"{run_dir}: already holds a run; continue it with --resume or choose another --out"
        )
    return cfg, None


def _what_is_kept(run_dir: Path) -> str:
    """The truth about the run's checkpoints after a failure, for its message."""
    if not (run_dir / LAST_CHECKPOINT).is_file():
        return "no epoch had finished, so nothing is kept"
    epoch = load_checkpoint(run_dir / LAST_CHECKPOINT)["epoch"] + 1
    return f"the last finished epoch ({epoch}) is kept in {run_dir / LAST_CHECKPOINT}"


def train(cfg: TrainConfig, resume: bool = False, log=print) -> dict[str, Any]:
    """Train the model ``cfg`` describes; returns (and writes) the final summary.

    Under torchrun, one rank of a DistributedDataParallel run (``edge_str.training.distributed``):
    ``optim.batch_size`` is then the global batch, and only rank 0 writes, logs and holds the
    run folder's lock.
    """
    check_config(cfg)  # before the run folder is made
    check_budget_settings(cfg)
    if cfg.optim.epochs < 1:
        raise EdgeStrError(f"optim.epochs must be at least 1 to train, got {cfg.optim.epochs}")
    cfg = absolute_paths(cfg)  # config.json must work from any folder (evaluate, export)
    run_dir = Path(cfg.out)
    replicas = Replicas.from_environment(cfg.device)
    try:
        claim = claimed_run_dir(run_dir) if replicas.is_main else contextlib.nullcontext()
        with claim:
            cfg, saved = _prepare_run_dir(cfg, resume)
            device = replicas.device(resolve_device(cfg.device))
            log = log if replicas.is_main else _quiet
            final = _train(cfg, run_dir, saved, device, log, replicas)
        replicas.finish()
        return final
    finally:
        replicas.close()


def _quiet(text: str) -> None:
    return None


def _train(
    cfg: TrainConfig, run_dir: Path, saved, device, log, replicas: Replicas
) -> dict[str, Any]:
    resume = saved is not None
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    data = load_task(cfg.task, cfg.data_dir, cfg.data)
    x_val, y_val = data.split_tensors("val")
    if len(y_val) == 0:
        raise EdgeStrError(f"{cfg.data_dir}: the validation split is empty")

    _seed_everything(cfg.seed)
    model = build_model(cfg.model, data.input_shape, len(data.class_names))
    set_normalizer_statistics(model, data.mean, data.std)
    if cfg.model.init_weights:
        load_init_weights(model, cfg.model.init_weights)
    try:
        controller = sparsity_controller(model, cfg)
    except EdgeStrError:
        if not resume and not any(run_dir.iterdir()):
            run_dir.rmdir()  # nothing half-written
        raise
    model.to(device)
    net = replicas.wrap(model)  # what training steps run through: DDP when distributed
    steps = data.num_batches(cfg.optim.batch_size)
    optimizer = build_optimizer(model, cfg.optim, steps)
    scheduler = build_scheduler(optimizer, cfg.optim)
    history: list[dict[str, Any]] = []
    best = {"val_accuracy": -1.0, "epoch": -1}
    start_epoch = 0
    resumes: list[dict[str, int]] = []
    rollbacks: list[dict[str, Any]] = []
    if resume:
        state = load_checkpoint(run_dir / LAST_CHECKPOINT)
        _restore_training_state(state, model, optimizer, scheduler, controller)
        history, best, start_epoch = state["history"], state["best"], state["epoch"] + 1
        if cfg.optim.epochs < start_epoch:
            raise EdgeStrError(
                f"{run_dir}: has trained {start_epoch} epochs already; --epochs "
                f"{cfg.optim.epochs} cannot resume it (give at least {start_epoch})"
            )
        resumes = state.get("resumes", [])
        rollbacks = state.get("rollbacks", [])
        if cfg.optim.epochs != saved.optim.epochs:  # recorded: config.json and final.json agree
            resumes.append({"after_epoch": start_epoch, "epochs": cfg.optim.epochs,
                            "epochs_before": saved.optim.epochs})  # fmt: skip
            log(f"resuming {run_dir} after epoch {start_epoch}: epochs "
                f"{saved.optim.epochs} -> {cfg.optim.epochs}")  # fmt: skip
    if replicas.is_main:
        save_run_info(run_dir, RunInfo(cfg, data.class_names, tuple(data.input_shape)))

    loss_fn = nn.CrossEntropyLoss()
    guard = SpikeGuard(cfg.optim.spike_rollback, rollbacks)
    epoch = start_epoch
    try:
        while epoch < cfg.optim.epochs:
            # The epoch's start, for a rollback: copied, as the state dicts hold live tensors.
            before = None
            if guard.active:
                before = copy.deepcopy(_training_state(model, optimizer, scheduler, controller))
            record = _train_epoch(
                net, data, cfg, epoch, steps, optimizer, loss_fn, device, controller, replicas
            )
            if guard.is_spike(record["train_loss"], history, len(data.class_names)):
                _restore_training_state(before, model, optimizer, scheduler, controller)
                log(guard.cut_learning_rates(optimizer, scheduler, epoch, record["train_loss"]))
                continue  # the same epoch again, from where it started
            if cfg.model.svd_each_epoch:
                restore_svd_forms(model, optimizer)
            replicas.broadcast_model(model)  # rank 0's refactored factors on every rank
            scheduler.step()
            record["val_accuracy"] = accuracy(model, x_val, y_val, device=str(device))
            if controller is not None:
                record.update(controller.metrics())
            summary = model_summary(model)
            replicas.check_in_sync(model, summary, epoch)
            record.update(summary)
            history.append(record)
            eligible = controller is None or controller.reached_target()
            # On a tie the later epoch wins: as thresholds rise it is the smaller model.
            # A budget run that never landed in its band keeps its last model (final.json
            # then says so) rather than none.
            last_chance = epoch == cfg.optim.epochs - 1 and best["epoch"] < 0
            if (eligible or last_chance) and record["val_accuracy"] >= best["val_accuracy"]:
                best = {"val_accuracy": record["val_accuracy"], "epoch": epoch}
                if replicas.is_main:
                    save_checkpoint(
                        run_dir / BEST_CHECKPOINT, {"model": model.state_dict(), **best}
                    )
            if replicas.is_main:  # the run folder is rank 0's
                save_checkpoint(
                    run_dir / LAST_CHECKPOINT,
                    {
                        **_training_state(model, optimizer, scheduler, controller),
                        "epoch": epoch,
                        "history": history,
                        "best": best,
                        "config": cfg.to_dict(),
                        "resumes": resumes,
                        "rollbacks": guard.rollbacks,
                    },
                )
                _write_metrics(run_dir, history)
                log(
                    f"epoch {epoch + 1}/{cfg.optim.epochs} loss {record['train_loss']:.4f} "
                    f"train {record['train_accuracy']:.2%} val {record['val_accuracy']:.2%} "
                    f"{format_summary(record, cfg.model.arch)} {record['seconds']:.1f}s"
                )
            epoch += 1
    except KeyboardInterrupt:
        if not replicas.is_main:
            raise
        kept = _what_is_kept(run_dir)
        then = ": continue with --resume" if (run_dir / LAST_CHECKPOINT).is_file() else ""
        print(f"edge-str: interrupted in epoch {epoch + 1}; {kept}{then}", file=sys.stderr)
        raise
    except TrainingDiverged as error:
        if not replicas.is_main:
            raise
        raise TrainingDiverged(f"{error}; {_what_is_kept(run_dir)}") from None
    final = (
        _finish(run_dir, cfg, data, history, best, device, resumes, guard.rollbacks)
        if replicas.is_main
        else None
    )
    return replicas.from_main(final)


def _train_epoch(
    model, data, cfg, epoch, steps, optimizer, loss_fn, device, controller, replicas
) -> dict[str, Any]:
    model.train()
    start = time.perf_counter()
    total_loss, correct, seen = 0.0, 0, 0
    batches = data.train_batches(epoch, cfg.optim.batch_size, cfg.seed)
    show = None if replicas.is_main else True  # tqdm: None = only on a terminal
    bar = tqdm(batches, total=steps, desc=f"epoch {epoch + 1}", leave=False, disable=show)
    for step, (x, y) in enumerate(bar):
        batch = len(y)  # the global batch; under DDP this rank trains on its share
        x, y = replicas.shard(x, y)
        x, y = x.to(device), y.to(device)
        optimizer.zero_grad(set_to_none=True)
        logits = model(x)
        loss = replicas.batch_loss(loss_fn, logits, y, batch)
        batch_loss, batch_correct = replicas.batch_totals(loss, (logits.argmax(-1) == y).sum())
        if not math.isfinite(batch_loss):
            raise TrainingDiverged(
                f"training diverged in epoch {epoch + 1} (loss {batch_loss}); lower --lr or "
                "--weight-decay in a new run"
            )
        loss.backward()
        if cfg.optim.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
        optimizer.step()
        if controller is not None:
            controller.step(epoch, step, steps, cfg.optim.epochs)
        total_loss += batch_loss * batch
        correct += batch_correct
        seen += batch
        bar.set_postfix(loss=f"{total_loss / seen:.4f}")
    return {
        "epoch": epoch + 1,
        "lr": optimizer.param_groups[0]["lr"],
        "train_loss": total_loss / max(seen, 1),
        "train_accuracy": correct / max(seen, 1),
        "seconds": time.perf_counter() - start,
    }


def _finish(run_dir, cfg, data, history, best, device, resumes, rollbacks) -> dict[str, Any]:
    model = build_model(cfg.model, data.input_shape, len(data.class_names))
    model.load_state_dict(load_checkpoint(run_dir / BEST_CHECKPOINT)["model"])
    model.to(device)
    x_test, y_test = data.split_tensors("test")
    family = family_of(cfg.model.arch)
    final = final_summary(
        cfg,
        model.cpu(),
        test_accuracy=accuracy(model, x_test, y_test, device=str(device)),
        val_accuracy=best["val_accuracy"],
        best_epoch=best["epoch"] + 1,
        epochs=len(history),
        train_seconds=sum(record["seconds"] for record in history),
    )
    if resumes:
        final["resumes"] = resumes
    if rollbacks:
        final["rollbacks"] = rollbacks
    final.update(family.final_extras(model, cfg, run_dir))
    target = target_params_of(cfg.model.target_params, cfg.model.target_kb, cfg.model.target_int8)
    if cfg.model.arch == "fastgrnn" and target is not None:
        final["size_budget"] = size_budget_report(model, target, cfg.model.target_int8)
    write_json(run_dir / FINAL_FILE, final)
    return final
