"""The run directory: what training writes and what evaluate/export/compare read back.

RUN/config.json    the TrainConfig, plus the class names and input shape of the data
RUN/metrics.jsonl  one JSON object per epoch
RUN/last.pt        full checkpoint for --resume (model, optimizer, epoch, RNG states, history)
RUN/best.pt        the model with the best validation accuracy: {"model": state_dict, "epoch", ...}
RUN/final.json     the summary of the finished run
RUN/.train.lock    held while a training writes the folder (a second one is refused)

A parametrized module cannot be pickled whole, so checkpoints hold state_dicts; loading rebuilds
the model from the config (re-applying STR) and loads the weights. All writes are atomic.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
import shutil
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock, Timeout
from torch import nn

from edge_str.atomic import file_in_the_way, write_atomic, write_json
from edge_str.config import TrainConfig, read_yaml
from edge_str.errors import EdgeStrError
from edge_str.validation import drop_none, merge

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"
FINAL_FILE = "final.json"
LOCK_FILE = ".train.lock"
# What a resume may change: how long to train, and where/on what it runs. Anything else
# (model, optimiser, data settings, seed) would make the checkpoint another run's.
RESUMABLE = ("optim.epochs", "data_dir", "data.cache_dir", "out", "device", "threads")


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


JSON_ENTRY = "json"  # entries a weights-only load could not read, as JSON text
_PLAIN = (bool, int, float, str, type(None), torch.Tensor)


def _weights_only_safe(value: Any) -> bool:
    """Tensors, Python numbers and strings, and lists/tuples/dicts of them: what
    ``torch.load(weights_only=True)`` reads (numpy values, say, it refuses)."""
    if isinstance(value, dict):
        return all(isinstance(k, _PLAIN) and _weights_only_safe(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(_weights_only_safe(v) for v in value)
    return type(value) in _PLAIN or isinstance(value, torch.Tensor)


def _plain(value: Any) -> Any:
    """numpy scalars and arrays as the JSON numbers and lists they hold."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} in a checkpoint")


CHECKSUM_ENTRY = "crc32"  # CRC-32 of every tensor's bytes: torch.load does not check them


def _tensor_checksums(value: Any, prefix: str = "") -> dict[str, int]:
    if isinstance(value, torch.Tensor):
        data = value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()
        return {prefix: zlib.crc32(data)}
    if not isinstance(value, dict | list | tuple):
        return {}
    items = value.items() if isinstance(value, dict) else enumerate(value)
    sums = {}
    for key, item in items:
        sums.update(_tensor_checksums(item, f"{prefix}.{key}" if prefix else str(key)))
    return sums


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """torch.save of ``payload``, with every entry a weights-only load cannot read stored as
    JSON instead: loading needs ``weights_only=True`` only (no pickled objects run on load).
    The tensors' CRC-32s go with them, so a file damaged on disk is found on load."""
    safe = {k: v for k, v in payload.items() if _weights_only_safe(v)}
    rest = {k: v for k, v in payload.items() if k not in safe}
    if rest:
        safe[JSON_ENTRY] = json.dumps(rest, default=_plain)
    safe[CHECKSUM_ENTRY] = _tensor_checksums(safe)
    write_atomic(path, lambda tmp: torch.save(safe, tmp))


def load_checkpoint(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise EdgeStrError(f"{path}: no checkpoint (was the run trained to its first epoch?)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise EdgeStrError(
            f"{path}: holds pickled objects other than tensors, which edge_str does not load "
            "(a foreign file, or one written by an older edge_str)"
        ) from None
    except Exception as error:  # a truncated or foreign file: say which and why
        raise EdgeStrError(f"{path}: unreadable checkpoint ({type(error).__name__})") from None
    if not isinstance(payload, dict):
        raise EdgeStrError(f"{path}: not an edge_str checkpoint (holds a {type(payload).__name__})")
    stored = payload.pop(CHECKSUM_ENTRY, None)
    if isinstance(stored, dict):  # files written before checksums have none to check
        actual = _tensor_checksums(payload)
        bad = next((name for name in stored if actual.get(name) != stored[name]), None)
        if bad is not None:
            raise EdgeStrError(f"{path}: damaged on disk ({bad} fails its checksum)")
    if isinstance(payload.get(JSON_ENTRY), str):
        payload.update(json.loads(payload.pop(JSON_ENTRY)))
    return payload


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


# ----------------------------------------------------------------------------- paths and resume
def absolute_paths(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with its file settings made absolute, so the run works from any folder."""

    def absolute(path: str | None) -> str | None:
        return str(Path(path).expanduser().resolve()) if path else path

    model = dataclasses.replace(
        cfg.model,
        init_weights=absolute(cfg.model.init_weights),
        budget_from=absolute(cfg.model.budget_from),
    )
    data = dataclasses.replace(cfg.data, cache_dir=absolute(cfg.data.cache_dir))
    return dataclasses.replace(cfg, data_dir=absolute(cfg.data_dir), model=model, data=data)


def flat_settings(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config dict as {"section.key": value}: what resume and the scheduler compare."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flat_settings(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def check_resumable(run_dir: Path, saved: TrainConfig, asked: TrainConfig) -> None:
    """Refuse a resume whose settings differ from the run's beyond ``RESUMABLE``."""
    before = flat_settings(absolute_paths(saved).to_dict())
    after = flat_settings(absolute_paths(asked).to_dict())
    changed = [k for k in before if before[k] != after.get(k) and k not in RESUMABLE]
    if changed:
        what = ", ".join(f"{k} {before[k]!r} -> {after.get(k)!r}" for k in changed)
        raise EdgeStrError(
            f"{run_dir}: --resume continues the run's own settings and cannot change {what} "
            "(only --epochs, --data, --device, --threads); start a new run with another --out"
        )


def resume_config(
    run_dir: str | Path, yaml_path: str | Path | None = None, overrides: dict | None = None
) -> TrainConfig:
    """The run's saved config with what the user gave (a YAML file, flags; None = not given)."""
    if not (Path(run_dir) / LAST_CHECKPOINT).is_file():
        raise EdgeStrError(f"{run_dir}: nothing to resume (no {LAST_CHECKPOINT})")
    saved = load_run_info(run_dir).config.to_dict()
    asked = merge(read_yaml(yaml_path) if yaml_path is not None else {}, drop_none(overrides or {}))
    return TrainConfig.from_dict(merge(saved, asked), f"{run_dir}/{CONFIG_FILE}")


@contextmanager
def claimed_run_dir(run_dir: Path) -> Iterator[None]:
    """Make ``run_dir`` and hold its lock while training writes it.

    A second training into the same folder gets one clear error instead of interleaving files.
    A run that fails before its first checkpoint leaves nothing behind: the folder it made is
    removed (in a folder that was there, the config.json it wrote).
    """
    created = not run_dir.exists()
    blocking = run_dir if run_dir.is_file() else file_in_the_way(run_dir)
    if blocking is not None:
        raise EdgeStrError(f"--out {run_dir}: {blocking} is a file, not a folder")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise EdgeStrError(
            f"--out {run_dir}: cannot make the run folder ({error.strerror})"
        ) from None
    lock = FileLock(run_dir / LOCK_FILE, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise EdgeStrError(
            f"{run_dir}: another training is writing this run folder (lock {LOCK_FILE}); wait "
            "for it to finish or choose another --out"
        ) from None
    try:
        yield
    except BaseException:
        if not (run_dir / LAST_CHECKPOINT).exists():
            if created:
                shutil.rmtree(run_dir, ignore_errors=True)
            else:
                for name in (CONFIG_FILE, LOCK_FILE):
                    (run_dir / name).unlink(missing_ok=True)
        raise
    finally:
        lock.release()
