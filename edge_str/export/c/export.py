"""Write, compile, check and measure the C export of a compacted FastGRNN (the "c" report part).

``export_c`` does the C's share of an export: lower the compacted model (``lower``), generate
NAME.h / NAME.c for the three modes (``codegen``), compile each with -Werror at -O2 and -Os and
run it on the held-out inputs (``toolchain``): the float32 C must equal the compacted torch
module within ``C_REFUSE_TOLERANCE`` (else the export is refused; the tests hold it to
``C_FLOAT_TOLERANCE``); int8 and integer report their accuracy and
top-1 agreement instead. Sizes come from ``size -A`` of the object: flash = text + rodata +
data, RAM = the caller's state struct + data + bss (0 here: nothing global changes), stack
from -fstack-usage; for Cortex-M4F when ``arm-none-eabi-gcc`` is installed, else the host. The
requested mode's two files are staged through ``stage_file`` (target -> temporary path) and
moved into place by the caller's pipeline with the rest of the export, or not at all.

Without a host C compiler the files are still generated, not compiled: the report says so and
its compiled figures are None.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edge_str.atomic import write_json
from edge_str.errors import EdgeStrError
from edge_str.export.c.codegen import CCode, generate, valid_prefix
from edge_str.export.c.lower import MODES, FloatModel, integerize, lower, quantize_input
from edge_str.export.c.toolchain import (
    CROSS_M4,
    build_runner,
    cross_compiler,
    host_compiler,
    object_size,
    run_sequences,
)
from edge_str.export.compact_model import CompactFastGRNN, compact_fastgrnn
from edge_str.fastgrnn import FastGRNNClassifier

C_FLOAT_TOLERANCE = 1e-5  # max |compiled float32 C - compacted torch| on logits (tested)
# An export is refused above the ONNX files' tolerance: float32 summation order alone moves a
# trained model's logits by ~5e-6 to 8e-6 after 99 steps (measured), so 1e-5 has little margin.
C_REFUSE_TOLERANCE = 1e-4
DEFAULT_PREFIX = "fastgrnn"
WEIGHT_CHOICES = ("float32", "int8")


def c_mode(weights: str, integer: bool) -> str:
    """The mode --weights/--integer name: float32, int8 or integer (int8 weights, no float)."""
    if weights not in WEIGHT_CHOICES:
        raise EdgeStrError(f"--weights {weights}: must be one of {', '.join(WEIGHT_CHOICES)}")
    return "integer" if integer else weights


def validate_c_options(c_dir: str | os.PathLike, prefix: str) -> Path:
    """Refuse a --c DIR that is a file or a --prefix that is not a C identifier."""
    c_dir = Path(c_dir)
    if c_dir.exists() and not c_dir.is_dir():
        raise EdgeStrError(f"--c {c_dir}: is a file, not a folder")
    if not valid_prefix(prefix):
        raise EdgeStrError(
            f"--prefix {prefix!r}: must be a C identifier (letters, digits, _; not a keyword)"
        )
    return c_dir


def feature_settings(task: str, data: Any) -> dict[str, Any] | None:
    """What a device's front end must reproduce (Google-12 log-mel), or None for other tasks."""
    if task != "google12":
        return None
    from edge_str.data.features import LOG_FLOOR

    return {
        "sample_rate": int(data.sample_rate),
        "window_ms": float(data.window_ms),
        "window_samples": int(data.window_samples),
        "hop_ms": float(data.hop_ms),
        "hop_samples": int(data.hop_samples),
        "n_mels": int(data.n_mels),
        "log_offset": float(LOG_FLOOR),
        "frames": int(data.frames),
    }


def _accuracy(logits: np.ndarray, y: np.ndarray | None) -> float | None:
    return None if y is None else float((logits.argmax(1) == y).mean())


def write_sources(code: CCode, folder: Path) -> Path:
    """NAME.h and NAME.c of ``code`` in ``folder``; returns the .c."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{code.prefix}.h").write_text(code.header)
    (folder / f"{code.prefix}.c").write_text(code.source)
    return folder / f"{code.prefix}.c"


def _sizes(source: Path, state_bytes: int) -> dict[str, Any]:
    """Flash, RAM and stack of one generated .c: Cortex-M4F -Os where arm-none-eabi-gcc is
    installed, else the host compiler at -Os (``target`` says which)."""
    cross = cross_compiler()
    if cross is not None:
        size, target, flags = (
            object_size(cross, source, "-Os", CROSS_M4[1]),
            "cortex-m4",
            CROSS_M4[1],
        )
    else:
        size, target, flags = object_size(host_compiler(), source, "-Os"), "host", ()
    return {
        "target": target,
        "flags": " ".join(("-Os", *flags)),
        "sections": {"text": size.text, "rodata": size.rodata, "data": size.data, "bss": size.bss},
        "flash_bytes": size.flash,
        "ram_bytes": state_bytes + size.ram,
        "stack_bytes": size.stack,
    }


def export_c(
    compact: CompactFastGRNN,
    ranks: dict[str, dict[str, Any]],
    macs_per_frame: int,
    head_macs: int,
    reference: np.ndarray,
    compact_reference: np.ndarray,
    x: torch.Tensor,
    y: np.ndarray | None,
    c_dir: str | os.PathLike,
    stage_file: Callable[[Path], Path],
    *,
    mode: str = "float32",
    prefix: str = DEFAULT_PREFIX,
    features: dict[str, Any] | None = None,
    class_names: list[str] | None = None,
) -> dict[str, Any]:
    """Generate, compile, check and measure the C; stage the ``mode`` files; the "c" fields.

    ``ranks``, ``macs_per_frame`` and ``head_macs`` are the export report's (the header states
    them); ``reference`` (N, C) is the trained model's logits on the raw held-out ``x``
    (N, T, F), ``compact_reference`` the compacted torch module's (``CompactFastGRNN``: the
    float32 weights the C holds; the float C must equal it within ``C_REFUSE_TOLERANCE``; the
    float32 rounding of the compacted weights alone moves the logits by up to ~3e-5 after 99
    steps of a trained model, measured), ``y`` their labels or None. The calibration of integer
    mode's fixed-point formats uses ``x`` too.
    """
    from edge_str import __version__

    if mode not in MODES:
        raise EdgeStrError(f"C mode {mode}: must be one of {', '.join(MODES)}")
    c_dir = validate_c_options(c_dir, prefix)
    x_np = x.detach().cpu().numpy().astype(np.float32)
    lowered: FloatModel = lower(compact)
    integer = integerize(lowered, x_np)
    info = {
        "version": __version__,
        "frames": int(x.shape[1]),
        "ranks": ranks,
        "macs_per_frame": int(macs_per_frame),
        "head_macs": int(head_macs),
        "feature_settings": features,
        "class_names": class_names,
    }
    codes = {m: generate(lowered, m, prefix, info, integer) for m in MODES}
    compiler = host_compiler()
    modes: dict[str, Any] = {}
    note = None
    with tempfile.TemporaryDirectory(prefix=".edge_str-c-") as tmp:
        for m, code in codes.items():
            folder = Path(tmp) / m
            write_sources(code, folder)
            figures: dict[str, Any] = {
                "weight_bytes": code.weight_bytes,
                "state_bytes": code.state_bytes,
            }
            if compiler is not None:
                runner = build_runner(
                    folder, prefix, m == "integer", lowered.hidden, lowered.classes
                )
                xin = quantize_input(x_np, integer.input_frac) if m == "integer" else x_np
                raw, _, state_bytes = run_sequences(runner, xin)
                if state_bytes != code.state_bytes:
                    raise EdgeStrError(
                        f"C {m}: sizeof(state) {state_bytes}, expected {code.state_bytes}"
                    )
                logits = raw.astype(np.float64)
                if m == "integer":
                    logits = logits / 2.0**integer.logit_frac
                if not np.isfinite(logits).all():
                    raise EdgeStrError(f"C {m}: non-finite logits; not exported")
                diff = float(np.abs(logits - compact_reference).max())
                if m == "float32" and not diff <= C_REFUSE_TOLERANCE:
                    raise EdgeStrError(
                        f"C float32: compiled C disagrees with torch (max |diff| {diff:.3g} > "
                        f"{C_REFUSE_TOLERANCE:g}); not exported"
                    )
                figures.update(
                    {
                        "max_abs_diff_vs_compact_torch": diff,
                        "max_abs_diff_vs_torch": float(np.abs(logits - reference).max()),
                        "top1_agreement_vs_torch": float(
                            (logits.argmax(1) == reference.argmax(1)).mean()
                        ),
                        "accuracy": _accuracy(logits, y),
                    }
                )
                figures.update(_sizes(folder / f"{prefix}.c", code.state_bytes))
            modes[m] = figures
        if compiler is None:
            note = "no C compiler (gcc, cc or clang) found: the C was not compiled or checked"
        torch_accuracy = _accuracy(reference, y)
        for figures in modes.values():
            accuracy = figures.get("accuracy")
            figures["accuracy_change_vs_torch"] = (
                None if accuracy is None or torch_accuracy is None else accuracy - torch_accuracy
            )
        chosen = codes[mode]
        files = []
        for name, text in ((f"{prefix}.h", chosen.header), (f"{prefix}.c", chosen.source)):
            target = c_dir / name
            stage_file(target).write_text(text)
            files.append(str(target))
    written = modes[mode]
    return {
        "c": {
            "dir": str(c_dir),
            "prefix": prefix,
            "mode": mode,
            "files": files,
            "compiled": compiler is not None,
            "compiler": None if compiler is None else Path(compiler).name,
            "cross_compiler": None if cross_compiler() is None else CROSS_M4[0],
            "note": note,
            "tolerance": C_REFUSE_TOLERANCE,
            "ranks": ranks,
            "macs_per_frame": int(macs_per_frame),
            "head_macs": int(head_macs),
            "weight_bytes": written["weight_bytes"],
            "state_bytes": written["state_bytes"],
            "flash_bytes": written.get("flash_bytes"),
            "ram_bytes": written.get("ram_bytes"),
            "feature_settings": features,
            "accuracy": {m: modes[m].get("accuracy") for m in MODES},
            "integer_format": {
                "input_frac_bits": integer.input_frac,
                "state_frac_bits": integer.state_frac,
                "logit_frac_bits": integer.logit_frac,
                "calibrated_on": "the held-out inputs",
            },
            "modes": modes,
        }
    }


def export_c_model(
    model: FastGRNNClassifier,
    c_dir: str | os.PathLike,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    *,
    mode: str = "float32",
    prefix: str = DEFAULT_PREFIX,
    features: dict[str, Any] | None = None,
    class_names: list[str] | None = None,
) -> dict[str, Any]:
    """The C export of a FastGRNN in memory: DIR/NAME.h, DIR/NAME.c and DIR/NAME.json.

    Bakes and compacts a copy of ``model`` (the model is left as it is), then ``export_c``;
    the files are renamed into ``c_dir`` only after every check passed. Returns the report
    (ranks, MACs, the trained model's accuracy and the "c" fields), also in DIR/NAME.json.
    """
    c_dir = validate_c_options(c_dir, prefix)
    if mode not in MODES:
        raise EdgeStrError(f"C mode {mode}: must be one of {', '.join(MODES)}")
    was_training = model.training
    model.eval()
    try:
        compact, summary = compact_fastgrnn(model)
        with torch.no_grad():
            reference = model(x).numpy()
            compact_reference = compact(x).numpy()
    finally:
        model.train(was_training)
    cost = model.cost()
    ranks = {name: s.to_dict() for name, s in summary.items()}
    y_np = None if y is None else torch.as_tensor(y).long().numpy()
    c_dir.mkdir(parents=True, exist_ok=True)
    staged: list[tuple[Path, Path]] = []
    with tempfile.TemporaryDirectory(prefix=".edge_str-c-", dir=c_dir) as tmp:

        def stage_file(target: Path) -> Path:
            staged.append((Path(tmp) / target.name, target))
            return staged[-1][0]

        fields = export_c(
            compact,
            ranks,
            cost.macs_per_step_compact,
            cost.head_macs,
            reference,
            compact_reference,
            x,
            y_np,
            c_dir,
            stage_file,
            mode=mode,
            prefix=prefix,
            features=features,
            class_names=class_names,
        )
        report = {
            "ranks": ranks,
            "params": cost.params_compact,
            "macs_per_step": cost.macs_per_step_compact,
            "head_macs": cost.head_macs,
            "accuracy": {"torch": _accuracy(reference, y_np)},
            **fields,
        }
        for src, dst in staged:
            os.replace(src, dst)
    write_json(c_dir / f"{prefix}.json", report)
    return report
