"""nn.GRU and nn.LSTM classifiers: the recurrent models a user would pick instead of FastGRNN.

Same features, normaliser and linear head as ``FastGRNNClassifier`` (feature normalisation ->
recurrent layer -> head on the last state), trained by the same trainer and recipe, and costed
by the same ``ModelCost``. Per step (PyTorch's equations, Cho et al. 2014 / Hochreiter and
Schmidhuber 1997), with gate count k (GRU 3: r, z, n; LSTM 4: i, f, g, o):
    MACs = k · H · (F + H)        the input and recurrent products of every gate
         + 3 · H                  GRU: r ⊙ (U_n h), z ⊙ h, (1 - z) ⊙ n;
                                  LSTM: f ⊙ c, i ⊙ g, o ⊙ tanh(c)
Nothing is compacted: params and MACs as trained are those deployed.
"""

from __future__ import annotations

import torch
from torch import nn

from edge_str.families.rnn import RNN_BASELINES
from edge_str.fastgrnn import ModelCost
from edge_str.normalize import FeatureNormalizer
from edge_str.validation import check_settings

_GATES = {"gru": 3, "lstm": 4}
_LAYERS = {"gru": nn.GRU, "lstm": nn.LSTM}
_ELEMENTWISE_MACS_PER_UNIT = 3


class RNNClassifier(nn.Module):
    """Feature normalisation -> one-layer nn.GRU or nn.LSTM (batch first) -> linear head."""

    def __init__(self, kind: str, input_size: int, hidden_size: int, num_classes: int) -> None:
        super().__init__()
        if kind not in RNN_BASELINES:
            raise ValueError(f"kind must be one of {RNN_BASELINES}, got {kind!r}")
        self.kind, self.input_size, self.hidden_size = kind, input_size, hidden_size
        self.normalizer = FeatureNormalizer(input_size)
        self.rnn = _LAYERS[kind](input_size, hidden_size, batch_first=True)
        if kind == "lstm":
            _open_forget_gate_(self.rnn)
        self.head = nn.Linear(hidden_size, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw features x (B, T, F) -> logits (B, C)."""
        _, state = self.rnn(self.normalizer(x))
        h_last = state[0] if isinstance(state, tuple) else state  # LSTM: (h_n, c_n)
        return self.head(h_last[-1])  # (B, H) -> (B, C)

    def cost(self) -> ModelCost:
        """Parameters and MACs per step (the same as trained and as deployed)."""
        params = sum(p.numel() for p in self.parameters())
        h, f = self.hidden_size, self.input_size
        macs = _GATES[self.kind] * h * (f + h) + _ELEMENTWISE_MACS_PER_UNIT * h
        return ModelCost(
            params_trained=params,
            params_compact=params,
            params_dense=params,  # nothing to compact: dense as trained
            macs_per_step_trained=macs,
            macs_per_step_compact=macs,
            macs_per_step_dense=macs,
            head_macs=self.head.in_features * self.head.out_features,
        )


# LSTM forget-gate bias at the start (Jozefowicz et al., ICML 2015; Keras' unit_forget_bias):
# PyTorch's default init puts it near 0, so the cell forgets half its memory each step; on the
# 99-frame clips of Google-12 the LSTM then underfit (73% train accuracy after 30 epochs on a
# synth tree where nn.GRU reached 99%).
LSTM_FORGET_BIAS = 1.0


@torch.no_grad()
def _open_forget_gate_(lstm: nn.LSTM) -> None:
    """Set the forget gate's bias (the second of PyTorch's i, f, g, o blocks) to
    ``LSTM_FORGET_BIAS``; b_ih and b_hh are summed, so b_hh's block is zeroed."""
    h = lstm.hidden_size
    for name, bias in lstm.named_parameters():
        if name.startswith("bias_ih"):
            bias[h : 2 * h] = LSTM_FORGET_BIAS
        elif name.startswith("bias_hh"):
            bias[h : 2 * h] = 0.0


def build_rnn_baseline(cfg, input_shape: tuple[int, ...], num_classes: int) -> RNNClassifier:
    """The family's ``build``: ``cfg.arch`` (gru | lstm) of ``cfg.hidden`` units."""
    check_settings(cfg, ("model",))
    return RNNClassifier(cfg.arch, input_shape[-1], cfg.hidden, num_classes)
