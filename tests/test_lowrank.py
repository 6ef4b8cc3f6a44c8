import pytest
import torch

from edge_str import LowRankMatrix, sparsity_report
from edge_str.lowrank import default_dense_init


def _set_threshold(matrix: LowRankMatrix, value: float) -> None:
    with torch.no_grad():
        matrix.parametrizations.sigma[0].s.fill_(float(torch.log(torch.tensor(value))))


@pytest.mark.parametrize("shape", [(12, 5), (6, 6), (4, 9)])
def test_str_mode_reconstructs_the_svd_initialised_dense_matrix(shape):
    torch.manual_seed(0)
    dense = default_dense_init(*shape)
    matrix = LowRankMatrix(*shape, mode="str", init=dense, s_init=-30.0)
    assert matrix.w1.shape == (shape[0], min(shape))
    assert matrix.w2.shape == (min(shape), shape[1])
    assert torch.allclose(matrix.matrix(), dense, atol=1e-6)
    assert matrix.effective_rank() == min(shape) == matrix.full_rank


def test_fixed_rank_is_the_best_rank_r_approximation():
    torch.manual_seed(1)
    dense = torch.randn(10, 8)
    matrix = LowRankMatrix(10, 8, mode="fixed", rank=3, init=dense)
    u, s, vh = torch.linalg.svd(dense)
    best = u[:, :3] @ torch.diag(s[:3]) @ vh[:3]
    assert torch.allclose(matrix.matrix(), best, atol=1e-5)
    assert matrix.params() == 3 * (10 + 8) + 3
    assert matrix.macs() == 3 * (10 + 8)


def test_effective_rank_drops_when_sigmas_fall_under_the_threshold():
    torch.manual_seed(2)
    matrix = LowRankMatrix(20, 16, mode="str", s_init=-30.0)
    sigma = matrix.parametrizations.sigma.original.detach()
    # a threshold between the 10th and 11th largest singular values keeps 10 ranks
    _set_threshold(matrix, float((sigma[9] + sigma[10]) / 2))
    assert matrix.effective_rank() == 10
    assert int((matrix.sigma == 0).sum()) == 6
    assert sparsity_report(matrix).layers[0].zeros == 6
    assert torch.linalg.matrix_rank(matrix.matrix().detach()) == 10


def test_compaction_keeps_outputs_and_shrinks_to_k_times_m_plus_n():
    torch.manual_seed(3)
    m, n = 30, 24
    matrix = LowRankMatrix(m, n, mode="str", s_init=-30.0)
    sigma = matrix.parametrizations.sigma.original.detach()
    _set_threshold(matrix, float((sigma[4] + sigma[5]) / 2))  # keep k = 5
    compact = matrix.compact()
    x = torch.randn(7, 3, n)
    assert compact.kind == "factored" and compact.rank == 5
    assert compact.left.shape == (m, 5) and compact.right.shape == (5, n)
    assert compact.params() == 5 * (m + n)
    assert (compact(x) - matrix(x)).abs().max() < 1e-5


def test_compaction_stores_dense_when_that_is_smaller_and_drops_rank_zero():
    torch.manual_seed(4)
    matrix = LowRankMatrix(6, 5, mode="str", s_init=-30.0)
    compact = matrix.compact()  # k = 5: 5 * 11 >= 30, dense is smaller
    assert compact.kind == "dense" and compact.params() == 30
    x = torch.randn(4, 5)
    assert (compact(x) - matrix(x)).abs().max() < 1e-5
    _set_threshold(matrix, 1e6)
    zero = matrix.compact()
    assert zero.kind == "zero" and zero.params() == 0 and zero.rank == 0
    assert torch.equal(zero(x), torch.zeros(4, 6))


def test_dense_mode_and_bad_arguments():
    matrix = LowRankMatrix(4, 3, mode="dense")
    assert matrix.params() == 12 and matrix.effective_rank() == 3 and matrix.threshold() is None
    with pytest.raises(ValueError, match="mode"):
        LowRankMatrix(4, 3, mode="sparse")
    with pytest.raises(ValueError, match="rank"):
        LowRankMatrix(4, 3, mode="fixed", rank=4)


def _drift(matrix: LowRankMatrix, mix: torch.Tensor) -> None:
    """Move W1 and W2 off orthonormal, as free training does."""
    with torch.no_grad():
        matrix.w1.copy_(matrix.w1 @ mix)
        matrix.w2.copy_(mix.T @ matrix.w2)


def test_restore_svd_form_keeps_the_raw_matrix_and_makes_sigma_its_singular_values():
    torch.manual_seed(5)
    matrix = LowRankMatrix(12, 8, mode="str", s_init=-30.0)
    _drift(matrix, torch.eye(8) + 0.5 * torch.randn(8, 8))
    raw = (matrix.w1 * matrix.raw_sigma()) @ matrix.w2
    changed = matrix.restore_svd_form_()
    assert changed.w1 is matrix.w1 and changed.w2 is matrix.w2
    assert changed.sigma is matrix.raw_sigma()
    assert torch.allclose((matrix.w1 * matrix.raw_sigma()) @ matrix.w2, raw, atol=1e-5)
    assert torch.allclose(matrix.w1.T @ matrix.w1, torch.eye(8), atol=1e-5)
    assert torch.allclose(matrix.w2 @ matrix.w2.T, torch.eye(8), atol=1e-5)
    singular = torch.linalg.svdvals(raw.detach())
    assert torch.allclose(matrix.raw_sigma().detach(), singular, atol=1e-5)


def test_after_restoring_the_threshold_counts_true_singular_values():
    # Drifted factors hide a rank-2 matrix behind 8 large sigmas; in SVD form the threshold
    # keeps exactly the 2 true singular values above it.
    torch.manual_seed(6)
    matrix = LowRankMatrix(10, 8, mode="str", s_init=-30.0)
    with torch.no_grad():
        matrix.raw_sigma().copy_(torch.tensor([3.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]))
        # every direction past the second is the same, with alternating sign: they cancel
        matrix.w1[:, 2:] = matrix.w1[:, 2:3]
        matrix.w2[2:] = matrix.w2[2:3] * torch.tensor([1.0, -1.0] * 3)[:, None]
    _set_threshold(matrix, 0.5)
    assert matrix.effective_rank() == 8
    matrix.restore_svd_form_()
    assert matrix.effective_rank() == 2
    assert torch.linalg.matrix_rank(matrix.matrix().detach()) == 2


def test_restore_svd_form_leaves_a_dense_matrix_alone():
    matrix = LowRankMatrix(4, 3, mode="dense")
    before = matrix.weight.detach().clone()
    assert matrix.restore_svd_form_() is None
    assert torch.equal(matrix.weight, before)
