"""FastGRNN with low-rank W and U whose ranks can be learned by STR.

Kusupati et al., "FastGRNN: A Fast, Accurate, Stable and Tiny Kilobyte Sized Gated Recurrent
Neural Network", NeurIPS 2018, eqs. (3)-(4), with W and U shared by both gates:
    z_t  = sigmoid(W x_t + U h_{t-1} + b_z)
    h~_t = tanh(W x_t + U h_{t-1} + b_h)
    h_t  = z_t ⊙ h_{t-1} + (sigmoid(zeta) (1 - z_t) + sigmoid(nu)) ⊙ h~_t
zeta and nu are trained scalars. Each of W and U is a ``LowRankMatrix``: dense, fixed rank, or
STR rank (g = exp on its singular values).

Initialisation (defaults in edge_str.defaults, their one home). W and U are shared by
both gates, so b_z is the only parameter of the gate alone, and it sets how long the state
remembers at the start: z = sigmoid(b_z) keeps a fraction z of h per step. b_z = 1 (EdgeML's
init) gives z = 0.73, a memory of ~3 frames on 99-frame clips, and the gradient from the last
state barely reaches the word; Adam then needs hundreds of steps to raise b_z (measured: dense
FastGRNN at 54% where nn.GRU(64) reaches 88% in the same 30 epochs).

``gates="piecewise"`` trains with the piecewise-linear sigmoid and tanh an integer-only device
computes (the FastGRNN paper's quantised model): tanh_pl(x) = clamp(x, -1, 1) and
sigmoid_pl(x) = clamp(x / 4 + 1 / 2, 0, 1) = (tanh_pl(x / 2) + 1) / 2, the same identity as
sigmoid(x) = (tanh(x / 2) + 1) / 2, with the slopes at 0 of the smooth ones (1 and 1/4).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import parametrize

from edge_str.defaults import (
    GATE_BIAS_INIT,
    LOWRANK_S_INIT,
    NU_INIT,
    UPDATE_BIAS_INIT,
    ZETA_INIT,
)
from edge_str.fused import BACKENDS, fastgrnn_sequence
from edge_str.lowrank import LowRankMatrix
from edge_str.normalize import FeatureNormalizer

# How the time loop runs: the fused node's implementations, or the reference Python loop.
LOOP_BACKENDS = (*BACKENDS, "loop")

# Elementwise multiplies per hidden unit per step in the h_t update: z⊙h, sigmoid(zeta)·(1-z),
# and the coefficient ⊙ h~.
_ELEMENTWISE_MACS_PER_UNIT = 3
GATES = ("exact", "piecewise")  # FastGRNN's sigmoid and tanh: smooth, or piecewise linear


def piecewise_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """sigmoid_pl(x) = clamp(x / 4 + 1 / 2, 0, 1): exact in fixed point (a shift and an add)."""
    return torch.clamp(0.25 * x + 0.5, 0.0, 1.0)


def piecewise_tanh(x: torch.Tensor) -> torch.Tensor:
    """tanh_pl(x) = clamp(x, -1, 1)."""
    return torch.clamp(x, -1.0, 1.0)


def gate_functions(gates: str):
    """(sigmoid, tanh) for ``gates`` ("exact" or "piecewise")."""
    if gates == "exact":
        return torch.sigmoid, torch.tanh
    if gates == "piecewise":
        return piecewise_sigmoid, piecewise_tanh
    raise ValueError(f"gates must be one of {GATES}, got {gates!r}")


def fastgrnn_step(
    wx_t: torch.Tensor,
    h: torch.Tensor,
    u: torch.Tensor,
    bias_gate: torch.Tensor,
    bias_update: torch.Tensor,
    zeta: torch.Tensor,
    nu: torch.Tensor,
    gates: str = "exact",
) -> torch.Tensor:
    """One FastGRNN step given the input projection W x_t (B, H) and state h (B, H)."""
    sigmoid, tanh = gate_functions(gates)
    pre = wx_t + h @ u.T  # W x_t + U h_{t-1}, (B, H)
    z = sigmoid(pre + bias_gate)
    h_tilde = tanh(pre + bias_update)
    return z * h + (torch.sigmoid(zeta) * (1 - z) + torch.sigmoid(nu)) * h_tilde


class FastGRNNCell(nn.Module):
    """FastGRNN cell; W (H x F) and U (H x H) each dense, fixed low rank, or STR low rank."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        w_mode: str = "str",
        u_mode: str = "str",
        rank_w: int | None = None,
        rank_u: int | None = None,
        s_init: float = LOWRANK_S_INIT,
        gate_bias_init: float = GATE_BIAS_INIT,
        update_bias_init: float = UPDATE_BIAS_INIT,
        zeta_init: float = ZETA_INIT,
        nu_init: float = NU_INIT,
        gates: str = "exact",
    ) -> None:
        super().__init__()
        gate_functions(gates)  # refuses an unknown kind
        self.gates = gates
        self.input_size, self.hidden_size = input_size, hidden_size
        self.W = LowRankMatrix(hidden_size, input_size, w_mode, rank_w, s_init=s_init)
        self.U = LowRankMatrix(hidden_size, hidden_size, u_mode, rank_u, s_init=s_init)
        self.bias_gate = nn.Parameter(torch.full((hidden_size,), float(gate_bias_init)))  # b_z
        self.bias_update = nn.Parameter(torch.full((hidden_size,), float(update_bias_init)))  # b_h
        self.zeta = nn.Parameter(torch.tensor([zeta_init]))
        self.nu = nn.Parameter(torch.tensor([nu_init]))

    def forward(self, x_t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """One step: x_t (B, F), h (B, H) -> h' (B, H)."""
        return fastgrnn_step(
            self.W(x_t),
            h,
            self.U.matrix(),
            self.bias_gate,
            self.bias_update,
            self.zeta,
            self.nu,
            self.gates,
        )


class FastGRNN(nn.Module):
    """Runs a ``FastGRNNCell`` over a sequence (batch first).

    ``backend``, the one setting of how the time loop runs (``model.backend`` in the config,
    ``edge-str train --backend``): "auto" (default), "cpp" or "torch" run it as one autograd
    node with a hand-written backward through time (``edge_str.fused``; "auto" takes the C++
    kernel where it can run, "cpp" insists on it, "torch" is the PyTorch one); "loop" is the
    reference Python loop over ``fastgrnn_step`` recorded op by op by autograd. All compute the
    same values. ``EDGE_STR_FUSED_EXT`` overrides whether the C++ kernel is built (see
    ``edge_str.fused_ext``).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        backend: str = "auto",
        **cell_kwargs,
    ) -> None:
        super().__init__()
        if backend not in LOOP_BACKENDS:
            raise ValueError(f"backend must be one of {LOOP_BACKENDS}, got {backend!r}")
        self.cell = FastGRNNCell(input_size, hidden_size, **cell_kwargs)
        self.backend = backend

    @property
    def hidden_size(self) -> int:
        return self.cell.hidden_size

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T, F) -> final state h_T (B, H)."""
        cell = self.cell
        h = x.new_zeros(x.shape[0], cell.hidden_size) if h0 is None else h0
        # Thresholded matrices once per forward; W x_t for all steps in one product.
        with parametrize.cached():
            u = cell.U.matrix()  # (H, H)
            # The fused loop has the smooth gates' backward built in; piecewise ones run the
            # reference loop (autograd differentiates the clamps).
            if self.backend != "loop" and cell.gates == "exact" and not _tracing():
                # Time-major projections (T, B, H): the layout the fused loop runs in.
                wx = cell.W(x.transpose(0, 1))
                return fastgrnn_sequence(
                    wx,
                    u,
                    cell.bias_gate,
                    cell.bias_update,
                    cell.zeta,
                    cell.nu,
                    h,
                    batch_first=False,
                    backend=self.backend,
                )
            wx = cell.W(x)  # (B, T, H)
            for t in range(x.shape[1]):
                h = fastgrnn_step(
                    wx[:, t], h, u, cell.bias_gate, cell.bias_update, cell.zeta, cell.nu, cell.gates
                )
        return h


def _tracing() -> bool:
    """True under jit tracing, ONNX or torch.export, torch.compile: they get the reference loop
    (plain ops that export to standard ONNX and that the compilers can see through)."""
    is_exporting = getattr(torch.compiler, "is_exporting", lambda: False)
    return (
        torch.jit.is_tracing()
        or torch.onnx.is_in_onnx_export()
        or torch.compiler.is_compiling()
        or is_exporting()
    )


class FastGRNNClassifier(nn.Module):
    """Feature normalisation -> FastGRNN -> linear head on the last state."""

    def __init__(self, input_size: int, hidden_size: int, num_classes: int, **cell_kwargs) -> None:
        super().__init__()
        self.normalizer = FeatureNormalizer(input_size)
        self.rnn = FastGRNN(input_size, hidden_size, **cell_kwargs)
        self.head = nn.Linear(hidden_size, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw features x (B, T, F) -> logits (B, C)."""
        return self.head(self.rnn(self.normalizer(x)))

    def effective_ranks(self) -> dict[str, int]:
        return {"W": self.rnn.cell.W.effective_rank(), "U": self.rnn.cell.U.effective_rank()}

    def full_ranks(self) -> dict[str, int]:
        return {"W": self.rnn.cell.W.full_rank, "U": self.rnn.cell.U.full_rank}

    def thresholds(self) -> dict[str, float | None]:
        return {"W": self.rnn.cell.W.threshold(), "U": self.rnn.cell.U.threshold()}

    def cost(self) -> ModelCost:
        """Parameters and MACs per step, as trained and after compaction."""
        cell = self.rnn.cell
        compact_w, compact_u = cell.W.compact(), cell.U.compact()
        dense_w = cell.W.out_features * cell.W.in_features
        dense_u = cell.U.out_features * cell.U.in_features
        return ModelCost(
            params_trained=sum(p.numel() for p in self.parameters()),
            params_compact=_params(self, compact_w.params(), compact_u.params()),
            params_dense=_params(self, dense_w, dense_u),
            macs_per_step_trained=_macs_per_step(cell.W.macs(), cell.U.macs(), cell.hidden_size),
            macs_per_step_compact=_macs_per_step(
                compact_w.macs(), compact_u.macs(), cell.hidden_size
            ),
            macs_per_step_dense=_macs_per_step(dense_w, dense_u, cell.hidden_size),
            head_macs=self.head.in_features * self.head.out_features,
        )


@dataclass
class ModelCost:
    """The one cost model of a FastGRNN classifier: training summary, export report and study.

    ``compact``: after bake + compaction (what a device stores and runs); ``dense``: the same
    model with W and U dense; ``trained``: as the parameters are held during training.
    """

    params_trained: int
    params_compact: int
    params_dense: int
    macs_per_step_trained: int
    macs_per_step_compact: int
    macs_per_step_dense: int
    head_macs: int  # once per sequence, on the last state


def _macs_per_step(w_macs: int, u_macs: int, hidden: int) -> int:
    return w_macs + u_macs + _ELEMENTWISE_MACS_PER_UNIT * hidden


def _params(model: FastGRNNClassifier, w_params: int, u_params: int) -> int:
    cell = model.rnn.cell
    scalars = sum(p.numel() for p in (cell.bias_gate, cell.bias_update, cell.zeta, cell.nu))
    head = sum(p.numel() for p in model.head.parameters())
    return w_params + u_params + scalars + head
