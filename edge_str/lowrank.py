"""Low-rank matrices with a learned rank: W = W1 · diag(sigma) · W2, STR (g = exp) on sigma.

STR (Kusupati et al., ICML 2020), structured case: the soft threshold
    sigma_hat = sign(sigma) * relu(|sigma| - exp(s))
zeroes whole singular values, so rank k = |{i : sigma_hat_i != 0}| is learned per matrix.
FastGRNN (Kusupati et al., NeurIPS 2018) factors W and U in this way to cut their size.

One helper serves every matrix of every cell, in one of three modes:
  dense  W (m x n)
  fixed  W1 (m x r), sigma (r), W2 (r x n) with a hand-chosen r
  str    as fixed with r = min(m, n) at the start and STR on sigma
After training, ``compact()`` drops the zeroed ranks and folds sigma in (a parametrization cannot
change shape, so this is its own step).

W1 and W2 are free parameters, so during training they drift from orthonormal and sigma stops
being the singular values: the same matrix can hold its energy in a few directions while many
sigmas stay large (measured: U with 50 sigmas above the threshold and 9 true singular values
above it). ``restore_svd_form_()`` re-expresses the raw product W1·diag(sigma)·W2 as its SVD
(orthonormal W1, W2), which the trainer does after every epoch, so that the threshold compares
true singular values, as the method means.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import parametrize

from edge_str.defaults import LOWRANK_S_INIT
from edge_str.errors import EdgeStrError
from edge_str.parametrization import apply_str, str_parametrizations

RANK_MODES = ("dense", "fixed", "str")


class InvalidRank(EdgeStrError, ValueError):
    """A rank outside 1..full rank: a user's setting (one line) and a bad argument alike."""


def full_rank(out_features: int, in_features: int) -> int:
    """The rank of a generic (out_features x in_features) matrix: min(m, n)."""
    return min(out_features, in_features)


def check_rank(rank: int | None, full: int, what: str = "rank") -> None:
    """Refuse a rank outside 1..``full`` (None: full rank)."""
    if rank is not None and not 1 <= rank <= full:
        raise InvalidRank(f"{what} must be in 1..{full}, got {rank}")


def default_dense_init(out_features: int, in_features: int, generator=None) -> torch.Tensor:
    """The standard ``nn.Linear`` initialisation, U(-1/sqrt(n), 1/sqrt(n)), as an (m x n) tensor."""
    bound = 1.0 / math.sqrt(in_features)
    return (torch.rand(out_features, in_features, generator=generator) * 2 - 1) * bound


class LowRankMatrix(nn.Module):
    """An (out_features x in_features) matrix, dense or factored with an optional learned rank."""

    def __init__(
        self,
        out_features: int,
        in_features: int,
        mode: str = "str",
        rank: int | None = None,
        *,
        s_init: float = LOWRANK_S_INIT,
        init: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        if mode not in RANK_MODES:
            raise ValueError(f"mode must be one of {RANK_MODES}, got {mode!r}")
        self.out_features, self.in_features, self.mode = out_features, in_features, mode
        full = full_rank(out_features, in_features)
        dense = default_dense_init(out_features, in_features) if init is None else init
        if dense.shape != (out_features, in_features):
            raise ValueError(
                f"init has shape {tuple(dense.shape)}, expected {(out_features, in_features)}"
            )
        if mode == "dense":
            self.weight = nn.Parameter(dense.clone())
            self.rank = full
            return
        check_rank(rank, full, f"rank of a {out_features}x{in_features} matrix")
        self.rank = full if rank is None else int(rank)
        # Start from the (truncated) SVD of a standard dense init: at full rank, W1·diag(σ)·W2
        # reproduces the dense matrix exactly, so training starts where dense training starts.
        u, sv, vh = torch.linalg.svd(dense.double(), full_matrices=False)
        r = self.rank
        self.w1 = nn.Parameter(u[:, :r].float().contiguous())  # (m, r)
        self.sigma = nn.Parameter(sv[:r].float().contiguous())  # (r,)
        self.w2 = nn.Parameter(vh[:r].float().contiguous())  # (r, n)
        if mode == "str":
            apply_str(self, "sigma", g="exp", granularity="layer", s_init=s_init)

    @property
    def full_rank(self) -> int:
        return full_rank(self.out_features, self.in_features)

    def matrix(self) -> torch.Tensor:
        """W (m x n). Under ``parametrize.cached()`` the thresholded sigma is computed once."""
        if self.mode == "dense":
            return self.weight
        return (self.w1 * self.sigma) @ self.w2  # W1·diag(σ̂)·W2, (m, r)·(r, n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., n) -> x Wᵀ (..., m)."""
        return F.linear(x, self.matrix())

    @torch.no_grad()
    def kept_ranks(self) -> torch.Tensor:
        """Boolean mask (r,) of the singular values that survive thresholding."""
        if self.mode == "dense":
            return torch.ones(self.full_rank, dtype=torch.bool)
        return self.sigma != 0

    def effective_rank(self) -> int:
        """Number of nonzero thresholded singular values (full rank for a dense matrix)."""
        return int(self.kept_ranks().sum())

    def threshold(self) -> float | None:
        """exp(s) of the STR threshold on sigma, or None without STR."""
        for _, _, _, p in str_parametrizations(self):
            return float(p.threshold().detach().max())
        return None

    def params(self) -> int:
        """Parameters as trained (threshold s included)."""
        return sum(p.numel() for p in self.parameters())

    def macs(self) -> int:
        """Multiply-accumulates of one x Wᵀ as trained (factored or dense, whichever is cheaper)."""
        m, n = self.out_features, self.in_features
        return m * n if self.mode == "dense" else min(self.rank * (m + n), m * n)

    @torch.no_grad()
    def restore_svd_form_(self) -> list[nn.Parameter]:
        """Refactor the raw W1·diag(sigma)·W2 as its SVD U·diag(S)·Vᵀ; returns the parameters set.

        The raw (pre-threshold) matrix is unchanged; what changes is that sigma = S are its
        singular values again, so STR then computes U·diag(relu(S - exp(s)))·Vᵀ: singular value
        soft-thresholding. A dense matrix has no factors and returns [].
        """
        if self.mode == "dense":
            return []
        raw_sigma = self.raw_sigma()  # (r,)
        raw = (self.w1 * raw_sigma) @ self.w2  # (m, n), rank <= r
        u, sv, vh = torch.linalg.svd(raw.double(), full_matrices=False)
        r = self.rank
        self.w1.copy_(u[:, :r])  # (m, r)
        self.w2.copy_(vh[:r])  # (r, n)
        raw_sigma.copy_(sv[:r])  # (r,), >= 0 and descending
        return [self.w1, self.w2, raw_sigma]

    def raw_sigma(self) -> nn.Parameter:
        """sigma as trained, before the soft threshold."""
        if parametrize.is_parametrized(self, "sigma"):
            return self.parametrizations.sigma.original
        return self.sigma

    @torch.no_grad()
    def compact(self) -> CompactMatrix:
        """Drop zeroed ranks and fold sigma into W1: (m x k)·(k x n), or dense when smaller."""
        m, n = self.out_features, self.in_features
        if self.mode == "dense":
            return CompactMatrix(m, n, dense=self.weight.detach().clone())
        keep = self.kept_ranks()
        with parametrize.cached():
            sigma = self.sigma.detach()
        left = (self.w1[:, keep] * sigma[keep]).clone()  # (m, k) with σ folded in
        right = self.w2[keep].clone()  # (k, n)
        k = int(keep.sum())
        if k == 0:
            return CompactMatrix(m, n)
        if k * (m + n) >= m * n:
            return CompactMatrix(m, n, dense=left @ right)
        return CompactMatrix(m, n, left=left, right=right)


class CompactMatrix(nn.Module):
    """A matrix after compaction: zero (rank 0), factored (m x k)·(k x n), or dense (m x n).

    Plain parameters only, so it exports to standard ONNX MatMuls.
    """

    def __init__(
        self,
        out_features: int,
        in_features: int,
        *,
        left: torch.Tensor | None = None,
        right: torch.Tensor | None = None,
        dense: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.out_features, self.in_features = out_features, in_features
        if dense is not None:
            self.kind = "dense"
            self.weight = nn.Parameter(dense)
        elif left is not None and right is not None:
            self.kind = "factored"
            self.left = nn.Parameter(left)  # (m, k)
            self.right = nn.Parameter(right)  # (k, n)
        else:
            self.kind = "zero"

    @property
    def rank(self) -> int:
        if self.kind == "zero":
            return 0
        if self.kind == "factored":
            return self.left.shape[1]
        return int(torch.linalg.matrix_rank(self.weight.detach()))

    def matrix(self) -> torch.Tensor:
        if self.kind == "dense":
            return self.weight
        if self.kind == "factored":
            return self.left @ self.right
        return torch.zeros(self.out_features, self.in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., n) -> (..., m); the factored form runs as two thin products."""
        if self.kind == "dense":
            return F.linear(x, self.weight)
        if self.kind == "factored":
            return F.linear(F.linear(x, self.right), self.left)
        return x.new_zeros(*x.shape[:-1], self.out_features)

    def params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def macs(self) -> int:
        return self.params()  # one multiply-accumulate per stored weight, for any kind
