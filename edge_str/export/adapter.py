"""The interface a model family implements to be exported: ``ExportAdapter`` (see ``pipeline``).

An adapter supplies only its graph(s) (``GraphSpec``) and its report fields; the pipeline checks,
runs, quantises and writes them and hands each back as a ``CheckedGraph``.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
import torch

from edge_str.export.files import MAIN
from edge_str.export.options import ExportOptions
from edge_str.families import (
    CNN,
    FAMILIES,
    FASTGRNN,
    export_adapter,
    exporting_families,
    register_export_adapter,
)

if TYPE_CHECKING:
    from edge_str.run import RunInfo

__all__ = [
    "MAIN",
    "Checked",
    "CheckedGraph",
    "CheckedInt8",
    "ExportAdapter",
    "ExportJob",
    "Fields",
    "GraphSpec",
    "Prepared",
]


@dataclass
class Prepared:
    """What ``adapter.prepare`` returns: at least the reference logits; families add fields."""

    reference: np.ndarray  # (N, C): the trained, still parametrized model on the held-out x


@dataclass
class GraphSpec:
    """One graph an adapter supplies, with what it is checked against."""

    role: str  # MAIN ("", FILE.onnx) or an entry of the adapter's extra_roles
    model: onnx.ModelProto
    float_ops: frozenset[str]  # the standard ops the float graph may use
    int8_ops: frozenset[str]  # ... and its int8 version
    weight_ops: frozenset[str]  # ops whose weight (input 1) --int8 stores as int8
    inputs: torch.Tensor  # held-out inputs to run it on (raw, as a device gets them)
    reference: np.ndarray  # the logits it must reproduce


@dataclass
class CheckedInt8:
    model: onnx.ModelProto
    logits: np.ndarray  # as ``run_onnx`` runs the file (weights dequantized once, float math)
    file_bytes: int
    figures: dict[str, Any]  # FILE.json's "int8" for this graph


@dataclass
class CheckedGraph:
    """A graph that passed its checks, staged, with what onnxruntime gave on its inputs."""

    spec: GraphSpec
    name: str  # the file's name, for messages
    logits: np.ndarray
    parity: dict[str, float]  # max_abs_diff, top1_agreement against spec.reference
    file_bytes: int
    int8: CheckedInt8 | None = None

    @property
    def model(self) -> onnx.ModelProto:
        return self.spec.model


@dataclass(frozen=True)
class ExportJob:
    """What the pipeline asks of an adapter's graphs: the options, the class names (stored in
    each graph's metadata) and a scratch file the exporter may overwrite."""

    options: ExportOptions
    class_names: Sequence[str] | None
    scratch: Path
    front_end: str | None = None  # the audio front end's JSON, stored in the graph's metadata


Checked = dict[str, CheckedGraph]  # role -> the graph that passed its checks
Fields = dict[str, Any]  # FILE.json fields


class ExportAdapter(ABC):
    """One model family's part of an export: its graphs and its report fields (see the top)."""

    family: str  # FILE.json's "family"
    extra_roles: tuple[str, ...] = ()  # graphs besides FILE.onnx it may write, e.g. ("step",)

    def check_options(self, options: ExportOptions, what: str) -> None:
        """Refuse options that do not apply to the family; ``what`` names the run or model."""
        return None

    @abstractmethod
    def check_model(self, model: torch.nn.Module, options: ExportOptions, what: str) -> None:
        """Raise ``EdgeStrError`` when ``model`` cannot be exported with ``options``."""

    def check_run(self, info: RunInfo, run_dir: str | os.PathLike) -> None:
        """Refuse a run whose recorded input shape the family cannot take."""
        return None

    @abstractmethod
    def check_inputs(self, model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Held-out raw inputs as float32, or ``EdgeStrError`` for a shape the model refuses."""

    @abstractmethod
    def random_inputs(self, model: torch.nn.Module, info: RunInfo, n: int, seed: int):
        """``n`` random raw inputs for a run without readable held-out data."""

    @abstractmethod
    def prepare(self, model: torch.nn.Module, x: torch.Tensor) -> Prepared: ...

    @abstractmethod
    def graphs(self, prepared: Prepared, job: ExportJob) -> list[GraphSpec]:
        """The graphs to write, main first."""

    @abstractmethod
    def report_fields(self, prepared: Prepared, checked: Checked, job: ExportJob) -> Fields:
        """The family's FILE.json fields; a "warnings" list joins the report's warnings."""

    def run_fields(self, info: RunInfo, run_dir: str | os.PathLike) -> dict[str, Any]:
        """FILE.json fields that name the run exported."""
        return {"run": str(run_dir), "task": info.config.task}

    @abstractmethod
    def summary_parts(self, report: dict[str, Any]) -> tuple[list[str], list[str]]:
        """(head, tail) of the summary line: figures before the common parity/accuracy part
        (after "exported FILE: ") and after it."""

    def export(
        self,
        model: torch.nn.Module,
        out: str | os.PathLike,
        x: torch.Tensor,
        y: torch.Tensor | None = None,
        **options: Any,
    ) -> dict[str, Any]:
        """Export ``model`` of this family: ``pipeline.export(self, ...)`` (see there).

        ``x`` are raw held-out inputs and ``y`` their labels, if known. Returns the report (also
        FILE.json); raises ``EdgeStrError`` when the model cannot be exported or a check fails,
        and then nothing is written.
        """
        from edge_str.export.pipeline import export

        return export(self, model, out, x, y, **options)


# Each family's adapter in the model-family registry (imported on first lookup).
register_export_adapter(FASTGRNN.name, "edge_str.export.fastgrnn_adapter:FASTGRNN_ADAPTER")
register_export_adapter(CNN.name, "edge_str.export.cnn_adapter:CNN_ADAPTER")


def adapter_for_arch(arch: str) -> ExportAdapter:
    """The exporter of a run's ``model.arch`` (the family registry's export adapter)."""
    return export_adapter(arch)


def adapter_for_family(family: str) -> ExportAdapter:
    """The exporter that wrote a report (FILE.json's "family")."""
    exporting = exporting_families()  # the GRU/LSTM baselines have no exporter
    adapters = [export_adapter(f.archs[0]) for f in FAMILIES if f.name in exporting]
    return next(a for a in adapters if a.family == family)
