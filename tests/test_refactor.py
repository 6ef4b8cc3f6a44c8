"""The per-epoch SVD refactor: outputs unchanged, optimizer moments carried into the new basis."""

import math

import pytest
import torch

from edge_str.config import OptimConfig
from edge_str.lowrank import LowRankMatrix
from edge_str.training.optim import build_optimizer, restore_svd_forms


def _drifted(seed: int, prune: bool) -> LowRankMatrix:
    """A 12 x 8 STR matrix whose factors have left SVD form, some sigmas under the threshold."""
    torch.manual_seed(seed)
    matrix = LowRankMatrix(12, 8, mode="str", s_init=-30.0)
    mix = torch.eye(8) + 0.4 * torch.randn(8, 8)
    with torch.no_grad():
        matrix.w1.copy_(matrix.w1 @ mix)
        matrix.w2.copy_(mix.T @ matrix.w2)
        sigma = matrix.raw_sigma()
        sigma.copy_(torch.linspace(2.0, 0.05, 8))
        if prune:  # a threshold between the 6th and 7th sigma
            matrix.parametrizations.sigma[0].s.fill_(math.log(float(sigma[5:7].mean())))
    return matrix


def _grads(matrix, x, target):
    """Gradients of one fixed loss with respect to W1, raw sigma, W2."""
    matrix.zero_grad()
    (matrix(x) - target).square().sum().backward()
    return [p.grad.clone() for p in (matrix.w1, matrix.raw_sigma(), matrix.w2)]


@pytest.mark.parametrize("prune", [False, True])
def test_refactor_leaves_outputs_unchanged_and_sigma_the_singular_values(prune):
    matrix = _drifted(0, prune)
    x = torch.randn(5, 8)
    before, kept = matrix(x).detach(), matrix.effective_rank()
    matrix.restore_svd_form_()
    assert torch.allclose(matrix(x), before, atol=1e-5)
    assert matrix.effective_rank() == kept == (6 if prune else 8)
    assert torch.allclose(matrix.w1.T @ matrix.w1, torch.eye(8), atol=1e-5)
    assert torch.allclose(matrix.w2 @ matrix.w2.T, torch.eye(8), atol=1e-5)
    raw = (matrix.w1 * matrix.raw_sigma()) @ matrix.w2
    assert torch.allclose(matrix.raw_sigma(), torch.linalg.svdvals(raw.detach()), atol=1e-5)


def test_refactor_is_continuous_in_the_factors_pruned_directions_included():
    """Two processes whose matrices differ by round-off must get the same factors back: the
    pruned sigmas stay on their own (orthogonalised) directions, not on whatever basis the SVD
    picks for its null space, and each kept pair keeps its sign."""
    a, b = _drifted(3, prune=True), _drifted(3, prune=True)
    with torch.no_grad():
        b.w1.add_(1e-6 * torch.randn_like(b.w1))
    a.restore_svd_form_(), b.restore_svd_form_()
    assert torch.allclose(a.w1, b.w1, atol=1e-4) and torch.allclose(a.w2, b.w2, atol=1e-4)
    # in SVD form already: a second refactor changes nothing, pruned directions included
    w1, w2, sigma = a.w1.detach().clone(), a.w2.detach().clone(), a.raw_sigma().detach().clone()
    a.restore_svd_form_()
    assert torch.allclose(a.w1, w1, atol=1e-5) and torch.allclose(a.w2, w2, atol=1e-5)
    assert torch.allclose(a.raw_sigma(), sigma, atol=1e-5)
    # each pruned direction is its old one made orthogonal to the kept: it still leans that way
    c = _drifted(3, prune=True)
    old = c.w1.detach().clone()
    pruned = (c.sigma.detach() == 0).nonzero().flatten()
    order = pruned[c.raw_sigma().detach()[pruned].abs().argsort(descending=True)]
    c.restore_svd_form_()
    k = c.effective_rank()
    for new_column, old_column in zip(c.w1.detach()[:, k:].T, old[:, order].T):
        assert float(new_column @ old_column) > 0


def _adam_with_state(matrix, grads):
    """Adam over ``matrix`` whose moments are this one gradient (as after many equal steps)."""
    optimizer = build_optimizer(matrix, OptimConfig())
    for p, g in zip((matrix.w1, matrix.raw_sigma(), matrix.w2), grads):
        optimizer.state[p] = {"step": torch.tensor(7.0), "exp_avg": g, "exp_avg_sq": g.square()}
    return optimizer


@pytest.mark.parametrize("prune", [False, True])
def test_refactor_carries_first_moments_exactly_into_the_new_basis(prune):
    """exp_avg = this gradient, carried over, equals the gradient of the same loss in the new
    basis (the outputs are unchanged, so G = dL/dM̂ is too); steps are not restarted."""
    matrix = _drifted(1, prune)
    x, target = torch.randn(6, 8), torch.randn(6, 12)
    optimizer = _adam_with_state(matrix, _grads(matrix, x, target))
    assert restore_svd_forms(matrix, optimizer) == 1
    new = _grads(matrix, x, target)
    for p, g in zip((matrix.w1, matrix.raw_sigma(), matrix.w2), new):
        state = optimizer.state[p]
        assert float(state["step"]) == 7.0
        assert torch.allclose(state["exp_avg"], g, atol=1e-4, rtol=1e-3), p.shape
        assert (state["exp_avg_sq"] >= 0).all() and state["exp_avg_sq"].sum() > 0


def test_second_moments_are_exact_when_the_basis_only_permutes():
    """Factors in SVD form with columns swapped and signs flipped: exp_avg_sq carried over is
    the new g² (no rotation mixes entries)."""
    matrix = _drifted(2, prune=False)
    matrix.restore_svd_form_()
    with torch.no_grad():
        order = torch.tensor([1, 0, 2, 3, 5, 4, 6, 7])
        sign = torch.tensor([1.0, -1.0, 1.0, 1.0, -1.0, 1.0, 1.0, 1.0])
        matrix.w1.copy_(matrix.w1[:, order] * sign)
        matrix.w2.copy_(matrix.w2[order])
        matrix.raw_sigma().copy_(matrix.raw_sigma()[order])
    x, target = torch.randn(6, 8), torch.randn(6, 12)
    optimizer = _adam_with_state(matrix, _grads(matrix, x, target))
    restore_svd_forms(matrix, optimizer)
    new = _grads(matrix, x, target)
    for p, g in zip((matrix.w1, matrix.raw_sigma(), matrix.w2), new):
        assert torch.allclose(optimizer.state[p]["exp_avg_sq"], g.square(), rtol=1e-3)
