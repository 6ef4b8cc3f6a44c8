"""The training loop: epochs, validation-based model selection, checkpoints, resume.

Every epoch writes RUN/last.pt (everything needed to continue) and RUN/metrics.jsonl atomically;
the model with the best validation accuracy goes to RUN/best.pt (for GMP, among the epochs at
which the schedule has reached its target sparsities: an earlier model would not have the
sparsity asked for). The test split is evaluated once, at the end, on the kept model. Data order
and augmentation are a function of (seed, epoch), so a resumed run reproduces an uninterrupted
one exactly.
"""

from __future__ import annotations

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
    load_checkpoint,
    load_run_info,
    save_checkpoint,
    save_run_info,
)
from edge_str.training.evaluation import accuracy
from edge_str.training.optim import (
    build_optimizer,
    build_scheduler,
    restore_svd_forms,
)
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


def sparsity_controller(model: nn.Module, cfg: TrainConfig) -> SparsityController | None:
    """The CNN path's STR/GMP controller; FastGRNN's STR needs none (thresholds are parameters)."""
    return family_of(cfg.model.arch).controller(model, cfg.model)


def _rng_state() -> dict[str, Any]:
    return {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def _write_metrics(run_dir: Path, history: list[dict[str, Any]]) -> None:
    lines = "".join(json.dumps(record) + "\n" for record in history)
    write_atomic(run_dir / METRICS_FILE, lambda tmp: tmp.write_text(lines))


def _prepare_run_dir(cfg: TrainConfig, resume: bool) -> tuple[TrainConfig, Path]:
    run_dir = Path(cfg.out)
    if resume:
        if not (run_dir / LAST_CHECKPOINT).is_file():
            raise EdgeStrError(f"{run_dir}: nothing to resume (no {LAST_CHECKPOINT})")
        saved = load_run_info(run_dir).config
        saved.optim.epochs = cfg.optim.epochs  # the only setting a resume may change
        saved.out = str(run_dir)
        return saved, run_dir
    if (run_dir / LAST_CHECKPOINT).exists():
        raise EdgeStrError(
            f"{run_dir}: already holds a run; continue it with --resume or choose another --out"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    return cfg, run_dir


def train(cfg: TrainConfig, resume: bool = False, log=print) -> dict[str, Any]:
    """Train the model ``cfg`` describes; returns (and writes) the final summary."""
    check_config(cfg)  # before the run folder is made
    if cfg.optim.epochs < 1:
        raise EdgeStrError(f"optim.epochs must be at least 1 to train, got {cfg.optim.epochs}")
    cfg, run_dir = _prepare_run_dir(cfg, resume)
    device = resolve_device(cfg.device)
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
    controller = sparsity_controller(model, cfg)
    model.to(device)
    optimizer = build_optimizer(model, cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.optim)
    history: list[dict[str, Any]] = []
    best = {"val_accuracy": -1.0, "epoch": -1}
    start_epoch = 0
    if resume:
        state = load_checkpoint(run_dir / LAST_CHECKPOINT)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if controller is not None:
            controller.load_state_dict(state["sparsity"])
        history, best, start_epoch = state["history"], state["best"], state["epoch"] + 1
        _set_rng_state(state["rng"])
    save_run_info(run_dir, RunInfo(cfg, data.class_names, tuple(data.input_shape)))

    loss_fn = nn.CrossEntropyLoss()
    steps = math.ceil(data.num_examples("train") / cfg.optim.batch_size)
    epoch = start_epoch
    try:
        for epoch in range(start_epoch, cfg.optim.epochs):
            record = _train_epoch(
                model, data, cfg, epoch, steps, optimizer, loss_fn, device, controller
            )
            if cfg.model.svd_each_epoch:
                restore_svd_forms(model, optimizer)
            scheduler.step()
            record["val_accuracy"] = accuracy(model, x_val, y_val, device=str(device))
            if controller is not None:
                record.update(controller.metrics())
            record.update(model_summary(model))
            history.append(record)
            eligible = controller is None or controller.reached_target()
            # On a tie the later epoch wins: as thresholds rise it is the smaller model.
            if eligible and record["val_accuracy"] >= best["val_accuracy"]:
                best = {"val_accuracy": record["val_accuracy"], "epoch": epoch}
                save_checkpoint(run_dir / BEST_CHECKPOINT, {"model": model.state_dict(), **best})
            save_checkpoint(
                run_dir / LAST_CHECKPOINT,
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "epoch": epoch,
                    "history": history,
                    "best": best,
                    "rng": _rng_state(),
                    "sparsity": None if controller is None else controller.state_dict(),
                    "config": cfg.to_dict(),
                },
            )
            _write_metrics(run_dir, history)
            log(
                f"epoch {epoch + 1}/{cfg.optim.epochs} loss {record['train_loss']:.4f} "
                f"train {record['train_accuracy']:.2%} val {record['val_accuracy']:.2%} "
                f"{format_summary(record, cfg.model.arch)} {record['seconds']:.1f}s"
            )
    except KeyboardInterrupt:
        print(
            f"edge-str: interrupted in epoch {epoch + 1}; the last finished epoch is saved in "
            f"{run_dir / LAST_CHECKPOINT}: continue with --resume",
            file=sys.stderr,
        )
        raise
    return _finish(run_dir, cfg, data, history, best, device)


def _train_epoch(
    model, data, cfg, epoch, steps, optimizer, loss_fn, device, controller
) -> dict[str, Any]:
    model.train()
    start = time.perf_counter()
    total_loss, correct, seen = 0.0, 0, 0
    batches = data.train_batches(epoch, cfg.optim.batch_size, cfg.seed)
    bar = tqdm(batches, total=steps, desc=f"epoch {epoch + 1}", leave=False, disable=None)
    for step, (x, y) in enumerate(bar):
        x, y = x.to(device), y.to(device)
        optimizer.zero_grad(set_to_none=True)
        logits = model(x)
        loss = loss_fn(logits, y)
        if not torch.isfinite(loss):
            raise TrainingDiverged(
                f"training diverged in epoch {epoch + 1} (loss {loss.item()}); lower --lr or "
                f"--weight-decay. The last good epoch is kept in {Path(cfg.out) / LAST_CHECKPOINT}"
            )
        loss.backward()
        if cfg.optim.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
        optimizer.step()
        if controller is not None:
            controller.step(epoch, step, steps, cfg.optim.epochs)
        total_loss += loss.item() * len(y)
        correct += int((logits.argmax(-1) == y).sum())
        seen += len(y)
        bar.set_postfix(loss=f"{total_loss / seen:.4f}")
    return {
        "epoch": epoch + 1,
        "lr": optimizer.param_groups[0]["lr"],
        "train_loss": total_loss / max(seen, 1),
        "train_accuracy": correct / max(seen, 1),
        "seconds": time.perf_counter() - start,
    }


def _finish(run_dir, cfg, data, history, best, device) -> dict[str, Any]:
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
    final.update(family.final_extras(model, cfg, run_dir))
    write_json(run_dir / FINAL_FILE, final)
    return final
