"""Budget mode: steer STR's thresholds so the compacted FastGRNN lands on a size asked for.

``edge-str train --target-params N`` (or ``--target-kb K``) keeps STR's learned thresholds on W
and U but adds one control signal: after every optimizer step, while the compacted model is
larger than the budget of that moment, every threshold parameter s is raised by the same step
in log space (exp(s) grows by the same factor for W and U); while it is below the band, lowered.
Which singular values go is still STR's choice: each s also follows its own task gradient, so a
matrix whose directions the loss needs resists, and the split between W and U is learned.
The step adapts as in Rprop (Riedmiller & Braun, 1993): it grows while the sign of the size
error persists and halves when it flips, so thresholds that start far from biting get there in
tens of steps and then settle instead of oscillating.

The budget of the moment falls linearly from the model's starting size to the target over the
first ``RAMP_FRACTION`` of training and then holds, so pruning is gradual and the last part of
training fine-tunes a model already inside the band. Size is the package's one cost model,
``FastGRNNClassifier.cost().params_compact`` (what export writes), never a second count here.
"""

from __future__ import annotations

from typing import Any

import torch

from edge_str.fastgrnn import FastGRNNClassifier
from edge_str.parametrization import threshold_parameters

FLOAT32_BYTES = 4
INT8_BYTES = 1  # the per-row or per-tensor scales are left out: a few bytes a matrix
KIB = 1024
BAND = 0.10  # the final compacted size must land within ±10% of the target
RAMP_FRACTION = 0.5  # the moving budget reaches the target half-way through training
# Rprop-style step of the log-threshold: start, bounds, growth and shrink factors.
STEP_INIT, STEP_MIN, STEP_MAX = 0.01, 1e-3, 0.1
STEP_GROW, STEP_SHRINK = 1.2, 0.5


def bytes_per_param(int8: bool) -> int:
    """Bytes of one weight in the budget: float32, or int8 (``--target-kb K --int8``, as
    ``export --int8`` / ``--c --weights int8`` store them)."""
    return INT8_BYTES if int8 else FLOAT32_BYTES


def target_params_of(
    target_params: int | None, target_kb: float | None, int8: bool = False
) -> int | None:
    """The budget in parameters: ``target_kb`` KiB is target_kb * 1024 / 4 float32 params, or
    target_kb * 1024 int8 params."""
    if target_kb is not None:
        return int(target_kb * KIB / bytes_per_param(int8))
    return target_params


def smallest_params(model: FastGRNNClassifier) -> int:
    """Parameters of the model with W and U at rank 0 (biases, zeta, nu, head): no budget fits
    below it."""
    cost = model.cost()
    cell = model.rnn.cell
    return cost.params_compact - cell.W.compact().params() - cell.U.compact().params()


class BudgetController:
    """Per-step threshold steering toward a compacted-parameter target (see the module doc)."""

    def __init__(self, model: FastGRNNClassifier, target_params: int) -> None:
        self.model = model
        self.target = int(target_params)
        self.start = model.cost().params_compact
        self.thresholds = threshold_parameters(model)
        self.current = self.start
        self.delta, self.last_sign = STEP_INIT, 0.0

    def budget_at(self, progress: float) -> float:
        """The moving budget at ``progress`` in [0, 1] of training."""
        ramp = min(progress / RAMP_FRACTION, 1.0)
        return self.start + (self.target - self.start) * ramp

    @torch.no_grad()
    def step(self, epoch: int, step_in_epoch: int, steps_per_epoch: int, total_epochs: int) -> None:
        progress = (epoch + (step_in_epoch + 1) / steps_per_epoch) / total_epochs
        budget = self.budget_at(progress)
        self.current = self.model.cost().params_compact
        if self.current > budget:
            sign = 1.0  # too big: raise every threshold by the same factor
        elif self.current < budget * (1 - BAND / 2):
            sign = -1.0  # well under: let ranks come back
        else:
            sign = 0.0
        if sign == 0.0 or sign == -self.last_sign:  # inside the band, or overshot
            self.delta = max(self.delta * STEP_SHRINK, STEP_MIN)
        elif sign == self.last_sign:
            self.delta = min(self.delta * STEP_GROW, STEP_MAX)
        self.last_sign = sign
        for s in self.thresholds:
            s.add_(sign * self.delta)

    def in_band(self) -> bool:
        return abs(self.model.cost().params_compact - self.target) <= BAND * self.target

    def reached_target(self) -> bool:
        """An epoch's model may be kept only when its size is within the band."""
        return self.in_band()

    def metrics(self) -> dict[str, Any]:
        return {"budget_target_params": self.target, "budget_in_band": self.in_band()}

    def state_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "start": self.start,
            "delta": self.delta,
            "last_sign": self.last_sign,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.target, self.start = int(state["target"]), int(state["start"])
        self.delta, self.last_sign = float(state["delta"]), float(state["last_sign"])


def size_budget_report(
    model: FastGRNNClassifier, target_params: int, int8: bool = False
) -> dict[str, Any]:
    """What ``final.json`` says of a budget run: the target, what was reached, the W/U split."""
    cost = model.cost()
    cell = model.rnn.cell
    reached = cost.params_compact
    width = bytes_per_param(int8)
    return {
        "target_params": target_params,
        "weights": "int8" if int8 else "float32",
        "target_bytes": target_params * width,
        "reached_params": reached,
        "reached_bytes": reached * width,
        "relative_error": reached / target_params - 1,
        "within_band": abs(reached - target_params) <= BAND * target_params,
        "band": BAND,
        "split": {
            "W": {"rank": cell.W.effective_rank(), "params": cell.W.compact().params()},
            "U": {"rank": cell.U.effective_rank(), "params": cell.U.compact().params()},
        },
    }
