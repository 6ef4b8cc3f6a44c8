"""Parameters and multiply-accumulates (MACs) per layer, dense and after sparsity; budget report.

Counted on conv (plain, grouped, depthwise) and linear layers, the layers whose weights STR and
GMP prune, by forward hooks on one dummy input (B = 1, so the counts are per example):

    conv   W: (C_out, C_in / groups, k_h, k_w), output (C_out, H_out, W_out)
           dense MACs  = H_out * W_out * C_out * (C_in / groups) * k_h * k_w = positions * |W|
    linear W: (out, in), output (..., out)
           dense MACs  = prod(leading dims) * out * in                     = positions * |W|
    sparse MACs = positions * nnz(W): each nonzero weight is used once per output position,
    so a layer's MACs scale with its nonzero fraction (STR paper, sec. 5.1 and Fig. 2/3).

Batch norm, ReLU, pooling and bias adds are not counted, the convention of the STR paper's
"FLOPs" (multiply-adds): ResNet50 at 224x224 is 4.09 G this way, MobileNetV1 569 M.
A model on the meta device is counted from shapes alone (every weight counted nonzero).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edge_str.atomic import write_atomic
from edge_str.cnn.sparsity import is_sparsified, prunable_layers
from edge_str.parametrization import str_parametrizations, threshold_parameters


@dataclass
class LayerCost:
    layer: str  # module path, e.g. "layer1.0.conv1"
    type: str  # "conv" | "depthwise" | "grouped" | "linear"
    in_channels: int
    out_channels: int
    kernel: list[int]
    stride: list[int]
    groups: int
    output_shape: list[int]  # per example
    params: int  # weights of the layer (bias not included)
    bias: int
    nonzero: int  # nonzero (effective, thresholded / masked) weights
    positions: int  # uses of each weight per example
    sparsified: bool  # carries STR or a GMP mask

    @property
    def sparsity(self) -> float:
        return 1.0 - self.nonzero / self.params if self.params else 0.0

    @property
    def dense_macs(self) -> int:
        return self.positions * self.params

    @property
    def sparse_macs(self) -> int:
        return self.positions * self.nonzero

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(sparsity=self.sparsity, dense_macs=self.dense_macs, sparse_macs=self.sparse_macs)
        return out


def _default_input_shape(model: nn.Module, input_shape: tuple[int, ...] | None) -> tuple[int, ...]:
    if input_shape is None:
        input_shape = getattr(model, "input_shape", None)
    if input_shape is None:
        raise ValueError("input_shape is needed for a model without an input_shape attribute")
    return tuple(int(d) for d in input_shape)


def _layer_type(module: nn.Module) -> str:
    if isinstance(module, nn.Linear):
        return "linear"
    if module.groups == 1:
        return "conv"
    if module.groups == module.in_channels == module.out_channels:
        return "depthwise"
    return "grouped"


@torch.no_grad()
def layer_costs(model: nn.Module, input_shape: tuple[int, ...] | None = None) -> list[LayerCost]:
    """Cost of every conv/linear layer, in forward order, for one input of ``input_shape``.

    ``input_shape`` excludes the batch dimension; by default ``model.input_shape``.
    """
    shape = _default_input_shape(model, input_shape)
    names = {module: path for path, module in prunable_layers(model)}
    found: dict[str, LayerCost] = {}

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        name = names[module]
        weight = module.weight  # effective weights: thresholded (STR) or masked (GMP)
        channels = output.shape[-1] if isinstance(module, nn.Linear) else output.shape[1]
        positions = output.numel() // channels  # batch is 1
        if name in found:  # a layer applied more than once (shared weights)
            found[name].positions += positions
            return
        nonzero = weight.numel() if weight.is_meta else int(torch.count_nonzero(weight))
        conv = not isinstance(module, nn.Linear)
        found[name] = LayerCost(
            layer=name,
            type=_layer_type(module),
            in_channels=module.in_channels if conv else module.in_features,
            out_channels=module.out_channels if conv else module.out_features,
            kernel=list(module.kernel_size) if conv else [],
            stride=list(module.stride) if conv else [],
            groups=module.groups if conv else 1,
            output_shape=list(output.shape[1:]),
            params=weight.numel(),
            bias=0 if module.bias is None else module.bias.numel(),
            nonzero=nonzero,
            positions=positions,
            sparsified=is_sparsified(module),
        )

    hooks = [module.register_forward_hook(hook) for module in names]
    was_training = model.training
    try:
        reference = next(iter(model.parameters()), None)
        device = reference.device if reference is not None else torch.device("cpu")
        dtype = reference.dtype if reference is not None else torch.float32
        model.eval()  # batch norm on one example
        model(torch.zeros((1, *shape), device=device, dtype=dtype))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return list(found.values())


def _other_params(model: nn.Module) -> int:
    """Trained parameters besides conv/linear weights and STR thresholds (biases, batch norm)."""
    skip = {id(p) for p in threshold_parameters(model)}
    for _, module in prunable_layers(model):
        if hasattr(module, "parametrizations") and "weight" in module.parametrizations:
            skip.add(id(module.parametrizations.weight.original))
        else:
            skip.add(id(module.weight))
    return sum(p.numel() for p in model.parameters() if id(p) not in skip)


def budget_report(model: nn.Module, input_shape: tuple[int, ...] | None = None) -> dict[str, Any]:
    """The per-layer sparsity budget and cost of ``model``: final.json's "budget".

    {"input_shape", "layers": [{layer, type, params, nonzero, sparsity, dense_macs, sparse_macs,
    sparsified, threshold, ...}], "params", "nonzero", "sparsity" (over all conv/linear weights),
    "sparsified_params", "sparsified_sparsity" (over the STR/GMP layers only), "other_params",
    "dense_macs", "sparse_macs", "mac_fraction" (sparse / dense)}.
    """
    shape = _default_input_shape(model, input_shape)
    costs = layer_costs(model, shape)
    thresholds = {
        path: float(p.threshold().detach().mean())
        for path, _, tensor, p in str_parametrizations(model)
        if tensor == "weight"
    }
    layers = []
    for cost in costs:
        entry = cost.to_dict()
        entry["threshold"] = thresholds.get(cost.layer)  # mean g(s), STR layers only
        layers.append(entry)
    params = sum(c.params for c in costs)
    nonzero = sum(c.nonzero for c in costs)
    pruned = [c for c in costs if c.sparsified]
    pruned_params = sum(c.params for c in pruned)
    dense_macs = sum(c.dense_macs for c in costs)
    sparse_macs = sum(c.sparse_macs for c in costs)
    return {
        "input_shape": list(shape),
        "layers": layers,
        "params": params,
        "nonzero": nonzero,
        "sparsity": 1.0 - nonzero / params if params else 0.0,
        "sparsified_params": pruned_params,
        "sparsified_sparsity": (
            1.0 - sum(c.nonzero for c in pruned) / pruned_params if pruned_params else 0.0
        ),
        "other_params": _other_params(model),
        "dense_macs": dense_macs,
        "sparse_macs": sparse_macs,
        "mac_fraction": sparse_macs / dense_macs if dense_macs else 1.0,
    }


def _si(value: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{value:.3g}"


def plot_budget(report: dict[str, Any], png_path: str | Path, title: str | None = None) -> Path:
    """Bar plots of per-layer sparsity and of per-layer MACs (dense vs sparse), written atomically.

    Uses matplotlib's Agg canvas directly (no global backend switch, no display needed).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    layers = report["layers"]
    if not layers:
        raise ValueError("the budget report has no layers to plot")
    x = list(range(len(layers)))
    names = [entry["layer"] for entry in layers]
    figure = Figure(figsize=(max(6.0, 0.28 * len(layers) + 2.0), 6.5), layout="constrained")
    FigureCanvasAgg(figure)
    top, bottom = figure.subplots(2, 1, sharex=True)
    colours = ["tab:blue" if entry["sparsified"] else "tab:gray" for entry in layers]
    top.bar(x, [100.0 * entry["sparsity"] for entry in layers], color=colours)
    top.set_ylabel("sparsity (%)")
    top.set_ylim(0, 100)
    top.axhline(100.0 * report["sparsity"], color="tab:red", linestyle="--", linewidth=1)
    top.set_title(
        title
        or (
            f"overall sparsity {100 * report['sparsity']:.2f}% "
            f"({_si(report['nonzero'])} of {_si(report['params'])} weights), "
            f"MACs {_si(report['sparse_macs'])} of {_si(report['dense_macs'])}"
        ),
        fontsize=10,
    )
    width = 0.4
    bottom.bar([i - width / 2 for i in x], [e["dense_macs"] for e in layers], width, label="dense")
    bottom.bar(
        [i + width / 2 for i in x], [e["sparse_macs"] for e in layers], width, label="sparse"
    )
    if max(e["dense_macs"] for e in layers) > 0:
        bottom.set_yscale("log")
    bottom.set_ylabel("MACs per example")
    bottom.legend(fontsize=8)
    bottom.set_xticks(x)
    bottom.set_xticklabels(names, rotation=90, fontsize=max(4, min(8, int(400 / len(layers)))))
    path = Path(png_path)
    write_atomic(path, lambda tmp: figure.savefig(tmp, format="png", dpi=120))
    return path


__all__ = ["LayerCost", "budget_report", "layer_costs", "plot_budget"]
