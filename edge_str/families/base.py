"""What a model family supplies to the rest of the package (see ``edge_str.families``)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def lazy(target: str) -> Callable[..., Any]:
    """``"module:function"`` as a function that imports the module on first call.

    The registry is imported by ``edge_str.config``; the implementations import the config, so
    the registry names them and imports them only when a hook runs.
    """
    module_name, _, attribute = target.partition(":")

    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module_name), attribute)(*args, **kwargs)

    call.__name__ = call.__qualname__ = attribute
    call.__doc__ = f"Calls {target} (imported on first use)."
    return call


def summary_hooks(prefix: str, module: str = "edge_str.training.summary") -> dict[str, Any]:
    """The report hooks of a family named by convention in ``module``: ``is_<prefix>``,
    ``<prefix>_summary``, ``<prefix>_epoch_text`` and ``<prefix>_final_text``."""
    return {
        "is_model": lazy(f"{module}:is_{prefix}"),
        "summary": lazy(f"{module}:{prefix}_summary"),
        "epoch_text": lazy(f"{module}:{prefix}_epoch_text"),
        "final_text": lazy(f"{module}:{prefix}_final_text"),
    }


def no_controller(model: Any, cfg: Any) -> None:
    """The family trains with the optimizer alone (no per-step sparsity schedule)."""
    return None


def no_final_extras(model: Any, cfg: Any, run_dir: Path) -> dict[str, Any]:
    """The family adds nothing to final.json beyond its summary."""
    return {}


def no_unused_settings(cfg: Any) -> dict[str, str]:
    """Every setting of the family applies whatever the others say."""
    return {}


@dataclass(frozen=True)
class ModelFamily:
    """One family of models: its archs, its own config fields and its hooks.

    Hooks receive the full ``ModelConfig`` (its fields are the shared ones plus every family's;
    a family reads only its own and the shared ones).
    """

    name: str  # "fastgrnn", "cnn": how messages name the family
    archs: tuple[str, ...]  # the ``model.arch`` values this family builds
    # Dataclass of the family's own ``model`` settings (fields with ``validation.setting``);
    # ``ModelConfig`` inherits from it, so a flag belongs to exactly the families declaring it.
    config: type
    # build(cfg, input_shape, num_classes) -> nn.Module, its first module a FeatureNormalizer
    build: Callable[..., Any]
    # is_model(module) -> bool: this family built the module (for hooks given only a model)
    is_model: Callable[[Any], bool]
    # summary(model) -> dict: size and structure as deployed (per epoch and in final.json)
    summary: Callable[[Any], dict[str, Any]]
    # epoch_text(summary) -> str: the summary in the per-epoch log line
    epoch_text: Callable[[dict[str, Any]], str]
    # final_text(final) -> str: the summary in `edge-str train`'s closing line
    final_text: Callable[[dict[str, Any]], str]
    # method(model_cfg) -> str: final.json "method" (how the family makes the model small)
    method: Callable[[Any], str]
    # Training hooks. controller(model, model_cfg) -> object with step/metrics/reached_target/
    # state_dict/load_state_dict (``edge_str.cnn.sparsity.SparsityController``), or None.
    controller: Callable[[Any, Any], Any] = no_controller
    # final_extras(model, train_cfg, run_dir) -> dict merged into final.json (may write files
    # there).
    final_extras: Callable[[Any, Any, Path], dict[str, Any]] = no_final_extras
    # unused_settings(model_cfg) -> {field: why}: the family's settings the other values make unused
    # (rank_w outside rank_mode fixed); one of them set by the user is refused.
    unused_settings: Callable[[Any], dict[str, str]] = no_unused_settings
