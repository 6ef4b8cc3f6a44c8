"""Optimizer and learning-rate schedule for STR training.

STR objective (Kusupati et al., ICML 2020, eq. 3): L(S_g(W, s)) + mu * sum_l (||W_l||^2 + s_l^2):
the same decay mu on weights and thresholds. PyTorch's coupled ``weight_decay=mu`` adds mu·w to
each gradient, i.e. the penalty (mu/2)(||W||^2 + s^2). Groups are found by type (the STR
parametrization's ``s``), never by parameter-name substrings.

W1·diag(sigma)·W2 with free factors drifts from SVD form; ``restore_svd_forms`` puts it back
between epochs so the threshold on sigma thresholds true singular values.

Thresholds over training progress (``threshold_rate``, FastGRNN's default). Under Adam a
threshold moves by about lr per step whatever its gradient (Adam divides the gradient by its own
size), and while the decay dominates, s simply climbs with the number of steps: the final rank
then follows the epochs, not mu. With ``threshold_rate`` R the thresholds take momentum-SGD
steps instead (Adam with eps >> |g| is exactly that: its step is lr·m̂/eps), with learning rates
summing to R over the run. s then integrates -(dL/ds + mu·s) over training *progress*: a run of
20 or 200 epochs moves it the same way, and the size of the imbalance between the task gradient
and mu, not its sign, sets how far.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from edge_str.config import OptimConfig
from edge_str.lowrank import SvdRefactor
from edge_str.parametrization import threshold_parameters
from edge_str.training.factor_steps import scale_factor_steps, str_matrices
from edge_str.validation import check_settings


def check_optimizer(cfg: OptimConfig) -> None:
    """One clear error for a bad optimizer setting, before any data is loaded.

    The config's own check (``edge_str.validation``), for an ``OptimConfig`` made in Python.
    """
    check_settings(cfg, ("optim",))


# Adam's eps for the thresholds' group under ``threshold_rate``: far above any |dL/ds| (~1e-2
# at most, measured), so Adam's step lr·m̂/(sqrt(v̂) + eps) is lr/eps times the momentum m̂.
THRESHOLD_SGD_EPS = 1.0


def lr_factor(cfg: OptimConfig, epoch: int) -> float:
    """The schedule's multiplier of lr in ``epoch`` (0-based): halve every ``lr_decay_epochs``,
    or cosine to lr/100 over the run when 0."""
    if cfg.lr_decay_epochs > 0:
        return 0.5 ** (epoch // cfg.lr_decay_epochs)
    progress = min(epoch / max(cfg.epochs, 1), 1.0)
    return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress))


# The thresholds' learning rate ramps up linearly over the first fifth of the run. In the first
# epochs the task gradient that holds thresholds down is still weak, and at full rate the decay
# alone could lift a threshold over every singular value of a matrix; at rank 0 nothing holds it
# down any more (dL/ds = 0), so the matrix never comes back. Measured: the demo tree's U went to
# rank 0 in epoch 1 at decay 0.03 (73.3% against 83.3% dense), and decay 0.1 collapsed a tuning
# tree to 36.5%; with the ramp that tree reached 92.2%.
THRESHOLD_WARMUP_FRACTION = 0.2


def threshold_factor(cfg: OptimConfig, epoch: int) -> float:
    """The thresholds' multiplier of their lr in ``epoch`` (0-based): the schedule's
    ``lr_factor``, ramped up linearly over the first ``THRESHOLD_WARMUP_FRACTION`` of the run."""
    warm_epochs = max(1.0, THRESHOLD_WARMUP_FRACTION * cfg.epochs)
    return lr_factor(cfg, epoch) * min(1.0, (epoch + 1) / warm_epochs)


def thresholds_follow_own_rule(cfg: OptimConfig) -> bool:
    """Whether the thresholds take ``threshold_rate``'s momentum-SGD steps (Adam only)."""
    return cfg.threshold_rate is not None and cfg.optimizer == "adam"


def build_optimizer(
    model: nn.Module, cfg: OptimConfig, steps_per_epoch: int | None = None
) -> torch.optim.Optimizer:
    """Adam or SGD (+ momentum) with thresholds in their own group (decay, and with
    ``threshold_rate`` their own rule: see the module doc; it needs ``steps_per_epoch``), and
    with ``factor_step_sigma`` the STR factors' steps scaled (``training.factor_steps``)."""
    check_optimizer(cfg)
    thresholds = threshold_parameters(model)
    threshold_ids = {id(p) for p in thresholds}
    weights = [p for p in model.parameters() if id(p) not in threshold_ids]
    threshold_decay = cfg.weight_decay if cfg.threshold_decay is None else cfg.threshold_decay
    groups = [{"params": weights, "weight_decay": cfg.weight_decay, "name": "weights"}]
    if thresholds:
        group = {"params": thresholds, "weight_decay": threshold_decay, "name": "thresholds"}
        if thresholds_follow_own_rule(cfg):
            if steps_per_epoch is None:
                raise ValueError("threshold_rate needs steps_per_epoch")
            # sum over the run of lr_t / eps = threshold_rate
            summed = steps_per_epoch * sum(threshold_factor(cfg, e) for e in range(cfg.epochs))
            group.update(lr=cfg.threshold_rate * THRESHOLD_SGD_EPS / summed, eps=THRESHOLD_SGD_EPS)
        groups.append(group)
    if cfg.optimizer == "sgd":
        # Nesterov needs momentum > 0; plain SGD when momentum is 0.
        nesterov = cfg.nesterov and cfg.momentum > 0
        optimizer = torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=nesterov)
    else:
        optimizer = torch.optim.Adam(groups, lr=cfg.lr)
    scale_factor_steps(optimizer, model, cfg.factor_step_sigma)
    return optimizer


@torch.no_grad()
def restore_svd_forms(model: nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """Put every STR low-rank matrix back into SVD form; returns how many were refactored.

    The model's outputs do not change (see ``LowRankMatrix.restore_svd_form_``), and the
    optimizer's moments of W1, W2 and sigma are carried into the new basis by
    ``carry_moments_``, so Adam neither restarts from zero nor steps on stale coordinates.
    """
    matrices = str_matrices(model)
    for matrix in matrices:
        carry_moments_(optimizer.state, matrix.restore_svd_form_())
    return len(matrices)


LINEAR_MOMENTS = ("exp_avg", "momentum_buffer")  # averages of gradients: carried exactly
SQUARED_MOMENTS = ("exp_avg_sq",)  # averages of squared entries: carried on the diagonal


@torch.no_grad()
def carry_moments_(state: dict, refactor: SvdRefactor) -> None:
    """Re-express the optimizer moments of W1, W2, sigma in the refactored basis, in place.

    The gradients are linear in G = dL/dM̂: dL/dW1 = G W2ᵀ diag(σ̂), dL/dW2 = diag(σ̂) W1ᵀ G,
    dL/dσ_i = u_iᵀ G v_i. Both bases span the same row and column spaces of M̂ on the kept
    directions, so there are k x k maps T1, T2 with G V Ŝ = (G W2ᵀ diag(σ̂)) T1 and
    Ŝ Uᵀ G = T2 (diag(σ̂) W1ᵀ G) for every G: a first moment (an average of gradients) maps
    exactly, m' = m T1 (W1) and T2 m (W2); sigma's follows from W1's, m'_σ_i = (Uᵀ m'_W1)_ii / Ŝ_i.
    A second moment averages squared *entries*, and an entry of the new gradient mixes several
    old ones, so no map is exact: it is carried on the diagonal, v' = v (T1∘T1) (sigma's too,
    v'_i = sum_j v_j T1_ji²), the expected
    square if the old entries were uncorrelated, exact when the basis change is a signed
    permutation and scaling (the usual case: the factors were in SVD form an epoch ago). That
    keeps Adam's step size per entry instead of restarting at a full ±lr step. Pruned
    directions get no gradient: their first moments are zeroed, their second moments move
    with them.
    """
    r = refactor
    kept, pruned, k = r.kept, r.pruned, len(r.kept)
    d = r.old_sigma_hat[kept]  # (k,) > 0
    u_k, s_k, v_k = r.w1[:, :k], r.new_sigma_hat[:k], r.w2[:k].T  # (m, k), (k,), (n, k)
    t1 = torch.linalg.lstsq((r.old_w2[kept].T * d).double(), (v_k * s_k).double()).solution
    t2 = torch.linalg.lstsq((r.old_w1[:, kept] * d).double(), (u_k * s_k).double()).solution.T
    t1, t2 = t1.float(), t2.float()  # (k, k)
    safe = s_k > 1e-6 * s_k.max() if k else s_k.bool()  # sigma's moments divide by Ŝ

    w1_state, w2_state, sigma_state = (state.get(p) for p in (r.w1, r.w2, r.sigma))
    for name in LINEAR_MOMENTS + SQUARED_MOMENTS:
        squared = name in SQUARED_MOMENTS
        if w1_state is not None and name in w1_state:
            old = w1_state[name]
            head = old[:, kept] @ (t1 * t1 if squared else t1)
            tail = old[:, pruned] if squared else torch.zeros_like(old[:, pruned])
            w1_state[name] = torch.cat([head, tail], dim=1)
        if w2_state is not None and name in w2_state:
            old = w2_state[name]
            head = (t2 * t2 if squared else t2) @ old[kept]
            tail = old[pruned] if squared else torch.zeros_like(old[pruned])
            w2_state[name] = torch.cat([head, tail], dim=0)
        if sigma_state is not None and name in sigma_state and w1_state is not None:
            old, w1_new = sigma_state[name], w1_state[name][:, :k]
            if squared:  # the same diagonal rule as W1's columns: v'_i = sum_j v_j T1_ji²
                head, tail = old[kept] @ (t1 * t1), old[pruned]
            else:
                head = torch.where(safe, (u_k * w1_new).sum(0) / s_k.clamp_min(1e-30), 0.0)
                tail = torch.zeros_like(old[pruned])
            sigma_state[name] = torch.cat([head, tail])


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: OptimConfig
) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-epoch schedule ``lr_factor`` on every group's own lr (``threshold_factor`` on the
    thresholds' under ``threshold_rate``)."""
    if cfg.lr_decay_epochs > 0:
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.lr_decay_epochs, gamma=0.5)

    def factor_of(group: dict) -> Callable[[int], float]:
        if group.get("name") == "thresholds" and thresholds_follow_own_rule(cfg):
            return lambda epoch: threshold_factor(cfg, epoch)
        return lambda epoch: lr_factor(cfg, epoch)

    factors = [factor_of(group) for group in optimizer.param_groups]
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factors)
