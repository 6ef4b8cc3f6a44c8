"""ONNX export of STR FastGRNN models: bake STR in, drop pruned ranks, emit standard ONNX ops.

STR: Kusupati et al., "Soft Threshold Weight Reparameterization for Learnable Sparsity", ICML 2020
(structured case, g = exp on singular values, so ranks are learned). FastGRNN: Kusupati et al.,
NeurIPS 2018.
"""

from edge_str.export.compact_model import (
    CompactFastGRNN,
    CompactFastGRNNStep,
    CompactProjection,
    clone_fastgrnn,
    compact_fastgrnn,
)

__all__ = [
    "CompactFastGRNN",
    "CompactFastGRNNStep",
    "CompactProjection",
    "clone_fastgrnn",
    "compact_fastgrnn",
]
