"""What an export is asked for (``edge-str export``'s options), checked once per export."""

from __future__ import annotations

import os
from dataclasses import dataclass

from edge_str.errors import EdgeStrError
from edge_str.export.files import ExportPaths

DEFAULT_OPSET = 13  # opset-13 Split (FastGRNN), Conv/Gemm (CNNs); MCU tools know 13
MIN_OPSET, MAX_OPSET = 13, 20  # 20: the newest opset the TorchScript exporter writes


@dataclass(frozen=True)
class ExportOptions:
    """What ``edge-str export`` asks for; a family refuses the ones that do not apply to it."""

    int8: bool = False  # also FILE.int8.onnx: weight-only 8-bit
    opset: int = DEFAULT_OPSET
    fixed_batch: int | None = None  # None: dynamic batch dimension
    streaming: bool = False  # FastGRNN: also the single-step graph
    loop: str = "unrolled"  # FastGRNN: "unrolled" or "scan"

    @property
    def batch(self) -> int:
        """The batch size of the example inputs traced (1 for a dynamic batch)."""
        return self.fixed_batch or 1

    def validate(self, out: str | os.PathLike) -> ExportPaths:
        """Refuse a bad --out, --opset or --fixed-batch; returns the files to be written."""
        paths = ExportPaths.for_output(out)
        if not MIN_OPSET <= self.opset <= MAX_OPSET:
            raise EdgeStrError(
                f"--opset {self.opset}: supported opsets are {MIN_OPSET}..{MAX_OPSET}"
            )
        if self.fixed_batch is not None and self.fixed_batch < 1:
            raise EdgeStrError(f"--fixed-batch {self.fixed_batch}: must be at least 1")
        return paths
