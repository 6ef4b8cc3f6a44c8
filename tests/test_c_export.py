"""C export: generated C99 compiled by the system compiler and run on held-out sequences.

A small STR FastGRNN is trained a few steps on a learnable random task, some singular values are
forced to zero, and its C is compiled (-Werror) and run: float32 equals torch within 1e-5 and
the ONNX step graph frame by frame; int8 and integer report the accuracy the compiled C gives.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from edge_str.config import make_config
from edge_str.export import export_model, onnx_session
from edge_str.export.c import C_FLOAT_TOLERANCE, export_c_model
from edge_str.export.c.lower import quantize_input
from edge_str.export.c.toolchain import (
    CROSS_M4,
    OPT_LEVELS,
    build_runner,
    compile_object,
    cross_compiler,
    host_compiler,
    run_sequences,
)
from edge_str.export.compact_model import compact_fastgrnn
from edge_str.models import build_model
from tests._raw_features import feature_stats, raw_features

FEATURES, HIDDEN, STEPS, CLASSES = 8, 24, 10, 3
FEATURE_SETTINGS = {
    "sample_rate": 16000,
    "window_ms": 25.0,
    "window_samples": 400,
    "hop_ms": 10.0,
    "hop_samples": 160,
    "n_mels": 8,
    "log_offset": 1e-6,
    "frames": STEPS,
}
needs_gcc = pytest.mark.skipif(host_compiler() is None, reason="no C compiler (gcc/cc/clang)")
pytestmark = needs_gcc


def _data(n: int, seed: int, mean: torch.Tensor, std: torch.Tensor):
    return raw_features(n, seed, mean, std, STEPS, CLASSES)


@pytest.fixture(scope="module")
def stats():
    return feature_stats(FEATURES)


@pytest.fixture(scope="module")
def heldout(stats):
    return _data(200, seed=2, mean=stats[0], std=stats[1])


def _train(stats, gates: str = "exact"):
    torch.manual_seed(0)
    cfg = make_config("google12", overrides={"model": {"hidden": HIDDEN, "gates": gates}})
    model = build_model(cfg.model, (STEPS, FEATURES), CLASSES)
    model.normalizer.set_statistics(*stats)
    x, y = _data(512, seed=3, mean=stats[0], std=stats[1])
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    for step in range(40):
        i = torch.arange(step * 64, step * 64 + 64) % len(x)
        loss = torch.nn.functional.cross_entropy(model(x[i]), y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def trained(stats):
    return _train(stats)


@pytest.fixture(scope="module")
def trained_piecewise(stats):
    return _train(stats, gates="piecewise")


def _prune(model, name: str, keep: int | None = None, zero: bool = False):
    """Keep the ``keep`` largest singular values of W or U, or (``zero``) none (in place)."""
    matrix = getattr(model.rnn.cell, name)
    raw = matrix.parametrizations.sigma.original
    with torch.no_grad():
        if zero:  # STR threshold exp(s) above every |sigma|: rank 0
            matrix.parametrizations.sigma[0].s.fill_(math.log(raw.abs().max().item()) + 1)
        else:
            raw[raw.abs().argsort(descending=True)[keep:]] = 0
    return model


def _pruned(model, w=None, u=None, w_zero=False, u_zero=False):
    copy = build_model(
        make_config(
            "google12", overrides={"model": {"hidden": HIDDEN, "gates": model.rnn.cell.gates}}
        ).model,
        (STEPS, FEATURES),
        CLASSES,
    )
    copy.load_state_dict(model.state_dict())
    copy.eval()
    if w is not None or w_zero:
        _prune(copy, "W", w, w_zero)
    if u is not None or u_zero:
        _prune(copy, "U", u, u_zero)
    return copy


@torch.no_grad()
def _torch(model, x) -> np.ndarray:
    return model(x).numpy()


def _runner(c_dir: Path, report: dict, opt: str = "-O2"):
    integer = report["c"]["mode"] == "integer"
    return build_runner(c_dir, report["c"]["prefix"], integer, HIDDEN, CLASSES, opt)


def _c_logits(c_dir: Path, report: dict, x: torch.Tensor, per_frame=False, opt="-O2"):
    """Logits (and states) of the written C, as floats; integer mode rescaled from Q16."""
    runner = _runner(c_dir, report, opt)
    fmt = report["c"]["integer_format"]
    integer = report["c"]["mode"] == "integer"
    xin = quantize_input(x.numpy(), fmt["input_frac_bits"]) if integer else x.numpy()
    logits, states, _ = run_sequences(runner, xin, per_frame=per_frame)
    if integer:
        logits = logits / 2.0 ** fmt["logit_frac_bits"]
        states = None if states is None else states / 2.0 ** fmt["state_frac_bits"]
    return logits.astype(np.float64), states


# --------------------------------------------------------------------------- float32


def test_float_c_equals_torch_and_the_onnx_step_graph_frame_by_frame(trained, heldout, tmp_path):
    x, y = heldout
    model = _pruned(trained, w=3, u=5)
    report = export_c_model(model, tmp_path / "c", x, y, prefix="kws")
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["kws.c", "kws.h", "kws.json"]
    c = report["c"]
    assert c["ranks"]["W"]["kept"] == 3 and c["ranks"]["U"]["kept"] == 5
    logits, _ = _c_logits(tmp_path / "c", report, x)
    diff = np.abs(logits - _torch(model, x)).max()
    assert diff <= C_FLOAT_TOLERANCE == 1e-5
    assert c["modes"]["float32"]["max_abs_diff_vs_torch"] == pytest.approx(diff, abs=1e-7)
    compact, _ = compact_fastgrnn(model)
    compact_diff = np.abs(logits - _torch(compact, x)).max()  # the float32 weights the C holds
    assert compact_diff <= C_FLOAT_TOLERANCE
    assert c["modes"]["float32"]["max_abs_diff_vs_compact_torch"] == pytest.approx(
        compact_diff, abs=1e-7
    )
    assert c["accuracy"]["float32"] == pytest.approx(float((logits.argmax(1) == y.numpy()).mean()))

    # Frame by frame: the state and the logits after every frame equal the ONNX step graph's.
    export_model(model, tmp_path / "m.onnx", x, streaming=True)
    session = onnx_session(tmp_path / "m.step.onnx")
    n = 20
    per_frame, states = _c_logits(tmp_path / "c", report, x[:n], per_frame=True)
    h = np.zeros((n, HIDDEN), np.float32)
    for t in range(STEPS):
        outs = [
            session.run(None, {"x_t": x[i : i + 1, t].numpy(), "h": h[i : i + 1]}) for i in range(n)
        ]
        h = np.concatenate([o[0] for o in outs])
        onnx_logits = np.concatenate([o[1] for o in outs])
        assert np.abs(states[:, t] - h).max() <= 1e-5
        assert np.abs(per_frame[:, t] - onnx_logits).max() <= 1e-5


@pytest.mark.parametrize(
    "pruning, absent",
    [({"w_zero": True, "u": 4}, "W_"), ({"w": 3, "u_zero": True}, "U_"), ({"w": 3, "u": 20}, "")],
)
def test_rank_zero_matrix_leaves_no_code_and_runs(trained, heldout, tmp_path, pruning, absent):
    x, y = heldout
    model = _pruned(trained, **pruning)
    report = export_c_model(model, tmp_path, x, y)
    source = (tmp_path / "fastgrnn.c").read_text()
    if absent:
        assert f"fastgrnn_{absent}" not in source  # no array and no product for it
        assert report["c"]["ranks"][absent[0]]["stored_as"] == "zero"
    else:  # U kept 20 of 24 ranks: 20 (24 + 24) > 24 x 24, so it is stored dense
        assert report["c"]["ranks"]["U"]["stored_as"] == "dense"
        assert "fastgrnn_U_dense" in source and "fastgrnn_U_right" not in source
    logits, _ = _c_logits(tmp_path, report, x)
    assert np.abs(logits - _torch(model, x)).max() <= C_FLOAT_TOLERANCE
    modes = report["c"]["modes"]  # every export compiles and runs all three forms
    assert modes["int8"]["top1_agreement_vs_torch"] >= 0.9
    assert modes["integer"]["accuracy"] is not None and modes["integer"]["ram_bytes"] > 0


# --------------------------------------------------------------------------- int8, integer


def test_int8_and_integer_report_the_accuracy_the_compiled_c_gives(
    trained, trained_piecewise, heldout, tmp_path
):
    x, y = heldout
    for model, name in ((trained, "exact"), (trained_piecewise, "piecewise")):
        model = _pruned(model, w=4, u=6)
        reference_accuracy = float((_torch(model, x).argmax(1) == y.numpy()).mean())
        float_bytes = None
        for mode in ("float32", "int8", "integer"):
            c_dir = tmp_path / name / mode
            report = export_c_model(model, c_dir, x, y, mode=mode)
            c = report["c"]
            logits, _ = _c_logits(c_dir, report, x)
            accuracy = float((logits.argmax(1) == y.numpy()).mean())
            assert c["accuracy"][mode] == pytest.approx(accuracy)
            change = c["modes"][mode]["accuracy_change_vs_torch"]
            assert change == pytest.approx(accuracy - reference_accuracy)
            assert report["accuracy"]["torch"] == pytest.approx(reference_accuracy)
            if mode == "float32":
                float_bytes = c["weight_bytes"]
            else:  # int8 weights: well under half of float32's bytes
                assert c["weight_bytes"] < 0.5 * float_bytes
            if mode == "int8":
                assert abs(change) <= 0.03
            if mode == "integer" and name == "piecewise":  # trained for the integer gates
                assert abs(change) <= 0.05
                agree = c["modes"]["integer"]["top1_agreement_vs_torch"]
                assert agree >= 0.95


def test_integer_step_has_no_float(trained_piecewise, heldout, tmp_path):
    x, y = heldout
    export_c_model(_pruned(trained_piecewise, w=4, u=6), tmp_path, x, y, mode="integer")
    source = (tmp_path / "fastgrnn.c").read_text()
    header = (tmp_path / "fastgrnn.h").read_text()
    code = re.sub(r"/\*.*?\*/", "", source + header, flags=re.S)
    assert not re.search(r"\b(float|double)\b", code)
    assert "math.h" not in code
    obj = compile_object(host_compiler(), tmp_path / "fastgrnn.c", tmp_path / "m.o")
    undefined = subprocess.run(["nm", "-u", str(obj)], capture_output=True, text=True).stdout
    assert not re.search(r"\b(expf|tanhf|exp|tanh)\b", undefined)


# --------------------------------------------------------------------------- builds, header


@pytest.mark.parametrize("mode", ["float32", "int8", "integer"])
def test_werror_builds_and_header_figures_equal_the_report(trained, heldout, tmp_path, mode):
    x, y = heldout
    model = _pruned(trained, w=3, u=5)
    report = export_c_model(
        model, tmp_path, x, y, mode=mode, features=FEATURE_SETTINGS, class_names=["a", "b", "c"]
    )
    source = tmp_path / "fastgrnn.c"
    for opt in OPT_LEVELS:  # -std=c99 -Wall -Wextra -Werror -pedantic
        compile_object(host_compiler(), source, tmp_path / f"m{opt}.o", opt)
    if cross_compiler() is not None:
        compile_object(cross_compiler(), source, tmp_path / "m4.o", "-Os", CROSS_M4[1])
        assert report["c"]["modes"][mode]["target"] == "cortex-m4"
        assert report["c"]["modes"][mode]["sections"]["data"] == 0

    c = report["c"]
    header = (tmp_path / "fastgrnn.h").read_text()
    macs = re.search(r"MACs per frame: (\d+); head MACs per decision: (\d+)", header)
    assert (
        int(macs[1])
        == c["macs_per_frame"]
        == report["macs_per_step"]
        == model.cost().macs_per_step_compact
    )
    assert int(macs[2]) == c["head_macs"] == report["head_macs"]
    assert int(re.search(r"Bytes of weights: (\d+)", header)[1]) == c["weight_bytes"]
    for name, r in report["ranks"].items():
        assert f"{name} {r['kept']}/{r['full']} stored {r['stored_as']}" in header
    f = FEATURE_SETTINGS
    assert f"sample rate {f['sample_rate']} Hz, window 25 ms (400 samples), hop 10 ms" in header
    assert f"{f['n_mels']} mel bands, log(mel energy + 1e-06), {STEPS} frames" in header
    assert c["feature_settings"] == f
    # The bytes stated are the const arrays' (sizes from the compiler's view of the object).
    flash = c["modes"][mode]
    assert flash["flash_bytes"] >= c["weight_bytes"]
    sections = flash["sections"]
    assert flash["ram_bytes"] == c["state_bytes"] + sections["data"] + sections["bss"]
    assert sections["bss"] == 0  # no mutable globals: the state is the caller's
    saved = json.loads((tmp_path / "fastgrnn.json").read_text())
    assert saved["c"]["weight_bytes"] == c["weight_bytes"]


def test_refusals_write_nothing(trained, heldout, tmp_path):
    from edge_str.errors import EdgeStrError

    x, y = heldout
    model = _pruned(trained, w=3, u=5)
    (tmp_path / "file").write_text("")
    with pytest.raises(EdgeStrError, match="is a file"):
        export_c_model(model, tmp_path / "file", x, y)
    with pytest.raises(EdgeStrError, match="C identifier"):
        export_c_model(model, tmp_path / "c", x, y, prefix="2bad")
    assert not (tmp_path / "c").exists()


# --------------------------------------------------------------------------- the example

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "c_kws"


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
@pytest.mark.parametrize("mode", ["float32", "integer"])
def test_example_prints_the_class_of_each_utterance(trained, heldout, tmp_path, mode):
    x, y = heldout
    names = ["left", "right", "stop"]
    report = export_c_model(
        _pruned(trained, w=3, u=5), tmp_path / "c", x, y, mode=mode, prefix="kws", class_names=names
    )
    n = 6
    frames = tmp_path / "frames.txt"
    frames.write_text(
        "".join(
            "".join(" ".join(f"{v:.9g}" for v in row) + "\n" for row in seq) + "\n"
            for seq in x[:n].numpy()
        )
    )
    program = tmp_path / "kws"
    make = ["make", "-s", "-C", str(EXAMPLE), f"MODEL_DIR={tmp_path / 'c'}", "PREFIX=kws"]
    subprocess.run([*make, f"PROGRAM={program}"], check=True, capture_output=True)
    out = subprocess.run([str(program), str(frames)], check=True, capture_output=True, text=True)
    expected, _ = _c_logits(tmp_path / "c", report, x[:n])
    lines = out.stdout.strip().splitlines()
    assert len(lines) == n
    for i, (line, logits) in enumerate(zip(lines, expected)):
        best = int(logits.argmax())
        assert line.startswith(f"utterance {i}: class {best} ({names[best]}), logit ")
        assert float(line.rsplit(" ", 1)[1]) == pytest.approx(logits[best], abs=1e-3)
