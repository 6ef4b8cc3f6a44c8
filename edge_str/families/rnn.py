"""The nn.GRU / nn.LSTM baseline family: the recurrent models a user would pick instead.

Same features, normaliser, head, trainer and recipe as FastGRNN (``edge_str.baselines``);
nothing is compacted, so params and MACs as trained are those deployed.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_str.families.base import ModelFamily, lazy, summary_hooks
from edge_str.validation import setting

RNN_BASELINES = ("gru", "lstm")


@dataclass
class RNNBaselineConfig:
    """The baselines' ``model`` settings (fields of ``ModelConfig``; see ``edge_str.config``)."""

    hidden: int = setting(100, at_least=1)  # shared with FastGRNN


FAMILY = ModelFamily(
    name="GRU/LSTM",
    archs=RNN_BASELINES,
    config=RNNBaselineConfig,
    build=lazy("edge_str.baselines:build_rnn_baseline"),
    **summary_hooks("rnn_baseline"),
    method=lambda cfg: cfg.arch,
)
