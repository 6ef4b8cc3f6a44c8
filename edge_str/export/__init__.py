"""Export a trained run to standard ONNX: STR FastGRNN (pruned ranks dropped), sparse CNNs.

STR: Kusupati et al., "Soft Threshold Weight Reparameterization for Learnable Sparsity", ICML
2020. FastGRNN: Kusupati et al., NeurIPS 2018.

    from edge_str.export import export_run, run_onnx
    report = export_run("runs/kws", "kws.onnx", x_test, y_test, streaming=True, int8=True)
    logits = run_onnx("kws.onnx", x_test)            # (N, C) from onnxruntime

Modules, one job each:
  pipeline          the one export pipeline (stage, check, parity, quantise, move, report)
  adapter           the ``ExportAdapter`` interface a model family implements
  options, files    what an export is asked for; the files it writes and their atomic placement
  report            FILE.json (a dataclass) and the summary line
  fastgrnn_adapter  FastGRNN: compacted sequence graph (unrolled or Scan), step graph
  cnn_adapter       CNNs: baked graph with BatchNorm folded, per-layer storage and budget
  compact_model     FastGRNN as plain tensors at the surviving ranks (what a device runs)
  scan_graph        FastGRNN's sequence graph with the time loop as one ONNX Scan
  torch_onnx        torch -> ONNX (TorchScript exporter), labels and metadata
  passes            graph passes (tidy, constant folding, Pad into Conv)
  checks            ONNX checker + op allow list, parity, sizes
  quantize          weight-only int8 and its plain dequantized arithmetic
  runtime           running a file in onnxruntime
  heldout           the inputs an export is checked on
"""

from edge_str.export.cnn_adapter import export_cnn_model
from edge_str.export.fastgrnn_adapter import export_model
from edge_str.export.options import ExportOptions
from edge_str.export.pipeline import export_run, summary_line
from edge_str.export.runtime import onnx_session, run_onnx, run_onnx_streaming

__all__ = [
    "ExportOptions",
    "export_cnn_model",
    "export_model",
    "export_run",
    "onnx_session",
    "run_onnx",
    "run_onnx_streaming",
    "summary_line",
]
