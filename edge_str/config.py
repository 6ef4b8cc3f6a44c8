"""Training configuration as dataclasses, loadable from YAML, with command-line overrides.

Precedence: dataclass defaults < task defaults < YAML file < command-line flags.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from edge_str.data import DataConfig
from edge_str.errors import EdgeStrError

TASKS = ("google12", "har2", "har6", "digits")
OPTIMIZERS = ("adam", "sgd")


@dataclass
class ModelConfig:
    arch: str = "fastgrnn"  # fastgrnn | dscnn | dscnn-m | dscnn-l | resnet | mobilenetv1
    hidden: int = 100
    rank_mode: str = "str"  # FastGRNN matrices: str (learned rank) | fixed | dense
    rank_w: int | None = None  # fixed mode: rank of W (default full)
    rank_u: int | None = None  # fixed mode: rank of U (default full)
    s_init: float = -10.0  # STR threshold init; g = exp on singular values: exp(-10) ~ 4.5e-5
    # STR mode: refactor W1·diag(sigma)·W2 as its SVD after every epoch, so the threshold acts
    # on true singular values (see edge_str.lowrank). Off, sigma drifts from them and W keeps
    # full rank on the demo data (measured).
    svd_each_epoch: bool = True
    # FastGRNN time loop: auto (C++ kernel where it builds, else PyTorch) | cpp | torch | loop
    # (reference Python loop); see edge_str.fastgrnn.FastGRNN. EDGE_STR_FUSED_EXT overrides the
    # C++ build.
    backend: str = "auto"
    # CNN path
    sparsity: str = "str"  # str | gmp | dense (CNN weights)
    str_granularity: str = "layer"  # layer | global | channel | weight
    # g = sigmoid on weights. At s << 0, g'(s) ~ 0 and only weight decay moves s (Adam: ~lr per
    # step), so s_init sets when thresholds bite: -8 (g = 3.4e-4) bites within a 30-epoch run;
    # the paper's -100 .. -12800 suit its 100+ epoch runs and leave short runs dense.
    cnn_s_init: float = -8.0
    sparsify_first_last: bool = False
    width: float = 1.0  # CNN width multiplier
    depth: int = 18  # ResNet depth: 10 | 18 | 34 (BasicBlock), 50 | 101 | 152 (Bottleneck)
    stem: str = "auto"  # ResNet/MobileNetV1 stem: auto | imagenet | cifar (auto: by image size)
    gmp_target: float = 0.9  # GMP overall target sparsity
    gmp_start_epoch: int = 0
    gmp_end_fraction: float = 0.75  # GMP reaches its target at this fraction of training
    gmp_interval: int = 0  # GMP: optimizer steps between mask updates (Delta_t); 0: once per epoch
    budget_from: str | None = None  # RUN of an STR model whose per-layer sparsities GMP targets
    # A state_dict (.pt, or a checkpoint with a "model" entry) to start from instead of the
    # random init: fine-tuning, e.g. of a truncated-SVD model.
    init_weights: str | None = None


@dataclass
class OptimConfig:
    epochs: int = 30
    batch_size: int = 100
    # adam: the FastGRNN paper's. sgd: the STR paper's CNN runs (Nesterov, momentum 0.875 on
    # ImageNet, 0.9 on CIFAR), where a threshold's step follows its summed task gradient; Adam
    # normalises that away and moves every layer's s at ~lr per step.
    optimizer: str = "adam"
    momentum: float = 0.9  # sgd only
    nesterov: bool = True  # sgd only
    lr: float = 1e-2
    weight_decay: float = 1e-4  # mu of STR: the same decay on weights and thresholds ...
    threshold_decay: float | None = None  # ... unless set here
    lr_decay_epochs: int = 0  # 0: cosine decay over all epochs; N: halve every N epochs
    grad_clip: float = 5.0


@dataclass
class TrainConfig:
    task: str = "google12"
    data_dir: str = ""
    out: str = ""
    seed: int = 0
    device: str = "cpu"
    # CPU threads for torch; 0 keeps torch's default. The models are small: on few cores one
    # thread is often faster than several (less synchronisation per tiny op).
    threads: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "config") -> TrainConfig:
        raw = dict(raw)
        sections = {"model": ModelConfig, "optim": OptimConfig, "data": DataConfig}
        kwargs: dict[str, Any] = {}
        for key, value in raw.items():
            if key in sections:
                kwargs[key] = _build(sections[key], value or {}, f"{source}: {key}")
            elif key in _field_names(cls):
                kwargs[key] = value
            else:
                raise EdgeStrError(f"{source}: unknown setting {key!r}")
        return cls(**kwargs)


# FastGRNN paper settings: Google-12 hidden 100, HAR-2 hidden 80 (batch 100, lr 1e-2).
TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "google12": {"model": {"hidden": 100}},
    "har2": {"model": {"hidden": 80}},
    "har6": {"model": {"hidden": 80}},
    "digits": {"model": {"arch": "resnet", "depth": 18, "width": 0.25}},
}


def _field_names(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _build(cls, raw: dict[str, Any], source: str):
    if not isinstance(raw, dict):
        raise EdgeStrError(f"{source}: expected a mapping, got {raw!r}")
    unknown = set(raw) - _field_names(cls)
    if unknown:
        raise EdgeStrError(f"{source}: unknown setting(s) {', '.join(sorted(unknown))}")
    return cls(**raw)


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise EdgeStrError(f"{path}: config file not found") from None
    except yaml.YAMLError as error:
        raise EdgeStrError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
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
    """
    raw: dict[str, Any] = {}
    if yaml_path is not None:
        raw = read_yaml(yaml_path)
    task = task or raw.get("task", "google12")
    if task not in TASKS:
        raise EdgeStrError(f"unknown task {task!r}; choose from {', '.join(TASKS)}")
    merged = _merge(TASK_DEFAULTS.get(task, {}), raw)
    merged = _merge(merged, _drop_none(overrides or {}))
    merged["task"] = task
    source = str(yaml_path) if yaml_path is not None else "config"
    return TrainConfig.from_dict(merged, source)


def _drop_none(tree: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            value = _drop_none(value)
            if value:
                out[key] = value
        elif value is not None:
            out[key] = value
    return out
