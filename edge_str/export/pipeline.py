"""One export pipeline for every model family: stage, check, parity, quantise, move, report.

    from edge_str.export.pipeline import export_run
    report = export_run("runs/kws", "kws.onnx", heldout=loader, int8=True)

``export_run`` (a run directory) and ``export`` (a model in memory) run these stages in order;
a refusal or a failed check at any stage raises ``EdgeStrError`` and nothing is written:

  1. options   ``ExportOptions.validate`` once -> ``ExportPaths`` (every file ``--out`` names);
               ``adapter.check_options`` refuses what does not apply to the family
  2. model     ``adapter.check_model`` (not exportable), ``adapter.check_inputs`` (held-out
               shape); a run's held-out data is loaded only after both passed
  3. prepare   ``adapter.prepare(model, x)``: the reference logits of the trained (still
               parametrized) model and what the graphs are made from (a compacted or baked copy;
               the model itself is left unchanged)
  4. graphs    in a ``Staging`` folder beside ``--out``: ``adapter.graphs(...)`` -> [GraphSpec],
               the main graph (role "") first. Each is checked (ONNX checker, op allow list),
               saved, run in onnxruntime and held to its reference (``PARITY_TOLERANCE``);
               with ``int8`` it is quantised (``quantize.quantize_weights``), checked, run and
               compared with its float file; the main graph's int8 file also with the plain
               dequantized arithmetic and with onnxruntime's default session
  5. report    ``adapter.report_fields(...)``: the family's FILE.json fields (it may still
               refuse, e.g. a weight that is 0 in torch but not in the file)
  6. outputs   each of ``extensions`` (an output besides ONNX, e.g. C source) stages its files
               in the same ``Staging`` and returns fields for the report
  7. move      every staged file renamed into place (``os.replace``, one folder), the
               FILE.int8.onnx / FILE.step[.int8].onnx of an earlier export that this one did not
               write removed, then FILE.json written (temp file then rename)

Beside this module: ``options`` (ExportOptions), ``files`` (ExportPaths, Staging), ``adapter``
(the interface below), ``report`` (ExportReport -> FILE.json, the summary line).

A model family's exporter is an ``adapter.ExportAdapter`` subclass (FastGRNN:
``fastgrnn_adapter``, CNNs: ``cnn_adapter``) that supplies only its graph(s) and its report
fields: ``family``, the extra graph roles it may write (``extra_roles``: "step" ->
FILE.step.onnx), ``check_options``, ``check_model``, ``check_inputs``, ``random_inputs``,
``prepare``, ``graphs``, ``report_fields`` and ``summary_parts``. ``adapter.adapter_for_arch``
maps a run's ``model.arch`` to it.

An extension is a callable ``extension(context: ExportContext) -> dict``: it reads the checked
model (``context.prepared``, ``context.checked``, the held-out ``context.x``/``context.y``,
``context.options``), writes its files through ``context.stage.file(target)`` (renamed into
place with the ONNX files, or not at all) and returns its FILE.json fields (e.g. {"c": {...}}).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
import torch

from edge_str.atomic import write_json
from edge_str.errors import EdgeStrError
from edge_str.export.adapter import (
    CheckedGraph,
    CheckedInt8,
    ExportAdapter,
    ExportJob,
    GraphSpec,
    Prepared,
    adapter_for_arch,
)
from edge_str.export.checks import (
    accuracy_of,
    agreement,
    check_graph,
    check_parity,
    max_abs_diff,
    op_count,
    op_types,
    weight_bytes,
)
from edge_str.export.files import MAIN, STALE_ROLES, ExportPaths, Staging
from edge_str.export.heldout import (
    DEFAULT_RANDOM_EXAMPLES,
    Heldout,
    HeldoutLoader,
    resolve_heldout,
)
from edge_str.export.options import ExportOptions
from edge_str.export.quantize import dequantized_model, int8_weight_bytes_estimate, quantize_weights
from edge_str.export.report import Accuracy, ExportReport, summary_line
from edge_str.export.runtime import default_session, onnx_session, run_onnx
from edge_str.export.torch_onnx import save_model

if TYPE_CHECKING:
    from edge_str.run import RunInfo

PARITY_TOLERANCE = 1e-4  # max |onnxruntime - torch| on logits, float32 (read at call time)

__all__ = ["Extension", "ExportContext", "export", "export_run", "summary_line"]


@dataclass
class ExportContext:
    """What an extension sees: the checked export, before anything is moved into place."""

    adapter: ExportAdapter
    model: torch.nn.Module
    prepared: Prepared
    x: torch.Tensor
    y: np.ndarray | None
    options: ExportOptions
    paths: ExportPaths
    stage: Staging
    checked: dict[str, CheckedGraph]
    report: dict[str, Any]


Extension = Callable[[ExportContext], dict[str, Any]]


def export(
    adapter: ExportAdapter,
    model: torch.nn.Module,
    out: str | os.PathLike,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    *,
    class_names: Sequence[str] | None = None,
    heldout_source: str = "given",
    heldout_note: str | None = None,
    extra: dict[str, Any] | None = None,
    extensions: Sequence[Extension] = (),
    front_end: str | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Export ``model`` with ``adapter`` (stages 1-7 above); returns the report (FILE.json).

    ``x`` are raw held-out inputs and ``y`` their labels, if known (then accuracies are
    reported). ``options``: the fields of ``ExportOptions`` (int8, opset, fixed_batch,
    streaming, loop).
    """
    opts = ExportOptions(**options)
    paths = opts.validate(out)
    adapter.check_options(opts, "the model")
    adapter.check_model(model, opts, "model")
    heldout = Heldout(heldout_source, 0, heldout_note)
    names = (class_names, front_end)
    return _export(adapter, model, paths, opts, x, y, heldout, names, extra, extensions)


def export_run(
    run_dir: str | os.PathLike,
    out: str | os.PathLike,
    x: torch.Tensor | None = None,
    y: torch.Tensor | None = None,
    *,
    heldout: HeldoutLoader | None = None,
    checkpoint: str | None = None,
    heldout_source: str = "given",
    random_examples: int = DEFAULT_RANDOM_EXAMPLES,
    seed: int = 0,
    extensions: Sequence[Extension] = (),
    **options: Any,
) -> dict[str, Any]:
    """Export the kept (best-validation) model of a training run, FastGRNN or CNN.

    ``x``/``y``: held-out raw inputs and labels, e.g. the test split. Or
    ``heldout(run_info) -> (x, y, source)``, called only once the options are valid and the
    run's model loaded and found exportable (so a refusal never waits for data); it may return
    (None, None, reason). Without held-out inputs, ``random_examples`` random inputs of the
    run's input shape (no labels, so no accuracy) are used for the parity checks and the
    report's ``heldout`` says why. ``options``: the fields of ``ExportOptions``; a CNN run
    refuses ``streaming`` and ``loop="scan"``.
    """
    from edge_str.run import BEST_CHECKPOINT, load_run_info, load_trained_model

    opts = ExportOptions(**options)
    paths = opts.validate(out)
    info = load_run_info(run_dir)
    adapter = adapter_for_arch(info.config.model.arch)
    adapter.check_options(opts, f"{run_dir} is a {info.config.model.arch} run")
    adapter.check_run(info, run_dir)
    info, model = load_trained_model(run_dir, checkpoint or BEST_CHECKPOINT, info)
    adapter.check_model(model, opts, str(run_dir))
    x, y, source, reason = resolve_heldout(
        run_dir,
        info,
        x,
        y,
        heldout,
        heldout_source,
        lambda: adapter.random_inputs(model, info, random_examples, seed),
    )
    fields, names = adapter.run_fields(info, run_dir), (info.class_names, front_end_of(info))
    held = Heldout(source, 0, reason)
    return _export(adapter, model, paths, opts, x, y, held, names, fields, extensions)


def _export(
    adapter: ExportAdapter,
    model: torch.nn.Module,
    paths: ExportPaths,
    options: ExportOptions,
    x: torch.Tensor,
    y: torch.Tensor | None,
    heldout: Heldout,
    names: tuple[Sequence[str] | None, str | None],
    extra: dict[str, Any] | None,
    extensions: Sequence[Extension],
) -> dict[str, Any]:
    """The stages after the refusals; ``names``: the class names and the front end's JSON."""
    class_names, front_end = names
    x = adapter.check_inputs(model, x)
    y_np = None if y is None else torch.as_tensor(y).long().cpu().numpy()
    if y_np is not None and y_np.shape != (x.shape[0],):
        raise EdgeStrError(f"{len(y_np)} labels for {x.shape[0]} held-out examples")
    heldout.examples = int(x.shape[0])
    prepared = adapter.prepare(model, x)
    tolerance = PARITY_TOLERANCE
    with Staging() as stage:
        job = ExportJob(options, class_names, stage.scratch("raw.onnx", paths.onnx), front_end)
        specs = adapter.graphs(prepared, job)
        checked = {
            spec.role: _check(spec, paths, stage, options.int8, tolerance, y_np) for spec in specs
        }
        main = checked[MAIN]
        fields = adapter.report_fields(prepared, checked, job)
        warnings = fields.pop("warnings", [])
        accuracy = Accuracy(
            torch=accuracy_of(prepared.reference, y_np), onnx=accuracy_of(main.logits, y_np)
        )
        file_bytes = {"onnx": main.file_bytes}
        files: dict[str, str | None] = {}
        for role in adapter.extra_roles:
            files[f"{role}_onnx"] = None
            files[f"{role}_int8_onnx"] = None
        for role, graph in checked.items():
            if role == MAIN:
                continue
            files[f"{role}_onnx"] = str(paths.graph(role))
            file_bytes[role] = graph.file_bytes
        weights = {
            "float32": weight_bytes(main.model),
            "int8": int8_weight_bytes_estimate(main.model, main.spec.weight_ops),
        }
        if main.int8 is not None:
            accuracy.int8 = accuracy_of(main.int8.logits, y_np)
            if accuracy.int8 is not None:
                accuracy.int8_change = accuracy.int8 - accuracy.onnx
            weights["int8"] = weight_bytes(main.int8.model)
            file_bytes["int8"] = main.int8.file_bytes
            for role, graph in checked.items():
                if role != MAIN and graph.int8 is not None:
                    files[f"{role}_int8_onnx"] = str(paths.graph(role, int8=True))
                    file_bytes[f"{role}_int8"] = graph.int8.file_bytes
        report = ExportReport(
            family=adapter.family,
            onnx=str(paths.onnx),
            int8_onnx=None if main.int8 is None else str(paths.graph(int8=True)),
            opset=options.opset,
            batch=options.fixed_batch if options.fixed_batch else "dynamic",
            class_names=list(class_names) if class_names is not None else None,
            weight_bytes=weights,
            weight_bytes_int8_measured=main.int8 is not None,
            file_bytes=file_bytes,
            graph_nodes=len(main.model.graph.node),
            op_types=sorted(op_types(main.model)),
            heldout=heldout,
            max_abs_diff=main.parity["max_abs_diff"],
            top1_agreement=main.parity["top1_agreement"],
            tolerance=tolerance,
            accuracy=accuracy,
            int8=None if main.int8 is None else main.int8.figures,
            warnings=warnings,
            files=files,
            fields=fields,
            extra=extra or {},
        ).to_dict()
        for extension in extensions:
            context = ExportContext(
                adapter, model, prepared, x, y_np, options, paths, stage, checked, report
            )
            report.update(extension(context))
        stage.commit()
        roles = tuple(dict.fromkeys((*STALE_ROLES, *adapter.extra_roles)))
        paths.remove_stale(stage.targets, roles)
    write_json(paths.report, report)
    return report


def front_end_of(info: RunInfo) -> str | None:
    """The JSON of a run's audio front end (None for a task whose input is not audio)."""
    if info.config.task != "google12":
        return None
    from edge_str.inference.frontend import FrontEnd

    return FrontEnd.from_data_config(info.config.data).to_json()


def _check(
    spec: GraphSpec,
    paths: ExportPaths,
    stage: Staging,
    int8: bool,
    tolerance: float,
    y: np.ndarray | None,
) -> CheckedGraph:
    """Check, stage and run one graph (and its int8 file); hold it to its reference."""
    target = paths.graph(spec.role)
    tmp = stage.file(target)
    logits = _write_checked(spec.model, spec.float_ops, tmp, target.name, spec.inputs)
    parity = check_parity(logits, spec.reference, target.name, tolerance)
    checked = CheckedGraph(spec, target.name, logits, parity, tmp.stat().st_size)
    if int8:
        target_q = paths.graph(spec.role, int8=True)
        tmp_q = stage.file(target_q)
        quantized = quantize_weights(tmp, spec.weight_ops)
        logits_q = _write_checked(quantized, spec.int8_ops, tmp_q, target_q.name, spec.inputs)
        figures = {
            "max_abs_diff_vs_float": max_abs_diff(logits_q, logits),
            "top1_agreement_vs_float": agreement(logits_q, logits),
            "weights_quantized": op_count(quantized, "DequantizeLinear"),
            "op_types": sorted(op_types(quantized)),
        }
        if spec.role == MAIN:
            figures.update(_int8_runtimes(quantized, tmp_q, logits_q, spec.inputs, y, stage))
        checked.int8 = CheckedInt8(quantized, logits_q, tmp_q.stat().st_size, figures)
    return checked


def _int8_runtimes(
    quantized: onnx.ModelProto,
    path: Path,
    logits: np.ndarray,
    x: torch.Tensor,
    y: np.ndarray | None,
    stage: Staging,
) -> dict[str, Any]:
    """The int8 file against the plain dequantized arithmetic and onnxruntime's default session.

    ``logits`` are the file run as ``run_onnx`` does (weights dequantized once, then float
    math); "plain_dequantized" is the float graph on w = (q - zero) · scale computed here, what a
    C runtime computes; "onnxruntime_default" is onnxruntime left to its QDQ rewrites, which
    fuse DequantizeLinear + MatMul into its own quantized kernels (a few 1e-2 off).
    """
    plain_path = stage.scratch("plain.onnx", path)
    save_model(dequantized_model(quantized), plain_path)
    plain = run_onnx(plain_path, x)
    fused = run_onnx(path, x, session=default_session(path))
    return {
        "plain_dequantized": {
            "max_abs_diff_vs_file": max_abs_diff(logits, plain),
            "accuracy": accuracy_of(plain, y),
        },
        "onnxruntime_default": {
            "max_abs_diff_vs_plain_dequantized": max_abs_diff(fused, plain),
            "top1_agreement_vs_plain_dequantized": agreement(fused, plain),
            "accuracy": accuracy_of(fused, y),
        },
    }


def _write_checked(
    model: onnx.ModelProto, allowed: frozenset[str], path: Path, what: str, x: torch.Tensor
) -> np.ndarray:
    """Check ``model`` (ONNX checker, op allow list), save it to ``path`` and run it on ``x``."""
    check_graph(model, allowed, what)
    save_model(model, path)
    logits = run_onnx(path, x, session=onnx_session(path))
    if not np.isfinite(logits).all():
        raise EdgeStrError(f"{what}: onnxruntime gives non-finite logits; not exported")
    return logits
