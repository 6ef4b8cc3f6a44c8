"""Settings of the rank-vs-accuracy study: the grids, as a dataclass loadable from YAML.

A study YAML is an ``edge-str train`` config with one extra section, ``compare``::

    compare:
      fixed_ranks: [[3, 4], [6, 16]]    # (rank W, rank U) of each fixed-rank run
      str_weight_decays: [0.003, 0.01]  # mu of each STR run (it learns its own ranks)
      str_s_init: -2.0                  # s_init of the STR runs (g = exp on sigma)
      finetune_epochs: 5                # epochs of each truncated-SVD fine-tune
      finetune_lr: 0.003                # their initial learning rate (null: optim.lr)
      epochs: 20                        # epochs of every trained run (null: optim.epochs)
      baselines: [gru, lstm]            # nn.GRU / nn.LSTM classifiers, same features and head
      baseline_hidden: [64]             # their hidden sizes
      budget_fractions: [0.5, 0.25]     # STR budget runs: --target-params = this x dense params
      posthoc_svd: true                 # truncated-SVD runs (+ fine-tune) at each STR run's ranks
    model: {hidden: 64}                 # training settings shared by every run
    optim: {lr: 0.01}

Precedence for the grids: task preset (``--quick`` picks the small one) < YAML ``compare``.
For the epochs of the study: preset < YAML ``optim.epochs`` < YAML ``compare.epochs`` <
``--epochs``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_str.baselines import RNN_BASELINES
from edge_str.config import TrainConfig, make_config, read_yaml
from edge_str.errors import EdgeStrError

# Tasks whose model is a FastGRNN (the study compares ranks of its W and U).
COMPARE_TASKS = ("google12", "har2", "har6")


@dataclass
class CompareSettings:
    # (rank W, rank U) of each fixed-rank run; a rank above the matrix's full rank fails that run.
    fixed_ranks: list[list[int]] = field(default_factory=lambda: [[4, 8], [8, 16]])
    # mu (weight decay of weights and thresholds) of each STR run.
    str_weight_decays: list[float] = field(default_factory=lambda: [3e-3, 1e-2])
    # STR threshold init for the study's STR runs. The trainer's default (-10: exp(-10) = 4.5e-5)
    # leaves every rank alive in runs of a few hundred steps: Adam moves s by at most ~lr per
    # step, and the sigmas of a trained W1·diag(σ)·W2 sit around 0.1 .. 2.
    # None: the training config's s_init.
    str_s_init: float | None = -2.0
    # nn.GRU / nn.LSTM classifiers (the models a user would pick instead), one run per hidden size.
    baselines: list[str] = field(default_factory=lambda: list(RNN_BASELINES))
    baseline_hidden: list[int] = field(default_factory=lambda: [64])
    # STR steered to a size budget: one run per fraction of the dense model's parameters.
    budget_fractions: list[float] = field(default_factory=lambda: [0.5, 0.25])
    posthoc_svd: bool = True  # the svd and svd+finetune runs at each STR run's ranks
    finetune_epochs: int = 5
    finetune_lr: float | None = None  # None: the training config's lr
    epochs: int | None = None  # None: the training config's optim.epochs

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "compare") -> CompareSettings:
        if not isinstance(raw, dict):
            raise EdgeStrError(f"{source}: expected a mapping, got {raw!r}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - names)
        if unknown:
            raise EdgeStrError(f"{source}: unknown setting(s) {', '.join(unknown)}")
        settings = cls(**raw)
        settings.check(source)
        return settings

    def check(self, source: str = "compare") -> None:
        """Types and ranges; ranks are checked against the model when each run starts."""

        def bad(name: str, why: str) -> EdgeStrError:
            return EdgeStrError(f"{source}: {name}={getattr(self, name)!r}: {why}")

        if not isinstance(self.fixed_ranks, list) or not all(
            isinstance(pair, list | tuple)
            and len(pair) == 2
            and all(isinstance(r, int) and not isinstance(r, bool) for r in pair)
            for pair in self.fixed_ranks
        ):
            raise bad("fixed_ranks", "expected a list of [rank W, rank U] pairs of integers")
        self.fixed_ranks = [[int(w), int(u)] for w, u in self.fixed_ranks]
        if not isinstance(self.str_weight_decays, list) or not all(
            _is_number(mu) and mu >= 0 for mu in self.str_weight_decays
        ):
            raise bad("str_weight_decays", "expected a list of numbers >= 0")
        self.str_weight_decays = [float(mu) for mu in self.str_weight_decays]
        if len(set(self.str_weight_decays)) != len(self.str_weight_decays):
            raise bad("str_weight_decays", "holds the same value twice")
        if len({tuple(p) for p in self.fixed_ranks}) != len(self.fixed_ranks):
            raise bad("fixed_ranks", "holds the same pair twice")
        if self.str_s_init is not None and not _is_number(self.str_s_init):
            raise bad("str_s_init", "must be a number, or null")
        if not isinstance(self.baselines, list) or not set(self.baselines) <= set(RNN_BASELINES):
            raise bad("baselines", f"expected a list of {' | '.join(RNN_BASELINES)}")
        if len(set(self.baselines)) != len(self.baselines):
            raise bad("baselines", "holds the same model twice")
        if not isinstance(self.baseline_hidden, list) or not all(
            _is_int(h) and h >= 1 for h in self.baseline_hidden
        ):
            raise bad("baseline_hidden", "expected a list of integers >= 1")
        if len(set(self.baseline_hidden)) != len(self.baseline_hidden):
            raise bad("baseline_hidden", "holds the same size twice")
        if not isinstance(self.budget_fractions, list) or not all(
            _is_number(f) and 0 < f <= 1 for f in self.budget_fractions
        ):
            raise bad("budget_fractions", "expected a list of numbers in (0, 1]")
        self.budget_fractions = [float(f) for f in self.budget_fractions]
        if len(set(self.budget_fractions)) != len(self.budget_fractions):
            raise bad("budget_fractions", "holds the same value twice")
        if not isinstance(self.posthoc_svd, bool):
            raise bad("posthoc_svd", "must be true or false")
        if not _is_int(self.finetune_epochs) or self.finetune_epochs < 1:
            raise bad("finetune_epochs", "must be an integer >= 1")
        if self.finetune_lr is not None and not (
            _is_number(self.finetune_lr) and self.finetune_lr > 0
        ):
            raise bad("finetune_lr", "must be a number > 0, or null")
        if self.epochs is not None and not (_is_int(self.epochs) and self.epochs >= 1):
            raise bad("epochs", "must be an integer >= 1, or null")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# Presets per task, measured on the demo data of `edge-str data synth` (20 epochs, seed 0), with
# the trainer's SVD form (sigma = true singular values). Adam moves s by at most ~lr per step and
# these runs have ~200 steps, so s_init must start near the sigmas it is to prune; mu then sets
# how far the sigmas decay under it.
# * har2: with s_init -2, mu 1e-4 .. 1e-2 spreads the learned ranks over W 9 .. 3, U 23 .. 2 of
#   (9, 80); the fixed-rank grid spans the same sizes.
# * google12: mu 1e-4 .. 1e-3 gives W 30 .. 6 of 32 and U 37 .. 4 of 100; at 3e-3 the ranks
#   collapse (W 3, U 1) before the model learns (22% against dense 65%).
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "har2": {
        "full": {
            "fixed_ranks": [[3, 2], [6, 2], [9, 4], [9, 8], [9, 16]],
            "str_weight_decays": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2],
            "str_s_init": -2.0,
            "finetune_epochs": 5,
            "finetune_lr": 3e-3,
            "epochs": 20,
        },
        "quick": {
            "fixed_ranks": [[9, 4], [9, 16]],
            "str_weight_decays": [3e-4, 3e-3],
            "str_s_init": -2.0,
            "finetune_epochs": 3,
            "finetune_lr": 3e-3,
            "epochs": 10,
        },
    },
    "google12": {
        "full": {
            "fixed_ranks": [[8, 8], [16, 16], [16, 25], [32, 16], [32, 50]],
            "str_weight_decays": [1e-4, 3e-4, 6e-4, 1e-3],
            "str_s_init": -2.0,
            "finetune_epochs": 5,
            "finetune_lr": 3e-3,
            "epochs": 20,
        },
        "quick": {
            "fixed_ranks": [[16, 25], [32, 50]],
            "str_weight_decays": [1e-4, 1e-3],
            "str_s_init": -2.0,
            "finetune_epochs": 3,
            "finetune_lr": 3e-3,
            "epochs": 10,
        },
    },
}
PRESETS["har6"] = PRESETS["har2"]


def preset(task: str, quick: bool = False) -> CompareSettings:
    """The default grid of ``task`` (the small one with ``quick``)."""
    if task not in COMPARE_TASKS:
        raise EdgeStrError(
            f"compare studies FastGRNN ranks; --task must be one of {', '.join(COMPARE_TASKS)}"
        )
    return CompareSettings.from_dict(dict(PRESETS[task]["quick" if quick else "full"]))


def load_study_config(
    task: str | None,
    yaml_path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    *,
    quick: bool = False,
    epochs: int | None = None,
) -> tuple[TrainConfig, CompareSettings]:
    """The base training config of every run and the study's grids.

    ``overrides``: nested training settings (as for ``make_config``; None values ignored).
    ``epochs`` (``--epochs``) beats everything; see the module docstring for the precedence.
    """
    raw: dict[str, Any] = read_yaml(yaml_path) if yaml_path is not None else {}
    source = str(yaml_path) if yaml_path is not None else "config"
    compare_raw = raw.pop("compare", None) or {}
    if not isinstance(compare_raw, dict):
        raise EdgeStrError(f"{source}: compare: expected a mapping of settings")
    task = task or raw.pop("task", None) or "google12"
    raw.pop("task", None)
    base = preset(task, quick)
    merged = {**base.to_dict(), **compare_raw}
    yaml_epochs = (
        (raw.get("optim") or {}).get("epochs") if isinstance(raw.get("optim"), dict) else None
    )
    if "epochs" not in compare_raw and yaml_epochs is not None:
        merged["epochs"] = yaml_epochs
    if epochs is not None:
        merged["epochs"] = epochs
    settings = CompareSettings.from_dict(merged, f"{source}: compare")
    try:
        cfg = make_config(task, None, _merge(raw, overrides or {}))
    except EdgeStrError as error:  # name the file, not make_config's "config"
        message = str(error)
        if yaml_path is not None and message.startswith("config: "):
            message = f"{source}: {message[len('config: ') :]}"
        raise EdgeStrError(message) from None
    if cfg.model.arch != "fastgrnn":
        raise EdgeStrError(
            f"{source}: compare studies FastGRNN ranks, not model {cfg.model.arch!r}"
        )
    if settings.epochs is not None:
        cfg.optim.epochs = settings.epochs
    settings.epochs = cfg.optim.epochs
    return cfg, settings


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        elif value is not None:
            merged[key] = value
    return merged
