"""Training configuration as dataclasses, loadable from YAML, with command-line overrides.

Precedence: dataclass defaults < task defaults < YAML file < command-line flags.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_str.data import TASKS, DataConfig
from edge_str.errors import EdgeStrError
from edge_str.families import ARCHS, FAMILIES, family_of
from edge_str.files import read_document
from edge_str.validation import (
    SettingError,
    build_section,
    check_settings,
    drop_none,
    field_names,
    given_paths,
    merge,
    setting,
)

OPTIMIZERS = ("adam", "sgd")


@dataclass
class SharedModelConfig:
    """The ``model`` settings of every family."""

    arch: str = setting("fastgrnn", choices=ARCHS)  # fastgrnn | dscnn | dscnn-m | ... (families)
    # A state_dict (.pt, or a checkpoint with a "model" entry) to start from instead of the
    # random init: fine-tuning, e.g. of a truncated-SVD model.
    init_weights: str | None = None


@dataclass
class ModelConfig(*reversed([family.config for family in FAMILIES]), SharedModelConfig):
    """The ``model`` section: the shared settings and every family's (``edge_str.families``).

    One flat mapping, so YAML files and run folders keep one layout; the family of ``arch``
    reads its own fields, and a user setting another family's is refused (``make_config``).
    """


@dataclass
class OptimConfig:
    # 0 only in a run made without training (the rank study's SVD truncations); train() needs 1+
    epochs: int = setting(30, at_least=0)
    batch_size: int = setting(100, at_least=1)
    # adam: the FastGRNN paper's. sgd: the STR paper's CNN runs (Nesterov, momentum 0.875 on
    # ImageNet, 0.9 on CIFAR), where a threshold's step follows its summed task gradient; Adam
    # normalises that away and moves every layer's s at ~lr per step.
    optimizer: str = setting("adam", choices=OPTIMIZERS)
    momentum: float = setting(0.9, at_least=0)  # sgd only
    nesterov: bool = True  # sgd only
    lr: float = setting(1e-2, above=0)
    weight_decay: float = setting(1e-4, at_least=0)  # mu of STR: the same decay on weights ...
    threshold_decay: float | None = setting(None, at_least=0)  # ... and thresholds, unless set
    # Adam only: thresholds take momentum-SGD steps whose learning rates sum to this over the
    # run, so their path follows training progress, not the number of steps (see
    # edge_str.training.optim). None: thresholds step like the weights (the CNN path).
    threshold_rate: float | None = setting(None, above=0)
    # STR low-rank matrices: each step on direction i of the factors W1, W2 is scaled by
    # min(1, this / |sigma_i|), so no direction moves W faster than one of this singular value
    # would (edge_str.training.factor_steps). 0: unscaled.
    factor_step_sigma: float = setting(0.0, at_least=0)
    lr_decay_epochs: int = setting(0, at_least=0)  # 0: cosine over all epochs; N: halve every N
    grad_clip: float = setting(5.0, at_least=0)  # max gradient norm; 0: no clipping
    # An epoch whose mean training loss climbs back this fraction of the way from the lowest so
    # far to chance (log of the classes) is undone and trained again at half the learning rates
    # (edge_str.training.rollback). 0: never.
    spike_rollback: float = setting(0.25, at_least=0, at_most=1)


@dataclass
class TrainConfig:
    task: str = setting("google12", choices=TASKS)
    data_dir: str = ""
    out: str = ""
    seed: int = setting(0, at_least=0, at_most=2**32 - 1)  # numpy's seed range
    device: str = setting("cpu", choices=("cpu", "cuda"))
    # CPU threads for torch; 0 keeps torch's default. The models are small: on few cores one
    # thread is often faster than several (less synchronisation per tiny op).
    threads: int = setting(0, at_least=0)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "config") -> TrainConfig:
        """The config a mapping (YAML, a run's config.json) describes, every setting checked."""
        try:
            return _build_train_config(raw)
        except SettingError as error:
            raise EdgeStrError(f"{source}: {error.detail}") from None


SECTIONS: dict[str, type] = {"model": ModelConfig, "optim": OptimConfig, "data": DataConfig}


def check_config(cfg: TrainConfig) -> None:
    """The loader's checks on a config made or changed in Python (``train(cfg)``)."""
    try:
        check_settings(cfg)
        for key in SECTIONS:
            check_settings(getattr(cfg, key), (key,))
    except SettingError as error:
        raise EdgeStrError(f"config: {error.detail}") from None


def _build_train_config(raw: dict[str, Any]) -> TrainConfig:
    """The one pass: unknown keys, then each section and the top-level settings checked."""
    for key in raw:
        if key not in field_names(TrainConfig):
            raise SettingError((str(key),), f"unknown setting {key!r}")
    cfg = build_section(TrainConfig, {k: v for k, v in raw.items() if k not in SECTIONS})
    for key, cls in SECTIONS.items():
        if key in raw:
            setattr(cfg, key, _build_section(cls, raw[key] or {}, key))
    return cfg


def _build_section(cls: type, raw: Any, key: str) -> Any:
    try:
        return build_section(cls, raw, (key,))
    except SettingError:
        raise
    except EdgeStrError as error:  # DataConfig's own checks (they name the setting)
        raise SettingError((key,), str(error)) from None


# FastGRNN paper sizes: Google-12 hidden 100, HAR-2 hidden 80 (lr 1e-2). Batch 32, not the
# paper's 100: what a run learns follows its optimizer steps, and the trees users bring (the
# synth trees, a few hundred clips a word) give ~10 steps an epoch at batch 100: 300 in a 30-epoch
# run, where FastGRNN and nn.GRU alike still underfit (dense FastGRNN on a hard 1,600-clip tree:
# 77% train / 64.6% test at batch 100, 92% / 72.9% at 32; nn.GRU(64) 61.5% / 66.7%). The
# recurrent baselines share the task's recipe, so they get it too.
RECURRENT_TASK_OPTIM: dict[str, Any] = {"batch_size": 32}
TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "google12": {"model": {"hidden": 100}, "optim": RECURRENT_TASK_OPTIM},
    "har2": {"model": {"hidden": 80}, "optim": RECURRENT_TASK_OPTIM},
    "har6": {"model": {"hidden": 80}, "optim": RECURRENT_TASK_OPTIM},
    "digits": {"model": {"arch": "resnet", "depth": 18, "width": 0.25}},
}


# FastGRNN STR (any task): thresholds on their own rule (edge_str.training.optim). Adam's
# ~lr-per-step thresholds with the weights' mu (1e-4) never pruned; momentum SGD summed to 1000
# over the run with decay 0.03 ends at W 11-14 of 32, U 6-11 of 100 on four tuning trees, within
# a point of dense or above it (0.01: as accurate or less, 5-25% larger; 0.1 collapsed one tree
# to 36.5% before the thresholds' rate ramped up at the start, THRESHOLD_WARMUP_FRACTION).
# The factors' steps scaled by min(1, 3 / |sigma_i|) (edge_str.training.factor_steps): on four
# hard tuning trees STR went from 1.4 points under dense to 1.3 above it (38% of its size).
# README "What a short run learns"; `make quality` checks it on five other trees.
FASTGRNN_DEFAULTS: dict[str, Any] = {
    "optim": {"threshold_rate": 1000.0, "threshold_decay": 0.03, "factor_step_sigma": 3.0}
}


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    raw = read_document(path, "config file not found", "YAML", "config file")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise EdgeStrError(f"{path}: expected a mapping of settings at the top level")
    return raw


def make_config(
    task: str | None = None,
    yaml_path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> TrainConfig:
    """Build the config: defaults, then the task's defaults, then YAML, then ``overrides``.

    ``task`` (a command-line flag) beats the file's ``task``; google12 when neither gives one.

    ``overrides`` is nested like the YAML (``{"model": {"hidden": 64}, "seed": 3}``); None values
    are ignored so unset command-line flags leave the file's values alone.

    Every setting is checked here, once: a bad one is one ``EdgeStrError`` line naming where it
    came from (the file, or "command line" for ``overrides``), the setting and what it accepts.
    A setting the user gave that the model does not use (another family's, or ``rank_w``
    outside rank_mode fixed) is refused the same way.
    """
    raw = read_yaml(yaml_path) if yaml_path is not None else {}
    source = str(yaml_path) if yaml_path is not None else "config"
    return config_from_settings(task, raw, overrides, source)


def config_from_settings(
    task: str | None, raw: dict[str, Any], overrides: dict[str, Any] | None, source: str
) -> TrainConfig:
    """``make_config`` for settings already read from the file ``source``."""
    flags = drop_none(overrides or {})

    def where(path: tuple[str, ...]) -> str:
        from_flags = any(given[: len(path)] == path for given in given_paths(flags))
        return "command line" if from_flags else source

    task = task or raw.get("task", "google12")
    if task not in TASKS:
        raise EdgeStrError(f"unknown task {task!r}; choose from {', '.join(map(str, TASKS))}")
    defaults = TASK_DEFAULTS.get(task, {})
    model = merge(merge(defaults, raw), flags).get("model")
    if (model.get("arch", "fastgrnn") if isinstance(model, dict) else None) == "fastgrnn":
        defaults = merge(defaults, FASTGRNN_DEFAULTS)
    merged = merge(merge(defaults, raw), flags)
    merged["task"] = task
    try:
        cfg = _build_train_config(merged)
    except SettingError as error:
        raise EdgeStrError(f"{where(error.path)}: {error.detail}") from None
    given = given_paths(raw) | given_paths(flags)
    for path, why in _unused_settings(cfg.model).items():
        if path in given:
            raise EdgeStrError(f"{where(path)}: {'.'.join(path)} {why}")
    return cfg


def _unused_settings(model: ModelConfig) -> dict[tuple[str, ...], str]:
    """The ``model`` settings ``model.arch`` does not read, each with why."""
    family = family_of(model.arch)
    own = field_names(family.config) | field_names(SharedModelConfig)
    unused: dict[tuple[str, ...], str] = {}
    for other in FAMILIES:
        for name in sorted(field_names(other.config) - own):
            unused.setdefault(  # a shared field names the first family that declares it
                ("model", name),
                f"is a setting of {other.name} models; model.arch {model.arch!r} is {family.name}",
            )
    for name, why in family.unused_settings(model).items():
        unused[("model", name)] = why
    return unused
