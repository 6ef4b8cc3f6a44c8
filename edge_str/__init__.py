"""edge_str: learned sparsity (STR) and learned low rank for tiny recurrent and convolutional
models."""

from edge_str.errors import EdgeStrError
from edge_str.fastgrnn import FastGRNN, FastGRNNCell, FastGRNNClassifier, ModelCost
from edge_str.lowrank import CompactMatrix, LowRankMatrix
from edge_str.normalize import FeatureNormalizer
from edge_str.parametrization import (
    apply_str,
    bake_str,
    new_global_threshold,
    sparsify,
    sparsity_report,
    str_parametrizations,
    threshold_parameters,
)
from edge_str.soft_threshold import soft_threshold

__version__ = "0.1.0"

__all__ = [
    "CompactMatrix",
    "EdgeStrError",
    "FastGRNN",
    "FastGRNNCell",
    "FastGRNNClassifier",
    "FeatureNormalizer",
    "LowRankMatrix",
    "ModelCost",
    "apply_str",
    "bake_str",
    "new_global_threshold",
    "soft_threshold",
    "sparsify",
    "sparsity_report",
    "str_parametrizations",
    "threshold_parameters",
]
