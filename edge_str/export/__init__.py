"""ONNX export: STR FastGRNN (bake STR in, drop pruned ranks) and sparse CNNs (bake, fold BN).

STR: Kusupati et al., "Soft Threshold Weight Reparameterization for Learnable Sparsity", ICML 2020
(structured case, g = exp on singular values, so ranks are learned). FastGRNN: Kusupati et al.,
NeurIPS 2018. See ``onnx_export`` for the files written and the checks run before success.

    from edge_str.export import export_run, run_onnx
    report = export_run("runs/kws", "kws.onnx", x_test, y_test, streaming=True, int8=True)
    logits = run_onnx("kws.onnx", x_test)            # (N, C) from onnxruntime
    report = export_run("runs/dscnn", "dscnn.onnx", x_test, y_test)   # a CNN run: cnn_export

Shared plumbing (running files, graph hygiene, checks, int8) lives in ``onnx_common``.
"""

from edge_str.export.cnn_export import (
    CNN_FLOAT_OPS,
    CNN_INT8_OPS,
    export_cnn_model,
    export_cnn_run,
)
from edge_str.export.compact_model import (
    CompactFastGRNN,
    CompactFastGRNNStep,
    CompactProjection,
    clone_fastgrnn,
    compact_fastgrnn,
    refuse_unexportable,
)
from edge_str.export.onnx_export import (
    DEFAULT_OPSET,
    FLOAT_OPS,
    INT8_OPS,
    LOOP_FORMS,
    PARITY_TOLERANCE,
    SCAN_OPS,
    ExportPaths,
    export_model,
    export_run,
    graph_nodes_per_step,
    onnx_session,
    random_heldout,
    run_onnx,
    run_onnx_streaming,
    summary_line,
    tidy_graph,
    validate_options,
)
from edge_str.export.scan_graph import scan_sequence_graph

__all__ = [
    "CNN_FLOAT_OPS",
    "CNN_INT8_OPS",
    "DEFAULT_OPSET",
    "FLOAT_OPS",
    "INT8_OPS",
    "LOOP_FORMS",
    "PARITY_TOLERANCE",
    "SCAN_OPS",
    "CompactFastGRNN",
    "CompactFastGRNNStep",
    "CompactProjection",
    "ExportPaths",
    "clone_fastgrnn",
    "compact_fastgrnn",
    "refuse_unexportable",
    "scan_sequence_graph",
    "export_cnn_model",
    "export_cnn_run",
    "export_model",
    "export_run",
    "graph_nodes_per_step",
    "onnx_session",
    "random_heldout",
    "run_onnx",
    "run_onnx_streaming",
    "summary_line",
    "tidy_graph",
    "validate_options",
]
