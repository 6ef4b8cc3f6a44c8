"""Sparsity for the CNNs: STR (learned), GMP (scheduled), or dense, behind one controller.

STR -- Kusupati et al., ICML 2020. Every selected conv/linear weight W_l is reparameterized as
    S_g(W_l, s_l) = sign(W_l) * relu(|W_l| - g(s_l)),   g = sigmoid             (eq. 2)
with one s_l per layer by default (granularity layer | global | channel | weight), trained with
the same weight decay as the weights (eq. 3). Nothing is scheduled: ``STRController.step`` does
nothing, and the thresholds reach the optimizer through ``threshold_parameters(model)``.

GMP -- Zhu & Gupta, "To prune, or not to prune", 2017, eq. (1). Every Delta_t optimizer steps
from t_0, the smallest-magnitude weights of each layer are masked so that its sparsity is
    s_t = s_f + (s_i - s_f) * (1 - (t - t_0) / (n * Delta_t))^3,   t in {t_0, t_0 + Delta_t, ...}
with s_i = 0, reaching s_f exactly at t_0 + n * Delta_t and holding it after. Masks are a
parametrization (w -> w * mask, a bool buffer saved in the model's state_dict) so pruned weights
stay exactly 0 however the optimizer moves the stored values; masks only grow. Per-layer targets
s_f are uniform (``gmp_target``) or, with ``budget_from``, the per-layer sparsities an STR run
learned (the paper's budget transfer, sec. 5.1: "STR's budget with GMP").

First and last layers. The official STR ResNet50 configuration sparsifies every layer, the first
convolution and the classifier included; ``sparsify_first_last: true`` reproduces that. The
default keeps both dense, the usual setting for GMP (Gale et al., 2019) and for tiny models,
whose first convolution sees the raw input and, like the head, holds a small share of weights.
The first/last layer are the first/last conv or linear in registration order, which every model
of this package keeps equal to forward order (stem first, head last).

Trainer contract (see ``prepare_sparsity``):
    model = build_model(cfg.model, input_shape, classes)   # STR/masks already attached
    controller = prepare_sparsity(model, cfg.model)        # once, before building the optimizer
    ... every optimizer step, after optimizer.step():
    controller.step(epoch, step_in_epoch, steps_per_epoch, total_epochs)
    ... per epoch: metrics["overall_sparsity"] = overall_sparsity(model)
    ... checkpoint: {"model": model.state_dict(), "sparsity": controller.state_dict(), ...}
    ... resume: model.load_state_dict(...); controller.load_state_dict(ckpt["sparsity"])
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from edge_str.config import ModelConfig
from edge_str.errors import EdgeStrError
from edge_str.files import read_document
from edge_str.parametrization import (
    GRANULARITIES,
    _SoftThreshold,
    bake_str,
    sparsify,
    str_parametrizations,
)

SPARSITY_MODES = ("str", "gmp", "dense")
PRUNABLE_TYPES: tuple[type[nn.Module], ...] = (nn.Conv1d, nn.Conv2d, nn.Linear)


# ----------------------------------------------------------------------------- layer selection


def prunable_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every conv/linear layer of ``model`` as (module path, module), in registration order."""
    return [(path, m) for path, m in model.named_modules() if isinstance(m, PRUNABLE_TYPES)]


def selected_layers(model: nn.Module, sparsify_first_last: bool = False) -> list[str]:
    """The layers that get STR or a GMP mask: all conv/linear, minus first and last unless asked."""
    names = [path for path, _ in prunable_layers(model)]
    if sparsify_first_last or not names:
        return names
    return names[1:-1]


# ----------------------------------------------------------------------------- GMP masks


class _Mask(nn.Module):
    """Parametrization w -> w * mask with a fixed (non-trained) bool mask of w's shape."""

    def __init__(self, shape: torch.Size, device: torch.device | None = None) -> None:
        super().__init__()
        self.register_buffer("mask", torch.ones(shape, dtype=torch.bool, device=device))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * self.mask

    def extra_repr(self) -> str:
        return f"shape={tuple(self.mask.shape)}"


def apply_mask(module: nn.Module, name: str = "weight") -> nn.Module:
    """Attach an all-ones pruning mask to ``module.<name>`` (GMP's parametrization)."""
    tensor = getattr(module, name)
    if any(True for _ in _masks_of(module, name)):
        raise ValueError(f"a mask is already attached to {type(module).__name__}.{name}")
    parametrize.register_parametrization(module, name, _Mask(tensor.shape, tensor.device))
    return module


def _masks_of(module: nn.Module, name: str) -> Iterator[_Mask]:
    if parametrize.is_parametrized(module, name):
        yield from (p for p in module.parametrizations[name] if isinstance(p, _Mask))


def mask_parametrizations(model: nn.Module) -> Iterator[tuple[str, nn.Module, _Mask]]:
    """Walk ``model`` for GMP masks: (module path, module, mask parametrization)."""
    for path, module in model.named_modules():
        for mask in _masks_of(module, "weight"):
            yield path, module, mask


def is_sparsified(module: nn.Module) -> bool:
    """Whether ``module.weight`` carries STR or a GMP mask."""
    if not parametrize.is_parametrized(module, "weight"):
        return False
    return any(isinstance(p, (_Mask, _SoftThreshold)) for p in module.parametrizations["weight"])


def bake_sparsity(model: nn.Module) -> nn.Module:
    """Replace STR thresholds and GMP masks by plain weights holding exact zeros (for export)."""
    bake_str(model)
    for _, module, _ in list(mask_parametrizations(model)):
        if parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
    return model


# ----------------------------------------------------------------------------- measurement


@torch.no_grad()
def overall_sparsity(model: nn.Module, layers: list[str] | None = None) -> float:
    """Fraction of exact zeros over the (effective) weights of all conv/linear layers.

    With ``layers``, over those layers only. This is the per-epoch "overall_sparsity" metric.
    """
    zeros = numel = 0
    for path, module in prunable_layers(model):
        if layers is not None and path not in layers:
            continue
        weight = module.weight
        zeros += int(weight.numel() - torch.count_nonzero(weight))
        numel += weight.numel()
    return zeros / numel if numel else 0.0


# ----------------------------------------------------------------------------- controllers


def cubic_sparsity(t: float, t0: float, t_end: float, target: float, initial: float = 0.0) -> float:
    """Zhu & Gupta eq. (1): s_f + (s_i - s_f) (1 - (t - t_0) / (t_end - t_0))^3, t clamped."""
    progress = min(max((t - t0) / (t_end - t0), 0.0), 1.0)
    return target + (initial - target) * (1.0 - progress) ** 3


class SparsityController:
    """What the trainer drives: ``step`` every optimizer step, ``state_dict`` in checkpoints."""

    kind = "dense"

    def __init__(self, model: nn.Module, layers: list[str]) -> None:
        self.model = model
        self.layers = list(layers)

    def step(self, epoch: int, step_in_epoch: int, steps_per_epoch: int, total_epochs: int) -> None:
        """Called after every optimizer step; ``epoch`` and ``step_in_epoch`` count from 0."""

    def reached_target(self) -> bool:
        """Whether the model now has the sparsity asked for (the trainer keeps only such models).

        Always for dense and STR (STR's sparsity is whatever it learns); GMP once its schedule
        has reached every layer's target.
        """
        return True

    def metrics(self) -> dict[str, float]:
        """Per-epoch values for metrics.jsonl."""
        return {
            "overall_sparsity": overall_sparsity(self.model),
            "sparsified_layers_sparsity": overall_sparsity(self.model, self.layers),
        }

    def state_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "layers": list(self.layers)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("kind") != self.kind or list(state.get("layers", [])) != self.layers:
            raise EdgeStrError(
                f"checkpoint was trained with sparsity {state.get('kind')!r} on "
                f"{len(state.get('layers', []))} layers; this model has {self.kind!r} on "
                f"{len(self.layers)}"
            )


class DenseController(SparsityController):
    kind = "dense"


class STRController(SparsityController):
    """STR needs no schedule: the thresholds are parameters trained with the weights."""

    kind = "str"


class GMPController(SparsityController):
    """Gradual magnitude pruning (Zhu & Gupta 2017) over per-layer masks."""

    kind = "gmp"

    def __init__(
        self,
        model: nn.Module,
        layers: list[str],
        targets: dict[str, float],
        *,
        start_epoch: int = 0,
        end_fraction: float = 0.75,
        interval: int = 0,
        initial_sparsity: float = 0.0,
    ) -> None:
        super().__init__(model, layers)
        modules = dict(model.named_modules())
        self._masks: dict[str, tuple[nn.Module, _Mask]] = {}
        for name in self.layers:
            masks = list(_masks_of(modules[name], "weight")) if name in modules else []
            if not masks:
                raise ValueError(f"layer {name!r} has no GMP mask (call apply_mask first)")
            self._masks[name] = (modules[name], masks[0])
        if set(targets) != set(self.layers):
            raise ValueError("GMP needs exactly one target sparsity per masked layer")
        for name, target in targets.items():
            if not 0.0 <= target <= 1.0:
                raise EdgeStrError(f"GMP target sparsity of {name} must be in [0, 1], got {target}")
        if start_epoch < 0:
            raise EdgeStrError(f"gmp_start_epoch must be >= 0, got {start_epoch}")
        if not 0.0 < end_fraction <= 1.0:
            raise EdgeStrError(f"gmp_end_fraction must be in (0, 1], got {end_fraction}")
        if interval < 0:
            raise EdgeStrError(f"gmp_interval must be >= 0 (0: once per epoch), got {interval}")
        self.targets = {name: float(targets[name]) for name in self.layers}
        self.start_epoch, self.end_fraction = start_epoch, end_fraction
        self.interval, self.initial_sparsity = interval, initial_sparsity
        self.current = {name: 0.0 for name in self.layers}  # sparsity the masks now hold
        self.last_update = -1  # optimizer step count of the last mask update

    def schedule(self, steps_per_epoch: int, total_epochs: int) -> tuple[int, int, int]:
        """(t_0, t_end = t_0 + n * Delta_t, Delta_t) in optimizer steps."""
        t0 = self.start_epoch * steps_per_epoch
        t_end = int(round(self.end_fraction * total_epochs * steps_per_epoch))
        if t_end <= t0:
            raise EdgeStrError(
                f"GMP ends at step {t_end} (gmp_end_fraction {self.end_fraction} of "
                f"{total_epochs} epochs) but starts at step {t0} (gmp_start_epoch "
                f"{self.start_epoch}); make it end after it starts"
            )
        return t0, t_end, self.interval or steps_per_epoch

    def step(self, epoch: int, step_in_epoch: int, steps_per_epoch: int, total_epochs: int) -> None:
        t = epoch * steps_per_epoch + step_in_epoch + 1  # optimizer steps done
        t0, t_end, dt = self.schedule(steps_per_epoch, total_epochs)
        if t < t0 or t == self.last_update:
            return
        final = t >= t_end
        if final and self.current == self.targets:
            return
        if not final and (t - t0) % dt != 0:
            return
        fractions = {
            name: cubic_sparsity(t, t0, t_end, target, self.initial_sparsity)
            for name, target in self.targets.items()
        }
        self.prune_to(fractions)
        self.last_update = t

    @torch.no_grad()
    def prune_to(self, fractions: dict[str, float]) -> None:
        """Mask the round(s * n) smallest-magnitude weights of each layer; masks only grow."""
        for name, fraction in fractions.items():
            module, mask = self._masks[name]
            original = module.parametrizations["weight"].original
            n = original.numel()
            k = min(n, int(round(fraction * n)))
            # already-masked entries sort first (score -1), so the masks are nested
            score = torch.where(mask.mask, original.abs(), torch.full_like(original, -1.0))
            k = max(k, int(n - mask.mask.sum()))
            keep = torch.ones(n, dtype=torch.bool, device=original.device)
            if k > 0:
                keep[torch.argsort(score.flatten(), stable=True)[:k]] = False
            mask.mask.copy_(keep.view_as(mask.mask))
            original.mul_(mask.mask)  # the stored values of pruned weights are 0 as well
            self.current[name] = fraction

    def reached_target(self) -> bool:
        return self.current == self.targets

    def metrics(self) -> dict[str, float]:
        values = super().metrics()
        numel = {name: self._masks[name][1].mask.numel() for name in self.layers}
        total = sum(numel.values())
        values["gmp_scheduled_sparsity"] = (
            sum(self.current[n] * numel[n] for n in self.layers) / total if total else 0.0
        )
        return values

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.update(
            targets=dict(self.targets),
            current=dict(self.current),
            last_update=self.last_update,
        )
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.targets = {name: float(state["targets"][name]) for name in self.layers}
        self.current = {name: float(state["current"][name]) for name in self.layers}
        self.last_update = int(state["last_update"])


# ----------------------------------------------------------------------------- budget transfer


def read_budget(source: str | Path) -> dict[str, dict[str, Any]]:
    """Per-layer entries of the "budget" in a run's final.json (``source``: RUN or the file)."""
    path = Path(source)
    if path.is_dir():
        path = path / "final.json"
    raw = read_document(path, "missing; budget_from must name a finished STR run", what="budget")
    layers = raw.get("budget", {}).get("layers") if isinstance(raw, dict) else None
    if not isinstance(layers, list):
        raise EdgeStrError(f'{path}: no per-layer budget ("budget": {{"layers": [...]}})')
    try:
        return {str(x["layer"]): {**x, "sparsity": float(x["sparsity"])} for x in layers}
    except (KeyError, TypeError, ValueError):
        raise EdgeStrError(f'{path}: budget layers need "layer" and numeric "sparsity"') from None


def budget_targets(model: nn.Module, layers: list[str], source: str | Path) -> dict[str, float]:
    """GMP targets = the per-layer sparsities of the STR run at ``source`` (budget transfer)."""
    budget = read_budget(source)
    modules = dict(model.named_modules())
    targets = {}
    for name in layers:
        if name not in budget:
            raise EdgeStrError(
                f"budget of {source} has no layer {name!r}: was it trained with the same arch?"
            )
        entry = budget[name]
        numel = modules[name].weight.numel()
        if "params" in entry and int(entry["params"]) != numel:
            raise EdgeStrError(
                f"layer {name!r} has {numel} weights here but {entry['params']} in the budget "
                f"of {source}: was it trained with the same arch, width and input?"
            )
        targets[name] = float(entry["sparsity"])
    extra = [n for n, e in budget.items() if e.get("sparsified") and n not in layers]
    if extra:
        raise EdgeStrError(
            f"the run at {source} also sparsified {', '.join(extra)}; set sparsify_first_last "
            f"to match it"
        )
    return targets


# ----------------------------------------------------------------------------- entry points


def _check(cfg: ModelConfig) -> None:
    if cfg.sparsity not in SPARSITY_MODES:
        raise EdgeStrError(f"sparsity must be one of {', '.join(SPARSITY_MODES)}")
    if cfg.sparsity == "str" and cfg.str_granularity not in GRANULARITIES:
        raise EdgeStrError(f"str_granularity must be one of {', '.join(GRANULARITIES)}")
    if cfg.sparsity == "gmp" and cfg.budget_from is None and not 0.0 <= cfg.gmp_target < 1.0:
        raise EdgeStrError(f"gmp_target must be in [0, 1), got {cfg.gmp_target}")


def _attached(model: nn.Module) -> tuple[list[str], list[str]]:
    str_layers = [path for path, _, name, _ in str_parametrizations(model) if name == "weight"]
    mask_layers = [path for path, _, _ in mask_parametrizations(model)]
    return str_layers, mask_layers


def attach_sparsity(model: nn.Module, cfg: ModelConfig) -> list[str]:
    """Attach the parametrizations ``cfg.sparsity`` needs (STR or all-ones masks); idempotent.

    Called by ``build_model`` so that a model rebuilt from a run's config has the state_dict keys
    of the trained one. Returns the sparsified layer paths.
    """
    _check(cfg)
    layers = selected_layers(model, cfg.sparsify_first_last)
    str_layers, mask_layers = _attached(model)
    want = {"str": (layers, []), "gmp": ([], layers), "dense": ([], [])}[cfg.sparsity]
    if str_layers or mask_layers:
        if (str_layers, mask_layers) != want:
            raise EdgeStrError("the model already carries a different sparsity setup")
        return layers
    if cfg.sparsity == "str":
        excluded = [path for path, _ in prunable_layers(model) if path not in layers]
        sparsify(
            model,
            layer_types=PRUNABLE_TYPES,
            g="sigmoid",
            granularity=cfg.str_granularity,
            s_init=cfg.cnn_s_init,
            skip=excluded,
        )
    elif cfg.sparsity == "gmp":
        modules = dict(model.named_modules())
        for name in layers:
            apply_mask(modules[name])
    return layers


def prepare_sparsity(model: nn.Module, cfg: ModelConfig) -> SparsityController:
    """Attach (if ``build_model`` has not) and return the controller of ``cfg.sparsity``.

    str:   STR with g = sigmoid on every selected conv/linear weight; thresholds are returned by
           ``threshold_parameters(model)`` for the optimizer.
    gmp:   masks with the cubic schedule; targets ``gmp_target`` per layer, or the per-layer
           sparsities of the STR run ``budget_from``.
    dense: nothing.
    """
    layers = attach_sparsity(model, cfg)
    if cfg.sparsity == "dense":
        return DenseController(model, [])
    if cfg.sparsity == "str":
        return STRController(model, layers)
    if cfg.budget_from is not None:
        targets = budget_targets(model, layers, cfg.budget_from)
    else:
        targets = dict.fromkeys(layers, cfg.gmp_target)
    return GMPController(
        model,
        layers,
        targets,
        start_epoch=cfg.gmp_start_epoch,
        end_fraction=cfg.gmp_end_fraction,
        interval=cfg.gmp_interval,
    )


__all__ = [
    "PRUNABLE_TYPES",
    "SPARSITY_MODES",
    "DenseController",
    "GMPController",
    "STRController",
    "SparsityController",
    "apply_mask",
    "attach_sparsity",
    "bake_sparsity",
    "budget_targets",
    "cubic_sparsity",
    "is_sparsified",
    "mask_parametrizations",
    "overall_sparsity",
    "prepare_sparsity",
    "prunable_layers",
    "read_budget",
    "selected_layers",
]
