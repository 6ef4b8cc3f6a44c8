"""The STR soft-threshold operator.

Kusupati et al., "Soft Threshold Weight Reparameterization for Learnable Sparsity", ICML 2020,
eq. (2):  S_g(w, s) = sign(w) * relu(|w| - g(s)).

Autograd on these primitives gives exactly the paper's (sub)gradients:
  dS/dw = 1[|w| > g(s)]                   (sign(w) * sign(w) where the relu is active)
  dS/ds = -sign(w) * g'(s) * 1[|w| > g(s)]
so no custom backward is needed.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

G_FUNCTIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    # sigmoid keeps g(s) in (0, 1): the paper's choice for unstructured sparsity.
    "sigmoid": torch.sigmoid,
    # exp is unbounded above: the choice for structured sparsity (singular values, filters).
    "exp": torch.exp,
}


def threshold_function(g: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """Return the threshold map g for its name ("sigmoid" or "exp")."""
    try:
        return G_FUNCTIONS[g]
    except KeyError:
        raise ValueError(
            f"unknown threshold function g={g!r}; choose from {sorted(G_FUNCTIONS)}"
        ) from None


def soft_threshold(w: torch.Tensor, s: torch.Tensor, g: str = "sigmoid") -> torch.Tensor:
    """S_g(w, s) = sign(w) * relu(|w| - g(s)); ``s`` broadcasts against ``w``.

    Entries with |w| <= g(s) come out exactly 0.
    """
    return torch.sign(w) * torch.relu(torch.abs(w) - threshold_function(g)(s))
