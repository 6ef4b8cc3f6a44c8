"""edge_str: learned sparsity (STR) and learned rank for tiny recurrent and convolutional nets."""

from edge_str.errors import EdgeStrError
from edge_str.fastgrnn import FastGRNN, FastGRNNCell, FastGRNNClassifier, ModelCost
from edge_str.inference import (
    Detection,
    FrontEnd,
    Predictor,
    SmoothingSettings,
    detect_keywords,
    load_predictor,
)
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
    "Detection",
    "EdgeStrError",
    "FastGRNN",
    "FastGRNNCell",
    "FastGRNNClassifier",
    "FeatureNormalizer",
    "FrontEnd",
    "LowRankMatrix",
    "ModelCost",
    "Predictor",
    "SmoothingSettings",
    "apply_str",
    "bake_str",
    "detect_keywords",
    "load_predictor",
    "new_global_threshold",
    "soft_threshold",
    "sparsify",
    "sparsity_report",
    "str_parametrizations",
    "threshold_parameters",
]
