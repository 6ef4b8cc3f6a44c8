"""Optimizer and learning-rate schedule for STR training.

STR objective (Kusupati et al., ICML 2020, eq. 3): L(S_g(W, s)) + mu * sum_l (||W_l||^2 + s_l^2):
the same decay mu on weights and thresholds. PyTorch's coupled ``weight_decay=mu`` adds mu·w to
each gradient, i.e. the penalty (mu/2)(||W||^2 + s^2). Groups are found by type (the STR
parametrization's ``s``), never by parameter-name substrings.

W1·diag(sigma)·W2 with free factors drifts from SVD form; ``restore_svd_forms`` puts it back
between epochs so the threshold on sigma thresholds true singular values.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from edge_str.config import OptimConfig
from edge_str.lowrank import LowRankMatrix
from edge_str.parametrization import threshold_parameters
from edge_str.validation import check_settings


def check_optimizer(cfg: OptimConfig) -> None:
    """One clear error for a bad optimizer setting, before any data is loaded.

    The config's own check (``edge_str.validation``), for an ``OptimConfig`` made in Python.
    """
    check_settings(cfg, ("optim",))


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    """Adam or SGD (+ momentum) with thresholds in their own decay group."""
    check_optimizer(cfg)
    thresholds = threshold_parameters(model)
    threshold_ids = {id(p) for p in thresholds}
    weights = [p for p in model.parameters() if id(p) not in threshold_ids]
    threshold_decay = cfg.weight_decay if cfg.threshold_decay is None else cfg.threshold_decay
    groups = [{"params": weights, "weight_decay": cfg.weight_decay, "name": "weights"}]
    if thresholds:
        groups.append({"params": thresholds, "weight_decay": threshold_decay, "name": "thresholds"})
    if cfg.optimizer == "sgd":
        # Nesterov needs momentum > 0; plain SGD when momentum is 0.
        nesterov = cfg.nesterov and cfg.momentum > 0
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=nesterov)
    return torch.optim.Adam(groups, lr=cfg.lr)


@torch.no_grad()
def restore_svd_forms(model: nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """Put every STR low-rank matrix back into SVD form; returns how many were refactored.

    Adam's moments of W1, W2 and sigma refer to the old coordinates, so they are dropped and
    rebuilt from the next step on.
    """
    refactored = 0
    for module in model.modules():
        if isinstance(module, LowRankMatrix) and module.mode == "str":
            for parameter in module.restore_svd_form_():
                optimizer.state.pop(parameter, None)
            refactored += 1
    return refactored


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: OptimConfig
) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-epoch schedule: halve every ``lr_decay_epochs``, or cosine to lr/100 when 0."""
    if cfg.lr_decay_epochs > 0:
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.lr_decay_epochs, gamma=0.5)

    def cosine(epoch: int) -> float:
        progress = min(epoch / max(cfg.epochs, 1), 1.0)
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, cosine)
