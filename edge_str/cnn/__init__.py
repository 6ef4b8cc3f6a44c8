"""The CNN path: DS-CNN, ResNet, MobileNetV1 with STR or GMP sparsity, FLOPs and budgets.

STR: Kusupati et al., "Soft Threshold Weight Reparameterization for Learnable Sparsity", ICML
2020 -- every conv/linear weight is used as S_g(W, s) = sign(W) relu(|W| - sigmoid(s)) with one
learned s per layer. GMP: Zhu & Gupta 2017. Models: Hello Edge DS-CNN (Zhang et al. 2017),
ResNet (He et al. 2016), MobileNetV1 (Howard et al. 2017). Each module's header has the details.

Hooks for the trainer (``edge-str train`` with ``model.arch`` in ``CNN_ARCHS``):

    model = build_model(cfg.model, data.input_shape, len(data.class_names))
        # STR parametrizations / GMP masks are attached here already (so a run's checkpoint
        # loads into ``build_model``'s output, as ``run.load_trained_model`` needs)
    model.normalizer.set_statistics(data.mean, data.std)
    controller = prepare_sparsity(model, cfg.model)          # once
    thresholds = threshold_parameters(model)                 # their own optimizer group
    for each optimizer step:  ...; optimizer.step()
        controller.step(epoch, step_in_epoch, steps_per_epoch, total_epochs)
    per epoch:        metrics.update(controller.metrics())   # "overall_sparsity", ...
    checkpoints:      {"model": model.state_dict(), "sparsity": controller.state_dict(), ...}
    resume:           model.load_state_dict(...); controller.load_state_dict(ckpt["sparsity"])
    final.json:       final["budget"] = budget_report(model)       # input shape: model's own
                      plot_budget(final["budget"], RUN / "budget.png")

Hooks for the exporter:

    bake_sparsity(model)        # STR thresholds / GMP masks -> plain weights with exact zeros
    baked_copy(model)           # the same on a copy (edge_str.parametrization, both families)
    weight_storage(model)       # bytes: dense, values + indices, values + bitmask; per layer
    budget_report(model)        # params, nonzero, dense and sparse MACs per layer and in total

Input convention: (T, F) features -> 1-channel image normalised per F; (H, W, C) channels-last
images normalised per channel (see ``blocks``).
"""

from edge_str.cnn.blocks import ImageClassifier
from edge_str.cnn.build import CNN_ARCHS, build_cnn, build_cnn_network
from edge_str.cnn.dscnn import DSCNN
from edge_str.cnn.flops import budget_report, layer_costs, plot_budget
from edge_str.cnn.mobilenet import MobileNetV1
from edge_str.cnn.resnet import ResNet
from edge_str.cnn.sparsity import (
    SparsityController,
    bake_sparsity,
    overall_sparsity,
    prepare_sparsity,
    prunable_layers,
)
from edge_str.cnn.storage import weight_storage

__all__ = [
    "CNN_ARCHS",
    "DSCNN",
    "ImageClassifier",
    "MobileNetV1",
    "ResNet",
    "SparsityController",
    "bake_sparsity",
    "budget_report",
    "build_cnn",
    "build_cnn_network",
    "layer_costs",
    "overall_sparsity",
    "plot_budget",
    "prepare_sparsity",
    "prunable_layers",
    "weight_storage",
]
