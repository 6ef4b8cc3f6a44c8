"""The CNN path: DS-CNN, ResNet, MobileNetV1 with STR or GMP sparsity, FLOPs and budgets."""

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
