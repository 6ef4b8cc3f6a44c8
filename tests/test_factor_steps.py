"""FastGRNN STR's factor steps: each step on direction i of W1 and W2 is the optimizer's own step
times min(1, c / |sigma_hat_i|); sigma, thresholds and pruned directions step as they would;
the FastGRNN defaults turn it on, the CNN path's leave it off."""

import copy

import pytest
import torch

from edge_str import EdgeStrError
from edge_str.config import OptimConfig, make_config
from edge_str.lowrank import LowRankMatrix
from edge_str.training.factor_steps import factor_step_scales
from edge_str.training.optim import build_optimizer

REFERENCE = 3.0


def _matrix() -> LowRankMatrix:
    """A 6x5 STR matrix with singular values on both sides of the reference and one pruned."""
    torch.manual_seed(0)
    matrix = LowRankMatrix(6, 5, mode="str", s_init=-3.0)  # threshold exp(-3) = 0.05
    with torch.no_grad():
        matrix.raw_sigma().copy_(torch.tensor([30.0, 6.0, 2.0, 0.5, 0.01]))  # 0.01: pruned
    return matrix


def _one_step(matrix: LowRankMatrix, reference: float) -> dict[str, torch.Tensor]:
    """The change of every parameter after one Adam step on a fixed loss."""
    optimizer = build_optimizer(matrix, OptimConfig(factor_step_sigma=reference, lr=1e-2))
    before = {name: p.detach().clone() for name, p in matrix.named_parameters()}
    target = torch.linspace(-1, 1, 30).reshape(6, 5)
    loss = ((matrix.matrix() - target) ** 2).sum()
    loss.backward()
    optimizer.step()
    return {name: p.detach() - before[name] for name, p in matrix.named_parameters()}


def test_scales_cap_each_direction_at_the_reference():
    scales = factor_step_scales(_matrix(), REFERENCE)
    sigma_hat = torch.tensor([30.0, 6.0, 2.0, 0.5]) - torch.exp(torch.tensor(-3.0))
    expected = torch.cat([(REFERENCE / sigma_hat).clamp(max=1.0), torch.ones(1)])  # pruned: 1
    assert torch.allclose(scales, expected)
    assert scales[0] < 0.11 and scales[2] == scales[3] == 1.0


def test_a_step_on_the_factors_is_the_unscaled_step_times_the_scales():
    plain = _matrix()
    scaled = copy.deepcopy(plain)
    scales = factor_step_scales(scaled, REFERENCE)
    unscaled_step = _one_step(plain, 0.0)
    scaled_step = _one_step(scaled, REFERENCE)
    w1, w2 = "w1", "w2"
    assert torch.allclose(scaled_step[w1], unscaled_step[w1] * scales[None, :], atol=1e-7)
    assert torch.allclose(scaled_step[w2], unscaled_step[w2] * scales[:, None], atol=1e-7)
    # the large direction's step really shrank, and the small ones' did not
    assert scaled_step[w1][:, 0].abs().max() < 0.2 * unscaled_step[w1][:, 0].abs().max()
    assert torch.equal(scaled_step[w1][:, 2:], unscaled_step[w1][:, 2:])
    # sigma and the threshold step exactly as without scaling
    for name in unscaled_step:
        if name not in (w1, w2):
            assert torch.equal(scaled_step[name], unscaled_step[name]), name


def test_the_fastgrnn_defaults_scale_and_the_cnn_defaults_do_not():
    assert make_config("google12").optim.factor_step_sigma == REFERENCE
    assert make_config("har2").optim.factor_step_sigma == REFERENCE
    assert make_config("digits").optim.factor_step_sigma == 0.0


def test_no_hooks_without_a_reference_or_without_str_matrices():
    matrix = _matrix()
    optimizer = build_optimizer(matrix, OptimConfig(factor_step_sigma=0.0))
    assert not optimizer._optimizer_step_pre_hooks and not optimizer._optimizer_step_post_hooks
    dense = LowRankMatrix(6, 5, mode="dense")
    optimizer = build_optimizer(dense, OptimConfig(factor_step_sigma=REFERENCE))
    assert not optimizer._optimizer_step_pre_hooks and not optimizer._optimizer_step_post_hooks
    scaled = build_optimizer(matrix, OptimConfig(factor_step_sigma=REFERENCE))
    assert scaled._optimizer_step_pre_hooks and scaled._optimizer_step_post_hooks


def test_a_negative_reference_is_refused():
    with pytest.raises(EdgeStrError, match="factor_step_sigma"):
        make_config("google12", overrides={"optim": {"factor_step_sigma": -1.0}})
