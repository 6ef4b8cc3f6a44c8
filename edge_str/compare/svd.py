"""Post-hoc truncated SVD of a trained dense FastGRNN: the baseline learned ranks must beat.

Eckart-Young: for W = U S Vᵀ (singular values s_1 >= s_2 >= ...), W_k = U_k S_k V_kᵀ is the best
rank-k approximation in Frobenius (and spectral) norm, with ||W - W_k||_F² = sum_{i>k} s_i².
A fixed-rank ``LowRankMatrix`` computes W1·diag(sigma)·W2, so W1 = U_k (m x k),
sigma = S_k (k), W2 = V_kᵀ (k x n) is W_k exactly, and the truncated model can be evaluated
as it is or fine-tuned from there (``ModelConfig.init_weights``).
"""

from __future__ import annotations

import dataclasses

import torch

from edge_str.config import ModelConfig
from edge_str.errors import EdgeStrError
from edge_str.lowrank import full_rank

MATRICES = ("W", "U")
_PREFIX = "rnn.cell."


def truncated_svd_factors(
    weight: torch.Tensor, rank: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(W1 (m x r), sigma (r), W2 (r x n)) of the best rank-``rank`` approximation of ``weight``.

    The SVD runs in float64. Rank 0 has no factored form with r >= 1: it comes back as r = 1
    with sigma = 0, which computes the zero matrix and which compaction drops (rank 0).
    """
    m, n = weight.shape
    if not 0 <= rank <= full_rank(m, n):
        raise EdgeStrError(f"rank {rank} is outside 0..{full_rank(m, n)} for a {m}x{n} matrix")
    u, s, vh = torch.linalg.svd(weight.detach().double(), full_matrices=False)
    r = max(rank, 1)
    w1 = u[:, :r].float().contiguous()  # (m, r)
    sigma = s[:r].float().contiguous()  # (r,)
    w2 = vh[:r].float().contiguous()  # (r, n)
    if rank == 0:
        sigma.zero_()
    return w1, sigma, w2


def truncated_svd_state(
    dense_state: dict[str, torch.Tensor], ranks: dict[str, int]
) -> dict[str, torch.Tensor]:
    """A state_dict for the fixed-rank model with ``ranks`` ({"W": k_W, "U": k_U}).

    ``dense_state``: the state_dict of a dense FastGRNN classifier. Its W and U become their
    truncated SVDs; every other tensor (normaliser, biases, zeta, nu, head) is copied.
    """
    state: dict[str, torch.Tensor] = {}
    for name in MATRICES:
        key = f"{_PREFIX}{name}.weight"
        if key not in dense_state:
            raise EdgeStrError(f"not a dense FastGRNN state: {key} is missing")
    for key, value in dense_state.items():
        matrix = next((m for m in MATRICES if key == f"{_PREFIX}{m}.weight"), None)
        if matrix is None:
            state[key] = value.detach().clone()
            continue
        w1, sigma, w2 = truncated_svd_factors(value, ranks[matrix])
        state[f"{_PREFIX}{matrix}.w1"] = w1
        state[f"{_PREFIX}{matrix}.sigma"] = sigma
        state[f"{_PREFIX}{matrix}.w2"] = w2
    return state


def truncated_model_config(dense: ModelConfig, ranks: dict[str, int]) -> ModelConfig:
    """The fixed-rank ModelConfig that ``truncated_svd_state(..., ranks)`` loads into."""
    if dense.rank_mode != "dense":
        raise EdgeStrError(f"truncated SVD needs a dense model, got rank_mode {dense.rank_mode!r}")
    return dataclasses.replace(
        dense,
        rank_mode="fixed",
        rank_w=max(ranks["W"], 1),
        rank_u=max(ranks["U"], 1),
        init_weights=None,
    )
