"""Settings of the rank-vs-accuracy study: the grids, as a dataclass loadable from YAML.

A study YAML is an ``edge-str train`` config with one extra section, ``compare``::

    compare:
      fixed_ranks: [[3, 4], [6, 16]]    # (rank W, rank U) of each fixed-rank run
      str_weight_decays: [0.003, 0.01]  # mu of each STR run (it learns its own ranks)
      str_s_init: -2.0                  # s_init of the STR runs (g = exp on sigma)
      str_default: true                 # one more STR run with the training config as it is
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_str.config import TrainConfig, config_from_settings, read_yaml
from edge_str.defaults import STUDY_S_INIT
from edge_str.errors import EdgeStrError
from edge_str.families import RNN_BASELINES
from edge_str.validation import SettingError, build_section, setting

# Tasks whose model is a FastGRNN (the study compares ranks of its W and U).
COMPARE_TASKS = ("google12", "har2", "har6")


@dataclass
class CompareSettings:
    # (rank W, rank U) of each fixed-rank run; a rank above the matrix's full rank fails that run.
    fixed_ranks: list[list[int]] = setting(factory=lambda: [[4, 8], [8, 16]])
    # mu (weight decay of weights and thresholds) of each STR run.
    str_weight_decays: list[float] = setting(factory=lambda: [3e-3, 1e-2], at_least=0)
    # STR threshold init for the study's STR runs (see edge_str.defaults); None: the training
    # config's s_init.
    str_s_init: float | None = STUDY_S_INIT
    # One more STR run ("str-default") with the training config's own STR settings (its mu,
    # threshold decay and s_init, as ``edge-str train`` would use them): what a user gets
    # without choosing.
    str_default: bool = False
    # nn.GRU / nn.LSTM classifiers (the models a user would pick instead), one run per hidden size.
    baselines: list[str] = setting(factory=lambda: list(RNN_BASELINES), choices=RNN_BASELINES)
    baseline_hidden: list[int] = setting(factory=lambda: [64], at_least=1)
    # STR steered to a size budget: one run per fraction of the dense model's parameters.
    budget_fractions: list[float] = setting(factory=lambda: [0.5, 0.25], above=0, at_most=1)
    posthoc_svd: bool = True  # the svd and svd+finetune runs at each STR run's ranks
    finetune_epochs: int = setting(5, at_least=1)
    finetune_lr: float | None = setting(None, above=0)  # None: the training config's lr
    epochs: int | None = setting(None, at_least=1)  # None: the training config's optim.epochs

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "compare") -> CompareSettings:
        try:
            settings = build_section(cls, raw)
        except SettingError as error:
            raise EdgeStrError(f"{source}: {error.detail}") from None
        settings.check(source)
        return settings

    def check(self, source: str = "compare") -> None:
        """What the field types do not say; ranks are checked against the model at each run."""

        def bad(name: str, why: str) -> EdgeStrError:
            return EdgeStrError(f"{source}: {name}={getattr(self, name)!r}: {why}")

        if not all(len(pair) == 2 for pair in self.fixed_ranks):
            raise bad("fixed_ranks", "expected a list of [rank W, rank U] pairs of integers")
        if len(set(self.str_weight_decays)) != len(self.str_weight_decays):
            raise bad("str_weight_decays", "holds the same value twice")
        if len({tuple(p) for p in self.fixed_ranks}) != len(self.fixed_ranks):
            raise bad("fixed_ranks", "holds the same pair twice")
        for name in ("baselines", "baseline_hidden", "budget_fractions"):
            values = getattr(self, name)
            if len(set(values)) != len(values):
                raise bad(name, "holds the same value twice")


# Presets per task, measured on the demo data of `edge-str data synth` (20 epochs, seed 0), with
# the trainer's SVD form (sigma = true singular values). Adam moves s by at most ~lr per step and
# these runs have ~200 steps, so s_init must start near the sigmas it is to prune; mu then sets
# how far the sigmas decay under it.
# * har2: with s_init -2, mu 1e-4 .. 1e-2 spreads the learned ranks over W 9 .. 3, U 23 .. 2 of
#   (9, 80); the fixed-rank grid spans the same sizes.
# * google12: mu 1e-4 .. 1e-3 gives W 30 .. 6 of 32 and U 37 .. 4 of 100; at 3e-3 the ranks
#   collapse (W 3, U 1) before the model learns (22% against dense 65%).
# The schedule of every task's grids: (fine-tune epochs, fine-tune lr, epochs of each run).
_SCHEDULES = {
    "full": {"finetune_epochs": 5, "finetune_lr": 3e-3, "epochs": 20},
    "quick": {"finetune_epochs": 3, "finetune_lr": 3e-3, "epochs": 10},
}
# task -> size -> ((rank W, rank U) of the fixed runs, mu of the STR runs)
_GRIDS: dict[str, dict[str, tuple[list[list[int]], list[float]]]] = {
    "har2": {
        "full": ([[3, 2], [6, 2], [9, 4], [9, 8], [9, 16]], [1e-4, 3e-4, 1e-3, 3e-3, 1e-2]),
        "quick": ([[9, 4], [9, 16]], [3e-4, 3e-3]),
    },
    "google12": {
        "full": ([[8, 8], [16, 16], [16, 25], [32, 16], [32, 50]], [1e-4, 3e-4, 6e-4, 1e-3]),
        "quick": ([[16, 25], [32, 50]], [1e-4, 1e-3]),
    },
}
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    task: {
        size: {"fixed_ranks": ranks, "str_weight_decays": decays, **_SCHEDULES[size]}
        for size, (ranks, decays) in sizes.items()
    }
    for task, sizes in _GRIDS.items()
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
    cfg = config_from_settings(task, raw, overrides, source)
    if cfg.model.arch != "fastgrnn":
        raise EdgeStrError(
            f"{source}: compare studies FastGRNN ranks, not model {cfg.model.arch!r}"
        )
    if settings.epochs is not None:
        cfg.optim.epochs = settings.epochs
    settings.epochs = cfg.optim.epochs
    return cfg, settings
