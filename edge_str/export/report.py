"""FILE.json: the typed report every export writes, and the one-line summary of it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from edge_str.export.heldout import Heldout


@dataclass
class Accuracy:
    """Top-1 accuracy on the held-out labels (None without labels)."""

    torch: float | None
    onnx: float | None
    int8: float | None = None
    int8_change: float | None = None  # int8 - onnx


@dataclass
class ExportReport:
    """FILE.json: what every export reports; ``fields`` are the family's, ``files`` the paths of
    its extra graphs, ``extra`` the caller's (the run); all three are flattened into the JSON."""

    family: str
    onnx: str
    int8_onnx: str | None
    opset: int
    batch: int | str
    class_names: list[str] | None
    weight_bytes: dict[str, int]  # int8: estimated, or measured on the file when one is written
    weight_bytes_int8_measured: bool
    file_bytes: dict[str, int]
    graph_nodes: int
    op_types: list[str]
    heldout: Heldout
    max_abs_diff: float
    top1_agreement: float
    tolerance: float
    accuracy: Accuracy
    int8: dict[str, Any] | None
    warnings: list[str]
    files: dict[str, str | None] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        own = {
            name: value
            for name, value in vars(self).items()
            if name not in ("files", "fields", "extra", "heldout", "accuracy")
        }
        own["heldout"] = asdict(self.heldout)
        own["accuracy"] = asdict(self.accuracy)
        return {**own, **self.files, **self.fields, **self.extra}


def summary_line(report: dict[str, Any]) -> str:
    """The one-line summary ``edge-str export`` prints (for a report of any family)."""
    from edge_str.export.adapter import adapter_for_family

    head, tail = adapter_for_family(report["family"]).summary_parts(report)
    parts = [
        f"exported {report['onnx']}: {head[0]}",
        *head[1:],
        f"file {kb(report['file_bytes']['onnx'])}",
        f"max|ort-torch| {report['max_abs_diff']:.1g}",
        f"top-1 agree {report['top1_agreement']:.0%}",
    ]
    accuracy = report["accuracy"]
    if accuracy["onnx"] is not None:
        parts.append(f"test acc {accuracy['onnx']:.2%}")
    else:
        parts.append(f"{report['heldout']['source']} held-out inputs, no accuracy")
    if report["int8"] is not None:
        text = f"int8 {kb(report['file_bytes']['int8'])}"
        if accuracy["int8_change"] is not None:
            text += f" acc {accuracy['int8']:.2%} ({accuracy['int8_change']:+.2%})"
        parts.append(text)
    return ", ".join(parts + tail)


def kb(n: int) -> str:
    return f"{n / 1000:.1f} KB"
