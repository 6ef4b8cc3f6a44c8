"""The model-family registry: which family builds each ``model.arch``, with its config and hooks.

Every place that differs by family asks the registry instead of testing the arch:
``family_of(cfg.model.arch)`` (or ``family_of_model(model)``) gives a ``ModelFamily`` with

* ``config``     the dataclass of the family's own ``model`` settings; ``edge_str.config``'s
                 ``ModelConfig`` inherits from every family's, so YAML and run folders keep one
                 flat ``model:`` section, and a setting of another family is refused by name;
* ``build``      the model for a config, an input shape and a class count (``build_model``);
* ``controller``, ``final_extras``  the training hooks (per-step sparsity schedule; extra
                 final.json entries and files);
* ``summary``, ``epoch_text``, ``final_text``, ``method``  what training reports;
* an export adapter, registered by the export pipeline (``register_export_adapter``).

Adding a family (e.g. a GRU/LSTM baseline): write ``edge_str/families/<name>.py`` with its config
dataclass (fields via ``edge_str.validation.setting``; a field another family also declares,
like ``hidden``, is shared) and its ``FAMILY = ModelFamily(...)``, and add that ``FAMILY`` to
``FAMILIES`` below; that is the one place. Adding an arch to a family: its ``archs`` tuple (and
its ``build``). ``--model`` choices, config validation and every dispatch follow.

The export-adapter slot: ``register_export_adapter(family_name, adapter)`` stores one adapter
per family; ``export_adapter(arch)`` returns it (an ``EdgeStrError`` when the family has none).
``adapter`` is either the object itself or ``"module:attribute"``, imported on first lookup, so
the registry never imports ONNX code and the order of imports does not matter. Its interface is
the export pipeline's to define (``edge_str.export``); the registry only stores and finds it.
"""

from __future__ import annotations

import importlib
from typing import Any

from edge_str.errors import EdgeStrError
from edge_str.families.base import ModelFamily, lazy
from edge_str.families.cnn import CNN_ARCHS, CNNConfig
from edge_str.families.cnn import FAMILY as CNN
from edge_str.families.fastgrnn import FAMILY as FASTGRNN
from edge_str.families.fastgrnn import FastGRNNConfig
from edge_str.families.rnn import FAMILY as RNN_BASELINE
from edge_str.families.rnn import RNN_BASELINES, RNNBaselineConfig

FAMILIES: tuple[ModelFamily, ...] = (FASTGRNN, CNN, RNN_BASELINE)

ARCHS: tuple[str, ...] = tuple(arch for family in FAMILIES for arch in family.archs)
_BY_ARCH: dict[str, ModelFamily] = {arch: family for family in FAMILIES for arch in family.archs}
if len(_BY_ARCH) != len(ARCHS):
    raise RuntimeError("two model families claim the same arch")


def family_of(arch: str) -> ModelFamily:
    """The family that builds ``arch``; one clear error for an unknown arch."""
    try:
        return _BY_ARCH[arch]
    except (KeyError, TypeError):
        raise EdgeStrError(f"unknown model {arch!r}; choose from {', '.join(ARCHS)}") from None


def family_of_model(model: Any) -> ModelFamily:
    """The family that built ``model`` (for hooks given a model and no config)."""
    for family in FAMILIES:
        if family.is_model(model):
            return family
    raise EdgeStrError(f"{type(model).__name__} is not a model of any family")


_EXPORT_ADAPTERS: dict[str, Any] = {}


def register_export_adapter(family_name: str, adapter: Any) -> None:
    """Store the export adapter of the family named ``family_name`` (its ``name``)."""
    if family_name not in {family.name for family in FAMILIES}:
        raise ValueError(f"no model family named {family_name!r}")
    _EXPORT_ADAPTERS[family_name] = adapter


def exporting_families() -> tuple[str, ...]:
    """The names of the families that have an export adapter."""
    return tuple(sorted(_EXPORT_ADAPTERS))


def export_adapter(arch: str) -> Any:
    """The export adapter of the family that builds ``arch``."""
    family = family_of(arch)
    adapter = _EXPORT_ADAPTERS.get(family.name)
    if adapter is None:
        exportable = ", ".join(exporting_families())
        raise EdgeStrError(
            f"{arch} runs cannot be exported (no exporter for {family.name}; {exportable} runs can)"
        )
    if isinstance(adapter, str):
        module_name, _, attribute = adapter.partition(":")
        adapter = getattr(importlib.import_module(module_name), attribute)
        _EXPORT_ADAPTERS[family.name] = adapter
    return adapter


__all__ = [
    "ARCHS",
    "CNN",
    "CNN_ARCHS",
    "FAMILIES",
    "FASTGRNN",
    "RNN_BASELINE",
    "RNN_BASELINES",
    "CNNConfig",
    "FastGRNNConfig",
    "ModelFamily",
    "RNNBaselineConfig",
    "export_adapter",
    "family_of",
    "family_of_model",
    "lazy",
    "register_export_adapter",
]
