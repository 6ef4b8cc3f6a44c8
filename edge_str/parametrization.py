"""STR as a torch parametrization: attach, train, bake in, report.

Kusupati et al., ICML 2020 (STR). The network always computes with S_g(W, s) (eq. 2) and both W
and s are trained under the same weight decay (eq. 3):
    L(S_g(W, s), data) + mu * sum_l (||W_l||^2 + s_l^2).

Follows the pattern of ``torch.nn.utils.parametrizations.orthogonal``: a public function checks
its inputs, builds a private module and registers it with ``parametrize``. Baking in is
``remove_parametrizations(..., leave_parametrized=True)``, the prepare -> train -> squash
lifecycle of ``torch.ao.pruning``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import parametrize

from edge_str.defaults import SIGMOID_S_INIT
from edge_str.soft_threshold import soft_threshold, threshold_function

GRANULARITIES = ("layer", "global", "channel", "weight")


class _SoftThreshold(nn.Module):
    """Parametrization w -> S_g(w, s) with a trainable threshold parameter ``s``."""

    def __init__(self, s: nn.Parameter, g: str, granularity: str) -> None:
        super().__init__()
        threshold_function(g)  # validates the name
        self.g = g
        self.granularity = granularity
        # A global threshold is the *same* Parameter object in every layer it is attached to.
        self.s = s

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return soft_threshold(weight, self.s, self.g)

    def threshold(self) -> torch.Tensor:
        """g(s), the magnitude under which weights are zeroed."""
        return threshold_function(self.g)(self.s)

    def extra_repr(self) -> str:
        return f"g={self.g}, granularity={self.granularity}, s_shape={tuple(self.s.shape)}"


def _threshold_shape(weight: torch.Tensor, granularity: str) -> tuple[int, ...]:
    if granularity in ("layer", "global"):
        return (1,)
    if granularity == "channel":
        # One threshold per output channel / filter (row of a Linear, filter of a Conv).
        return (weight.shape[0],) + (1,) * (weight.dim() - 1)
    return tuple(weight.shape)  # "weight": mask learning, one threshold per entry


def new_global_threshold(s_init: float) -> nn.Parameter:
    """A threshold parameter to pass as ``shared=`` to every layer of a global-STR model."""
    return nn.Parameter(torch.full((1,), float(s_init)))


def apply_str(
    module: nn.Module,
    name: str = "weight",
    *,
    g: str = "sigmoid",
    granularity: str = "layer",
    s_init: float = SIGMOID_S_INIT,
    shared: nn.Parameter | None = None,
) -> nn.Module:
    """Reparameterize ``module.<name>`` as S_g(<name>, s) with a learned threshold ``s``.

    ``granularity``: "layer" (one s), "global" (the one s passed as ``shared``), "channel"
    (one s per output channel) or "weight" (one s per entry). ``s_init`` should make g(s) ~ 0
    so the layer starts dense (sigmoid: -100 for small models; exp: about -10).
    Returns ``module`` for chaining.
    """
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")
    tensor = getattr(module, name, None)
    if not isinstance(tensor, torch.Tensor):
        raise ValueError(f"{type(module).__name__} has no tensor named {name!r}")
    if parametrize.is_parametrized(module, name) and any(
        isinstance(p, _SoftThreshold) for p in module.parametrizations[name]
    ):
        raise ValueError(f"STR is already attached to {type(module).__name__}.{name}")
    if granularity == "global":
        if shared is None:
            raise ValueError("granularity='global' needs shared=new_global_threshold(s_init)")
        s = shared
    else:
        if shared is not None:
            raise ValueError("shared= is only for granularity='global'")
        s = nn.Parameter(
            torch.full(_threshold_shape(tensor, granularity), float(s_init), device=tensor.device)
        )
    parametrize.register_parametrization(module, name, _SoftThreshold(s, g, granularity))
    return module


def str_parametrizations(model: nn.Module) -> Iterator[tuple[str, nn.Module, str, _SoftThreshold]]:
    """Walk ``model`` for STR parametrizations: (module path, module, tensor name, STR module)."""
    for path, module in model.named_modules():
        if not parametrize.is_parametrized(module):
            continue
        for tensor_name, plist in module.parametrizations.items():
            for p in plist:
                if isinstance(p, _SoftThreshold):
                    yield path, module, tensor_name, p


def threshold_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The distinct threshold parameters ``s`` of ``model`` (a global one counted once)."""
    seen: dict[int, nn.Parameter] = {}
    for _, _, _, p in str_parametrizations(model):
        seen.setdefault(id(p.s), p.s)
    return list(seen.values())


def sparsify(
    model: nn.Module,
    *,
    layer_types: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d),
    g: str = "sigmoid",
    granularity: str = "layer",
    s_init: float = SIGMOID_S_INIT,
    skip: Iterable[str] = (),
) -> list[str]:
    """Attach STR to the ``weight`` of every layer of ``layer_types`` not named in ``skip``.

    Returns the module paths that got STR. With granularity "global" all share one threshold.
    """
    skipped = set(skip)
    shared = new_global_threshold(s_init) if granularity == "global" else None
    attached = []
    for path, module in list(model.named_modules()):
        if isinstance(module, layer_types) and path not in skipped:
            apply_str(module, "weight", g=g, granularity=granularity, s_init=s_init, shared=shared)
            attached.append(path)
    return attached


def bake_str(model: nn.Module) -> nn.Module:
    """Replace every STR parametrization by its thresholded values (plain tensors, exact zeros)."""
    for _, module, tensor_name, _ in list(str_parametrizations(model)):
        if parametrize.is_parametrized(module, tensor_name):
            parametrize.remove_parametrizations(module, tensor_name, leave_parametrized=True)
    return model


def baked_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every parametrization baked into plain tensors (exact zeros).

    For both families: STR thresholds (FastGRNN's singular values, a CNN's weights) and GMP
    masks, the only parametrizations this package registers. ``model`` is left untouched. Not a
    plain ``copy.deepcopy`` + bake: ``torch.nn.utils.parametrize`` gives each parametrized
    module a class of its own, a deep copy shares that class with the original, and removing
    the copy's parametrizations deletes the property from the shared class -- the original then
    has no ``weight``. Each parametrized module of the copy gets its own copy of the class first.
    """
    clone = copy.deepcopy(model)
    for module in list(clone.modules()):
        if parametrize.is_parametrized(module):
            cls = type(module)
            module.__class__ = type(cls.__name__, cls.__bases__, dict(cls.__dict__))
            for name in list(module.parametrizations):
                parametrize.remove_parametrizations(module, name, leave_parametrized=True)
    return clone


@dataclass
class LayerSparsity:
    layer: str
    zeros: int
    numel: int
    threshold_mean: float

    @property
    def sparsity(self) -> float:
        return self.zeros / self.numel if self.numel else 0.0


@dataclass
class SparsityReport:
    layers: list[LayerSparsity]

    @property
    def zeros(self) -> int:
        return sum(x.zeros for x in self.layers)

    @property
    def numel(self) -> int:
        return sum(x.numel for x in self.layers)

    @property
    def sparsity(self) -> float:
        return self.zeros / self.numel if self.numel else 0.0

    def to_dict(self) -> dict:
        return {
            "layers": [
                {
                    "layer": x.layer,
                    "zeros": x.zeros,
                    "numel": x.numel,
                    "sparsity": x.sparsity,
                    "threshold": x.threshold_mean,
                }
                for x in self.layers
            ],
            "zeros": self.zeros,
            "numel": self.numel,
            "sparsity": self.sparsity,
        }

    def __str__(self) -> str:
        width = max([len(x.layer) for x in self.layers] + [5])
        lines = [f"{'layer':<{width}}  {'zeros':>9} {'numel':>9} {'sparsity':>8} {'g(s)':>10}"]
        for x in self.layers:
            lines.append(
                f"{x.layer:<{width}}  {x.zeros:>9} {x.numel:>9} {x.sparsity:>8.2%} "
                f"{x.threshold_mean:>10.3g}"
            )
        lines.append(f"{'total':<{width}}  {self.zeros:>9} {self.numel:>9} {self.sparsity:>8.2%}")
        return "\n".join(lines)


@torch.no_grad()
def sparsity_report(model: nn.Module) -> SparsityReport:
    """Zeros, size and threshold g(s) of every STR-parametrized tensor, and overall."""
    layers = []
    for path, module, tensor_name, p in str_parametrizations(model):
        values = getattr(module, tensor_name)
        layers.append(
            LayerSparsity(
                layer=f"{path}.{tensor_name}" if path else tensor_name,
                zeros=int((values == 0).sum()),
                numel=values.numel(),
                threshold_mean=float(p.threshold().mean()),
            )
        )
    return SparsityReport(layers)
