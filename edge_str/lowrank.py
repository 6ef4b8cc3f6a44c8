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
from dataclasses import dataclass, field

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


def _orthogonal_rest(kept: torch.Tensor, rest: torch.Tensor) -> torch.Tensor:
    """Orthonormal columns for ``rest`` (d, j) in the complement of the orthonormal ``kept``
    (d, k): Gram-Schmidt by QR, with signs chosen so each column leans toward its old one."""
    if rest.shape[1] == 0:
        return rest
    residual = rest - kept @ (kept.T @ rest)
    q, r = torch.linalg.qr(residual)
    signs = torch.where(torch.diagonal(r) < 0, -1.0, 1.0).to(q.dtype)
    return q * signs


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
    def restore_svd_form_(self) -> SvdRefactor | None:
        """Re-express W1·diag(σ̂)·W2 (the matrix the model computes) as its SVD, in place.

        With M̂ = U·diag(Ŝ)·Vᵀ of rank k (the kept singular values), W1 = U and W2 = Vᵀ become
        orthonormal and the raw sigma becomes Ŝ + exp(s) on the kept k, so that the soft
        threshold gives back exactly Ŝ: the model's outputs do not change, and sigma holds the
        true singular values for the threshold to act on. The r - k pruned sigmas keep their
        raw magnitudes (all <= exp(s), so still pruned; they come back if the threshold falls),
        on the remaining orthonormal directions. Returns the old and new factors, which the
        optimizer needs to carry its moments over; None for a dense matrix.
        """
        if self.mode == "dense":
            return None
        raw_sigma = self.raw_sigma()  # (r,)
        with parametrize.cached():
            sigma_hat = self.sigma.detach().clone()  # (r,), 0 where pruned
        threshold = self.threshold() or 0.0
        kept = sigma_hat != 0
        k = int(kept.sum())
        # pruned entries, largest raw magnitude first: they go to positions k.. r-1
        pruned = (~kept).nonzero().flatten()
        pruned = pruned[raw_sigma[pruned].abs().argsort(descending=True)]
        refactor = SvdRefactor(
            w1=self.w1,
            sigma=raw_sigma,
            w2=self.w2,
            old_w1=self.w1.detach().clone(),
            old_sigma_hat=sigma_hat,
            old_w2=self.w2.detach().clone(),
            kept=kept.nonzero().flatten(),
            pruned=pruned,
        )
        computed = (self.w1 * sigma_hat) @ self.w2  # (m, n), rank <= k
        u, sv, vh = torch.linalg.svd(computed.double(), full_matrices=False)
        r = self.rank
        # Directions the computed matrix does not have (numerically zero singular values; free
        # factors can hide them behind large sigmas) are pruned now: raw sigma 0.
        tolerance = max(computed.shape) * torch.finfo(torch.float32).eps * float(sv[0])
        alive = (torch.arange(len(sv)) < k) & (sv > tolerance)
        kept_sigma = torch.where(alive[:k], sv[:k] + threshold, 0.0).float()
        # The pruned sigmas stay on their own directions, made orthogonal to the kept ones: the
        # SVD's own directions past rank k span its null space in no particular basis (round-off
        # picks it), so a rank that comes back would come back anywhere, and two processes would
        # disagree about it.
        # Each kept (u_i, v_i) pair's sign is LAPACK's choice too: flip it to agree with the old
        # column it overlaps most, so the factors move continuously from epoch to epoch.
        old_w1, old_w2 = refactor.old_w1.double(), refactor.old_w2.double()
        u_k, vh_k = u[:, :k], vh[:k]
        if k:
            overlap = u_k.T @ old_w1[:, refactor.kept]  # (k, k)
            nearest = overlap.gather(1, overlap.abs().argmax(1, keepdim=True)).squeeze(1)
            signs = torch.where(nearest < 0, -1.0, 1.0).to(u.dtype)
            u_k, vh_k = u_k * signs, vh_k * signs[:, None]
        self.w1.copy_(torch.cat([u_k, _orthogonal_rest(u_k, old_w1[:, pruned])], 1))  # (m, r)
        w2_rest = _orthogonal_rest(vh_k.T, old_w2[pruned].T).T
        self.w2.copy_(torch.cat([vh_k, w2_rest], 0))  # (r, n)
        raw_sigma.copy_(torch.cat([kept_sigma, raw_sigma[pruned].abs()]))
        refactor.new_sigma_hat = torch.where(alive[:r], sv[:r], 0.0).float()
        return refactor

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


@dataclass
class SvdRefactor:
    """One ``restore_svd_form_``: the parameters it set and their values before and after.

    Positions 0..k-1 of the new factors are the kept singular directions (old positions
    ``kept``); positions k.. r-1 hold the pruned ones, in the order of old positions ``pruned``.
    """

    w1: nn.Parameter
    sigma: nn.Parameter  # raw, before the soft threshold
    w2: nn.Parameter
    old_w1: torch.Tensor  # (m, r)
    old_sigma_hat: torch.Tensor  # (r,), thresholded
    old_w2: torch.Tensor  # (r, n)
    kept: torch.Tensor  # (k,) old positions of the kept directions
    pruned: torch.Tensor  # (r - k,) old positions of the pruned ones, in their new order
    new_sigma_hat: torch.Tensor = field(default_factory=lambda: torch.zeros(0))  # (r,)


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
