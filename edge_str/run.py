"""The run directory: what training writes and what evaluate/export/compare read back.

RUN/config.json    the TrainConfig, plus the class names and input shape of the data
RUN/metrics.jsonl  one JSON object per epoch
RUN/last.pt        full checkpoint for --resume (model, optimizer, epoch, RNG states, history)
RUN/best.pt        the model with the best validation accuracy: {"model": state_dict, "epoch", ...}
RUN/final.json     the summary of the finished run

A parametrized module cannot be pickled whole, so checkpoints hold state_dicts; loading rebuilds
the model from the config (re-applying STR) and loads the weights. All writes are atomic.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edge_str.atomic import write_atomic, write_json
from edge_str.config import TrainConfig
from edge_str.errors import EdgeStrError

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"
FINAL_FILE = "final.json"


@dataclass
class RunInfo:
    config: TrainConfig
    class_names: list[str]
    input_shape: tuple[int, ...]


def save_run_info(run_dir: Path, info: RunInfo) -> None:
    payload = info.config.to_dict()
    payload["class_names"] = list(info.class_names)
    payload["input_shape"] = list(info.input_shape)
    write_json(Path(run_dir) / CONFIG_FILE, payload)


def load_run_info(run_dir: str | Path) -> RunInfo:
    path = Path(run_dir) / CONFIG_FILE
    if not Path(run_dir).is_dir():
        raise EdgeStrError(f"{run_dir}: no such run directory")
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise EdgeStrError(
            f"{path}: missing; is {run_dir} a run made by `edge-str train`?"
        ) from None
    except json.JSONDecodeError as error:
        raise EdgeStrError(f"{path}: not valid JSON ({error})") from None
    try:
        class_names = raw.pop("class_names")
        input_shape = tuple(raw.pop("input_shape"))
    except KeyError as error:
        raise EdgeStrError(f"{path}: missing {error.args[0]!r}") from None
    return RunInfo(TrainConfig.from_dict(raw, str(path)), class_names, input_shape)


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    write_atomic(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise EdgeStrError(f"{path}: no checkpoint (was the run trained to its first epoch?)")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # a truncated or foreign file: say which and why
        raise EdgeStrError(f"{path}: unreadable checkpoint ({type(error).__name__})") from None


def load_trained_model(
    run_dir: str | Path, checkpoint: str = BEST_CHECKPOINT, info: RunInfo | None = None
) -> tuple[RunInfo, nn.Module]:
    """Rebuild the run's model from its config and load the kept (best-validation) weights.

    ``info``: the run's ``load_run_info``, where the caller has read it already.
    """
    from edge_str.models import build_model  # models imports config; keep run importable alone

    info = info or load_run_info(run_dir)
    state = load_checkpoint(Path(run_dir) / checkpoint)
    model = build_model(info.config.model, info.input_shape, len(info.class_names))
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError) as error:
        raise EdgeStrError(
            f"{Path(run_dir) / checkpoint}: weights do not match the model of "
            f"{CONFIG_FILE} ({str(error).splitlines()[0]})"
        ) from None
    model.eval()
    return info, model
