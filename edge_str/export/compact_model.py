"""Export-only FastGRNN built from compacted matrices: exactly what a device runs.

FastGRNN (Kusupati et al., NeurIPS 2018) with W and U low rank and their ranks learned by STR
(Kusupati et al., ICML 2020, structured case: g = exp on the singular values). After
``bake_str`` every ``LowRankMatrix`` is compacted (``LowRankMatrix.compact``) to one of
  zero      rank 0: the term W x (or U h) is left out, no weights and no product at all
  factored  W = L·R with L (m x k), R (k x n), sigma folded into L: x Wᵀ = (x Rᵀ) Lᵀ
  dense     W (m x n) where k·(m + n) >= m·n, so the product is the cheaper form
Weights are stored pre-transposed so each product is one plain MatMul on a named initializer.

The modules here hold only plain tensors (no parametrization, no STR) and compute, for raw
features x (B, T, F), with the state kept rescaled as s = h / sigmoid(zeta) (exact algebra):
  x̂    = (x - mean) / std                          training-split statistics, in the graph
  Pz   = x̂ Wᵀ + b_z                                (B, T, H), all steps in one product
  pre_z = Pz_t + s (ζ U)ᵀ;  pre_h = pre_z + (b_h - b_z)      ζ = sigmoid(zeta), folded into U
  z    = sigmoid(pre_z);  h~ = tanh(pre_h)
  s'   = z ⊙ (s - h~) + κ h~,  κ = 1 + sigmoid(nu) / ζ       (s_0 = 0: s_1 = (κ - z) ⊙ h~)
  logits = s_T (ζ Wh)ᵀ + b                          ζ folded into the head
which is FastGRNN's step: with h = ζ s, U h = (ζ U) s, and h' / ζ = z ⊙ h / ζ + ((1 - z) +
sigmoid(nu) / ζ) ⊙ h~ = z ⊙ (s - h~) + κ h~. b_z is added once, to the input product of all
steps, instead of in every step. At batch 1 onnxruntime's time for this graph is mostly
per-node overhead (~0.25-0.3 us an elementwise node on (1, 100), ~0.7-1 us a small MatMul or
Gemm whatever its size), so every node taken out of the step counts T times. Pz is flattened to
(B, T·H) and split into T (B, H) slices by one Split (no Squeeze per step), and s (ζU)ᵀ + Pz_t
is one Add right after the product, which onnxruntime fuses with it into one Gemm. Per step the
sequence graph has 9 nodes with U stored dense and 10 with U factored: the update is 4 nodes
(s - h~, z ⊙ ., κ h~, the sum) where the h form z ⊙ h + ((ζ + ν) - ζ z) ⊙ h~ took 5.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from edge_str.errors import EdgeStrError
from edge_str.fastgrnn import FastGRNNClassifier, gate_functions
from edge_str.lowrank import CompactMatrix
from edge_str.parametrization import baked_copy, str_parametrizations


class CompactProjection(nn.Module):
    """x (..., n) -> x Wᵀ (..., m) for a compacted W; ``None`` stands for the zero term."""

    def __init__(self, matrix: CompactMatrix, output_scale: float = 1.0) -> None:
        """``output_scale`` c stores c·W instead of W (folded into the left factor)."""
        super().__init__()
        self.kind = matrix.kind
        self.out_features, self.in_features = matrix.out_features, matrix.in_features
        if matrix.kind == "factored":
            # x Wᵀ = (x Rᵀ) Lᵀ: Rᵀ (n, k) then Lᵀ (k, m); k is the number of surviving ranks.
            self.right_t = nn.Parameter(matrix.right.detach().T.contiguous().clone())
            self.left_t = nn.Parameter(output_scale * matrix.left.detach().T.contiguous())
        elif matrix.kind == "dense":
            self.weight_t = nn.Parameter(output_scale * matrix.weight.detach().T.contiguous())

    @property
    def rank(self) -> int:
        """Inner dimension kept: k (factored), min(m, n) (dense) or 0 (zero)."""
        if self.kind == "factored":
            return self.right_t.shape[1]
        if self.kind == "dense":
            return min(self.out_features, self.in_features)
        return 0

    def params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, x: torch.Tensor) -> torch.Tensor | None:
        if self.kind == "factored":
            return (x @ self.right_t) @ self.left_t
        if self.kind == "dense":
            return x @ self.weight_t
        return None


def _plain(t: torch.Tensor) -> torch.Tensor:
    return t.detach().clone().float()


class CompactFastGRNN(nn.Module):
    """The compacted classifier: raw features (B, T, F) -> logits (B, C), time loop unrolled.

    Why unrolled: T is fixed per task (99 frames for Google-12, 128 for HAR-2), and a straight
    line of MatMul/Add/Sigmoid/Tanh/Mul is what microcontroller toolchains (TFLite-Micro via
    onnx2tf, STM32Cube.AI, TVM/microTVM, CMSIS-NN code generators) convert reliably; ONNX
    Loop/Scan (a subgraph with its own scoping) is unsupported or partial in most of them.
    Every step reads the same initializers, so weights are stored once; only the nodes repeat.
    A device that runs frame by frame uses the single-step graph (``CompactFastGRNNStep``).
    """

    def __init__(self, model: FastGRNNClassifier) -> None:
        super().__init__()
        if not isinstance(model, FastGRNNClassifier):
            raise EdgeStrError(
                f"export supports FastGRNN classifiers only, not {type(model).__name__}"
            )
        if any(True for _ in str_parametrizations(model)):
            raise ValueError("bake STR in first (edge_str.bake_str) so the ranks are final")
        cell = model.rnn.cell
        self.hidden_size = cell.hidden_size
        self.input_size = cell.input_size
        self.num_classes = model.head.out_features
        self.gates = cell.gates  # exact | piecewise sigmoid and tanh (edge_str.fastgrnn)
        self.full_ranks = {"W": cell.W.full_rank, "U": cell.U.full_rank}
        self.register_buffer("mean", _plain(model.normalizer.mean))  # (F,)
        self.register_buffer("std", _plain(model.normalizer.std))  # (F,)
        # The state is s = h / ζ: ζ = sigmoid(zeta) scales U and the head instead (see top).
        zeta_gate = torch.sigmoid(_plain(cell.zeta))  # ζ (1,)
        scale = float(zeta_gate)
        self.register_buffer("state_scale", zeta_gate)  # h = ζ s (not in the graphs)
        self.register_buffer("kappa", 1 + torch.sigmoid(_plain(cell.nu)) / zeta_gate)  # κ (1,)
        self.W = CompactProjection(cell.W.compact())  # (F) -> (H)
        self.U = CompactProjection(cell.U.compact(), output_scale=scale)  # s -> ζ U s
        self.bias_gate = nn.Parameter(_plain(cell.bias_gate))  # b_z (H,)
        # b_h enters as b_h - b_z on top of pre_z (b_h itself is not stored in the graphs).
        self.bias_delta = nn.Parameter(_plain(cell.bias_update) - _plain(cell.bias_gate))  # (H,)
        # (H, C): s (ζ Wh)ᵀ = h Whᵀ
        self.head_weight_t = nn.Parameter(scale * _plain(model.head.weight).T.contiguous())
        self.head_bias = nn.Parameter(_plain(model.head.bias))  # (C,)

    @property
    def ranks(self) -> dict[str, int]:
        return {"W": self.W.rank, "U": self.U.rank}

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def gate_input(self, x: torch.Tensor) -> torch.Tensor:
        """W x̂ + b_z for raw features x (..., F) -> (..., H); b_z alone when W has rank 0."""
        wx = self.W(self.normalize(x))
        return self.bias_gate if wx is None else wx + self.bias_gate

    def update(self, pz_t: torch.Tensor, s: torch.Tensor | None) -> torch.Tensor:
        """One FastGRNN step on the rescaled state: s' from Pz_t = W x_t + b_z and s = h / ζ.

        s = None is the zero initial state: U s and z ⊙ s vanish exactly, so they are skipped.
        A zero-rank U contributes no product at all. Pz_t is (H,) when W has rank 0 (the
        batch dimension then comes from s, or is added at the end).
        """
        us = None if s is None else self.U(s)  # s (ζU)ᵀ = h Uᵀ
        pre_z = pz_t if us is None else us + pz_t  # onnxruntime fuses product + Add: one Gemm
        sigmoid, tanh = gate_functions(self.gates)
        z = sigmoid(pre_z)
        h_tilde = tanh(pre_z + self.bias_delta)  # W x_t + U h + b_h
        if s is None:
            return (self.kappa - z) * h_tilde  # s_1 = z ⊙ (0 - h~) + κ h~
        return z * (s - h_tilde) + self.kappa * h_tilde  # s' = h' / ζ

    def classify(self, s: torch.Tensor) -> torch.Tensor:
        return s @ self.head_weight_t + self.head_bias  # s (ζ Wh)ᵀ + b = h Whᵀ + b: (B, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw features x (B, T, F) -> logits (B, C)."""
        pz = self.gate_input(x)  # (B, T, H), or b_z (H,) when W has rank 0
        steps = x.shape[1]
        if self.W.kind == "zero":
            pz_steps = [pz] * steps
        else:  # (B, T·H) split into T slices (B, H): one Flatten and one Split, no Squeeze
            pz_steps = pz.flatten(1).split(self.hidden_size, dim=1)
        s = None
        for t in range(steps):
            s = self.update(pz_steps[t], s)
        logits = self.classify(s)
        if self.W.kind == "zero":  # the logits do not depend on x; give them its batch
            # dimension. (`expand(B, C)` would export Equal/Where for its -1 handling; adding a
            # zero-filled (B, 1) broadcasts with Shape/ConstantOfShape/Add only.)
            logits = logits + torch.zeros_like(x[:, 0, :1])
        return logits


class CompactFastGRNNStep(nn.Module):
    """One frame for streaming: x_t (B, F), s (B, H) -> (s' (B, H), logits (B, C)).

    The state it carries is s = h / sigmoid(zeta) (FastGRNN's h times ``1 / state_scale``; see
    the top of this module): start from s = 0 and feed s' back each frame; after the last frame
    the logits equal the sequence graph's. Shares its tensors with the ``CompactFastGRNN`` it
    wraps.
    """

    def __init__(self, compact: CompactFastGRNN) -> None:
        super().__init__()
        self.net = compact

    def forward(self, x_t: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        net = self.net
        s_new = net.update(net.gate_input(x_t), s)
        return s_new, net.classify(s_new)


@dataclass
class MatrixSummary:
    """What compaction kept of one matrix."""

    kind: str  # zero | factored | dense
    rank: int  # surviving ranks k (for dense storage: the kept k before densifying)
    full_rank: int
    shape: tuple[int, int]  # (m, n)
    params: int

    def to_dict(self) -> dict:
        return {
            "kept": self.rank,
            "full": self.full_rank,
            "stored_as": self.kind,
            "shape": list(self.shape),
            "params": self.params,
        }


def compact_fastgrnn(model: FastGRNNClassifier) -> tuple[CompactFastGRNN, dict[str, MatrixSummary]]:
    """Bake STR into a copy of ``model`` and compact it; the original is left untouched.

    Returns the export module and, per matrix, the kept ranks (the STR-learned k, also when the
    product is stored dense because that is smaller).
    """
    if not isinstance(model, FastGRNNClassifier):
        raise EdgeStrError(f"export supports FastGRNN classifiers only, not {type(model).__name__}")
    baked = baked_copy(model).eval()
    cell = baked.rnn.cell
    summary = {}
    for name, matrix in (("W", cell.W), ("U", cell.U)):
        compacted = matrix.compact()
        summary[name] = MatrixSummary(
            kind=compacted.kind,
            rank=matrix.effective_rank(),
            full_rank=matrix.full_rank,
            shape=(matrix.out_features, matrix.in_features),
            params=compacted.params(),
        )
    refuse_unexportable(baked)
    return CompactFastGRNN(baked).eval(), summary


def refuse_unexportable(model: FastGRNNClassifier) -> None:
    """Raise ``EdgeStrError`` when STR pruned every rank of W and U: nothing to export."""
    if not isinstance(model, FastGRNNClassifier):
        raise EdgeStrError(f"export supports FastGRNN classifiers only, not {type(model).__name__}")
    if all(rank == 0 for rank in model.effective_ranks().values()):
        raise EdgeStrError(
            "every rank was pruned to 0 (W and U): the model ignores its input; nothing to export"
        )
