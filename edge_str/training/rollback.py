"""Undo an epoch whose training loss spiked, and train it again at half the learning rates.

STR FastGRNN runs now and then diverge in the middle of training: the mean training loss of
one epoch climbs back towards chance and the run does not recover (measured on the quality
trees: 0.50 -> 1.31 -> 2.50, chance level, between epochs 13 and 17 of 30). The best-validation
checkpoint then keeps a model from before the spike, trained on half the run or less. Here the
epoch is undone instead: weights, optimizer moments, schedule, the thresholds' controller and
the random state go back to the start of the epoch, every learning rate is halved for the rest
of the run, and the epoch is trained again. At most ``MAX_ROLLBACKS`` times a run; each is
logged and listed in ``final.json`` under ``rollbacks``.

A spike is an epoch whose loss L climbs back a fraction f (``optim.spike_rollback``, 0.25) of
the way from the lowest epoch loss L_min so far to chance, ln(classes): L - L_min >
f (ln C - L_min), and by at least ``MIN_RISE`` nats. A ratio to L_min would not do: a run near
zero loss (HAR-2 at 0.01) doubles it in noise. Measured on 196 finished runs of this package
(quality and tuning trees, GRU, LSTM, dense, STR, budget and experimental recipes): f = 0.25
marks 2 of the 15 default STR runs of the quality trees and none of the GRU, LSTM, dense or
budget runs; 0.2 marks one more bump, 0.3 one fewer.

The test is on the epoch's mean loss over the global batch, which every DDP rank holds the same
(``Replicas.batch_totals``), so every rank undoes the same epochs.
"""

from __future__ import annotations

import math
from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

MAX_ROLLBACKS = 3
LR_CUT = 0.5  # every learning rate's multiplier at each rollback
MIN_RISE = 0.1  # nats: a run whose loss never left chance has no spike to undo


class SpikeGuard:
    """Whether an epoch's loss spiked (see the module doc), and the learning-rate cut of its
    rollback; the trainer keeps and puts back the epoch's start (``trainer._training_state``,
    the state a resume restores from last.pt)."""

    def __init__(self, fraction: float, rollbacks: list[dict[str, Any]]) -> None:
        self.fraction = fraction
        self.rollbacks = rollbacks  # carried over a resume in last.pt

    @property
    def active(self) -> bool:
        return self.fraction > 0 and len(self.rollbacks) < MAX_ROLLBACKS

    def is_spike(self, loss: float, history: list[dict[str, Any]], classes: int) -> bool:
        """Whether ``loss`` climbed back ``fraction`` of the way from the lowest so far to
        chance, ln(classes)."""
        if not self.active or not history:
            return False
        lowest = min(record["train_loss"] for record in history)
        rise = loss - lowest
        return rise > MIN_RISE and rise > self.fraction * (math.log(classes) - lowest)

    def cut_learning_rates(
        self, optimizer: Optimizer, scheduler: LRScheduler, epoch: int, loss: float
    ) -> str:
        """Every learning rate times ``LR_CUT`` for the rest of the run, once the trainer has put
        the epoch's start back; records the rollback and returns the line to log."""
        # LambdaLR computes lr = base_lr * factor(epoch); StepLR scales the group's lr: both cut.
        scheduler.base_lrs = [lr * LR_CUT for lr in scheduler.base_lrs]
        for group in optimizer.param_groups:
            group["lr"] *= LR_CUT
        scale = LR_CUT ** (len(self.rollbacks) + 1)
        self.rollbacks.append({"epoch": epoch + 1, "train_loss": loss, "lr_scale": scale})
        return (
            f"epoch {epoch + 1}: the training loss climbed back towards chance ({loss:.4f}); "
            f"the epoch is undone and trained again at {scale:g}x the learning rates"
        )
