"""Truncated SVD of a dense FastGRNN: exact at full rank, the best rank-k approximation below."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edge_str import EdgeStrError
from edge_str.compare import truncated_model_config, truncated_svd_factors, truncated_svd_state
from edge_str.config import ModelConfig
from edge_str.models import build_model

STEPS, FEATURES, HIDDEN, CLASSES = 7, 6, 12, 3


def _dense_model(seed: int = 0):
    torch.manual_seed(seed)
    cfg = ModelConfig(hidden=HIDDEN, rank_mode="dense")
    model = build_model(cfg, (STEPS, FEATURES), CLASSES)
    g = torch.Generator().manual_seed(seed + 1)
    model.normalizer.set_statistics(
        torch.randn(FEATURES, generator=g), torch.rand(FEATURES, generator=g) + 0.5
    )
    with torch.no_grad():  # move away from the init so every tensor matters
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    return cfg, model.eval()


def _truncated(cfg, dense, ranks):
    model = build_model(truncated_model_config(cfg, ranks), (STEPS, FEATURES), CLASSES)
    model.load_state_dict(truncated_svd_state(dense.state_dict(), ranks))
    return model.eval()


def test_full_rank_reproduces_the_dense_model():
    cfg, dense = _dense_model()
    full = {"W": min(HIDDEN, FEATURES), "U": HIDDEN}
    model = _truncated(cfg, dense, full)
    x = torch.randn(50, STEPS, FEATURES) * 2
    with torch.no_grad():
        assert torch.allclose(model(x), dense(x), atol=1e-5)
        for name in "WU":
            a = getattr(model.rnn.cell, name).matrix()
            b = getattr(dense.rnn.cell, name).matrix()
            assert torch.allclose(a, b, atol=1e-5)
    assert model.effective_ranks() == full
    # everything but W and U is copied
    for key in (
        "head.weight",
        "head.bias",
        "rnn.cell.zeta",
        "rnn.cell.bias_gate",
        "normalizer.mean",
    ):
        assert torch.equal(model.state_dict()[key], dense.state_dict()[key])


@pytest.mark.parametrize("rank_w, rank_u", [(1, 1), (3, 5), (5, 11)])
def test_rank_k_is_the_best_rank_k_approximation(rank_w, rank_u):
    cfg, dense = _dense_model(seed=rank_u)
    model = _truncated(cfg, dense, {"W": rank_w, "U": rank_u})
    assert model.effective_ranks() == {"W": rank_w, "U": rank_u}
    for name, k in (("W", rank_w), ("U", rank_u)):
        weight = getattr(dense.rnn.cell, name).weight.detach().double().numpy()
        cut = getattr(model.rnn.cell, name).matrix().detach().double().numpy()
        u, s, vh = np.linalg.svd(weight, full_matrices=False)  # an independent SVD
        best = (u[:, :k] * s[:k]) @ vh[:k]
        np.testing.assert_allclose(cut, best, atol=1e-5)
        assert np.linalg.matrix_rank(cut, tol=1e-6) == k
        # Eckart-Young: the error is exactly the discarded spectrum ...
        error = np.linalg.norm(weight - cut)
        assert error == pytest.approx(np.sqrt((s[k:] ** 2).sum()), rel=1e-5)
        # ... and no other rank-k matrix tried does better
        rng = np.random.default_rng(k)
        for _ in range(20):
            # the best rank-k matrix within a random k-dimensional column space
            q, _ = np.linalg.qr(rng.standard_normal((weight.shape[0], k)))
            assert np.linalg.norm(weight - q @ (q.T @ weight)) > error


def test_truncated_model_costs_match_the_kept_ranks():
    cfg, dense = _dense_model()
    model = _truncated(cfg, dense, {"W": 2, "U": 3})
    cost = model.cost()
    w, u = 2 * (HIDDEN + FEATURES), 3 * (2 * HIDDEN)  # factored (m + n) per rank
    others = 2 * HIDDEN + 2 + HIDDEN * CLASSES + CLASSES  # biases, zeta, nu, head
    assert cost.params_compact == w + u + others


def test_rank_zero_is_the_zero_matrix():
    cfg, dense = _dense_model()
    model = _truncated(cfg, dense, {"W": 4, "U": 0})
    assert model.effective_ranks() == {"W": 4, "U": 0}
    assert torch.count_nonzero(model.rnn.cell.U.matrix()) == 0
    w1, sigma, w2 = truncated_svd_factors(torch.randn(5, 4), 0)
    assert w1.shape == (5, 1) and sigma.tolist() == [0.0] and w2.shape == (1, 4)


def test_refusals():
    with pytest.raises(EdgeStrError, match="outside 0..4"):
        truncated_svd_factors(torch.randn(5, 4), 5)
    with pytest.raises(EdgeStrError, match="needs a dense model"):
        truncated_model_config(ModelConfig(rank_mode="str"), {"W": 1, "U": 1})
    with pytest.raises(EdgeStrError, match="not a dense FastGRNN state"):
        truncated_svd_state({"head.weight": torch.zeros(2, 2)}, {"W": 1, "U": 1})
