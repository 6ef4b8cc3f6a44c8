"""The held-out inputs an export is checked on: given, loaded from the run's data, or random.

``resolve_heldout`` picks them (given inputs win; else the caller's loader; else random inputs
around the model's normalisation statistics, without labels, and the report says why).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from edge_str.errors import EdgeStrError

if TYPE_CHECKING:
    from edge_str.run import RunInfo

DEFAULT_RANDOM_EXAMPLES = 64

# heldout(run_info) -> (x, y, source), or (None, None, reason) where no data can be read
HeldoutLoader = Callable[["RunInfo"], tuple[torch.Tensor | None, torch.Tensor | None, str]]


@dataclass
class Heldout:
    """Where the check inputs came from (FILE.json's "heldout")."""

    source: str  # "given", "random" or e.g. "test split of DIR"
    examples: int
    note: str | None = None  # why random inputs were used, if they were


def random_inputs(normalizer, shape: Sequence[int], n: int, seed: int = 0) -> torch.Tensor:
    """Random raw inputs (n, *shape) drawn around ``normalizer``'s mean and std (last dim)."""
    generator = torch.Generator().manual_seed(seed)
    mean, std = normalizer.mean.cpu(), normalizer.std.cpu()
    noise = torch.randn(n, *shape, generator=generator)
    return (mean + std * noise).float()


def resolve_heldout(
    run_dir: str | os.PathLike,
    info: RunInfo,
    x: torch.Tensor | None,
    y: torch.Tensor | None,
    heldout: HeldoutLoader | None,
    source: str,
    make_random: Callable[[], torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor | None, str, str | None]:
    """The inputs a run's export is checked on: (x, y, source, why-not-real-data).

    Given ``x`` wins; else ``heldout(info)`` (which may answer (None, None, reason)); else
    ``make_random()`` without labels. Given or loaded inputs must have the run's input shape.
    """
    reason = None
    if x is None and heldout is not None:
        x, y, source = heldout(info)
        if x is None:
            reason = source
    if x is None:
        return make_random(), None, "random", reason
    if tuple(x.shape[1:]) != tuple(info.input_shape):
        raise EdgeStrError(
            f"held-out inputs of shape {tuple(x.shape[1:])}; {run_dir} was trained on "
            f"{tuple(info.input_shape)}"
        )
    return x, y, source, reason
