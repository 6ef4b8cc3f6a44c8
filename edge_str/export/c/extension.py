"""The C exporter as an output of the one export pipeline (``export.pipeline``'s extensions).

``c_extension(c_dir, mode, prefix, features)`` returns the callable the pipeline runs after
the ONNX graphs passed their checks: it reads the compacted model and the reference logits the
FastGRNN adapter prepared, the held-out inputs, and the report's ranks and MACs (the one cost
model), writes NAME.h / NAME.c through the pipeline's staging (renamed into place with the ONNX
files, or not at all) and returns FILE.json's "c" fields (``export_c``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from edge_str.errors import EdgeStrError
from edge_str.export.c.export import DEFAULT_PREFIX, export_c, validate_c_options


def c_extension(
    c_dir: str | os.PathLike,
    mode: str = "float32",
    prefix: str = DEFAULT_PREFIX,
    features: dict[str, Any] | None = None,
) -> Callable[[Any], dict[str, Any]]:
    """An ``Extension`` writing the C of a FastGRNN export into ``c_dir`` (validated now)."""
    c_dir = validate_c_options(c_dir, prefix)

    def extension(context) -> dict[str, Any]:
        if context.adapter.family != "fastgrnn":
            raise EdgeStrError(
                f"--c: C export supports FastGRNN runs only, not {context.adapter.family}"
            )
        report, prepared = context.report, context.prepared
        return export_c(
            prepared.compact,
            report["ranks"],
            report["macs_per_step"],
            report["head_macs"],
            prepared.reference,
            prepared.compact_logits,
            context.x,
            context.y,
            c_dir,
            context.stage.file,
            mode=mode,
            prefix=prefix,
            features=features,
            class_names=report.get("class_names"),
        )

    return extension
