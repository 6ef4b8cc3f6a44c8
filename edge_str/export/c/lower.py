"""The compacted FastGRNN as plain arrays for C: normaliser folded into W, quantised per mode.

Starts from ``CompactFastGRNN`` (``export.compact_model``: STR baked in, pruned ranks dropped,
state rescaled as s = h / sigmoid(zeta), ζ folded into U and the head) and folds the feature
normaliser into W (FastGRNN, Kusupati et al. NeurIPS 2018, with x̂ = (x - mean) / std):
    W x̂ + b_z = (W diag(1/std)) x + (b_z - W diag(1/std) mean)
so the firmware feeds raw log-mel frames. The float modes keep the mean apart and subtract it
from the frame (F subtractions) with b_z unchanged, because W' x and W' mean are both large
where their difference is not and float32 would lose the difference's low bits (measured: 2.5e-5
on the logits of a trained model instead of 5e-6); integer mode folds it all into the bias. Each
product is a ``Chain`` of 0 (rank 0: no code), 1 (dense) or 2 (factored, R then L) matrices
applied to a vector, row-major as C stores them.

Modes (``MODES``):
  float32  float weights and activations; the float C equals torch to float rounding
  int8     int8 weights with one float scale per row, float activations: M ≈ diag(scale) Q
  integer  int8 weights, int16 fixed-point activations, int32 accumulators, piecewise-linear
           gates; each product's rescale is an integer multiplier and shift per row (as
           gemmlowp / CMSIS-NN requantise): no float in the step at all.
Fixed-point formats (integer mode) are Q(f): value = int / 2^f. The pre-activations and gates
are Q14 in int32; the input, the state and each factored product's inner vector are int16 with
f chosen from the largest magnitude seen on the calibration inputs (``calibrate``), with headroom.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from edge_str.export.compact_model import CompactFastGRNN, CompactProjection

MODES = ("float32", "int8", "integer")
GATE_FRAC = 14  # integer mode: pre-activations, z and h~ in Q14 (1.0 = 16384)
LOGIT_FRAC = 16  # integer mode: logits as int32 Q16
KAPPA_FRAC = 14
HEADROOM = 1.5  # calibrated ranges are widened by this factor before fixing a format
INT16_MAX = 32767
MULTIPLIER_BITS = 30  # requantisation multipliers are < 2^30 (int32)


@dataclass
class Chain:
    """y = M_last ... M_first v: the stored matrices of one product, first applied first."""

    name: str  # W, U or head
    kind: str  # zero | factored | dense
    matrices: list[np.ndarray]  # float64, each (rows, cols), row-major

    @property
    def macs(self) -> int:
        return sum(m.size for m in self.matrices)

    @property
    def inner(self) -> int:
        """Length of the intermediate vector of a factored product (its rank k), else 0."""
        return self.matrices[0].shape[0] if self.kind == "factored" else 0

    def apply(self, v: np.ndarray) -> np.ndarray:
        """v (..., n) -> (..., m) in float64; zeros when the rank is 0 (never called then)."""
        for m in self.matrices:
            v = v @ m.T
        return v


@dataclass
class FloatModel:
    """Every number the C needs, float64, the normaliser folded in."""

    features: int
    hidden: int
    classes: int
    gates: str  # exact | piecewise
    W: Chain  # raw x -> W diag(1/std) x
    U: Chain  # s -> ζ U s
    head: Chain  # s -> ζ Wh s
    bias_gate: np.ndarray  # b_z - W diag(1/std) mean (H,): all of the normaliser folded in
    mean: np.ndarray  # (F,): the float modes subtract it from x and add b_z instead
    bias_gate_raw: np.ndarray  # b_z (H,)
    bias_delta: np.ndarray  # b_h - b_z (H,)
    kappa: float  # 1 + sigmoid(nu) / ζ
    head_bias: np.ndarray  # (C,)
    state_scale: float  # h = state_scale * s


def _chain(name: str, projection: CompactProjection) -> Chain:
    if projection.kind == "factored":  # x Rᵀ Lᵀ with right_t = Rᵀ (n, k), left_t = Lᵀ (k, m)
        right = projection.right_t.detach().double().T.numpy()
        left = projection.left_t.detach().double().T.numpy()
        return Chain(name, "factored", [right.copy(), left.copy()])
    if projection.kind == "dense":
        return Chain(name, "dense", [projection.weight_t.detach().double().T.numpy().copy()])
    return Chain(name, "zero", [])


def lower(compact: CompactFastGRNN) -> FloatModel:
    """The compacted model as float64 arrays with the normaliser folded into W."""
    mean = compact.mean.double().numpy()
    inv_std = 1.0 / compact.std.double().numpy()
    w = _chain("W", compact.W)
    bias_gate = compact.bias_gate.detach().double().numpy().copy()
    bias_gate_raw = bias_gate.copy()
    if w.kind != "zero":
        w.matrices[0] = w.matrices[0] * inv_std  # columns of R (or of dense W) by 1/std
        bias_gate = bias_gate - w.apply(mean)
    return FloatModel(
        features=compact.input_size,
        hidden=compact.hidden_size,
        classes=compact.num_classes,
        gates=compact.gates,
        W=w,
        U=_chain("U", compact.U),
        head=Chain("head", "dense", [compact.head_weight_t.detach().double().T.numpy().copy()]),
        bias_gate=bias_gate,
        mean=mean.copy(),
        bias_gate_raw=bias_gate_raw,
        bias_delta=compact.bias_delta.detach().double().numpy().copy(),
        kappa=float(compact.kappa),
        head_bias=compact.head_bias.detach().double().numpy().copy(),
        state_scale=float(compact.state_scale),
    )


# ----------------------------------------------------------------------------- reference math


def _gates(gates: str):
    if gates == "piecewise":
        return (lambda p: np.clip(p / 4 + 0.5, 0, 1)), (lambda p: np.clip(p, -1, 1))
    return (lambda p: 1 / (1 + np.exp(-p))), np.tanh


def run_float(model: FloatModel, x: np.ndarray, gates: str | None = None) -> dict[str, np.ndarray]:
    """The C's float step in numpy (float64) over x (N, T, F): logits and per-frame ranges.

    Returns "logits" (N, C) and, for calibration, the largest magnitude over all frames of
    "x", "s" (the state) and the inner vectors "W_inner" / "U_inner" of factored products.
    ``gates`` overrides the model's (integer mode always computes piecewise-linear ones).
    """
    sigmoid, tanh = _gates(gates or model.gates)
    n, steps, _ = x.shape
    s = np.zeros((n, model.hidden))
    peaks = {"x": float(np.abs(x).max()), "s": 0.0, "W_inner": 0.0, "U_inner": 0.0}
    wx = model.W.apply(x) if model.W.kind != "zero" else 0.0  # (N, T, H)
    if model.W.kind == "factored":
        peaks["W_inner"] = float(np.abs(x @ model.W.matrices[0].T).max())
    for t in range(steps):
        pre = model.bias_gate + (wx[:, t] if model.W.kind != "zero" else 0.0)
        if model.U.kind != "zero":
            if model.U.kind == "factored":
                inner = s @ model.U.matrices[0].T
                peaks["U_inner"] = max(peaks["U_inner"], float(np.abs(inner).max()))
            pre = pre + model.U.apply(s)
        z, h_tilde = sigmoid(pre), tanh(pre + model.bias_delta)
        s = z * (s - h_tilde) + model.kappa * h_tilde
        peaks["s"] = max(peaks["s"], float(np.abs(s).max()))
    logits = model.head.apply(s) + model.head_bias
    return {"logits": logits, **{k: np.asarray(v) for k, v in peaks.items()}}


# ----------------------------------------------------------------------------- int8 weights


def quantize_rows(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 per row: M ≈ diag(scale) Q, Q in [-127, 127]; a zero row gets scale 0."""
    peak = np.abs(matrix).max(axis=1)
    scale = peak / 127.0
    safe = np.where(scale > 0, scale, 1.0)
    q = np.clip(np.rint(matrix / safe[:, None]), -127, 127).astype(np.int8)
    return q, scale


# ----------------------------------------------------------------------------- integer mode


def frac_bits(peak: float, limit: int = INT16_MAX, most: int = 14) -> int:
    """Fractional bits f so that HEADROOM * peak * 2^f fits in ±limit (at most ``most``)."""
    if peak <= 0:
        return most
    return int(min(most, math.floor(math.log2(limit / (HEADROOM * peak)))))


@dataclass
class IntMatrix:
    """One stored matrix of integer mode: y_i = (Σ_j q_ij v_j · mult_i + 2^(shift-1)) >> shift.

    ``mult_i / 2^shift`` is the real factor scale_i · 2^(out_frac - in_frac) that takes the
    int32 sum in the input's and weights' units to the output's Q(out_frac).
    """

    q: np.ndarray  # int8 (rows, cols)
    mult: np.ndarray  # int32 (rows,)
    shift: int
    in_frac: int
    out_frac: int
    out_int16: bool  # a factored product's inner vector (int16, saturated) or the int32 result


def _int_matrix(matrix: np.ndarray, in_frac: int, out_frac: int, out_int16: bool) -> IntMatrix:
    q, scale = quantize_rows(matrix)
    factor = scale * 2.0 ** (out_frac - in_frac)
    top = float(factor.max()) if factor.size else 0.0
    shift = MULTIPLIER_BITS if top <= 0 else MULTIPLIER_BITS - math.ceil(math.log2(top))
    shift = int(min(max(shift, 1), 62))
    mult = np.rint(factor * 2.0**shift).astype(np.int64)
    if mult.max(initial=0) >= 2**31:
        raise ValueError("requantisation multiplier does not fit int32")
    return IntMatrix(q, mult.astype(np.int32), shift, in_frac, out_frac, out_int16)


@dataclass
class IntVector:
    """An int16 vector in Q(frac): value = q / 2^frac."""

    q: np.ndarray
    frac: int


def _int_vector(values: np.ndarray, most: int = GATE_FRAC) -> IntVector:
    f = frac_bits(float(np.abs(values).max(initial=0.0)), most=most)
    f = max(f, 0)
    q = np.clip(np.rint(values * 2.0**f), -INT16_MAX, INT16_MAX).astype(np.int16)
    return IntVector(q, f)


@dataclass
class IntegerModel:
    """Integer-only arithmetic of the step and head, with its fixed-point formats."""

    float_model: FloatModel
    input_frac: int
    state_frac: int
    W: list[IntMatrix]
    U: list[IntMatrix]
    head: list[IntMatrix]
    bias_gate: IntVector  # shifted up to Q14 when used
    bias_delta: IntVector
    head_bias: np.ndarray  # int32 Q16 (C,)
    kappa: int  # Q14
    peaks: dict[str, float] = field(default_factory=dict)

    @property
    def logit_frac(self) -> int:
        return LOGIT_FRAC


def _int_chain(chain: Chain, in_frac: int, inner_frac: int, out_frac: int) -> list[IntMatrix]:
    if chain.kind == "factored":
        return [
            _int_matrix(chain.matrices[0], in_frac, inner_frac, True),
            _int_matrix(chain.matrices[1], inner_frac, out_frac, False),
        ]
    if chain.kind == "dense":
        return [_int_matrix(chain.matrices[0], in_frac, out_frac, False)]
    return []


def integerize(model: FloatModel, calibration: np.ndarray) -> IntegerModel:
    """Fixed-point formats from the ranges ``calibration`` (N, T, F raw frames) reaches.

    The ranges come from the float step with piecewise-linear gates (what integer mode computes).
    """
    peaks = run_float(model, calibration, gates="piecewise")
    input_frac = frac_bits(float(peaks["x"]))
    state_frac = frac_bits(float(peaks["s"]))
    w_inner = frac_bits(float(peaks["W_inner"]))
    u_inner = frac_bits(float(peaks["U_inner"]))
    head_bias = np.rint(model.head_bias * 2.0**LOGIT_FRAC)
    return IntegerModel(
        float_model=model,
        input_frac=input_frac,
        state_frac=state_frac,
        W=_int_chain(model.W, input_frac, w_inner, GATE_FRAC),
        U=_int_chain(model.U, state_frac, u_inner, GATE_FRAC),
        head=_int_chain(model.head, state_frac, 0, LOGIT_FRAC),
        bias_gate=_int_vector(model.bias_gate),
        bias_delta=_int_vector(model.bias_delta),
        head_bias=np.clip(head_bias, -(2**31), 2**31 - 1).astype(np.int32),
        kappa=int(round(model.kappa * 2**KAPPA_FRAC)),
        peaks={k: float(v) for k, v in peaks.items() if k != "logits"},
    )


def quantize_input(x: np.ndarray | torch.Tensor, frac: int) -> np.ndarray:
    """Raw float frames -> int16 Q(frac), saturated: what integer mode's step takes."""
    x = np.asarray(x, dtype=np.float64)
    return np.clip(np.rint(x * 2.0**frac), -INT16_MAX, INT16_MAX).astype(np.int16)
