"""ONNX export: compaction to the surviving ranks, parity with torch, streaming, int8, the CLI.

Every test builds a small FastGRNN, trains it a few steps on a learnable random task, forces
some singular values to zero (zeroing sigma entries, or raising the STR threshold s above all of
them) and exports it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch.nn.utils import parametrize

import edge_str.data
from edge_str.cli import main
from edge_str.config import make_config
from edge_str.export import export_model, export_run, pipeline, run_onnx, run_onnx_streaming
from edge_str.export.checks import check_graph, weight_bytes
from edge_str.export.fastgrnn_adapter import FLOAT_OPS, INT8_OPS, SCAN_OPS, graph_nodes_per_step
from edge_str.export.pipeline import PARITY_TOLERANCE
from edge_str.export.quantize import dequantized_model, int8_weight_bytes_estimate
from edge_str.export.runtime import default_session
from edge_str.models import build_model
from edge_str.run import BEST_CHECKPOINT, RunInfo, save_checkpoint, save_run_info
from tests._cli import refused
from tests._raw_features import feature_stats, raw_features

FEATURES, HIDDEN, STEPS, CLASSES = 8, 32, 6, 3
CLASS_NAMES = ["left", "right", "stop"]


def _data(n: int, seed: int, mean: torch.Tensor, std: torch.Tensor):
    return raw_features(n, seed, mean, std, STEPS, CLASSES)


@pytest.fixture(scope="module")
def stats():
    return feature_stats(FEATURES)


@pytest.fixture(scope="module")
def heldout(stats):
    return _data(300, seed=2, mean=stats[0], std=stats[1])


def _config(hidden: int = HIDDEN):
    cfg = make_config("google12", overrides={"model": {"hidden": hidden}})
    cfg.data_dir = ""  # no data on the test machine: the CLI falls back to random inputs
    return cfg


@pytest.fixture(scope="module")
def trained_state(stats):
    """A state_dict of a briefly trained STR FastGRNN (all ranks still alive)."""
    torch.manual_seed(0)
    model = build_model(_config().model, (STEPS, FEATURES), CLASSES)
    model.normalizer.set_statistics(*stats)
    x, y = _data(512, seed=3, mean=stats[0], std=stats[1])
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    for step in range(40):
        i = torch.arange(step * 64, step * 64 + 64) % len(x)
        loss = torch.nn.functional.cross_entropy(model(x[i]), y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _prune(model, name: str, keep: int | None = None, threshold_above_all: bool = False):
    """Zero all but the ``keep`` largest singular values of W or U (in place)."""
    matrix = getattr(model.rnn.cell, name)
    with torch.no_grad():
        if threshold_above_all:  # STR threshold exp(s) above every |sigma|: rank 0
            raw = matrix.parametrizations.sigma.original
            matrix.parametrizations.sigma[0].s.fill_(math.log(raw.abs().max().item()) + 1)
        else:
            raw = matrix.parametrizations.sigma.original
            order = raw.abs().argsort(descending=True)
            raw[order[keep:]] = 0
    return model


def _model(state, w=None, u=None, w_zero=False, u_zero=False):
    model = build_model(_config().model, (STEPS, FEATURES), CLASSES)
    model.load_state_dict(state)
    model.eval()
    if w is not None or w_zero:
        _prune(model, "W", w, threshold_above_all=w_zero)
    if u is not None or u_zero:
        _prune(model, "U", u, threshold_above_all=u_zero)
    return model


def _make_run(path: Path, model, hidden: int = HIDDEN) -> Path:
    path.mkdir(parents=True)
    save_run_info(path, RunInfo(_config(hidden), CLASS_NAMES, (STEPS, FEATURES)))
    save_checkpoint(path / BEST_CHECKPOINT, {"model": model.state_dict(), "epoch": 3})
    return path


def _inits(path) -> dict[str, list[int]]:
    return {t.name: list(t.dims) for t in onnx.load(str(path)).graph.initializer}


@torch.no_grad()
def _torch(model, x) -> np.ndarray:
    return model(x).numpy()


def _matmul_weights(path) -> list[str]:
    model = onnx.load(str(path))
    return [n.input[1] for n in model.graph.node if n.op_type == "MatMul"]


# --------------------------------------------------------------------------- compaction


def test_initializers_have_the_surviving_inner_dimensions(trained_state, heldout, tmp_path):
    model = _model(trained_state, w=3, u=5)
    assert model.effective_ranks() == {"W": 3, "U": 5}
    report = export_model(model, tmp_path / "m.onnx", *heldout)
    inits = _inits(tmp_path / "m.onnx")
    # W (32 x 8) at rank 3: 3·(32 + 8) = 120 < 256 -> factored; U (32 x 32) at 5: 320 < 1024.
    assert inits["W.right_t"] == [FEATURES, 3] and inits["W.left_t"] == [3, HIDDEN]
    assert inits["U.right_t"] == [HIDDEN, 5] and inits["U.left_t"] == [5, HIDDEN]
    assert "W.weight_t" not in inits and "U.weight_t" not in inits
    assert report["ranks"]["W"] == {
        "kept": 3,
        "full": 8,
        "stored_as": "factored",
        "shape": [HIDDEN, FEATURES],
        "params": 3 * (HIDDEN + FEATURES),
    }
    assert report["ranks"]["U"]["kept"] == 5 and report["ranks"]["U"]["full"] == HIDDEN
    cost = model.cost()
    assert report["params"] == cost.params_compact
    assert report["macs_per_step"] == cost.macs_per_step_compact
    assert report["macs_per_step"] == 3 * 40 + 5 * 64 + 3 * HIDDEN
    assert report["macs_per_step_dense"] == HIDDEN * FEATURES + HIDDEN * HIDDEN + 3 * HIDDEN
    # Weights are stored once: U's two factors are read by every step after the first.
    weights = _matmul_weights(tmp_path / "m.onnx")
    assert weights.count("U.right_t") == STEPS - 1 and weights.count("U.left_t") == STEPS - 1
    assert weights.count("W.right_t") == 1  # W x for all steps in one product
    assert len(onnx.load(str(tmp_path / "m.onnx")).graph.initializer) == len(inits)
    assert report["weight_bytes"]["float32"] == sum(
        4 * int(np.prod(d)) for n, d in inits.items() if not n.startswith("const")
    ) + sum(8 * int(np.prod(d)) for n, d in inits.items() if n.startswith("const"))


def test_dense_fallback_where_factors_are_not_smaller(trained_state, heldout, tmp_path):
    # W at rank 6: 6·(32 + 8) = 240 < 256 stays factored; rank 7: 280 >= 256 -> dense.
    # U at rank 16: 16·64 = 1024 >= 1024 (the boundary) -> dense.
    model = _model(trained_state, w=7, u=16)
    report = export_model(model, tmp_path / "d.onnx", *heldout)
    inits = _inits(tmp_path / "d.onnx")
    assert inits["W.weight_t"] == [FEATURES, HIDDEN] and inits["U.weight_t"] == [HIDDEN, HIDDEN]
    assert not any(n.endswith(("right_t", "left_t")) for n in inits)
    assert report["ranks"]["W"]["stored_as"] == "dense" and report["ranks"]["W"]["kept"] == 7
    assert report["ranks"]["U"]["stored_as"] == "dense" and report["ranks"]["U"]["kept"] == 16
    assert report["macs_per_step"] == report["macs_per_step_dense"]
    assert report["max_abs_diff"] <= PARITY_TOLERANCE

    model = _model(trained_state, w=6, u=15)
    export_model(model, tmp_path / "f.onnx", *heldout)
    inits = _inits(tmp_path / "f.onnx")
    assert inits["W.right_t"] == [FEATURES, 6] and inits["U.right_t"] == [HIDDEN, 15]


# --------------------------------------------------------------------------- parity


def test_onnxruntime_matches_the_parametrized_torch_model(trained_state, heldout, tmp_path):
    x, y = heldout
    model = _model(trained_state, w=3, u=5)
    before = _torch(model, x)
    report = export_model(model, tmp_path / "m.onnx", x, y)
    # The original model is untouched (still parametrized, same outputs).
    assert parametrize.is_parametrized(model.rnn.cell.U, "sigma")
    np.testing.assert_array_equal(_torch(model, x), before)
    logits = run_onnx(tmp_path / "m.onnx", x)
    diff = np.abs(logits - before).max()
    assert diff <= PARITY_TOLERANCE
    assert (logits.argmax(1) == before.argmax(1)).all()
    assert report["max_abs_diff"] == pytest.approx(diff, abs=1e-7)
    assert report["top1_agreement"] == 1.0
    # The model learned something, and the reported accuracies are the measured ones.
    accuracy = float((logits.argmax(1) == y.numpy()).mean())
    assert accuracy > 0.5
    assert report["accuracy"]["onnx"] == pytest.approx(accuracy)
    assert report["accuracy"]["torch"] == pytest.approx(
        float((before.argmax(1) == y.numpy()).mean())
    )
    # Any batch size works with the default dynamic batch.
    np.testing.assert_allclose(run_onnx(tmp_path / "m.onnx", x[:1]), before[:1], atol=1e-4)


def test_fully_pruned_u_leaves_the_graph(trained_state, heldout, tmp_path):
    model = _model(trained_state, w=3, u_zero=True)  # STR threshold on U above every sigma
    assert model.effective_ranks()["U"] == 0
    report = export_model(model, tmp_path / "u0.onnx", *heldout)
    graph = onnx.load(str(tmp_path / "u0.onnx")).graph
    names = {t.name for t in graph.initializer}
    assert not any(n.startswith("U.") for n in names)
    assert not any(i.startswith("U.") for n in graph.node for i in n.input)
    # Only W (two factors, once for the whole sequence) and the head multiply.
    assert _matmul_weights(tmp_path / "u0.onnx") == ["W.right_t", "W.left_t", "head_weight_t"]
    assert report["ranks"]["U"] == {
        "kept": 0,
        "full": HIDDEN,
        "stored_as": "zero",
        "shape": [HIDDEN, HIDDEN],
        "params": 0,
    }
    assert report["macs_per_step"] == 3 * 40 + 3 * HIDDEN
    reference = _torch(model, heldout[0])
    logits = run_onnx(tmp_path / "u0.onnx", heldout[0])
    assert np.abs(logits - reference).max() <= PARITY_TOLERANCE
    assert (logits.argmax(1) == reference.argmax(1)).all()


def test_fully_pruned_w_leaves_the_graph(trained_state, heldout, tmp_path):
    model = _model(trained_state, w_zero=True, u=5)
    report = export_model(model, tmp_path / "w0.onnx", *heldout, streaming=True)
    for path in (tmp_path / "w0.onnx", tmp_path / "w0.step.onnx"):
        graph = onnx.load(str(path)).graph
        assert not any(t.name.startswith("W.") for t in graph.initializer)
        assert not any(i.startswith("W.") for n in graph.node for i in n.input)
    assert report["warnings"] and "rank 0" in report["warnings"][0]
    x = heldout[0]
    reference = _torch(model, x)
    logits = run_onnx(tmp_path / "w0.onnx", x)
    assert logits.shape == (len(x), CLASSES)
    assert np.abs(logits - reference).max() <= PARITY_TOLERANCE
    # The step graph keeps its x_t input although nothing reads it.
    step_inputs = [i.name for i in onnx.load(str(tmp_path / "w0.step.onnx")).graph.input]
    assert step_inputs == ["x_t", "h"]
    assert np.abs(run_onnx_streaming(tmp_path / "w0.step.onnx", x[:5]) - reference[:5]).max() < 1e-4


# --------------------------------------------------------------------------- nodes per step


@pytest.mark.parametrize(
    ("w", "u", "per_step"),
    [
        (3, 5, 10),  # U factored: two thin products (s Uᵀ = (s Rᵀ) Lᵀ); was 11
        (3, 16, 9),  # U stored dense (16 ranks: factors not smaller): one product; was 10
        (None, None, 9),  # every rank kept: W and U dense; was 10
    ],
)
def test_nodes_per_step_are_bounded(trained_state, heldout, tmp_path, w, u, per_step):
    """At batch 1 onnxruntime's time is per-node overhead x nodes, so the step stays small:
    b_z is folded into the one input product, b_h enters as b_h - b_z on the gate's
    pre-activation, the steps come from one Flatten + Split with no Squeeze per step, and the
    state is h / sigmoid(zeta), so the update is z ⊙ (s - h~) + κ h~ (4 nodes, not 5)."""
    model = _model(trained_state, w=w, u=u)
    assert graph_nodes_per_step(model) == per_step
    report = export_model(model, tmp_path / "n.onnx", heldout[0][:32], streaming=True)
    graph = onnx.load(str(tmp_path / "n.onnx")).graph
    kinds = [n.op_type for n in graph.node]
    assert "Squeeze" not in kinds and "Unsqueeze" not in kinds
    assert kinds.count("Split") == 1 and kinds.count("Flatten") == 1
    assert kinds.count("Sigmoid") == kinds.count("Tanh") == STEPS
    # fixed part (Sub, Div, W product(s), + b_z, Flatten, Split, head MatMul + Add), the first
    # step (no U h and no z ⊙ h), then STEPS - 1 steps
    w_products = 1 if report["ranks"]["W"]["stored_as"] == "dense" else 2
    fixed = 2 + w_products + 1 + 2 + 2
    first_step = 5  # Sigmoid, Add, Tanh, Sub, Mul: (κ - z) ⊙ h~, no U s and no z ⊙ s
    assert len(graph.node) == fixed + first_step + (STEPS - 1) * per_step
    assert report["graph_nodes"] == len(graph.node)
    # the bias of the update path is stored once, as b_h - b_z
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
    cell = model.rnn.cell
    expected = (cell.bias_update - cell.bias_gate).detach().numpy()
    np.testing.assert_array_equal(inits["bias_delta"], expected)
    assert "bias_update" not in inits
    # the state is s = h / ζ: κ = 1 + sigmoid(nu) / ζ is the update's one scalar
    zeta, nu = torch.sigmoid(cell.zeta).item(), torch.sigmoid(cell.nu).item()
    np.testing.assert_allclose(inits["kappa"], [1 + nu / zeta], rtol=1e-6)
    assert report["streaming"]["state_scale"] == pytest.approx(zeta)
    assert report["max_abs_diff"] <= PARITY_TOLERANCE
    assert report["streaming"]["max_abs_diff"] <= PARITY_TOLERANCE


# --------------------------------------------------------------------------- Scan loop form


def _loop_body(path) -> onnx.GraphProto:
    (scan,) = [n for n in onnx.load(str(path)).graph.node if n.op_type == "Scan"]
    return onnx.helper.get_attribute_value(scan.attribute[0])


def test_scan_loop_computes_what_the_unrolled_graph_does(trained_state, heldout, tmp_path):
    x, y = heldout
    model = _model(trained_state, w=3, u=5)
    unrolled = export_model(model, tmp_path / "u.onnx", x, y)
    report = export_model(model, tmp_path / "s.onnx", x, y, loop="scan", int8=True, streaming=True)
    assert unrolled["loop"] == "unrolled" and unrolled["loop_body_nodes"] is None
    assert report["loop"] == "scan"
    loaded = onnx.load(str(tmp_path / "s.onnx"))
    onnx.checker.check_model(loaded, full_check=True)
    kinds = [n.op_type for n in loaded.graph.node]
    assert kinds.count("Scan") == 1 and kinds.count("Sigmoid") == 1  # first step outside
    body = _loop_body(tmp_path / "s.onnx")
    # the loop body is one step of the unrolled graph, node for node
    assert len(body.node) == report["loop_body_nodes"] == graph_nodes_per_step(model)
    assert set(report["op_types"]) <= SCAN_OPS
    assert [n.input[1] for n in body.node if n.op_type == "MatMul"] == ["U.right_t", "U.left_t"]
    # same weights (int64 index constants aside), stored once; the file no longer grows with T
    weights = {k: v for k, v in _inits(tmp_path / "s.onnx").items() if not k.startswith("const")}
    assert weights == {
        k: v for k, v in _inits(tmp_path / "u.onnx").items() if not k.startswith("const")
    }
    assert report["file_bytes"]["onnx"] < unrolled["file_bytes"]["onnx"]
    logits = run_onnx(tmp_path / "s.onnx", x)
    np.testing.assert_allclose(logits, run_onnx(tmp_path / "u.onnx", x), atol=1e-5)
    assert report["max_abs_diff"] <= PARITY_TOLERANCE and report["top1_agreement"] == 1.0
    assert report["accuracy"]["onnx"] == unrolled["accuracy"]["onnx"]
    # int8: the body's products read dequantized weights (outer scope), stored as int8
    int8_model = onnx.load(str(tmp_path / "s.int8.onnx"))
    stored = {t.name: t for t in int8_model.graph.initializer}
    assert stored["U.left_t_q"].data_type == onnx.TensorProto.INT8 and "U.left_t" not in stored
    assert report["int8"]["top1_agreement_vs_float"] >= 0.9
    assert report["file_bytes"]["int8"] < report["file_bytes"]["onnx"]
    # the streaming step graph does not depend on the loop form
    assert report["streaming"]["max_abs_diff"] <= PARITY_TOLERANCE


def test_scan_loop_without_u_and_refusals(trained_state, heldout, tmp_path):
    x = heldout[0][:32]
    model = _model(trained_state, w=3, u_zero=True)
    report = export_model(model, tmp_path / "u0.onnx", x, loop="scan", fixed_batch=4)
    body = _loop_body(tmp_path / "u0.onnx")
    assert "MatMul" not in {n.op_type for n in body.node}  # U h vanished
    assert report["max_abs_diff"] <= PARITY_TOLERANCE
    loaded = onnx.load(str(tmp_path / "u0.onnx"))
    assert [d.dim_value for d in loaded.graph.input[0].type.tensor_type.shape.dim] == [
        4,
        STEPS,
        FEATURES,
    ]
    with pytest.raises(edge_str.EdgeStrError, match="--loop scan: W has rank 0"):
        export_model(_model(trained_state, w_zero=True, u=5), tmp_path / "w0.onnx", x, loop="scan")
    with pytest.raises(edge_str.EdgeStrError, match="--loop while"):
        export_model(model, tmp_path / "b.onnx", x, loop="while")
    assert not list(tmp_path.glob("w0*")) and not list(tmp_path.glob("b.*"))


def test_cli_exports_a_scan_loop(trained_state, tmp_path, capsys, monkeypatch):
    monkeypatch.delattr(edge_str.data, "load_task", raising=False)
    run = _make_run(tmp_path / "run", _model(trained_state, w=3, u=5))
    out = tmp_path / "scan.onnx"
    assert main(["export", str(run), "--out", str(out), "--loop", "scan"]) == 0
    report = json.loads((tmp_path / "scan.json").read_text())
    assert report["loop"] == "scan" and report["max_abs_diff"] <= PARITY_TOLERANCE
    capsys.readouterr()
    zero = _make_run(tmp_path / "zero", _model(trained_state, w_zero=True, u=5))
    message = refused(["export", str(zero), "--out", str(out), "--loop", "scan"], capsys)
    assert "W has rank 0" in message


# --------------------------------------------------------------------------- streaming


def test_streaming_step_graph_matches_the_sequence_graph(trained_state, heldout, tmp_path):
    model = _model(trained_state, w=3, u=5)
    x = heldout[0][:20]
    report = export_model(model, tmp_path / "s.onnx", x, streaming=True)
    step_path = tmp_path / "s.step.onnx"
    session = ort.InferenceSession(str(step_path), providers=["CPUExecutionProvider"])
    shapes = {i.name: i.shape for i in session.get_inputs()}
    assert shapes == {"x_t": [1, FEATURES], "h": [1, HIDDEN]}
    assert [o.name for o in session.get_outputs()] == ["h_next", "logits"]
    sequence = run_onnx(tmp_path / "s.onnx", x)
    for i in range(len(x)):  # frame by frame, feeding h back, as a device does
        h = np.zeros((1, HIDDEN), np.float32)
        for t in range(STEPS):
            h, logits = session.run(None, {"x_t": x[i : i + 1, t].numpy(), "h": h})
        np.testing.assert_allclose(logits[0], sequence[i], atol=1e-5)
    assert report["streaming"]["top1_agreement"] == 1.0
    assert report["streaming"]["max_abs_diff"] <= PARITY_TOLERANCE
    assert report["step_onnx"] == str(step_path)
    assert report["file_bytes"]["step"] == step_path.stat().st_size
    # One step has one product per factor, whatever T is.
    assert sorted(_matmul_weights(step_path)) == sorted(
        ["W.right_t", "W.left_t", "U.right_t", "U.left_t", "head_weight_t"]
    )


# --------------------------------------------------------------------------- int8


def test_int8_is_smaller_and_reports_its_accuracy_change(trained_state, heldout, tmp_path):
    x, y = heldout
    model = _model(trained_state, w=7, u=16)  # dense storage: the most weight bytes to save
    report = export_model(model, tmp_path / "q.onnx", x, y, int8=True, streaming=True)
    float_path, int8_path = tmp_path / "q.onnx", tmp_path / "q.int8.onnx"
    step_path, step_int8_path = tmp_path / "q.step.onnx", tmp_path / "q.step.int8.onnx"
    assert int8_path.stat().st_size < float_path.stat().st_size
    assert step_int8_path.stat().st_size < step_path.stat().st_size
    float_model, int8_model = onnx.load(str(float_path)), onnx.load(str(int8_path))
    assert weight_bytes(int8_model) < weight_bytes(float_model) / 2
    assert report["weight_bytes"] == {
        "float32": weight_bytes(float_model),
        "int8": weight_bytes(int8_model),
    }
    assert report["weight_bytes"]["int8"] == int8_weight_bytes_estimate(float_model)
    assert report["file_bytes"]["int8"] == int8_path.stat().st_size
    int8_types = {n.op_type for n in int8_model.graph.node}
    assert "DequantizeLinear" in int8_types and int8_types <= INT8_OPS
    matmul_weights = {n.input[1] for n in int8_model.graph.node if n.op_type == "MatMul"}
    stored = {t.name: t for t in int8_model.graph.initializer}
    assert not matmul_weights & set(stored)  # every matrix comes out of a DequantizeLinear
    assert all(stored[f"{w}_q"].data_type == onnx.TensorProto.INT8 for w in matmul_weights)
    assert all(n.domain in ("", "ai.onnx") for n in int8_model.graph.node)
    # The reported accuracies and their change are what the files give on the test split.
    acc_float = float((run_onnx(float_path, x).argmax(1) == y.numpy()).mean())
    acc_int8 = float((run_onnx(int8_path, x).argmax(1) == y.numpy()).mean())
    assert report["accuracy"]["onnx"] == pytest.approx(acc_float)
    assert report["accuracy"]["int8"] == pytest.approx(acc_int8)
    assert report["accuracy"]["int8_change"] == pytest.approx(acc_int8 - acc_float)
    assert abs(acc_int8 - acc_float) <= abs(report["accuracy"]["int8_change"]) + 1e-12
    assert 0 < report["int8"]["max_abs_diff_vs_float"] < 0.5
    assert report["int8"]["top1_agreement_vs_float"] >= 0.9


def test_int8_file_runs_as_float_math_on_dequantized_weights(trained_state, heldout, tmp_path):
    """onnx_session runs a weight-only int8 file as what it means: the weights dequantized
    once (at load), then float math. (Left to its QDQ rewrites, onnxruntime copies each
    DequantizeLinear for every step's product and runs some products in its own quantized
    kernels: slower, and a few 1e-2 off the dequantized-weight logits.)"""
    x = heldout[0][:64]
    export_model(_model(trained_state, w=3, u=5), tmp_path / "q.onnx", x, int8=True)
    int8_model = onnx.load(str(tmp_path / "q.int8.onnx"))
    graph = int8_model.graph
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
    dequantized = []
    for node in graph.node:
        if node.op_type == "DequantizeLinear":
            q, scale, zero = (inits[i] for i in node.input)
            values = (q.astype(np.float32) - np.float32(zero)) * scale
            dequantized.append(onnx.numpy_helper.from_array(values, node.output[0]))
    float_nodes = [n for n in graph.node if n.op_type != "DequantizeLinear"]
    del graph.node[:]
    graph.node.extend(float_nodes)
    graph.initializer.extend(dequantized)
    onnx.save(int8_model, str(tmp_path / "dq.onnx"))
    np.testing.assert_allclose(
        run_onnx(tmp_path / "q.int8.onnx", x), run_onnx(tmp_path / "dq.onnx", x), atol=1e-5
    )


def test_fixed_batch_and_opset(trained_state, heldout, tmp_path):
    model = _model(trained_state, w=3, u=5)
    x = heldout[0][:10]
    export_model(model, tmp_path / "b.onnx", x, fixed_batch=4, opset=17, streaming=True)
    loaded = onnx.load(str(tmp_path / "b.onnx"))
    dims = [d.dim_value for d in loaded.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [4, STEPS, FEATURES]
    assert {o.domain: o.version for o in loaded.opset_import}[""] == 17
    step = onnx.load(str(tmp_path / "b.step.onnx"))
    assert [d.dim_value for d in step.graph.input[1].type.tensor_type.shape.dim] == [4, HIDDEN]
    # run_onnx feeds 10 examples to a batch-4 graph in padded chunks.
    np.testing.assert_allclose(run_onnx(tmp_path / "b.onnx", x), _torch(model, x), atol=1e-4)


# --------------------------------------------------------------------------- graph hygiene


def test_only_standard_ops_and_no_debug_metadata(trained_state, heldout, tmp_path):
    model = _model(trained_state, w=3, u=5)
    export_model(model, tmp_path / "g.onnx", heldout[0][:8], streaming=True)
    for path in (tmp_path / "g.onnx", tmp_path / "g.step.onnx"):
        loaded = onnx.load(str(path))
        onnx.checker.check_model(loaded, full_check=True)
        types = {n.op_type for n in loaded.graph.node}
        assert types <= FLOAT_OPS, types - FLOAT_OPS
        assert {"MatMul", "Sigmoid", "Tanh"} <= types
        assert all(n.domain == "" for n in loaded.graph.node)
        assert all(o.domain in ("", "ai.onnx") for o in loaded.opset_import)
        assert not any(n.name or n.doc_string or n.metadata_props for n in loaded.graph.node)
        assert not loaded.graph.value_info and not loaded.doc_string and not loaded.graph.doc_string
        props = {p.key for p in loaded.metadata_props}
        assert props == {"edge_str.graph", "edge_str.class_names"} or props == {"edge_str.graph"}
        # All weights inside the one file.
        assert all(t.data_location == onnx.TensorProto.DEFAULT for t in loaded.graph.initializer)
        assert not [p for p in tmp_path.iterdir() if p.suffix not in (".onnx", ".json")]


def test_int8_is_also_measured_as_plain_dequantized_math_and_as_onnxruntime_fuses_it(
    trained_state, heldout, tmp_path
):
    """FILE.json's int8 part gives the file against the plain arithmetic on w = (q - zero) ·
    scale (what C computes) and against onnxruntime's default session (its QDQ fusion)."""
    x, y = heldout[0][:64], heldout[1][:64]
    report = export_model(_model(trained_state, w=3, u=5), tmp_path / "q.onnx", x, y, int8=True)
    int8_path = tmp_path / "q.int8.onnx"
    plain = dequantized_model(onnx.load(str(int8_path)))
    onnx.save(plain, str(tmp_path / "plain.onnx"))
    assert "DequantizeLinear" not in {n.op_type for n in plain.graph.node}
    plain_logits = run_onnx(tmp_path / "plain.onnx", x)
    fused_logits = run_onnx(int8_path, x, session=default_session(int8_path))
    file_logits = run_onnx(int8_path, x)
    figures = report["int8"]
    assert figures["plain_dequantized"]["max_abs_diff_vs_file"] == pytest.approx(
        float(np.abs(file_logits - plain_logits).max()), abs=1e-7
    )
    assert figures["plain_dequantized"]["max_abs_diff_vs_file"] <= 1e-5
    acc_plain = float((plain_logits.argmax(1) == y.numpy()).mean())
    acc_fused = float((fused_logits.argmax(1) == y.numpy()).mean())
    assert figures["plain_dequantized"]["accuracy"] == pytest.approx(acc_plain)
    assert figures["onnxruntime_default"]["accuracy"] == pytest.approx(acc_fused)
    assert figures["onnxruntime_default"]["max_abs_diff_vs_plain_dequantized"] == pytest.approx(
        float(np.abs(fused_logits - plain_logits).max()), abs=1e-7
    )
    assert figures["weights_quantized"] == sum(
        n.op_type == "DequantizeLinear" for n in onnx.load(str(int8_path)).graph.node
    )


def test_the_op_check_refuses_nonstandard_ops():
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2])
    for node, opsets in (
        (onnx.helper.make_node("Relu", ["x"], ["y"]), [("", 13)]),
        (
            onnx.helper.make_node("Gelu", ["x"], ["y"], domain="com.microsoft"),
            [("", 13), ("com.microsoft", 1)],
        ),
    ):
        graph = onnx.helper.make_graph([node], "g", [x], [y])
        model = onnx.helper.make_model(
            graph, opset_imports=[onnx.helper.make_opsetid(d, v) for d, v in opsets]
        )
        with pytest.raises(edge_str.EdgeStrError, match="outside the standard set"):
            check_graph(model, FLOAT_OPS, "g.onnx")
    tanh = onnx.helper.make_graph([onnx.helper.make_node("Tanh", ["x"], ["y"])], "g", [x], [y])
    check_graph(
        onnx.helper.make_model(tanh, opset_imports=[onnx.helper.make_opsetid("", 13)]),
        FLOAT_OPS,
        "g.onnx",
    )


def test_normalisation_is_inside_the_graph(trained_state, stats, heldout, tmp_path):
    model = _model(trained_state, w=3, u=5)
    export_model(model, tmp_path / "n.onnx", heldout[0][:8])
    loaded = onnx.load(str(tmp_path / "n.onnx"))
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in loaded.graph.initializer}
    np.testing.assert_array_equal(inits["mean"], stats[0].numpy())
    np.testing.assert_array_equal(inits["std"], model.normalizer.std.numpy())
    first = loaded.graph.node[:2]
    assert [n.op_type for n in first] == ["Sub", "Div"]
    assert list(first[0].input) == ["features", "mean"] and first[1].input[1] == "std"
    x = heldout[0][:16]
    raw = run_onnx(tmp_path / "n.onnx", x)
    np.testing.assert_allclose(raw, _torch(model, x), atol=1e-4)
    # Fed already-normalised features, the file normalises again and gives other logits.
    normalised = model.normalizer(x)
    assert np.abs(run_onnx(tmp_path / "n.onnx", normalised) - raw).max() > 1e-2


# --------------------------------------------------------------------------- failure is atomic


def test_failed_check_writes_nothing(trained_state, heldout, tmp_path, monkeypatch):
    model = _model(trained_state, w=3, u=5)
    out = tmp_path / "out"
    monkeypatch.setattr(pipeline, "PARITY_TOLERANCE", -1.0)  # no diff can pass
    with pytest.raises(edge_str.EdgeStrError, match="disagrees with torch"):
        export_model(model, out / "m.onnx", heldout[0][:8], int8=True, streaming=True)
    assert list(out.iterdir()) == []  # no files, no temporary folders left behind


# --------------------------------------------------------------------------- command line


def test_cli_exports_a_run(trained_state, tmp_path, capsys, monkeypatch):
    monkeypatch.delattr(edge_str.data, "load_task", raising=False)
    run = _make_run(tmp_path / "run", _model(trained_state, w=3, u=5))
    out = tmp_path / "exp" / "kws.onnx"
    assert main(["export", str(run), "--out", str(out), "--streaming", "--int8"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"exported {out}: ranks W 3/8, U 5/32")
    assert "random held-out inputs" in lines[0]
    assert "parity checked on random inputs" in captured.err
    report = json.loads((tmp_path / "exp" / "kws.json").read_text())
    for name in ("kws.onnx", "kws.step.onnx", "kws.int8.onnx", "kws.step.int8.onnx"):
        assert (tmp_path / "exp" / name).is_file()
    assert report["file_bytes"]["onnx"] == out.stat().st_size
    assert report["heldout"] == {
        "source": "random",
        "examples": 64,
        "note": "no data folder (pass --data DIR)",
    }
    assert report["accuracy"] == {"torch": None, "onnx": None, "int8": None, "int8_change": None}
    assert report["class_names"] == CLASS_NAMES and report["task"] == "google12"
    assert report["max_abs_diff"] <= PARITY_TOLERANCE and report["top1_agreement"] == 1.0
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(meta["edge_str.class_names"]) == CLASS_NAMES
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp files


def test_cli_uses_the_test_split_through_load_task(trained_state, heldout, tmp_path, monkeypatch):
    x, y = heldout
    calls = []

    class FakeTask:
        def split_tensors(self, split):
            calls.append(split)
            return x, y

    def load_task(task, data_dir, data_config):
        assert task == "google12" and Path(data_dir) == tmp_path / "data"
        assert isinstance(data_config, edge_str.data.DataConfig)
        return FakeTask()

    monkeypatch.setattr(edge_str.data, "load_task", load_task, raising=False)
    (tmp_path / "data").mkdir()
    model = _model(trained_state, w=3, u=5)
    run = _make_run(tmp_path / "run", model)
    out = tmp_path / "m.onnx"
    assert main(["export", str(run), "--out", str(out), "--data", str(tmp_path / "data")]) == 0
    assert calls == ["test"]
    report = json.loads((tmp_path / "m.json").read_text())
    accuracy = float((run_onnx(out, x).argmax(1) == y.numpy()).mean())
    assert report["accuracy"]["onnx"] == pytest.approx(accuracy)
    assert report["heldout"]["examples"] == len(x)
    assert report["heldout"]["source"].startswith("test split")
    assert report["heldout"]["note"] is None

    # A run that cannot be exported is refused before any data is read.
    zero = _make_run(tmp_path / "zero", _model(trained_state, w_zero=True, u_zero=True))
    args = ["export", str(zero), "--out", str(out), "--data", str(tmp_path / "data")]
    assert main(args) == 2
    assert calls == ["test"]


def test_export_run_api(trained_state, heldout, tmp_path):
    run = _make_run(tmp_path / "run", _model(trained_state, w=3, u=5))
    report = export_run(run, tmp_path / "api.onnx", *heldout, streaming=True)
    assert report["ranks"]["W"]["kept"] == 3 and report["accuracy"]["onnx"] is not None
    assert json.loads((tmp_path / "api.json").read_text()) == report
    assert report["heldout"] == {"source": "given", "examples": len(heldout[0]), "note": None}

    # Held-out data fetched lazily, only for a run that can be exported.
    asked = []

    def no_data(info):
        asked.append(info.config.task)
        return None, None, "no test split here"

    report = export_run(run, tmp_path / "lazy.onnx", heldout=no_data)
    assert asked == ["google12"]
    assert report["heldout"] == {"source": "random", "examples": 64, "note": "no test split here"}
    assert report["accuracy"]["onnx"] is None
    zero = _make_run(tmp_path / "zero", _model(trained_state, w_zero=True, u_zero=True))
    with pytest.raises(edge_str.EdgeStrError, match="nothing to export"):
        export_run(zero, tmp_path / "z.onnx", heldout=no_data)
    with pytest.raises(edge_str.EdgeStrError, match="--opset"):
        export_run(run, tmp_path / "o.onnx", heldout=no_data, opset=7)
    assert asked == ["google12"]


def test_cli_refusals(trained_state, tmp_path, capsys):
    out = str(tmp_path / "o" / "x.onnx")
    assert "no such run directory" in refused(
        ["export", str(tmp_path / "nope"), "--out", out], capsys
    )

    no_ckpt = tmp_path / "no_ckpt"
    no_ckpt.mkdir()
    save_run_info(no_ckpt, RunInfo(_config(), CLASS_NAMES, (STEPS, FEATURES)))
    assert "no checkpoint" in refused(["export", str(no_ckpt), "--out", out], capsys)

    no_config = tmp_path / "no_config"
    no_config.mkdir()
    assert "config.json: missing" in refused(["export", str(no_config), "--out", out], capsys)

    all_zero = _make_run(tmp_path / "zero", _model(trained_state, w_zero=True, u_zero=True))
    assert "nothing to export" in refused(["export", str(all_zero), "--out", out], capsys)

    # config says hidden 16, the weights are hidden 32
    mismatch = tmp_path / "mismatch"
    _make_run(mismatch, _model(trained_state))
    save_run_info(mismatch, RunInfo(_config(16), CLASS_NAMES, (STEPS, FEATURES)))
    assert "do not match" in refused(["export", str(mismatch), "--out", out], capsys)

    good = _make_run(tmp_path / "good", _model(trained_state, w=3, u=5))
    assert "must end in .onnx" in refused(
        ["export", str(good), "--out", str(tmp_path / "x.bin")], capsys
    )
    assert "--opset 9" in refused(["export", str(good), "--out", out, "--opset", "9"], capsys)
    assert "--fixed-batch 0" in refused(
        ["export", str(good), "--out", out, "--fixed-batch", "0"], capsys
    )
    assert "no such folder" in refused(
        ["export", str(good), "--out", out, "--data", str(tmp_path / "nodata")], capsys
    )
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())
