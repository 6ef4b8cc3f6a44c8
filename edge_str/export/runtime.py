"""Running an exported file in onnxruntime: raw inputs in, logits out.

``onnx_session`` is the session every check and benchmark uses; ``run_onnx`` runs any file the
exporters write (a one-input graph in batches, a single-step graph frame by frame through
``run_onnx_streaming``). ``default_session`` is onnxruntime left to its own graph rewrites,
kept only to report how far those move an int8 file's results (see ``pipeline``).
"""

from __future__ import annotations

import os

import numpy as np
import torch

_DYNAMIC_CHUNK = 1024  # rows per onnxruntime call for a dynamic-batch graph (bounds memory)


def onnx_session(path: str | os.PathLike, threads: int | None = None):
    """An onnxruntime CPU session for ``path`` (``threads``: intra-op threads, None = default)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    # Weight-only int8 files: without this onnxruntime copies each DequantizeLinear for every
    # consumer (QDQ node units), so every step of the unrolled graph dequantizes U again and the
    # file runs ~1.5-2x slower than the float one. With it the weights are dequantized once, at
    # load (constant folding), and computed with as float: what the file means. No effect on
    # float graphs.
    options.add_session_config_entry("session.disable_quant_qdq", "1")
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def default_session(path: str | os.PathLike):
    """onnxruntime with its default options: its QDQ rewrites fuse DequantizeLinear + MatMul
    into its own quantized kernels, whose results no plain (C) runtime reproduces."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _fixed_batch(session) -> int | None:
    dim = session.get_inputs()[0].shape[0]
    return dim if isinstance(dim, int) else None


def _chunks(x: np.ndarray, batch: int, pad: bool = True):
    """(chunk, n): ``x`` in slices of ``batch`` rows, the last one zero padded to ``batch``
    (unless ``pad`` is false: a dynamic-batch graph takes the short last slice as it is)."""
    for start in range(0, len(x), batch):
        chunk = x[start : start + batch]
        n = len(chunk)
        if pad and n < batch:
            chunk = np.concatenate([chunk, np.zeros((batch - n,) + chunk.shape[1:], chunk.dtype)])
        yield chunk, n


def run_onnx(path: str | os.PathLike, x: np.ndarray | torch.Tensor, session=None) -> np.ndarray:
    """Run an exported file on raw input x (N, ...) -> logits (N, C), float32.

    Works for every file the exporters write (FastGRNN, x (N, T, F); CNNs, x (N, *input_shape)):
    a one-input graph gets x in batches (chunks of the fixed batch, the last zero padded, where
    the file has one; else of up to 1024 rows); a single-step graph (inputs x_t, h) is stepped
    frame by frame (``run_onnx_streaming``). Pass ``session`` (``onnx_session(path)``) to reuse
    one.
    """
    session = session or onnx_session(path)
    if len(session.get_inputs()) == 2:
        return run_onnx_streaming(path, x, session)
    x = _as_numpy(x)
    name = session.get_inputs()[0].name
    fixed = _fixed_batch(session)
    chunks = _chunks(x, fixed or _DYNAMIC_CHUNK, pad=fixed is not None)
    return np.concatenate([session.run(None, {name: c})[0][:n] for c, n in chunks])


def run_onnx_streaming(
    path: str | os.PathLike, x: np.ndarray | torch.Tensor, session=None
) -> np.ndarray:
    """Run an exported single-step graph frame by frame over x (N, T, F); logits (N, C).

    Each sequence starts from h = 0 and feeds h' back, as a device does; the logits after the
    last frame are returned.
    """
    session = session or onnx_session(path)
    x = _as_numpy(x)
    x_name, h_name = (i.name for i in session.get_inputs())
    batch = _fixed_batch(session) or 1
    hidden = session.get_inputs()[1].shape[1]
    out = []
    for chunk, n in _chunks(x, batch):
        h = np.zeros((batch, hidden), np.float32)
        logits = None
        for t in range(chunk.shape[1]):
            h, logits = session.run(None, {x_name: np.ascontiguousarray(chunk[:, t]), h_name: h})
        out.append(logits[:n])
    return np.concatenate(out)


def _as_numpy(x: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.ascontiguousarray(x, dtype=np.float32)
