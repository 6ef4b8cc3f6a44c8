"""ONNX export of sparse CNNs: parity, standard ops, layer names, storage figures, int8, refusals.

Models are small DS-CNNs / ResNets with GMP masks pruned to fixed fractions (deterministic
sparsity) or STR thresholds raised by hand, and random (but trained-looking) BatchNorm
statistics so that folding BN into the convolutions is exercised.
"""

from __future__ import annotations

import json
import math

import numpy as np
import onnx
import pytest
import torch
from onnx import helper, numpy_helper
from torch import nn
from torch.nn.utils import parametrize

import edge_str.data
from edge_str.cli import main
from edge_str.cnn.sparsity import prepare_sparsity
from edge_str.config import make_config
from edge_str.errors import EdgeStrError
from edge_str.export import export_cnn_model, export_model, pipeline, run_onnx
from edge_str.export.cnn_adapter import CNN_FLOAT_OPS, CNN_INT8_OPS
from edge_str.export.passes import fold_constants, fuse_pad_into_conv
from edge_str.export.pipeline import PARITY_TOLERANCE
from edge_str.fastgrnn import FastGRNNClassifier
from edge_str.models import build_model
from edge_str.parametrization import threshold_parameters
from edge_str.run import BEST_CHECKPOINT, RunInfo, save_checkpoint, save_run_info
from tests._cli import refused

KWS_SHAPE, IMAGE_SHAPE, CLASSES = (99, 32), (8, 8, 1), 12


def _config(arch="dscnn", **model):
    defaults = {"dscnn": {"width": 0.25}, "resnet": {"depth": 10, "width": 0.125}}[arch]
    cfg = make_config("google12", overrides={"model": {"arch": arch, **defaults, **model}})
    cfg.data_dir = ""  # no data: the CLI falls back to random inputs
    return cfg


def _model(cfg, shape, prune: float | None = 0.8, seed: int = 0):
    """A CNN with trained-looking BN statistics; GMP pruned to ``prune`` in every masked layer."""
    torch.manual_seed(seed)
    model = build_model(cfg.model, shape, CLASSES)
    controller = prepare_sparsity(model, cfg.model)
    g = torch.Generator().manual_seed(seed)
    model.normalizer.set_statistics(
        torch.randn(shape[-1], generator=g) * 3, torch.rand(shape[-1], generator=g) + 0.5
    )
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                c = module.num_features
                module.running_mean.copy_(0.3 * torch.randn(c, generator=g))
                module.running_var.copy_(torch.rand(c, generator=g) + 0.5)
                module.weight.copy_(torch.rand(c, generator=g) + 0.5)
                module.bias.copy_(0.2 * torch.randn(c, generator=g))
    if cfg.model.sparsity == "gmp" and prune:
        controller.prune_to(dict.fromkeys(controller.layers, prune))
    return model.eval()


def _inputs(model, n=48, seed=1):
    g = torch.Generator().manual_seed(seed)
    mean, std = model.normalizer.mean, model.normalizer.std
    return (mean + std * torch.randn(n, *model.input_shape, generator=g)).float()


@pytest.fixture(scope="module")
def dscnn():
    return _model(_config(sparsity="gmp"), KWS_SHAPE)


def _inits(path) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}


# --------------------------------------------------------------------------- the float graph


def test_dscnn_graph_is_standard_matches_torch_and_keeps_the_zeros(dscnn, tmp_path):
    x = _inputs(dscnn)
    y = torch.arange(len(x)) % CLASSES
    with torch.no_grad():
        before = dscnn(x)
    report = export_cnn_model(dscnn, tmp_path / "kws.onnx", x, y, class_names=list("abcdefghijkl"))
    model = onnx.load(str(tmp_path / "kws.onnx"))
    onnx.checker.check_model(model, full_check=True)
    types = {n.op_type for n in model.graph.node}
    # BN folded into Conv, the 'SAME' pad moved into the first Conv's pads: a plain chain
    assert types == {"Sub", "Div", "Unsqueeze", "Conv", "Relu", "ReduceMean", "Gemm"}
    assert types <= CNN_FLOAT_OPS and sorted(types) == report["op_types"]
    first = next(n for n in model.graph.node if n.op_type == "Conv")
    pads = next(helper.get_attribute_value(a) for a in first.attribute if a.name == "pads")
    assert list(pads) == [4, 1, 5, 1]  # TF 'SAME' for 99x32, kernel 10x4, stride 2: asymmetric
    assert [i.name for i in model.graph.input] == ["features"]
    assert [
        d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim
    ] == [
        "batch",
        99,
        32,
    ]

    # parity: the file on raw input against the trained (masked) model, checked independently
    logits = run_onnx(tmp_path / "kws.onnx", x)
    assert np.abs(logits - before.numpy()).max() <= PARITY_TOLERANCE
    assert report["max_abs_diff"] == pytest.approx(np.abs(logits - before.numpy()).max(), abs=1e-7)
    assert report["top1_agreement"] == 1.0
    accuracy = float((logits.argmax(1) == y.numpy()).mean())
    assert report["accuracy"]["onnx"] == pytest.approx(accuracy)
    assert report["accuracy"]["torch"] == pytest.approx(accuracy)

    # the normaliser is in the graph: raw input, the model's own statistics
    inits = _inits(tmp_path / "kws.onnx")
    assert np.array_equal(inits["normalizer.mean"], dscnn.normalizer.mean.numpy())
    assert np.array_equal(inits["normalizer.std"], dscnn.normalizer.std.numpy())

    # every conv/linear weight under its layer's name; zeros survive BN folding one for one
    modules = dict(dscnn.named_modules())
    for entry in report["storage"]["layers"]:
        weight = modules[entry["layer"]].weight.detach().numpy()
        stored = inits[f"{entry['layer']}.weight"]
        assert entry["onnx_initializer"] == f"{entry['layer']}.weight"
        assert stored.shape == weight.shape
        assert np.array_equal(stored == 0, weight == 0)
        assert entry["onnx_nonzero"] == entry["nonzero"] == np.count_nonzero(weight)

    # the trained model is left as it was: still masked, same function
    assert parametrize.is_parametrized(modules["blocks.0.pointwise.conv"], "weight")
    with torch.no_grad():
        assert torch.equal(dscnn(x), before)
    meta = {p.key: p.value for p in model.metadata_props}
    assert json.loads(meta["edge_str.class_names"]) == list("abcdefghijkl")
    assert json.loads(meta["edge_str.input_shape"]) == [99, 32]
    assert meta["edge_str.graph"] == "cnn"


def test_storage_and_budget_figures_by_hand(dscnn, tmp_path):
    x = _inputs(dscnn, n=8)
    report = export_cnn_model(dscnn, tmp_path / "s.onnx", x)
    layers = {e["layer"]: e for e in report["storage"]["layers"]}

    # one layer by hand: a 16x16 pointwise conv (256 weights, 1-byte positions), 80% pruned
    weight = dict(dscnn.named_modules())["blocks.1.pointwise.conv"].weight
    n, k = weight.numel(), int(torch.count_nonzero(weight))
    assert (n, k) == (256, 256 - round(0.8 * 256))
    entry = layers["blocks.1.pointwise.conv"]
    assert (entry["numel"], entry["nonzero"], entry["index_bytes"]) == (256, k, 1)
    assert entry["dense_bytes"] == 4 * 256
    assert entry["indices_bytes"] == (4 + 1) * k
    assert entry["bitmask_bytes"] == 4 * k + 256 // 8
    assert entry["sparsity"] == pytest.approx(0.8, abs=0.002)
    assert entry["best_format"] == "bitmask"  # 4k + 32 = 236 < 5k = 255 < 4n = 1024
    assert entry["best_bytes"] == 4 * k + 32

    # the first and last layers stay dense (and dense storage is the best for them)
    assert layers["stem.conv"]["nonzero"] == layers["stem.conv"]["numel"]
    assert layers["stem.conv"]["best_format"] == "dense"

    weights = report["storage"]["weights"]
    for key in ("numel", "nonzero", "dense_bytes", "indices_bytes", "bitmask_bytes"):
        assert weights[key] == sum(e[key] for e in layers.values())
    assert weights["bitmask_bytes"] < weights["indices_bytes"] < weights["dense_bytes"]
    # "other": every other initializer of the file (folded BN shifts, normaliser, head bias)
    inits = _inits(tmp_path / "s.onnx")
    other = sum(a.nbytes for name, a in inits.items() if not name.endswith(".weight"))
    assert report["storage"]["other_bytes"] == other
    assert report["weight_bytes"]["float32"] == other + weights["dense_bytes"]
    totals = report["storage"]["total_bytes"]
    assert totals["dense"] == weights["dense_bytes"] + other
    assert totals["bitmask"] == weights["bitmask_bytes"] + other
    assert report["file_bytes"]["onnx"] == (tmp_path / "s.onnx").stat().st_size
    assert report["file_bytes"]["onnx"] > totals["dense"]  # the file stores weights dense

    # the budget: sparsity over all conv/linear weights, MACs dense vs sparse
    budget = report["budget"]
    assert (
        report["sparsity"]
        == budget["sparsity"]
        == pytest.approx(1 - weights["nonzero"] / weights["numel"])
    )
    assert report["macs"] == budget["sparse_macs"] < budget["dense_macs"] == report["macs_dense"]
    pointwise = next(e for e in budget["layers"] if e["layer"] == "blocks.1.pointwise.conv")
    positions = 50 * 16  # output map of the 99x32 input after the stride-2 stem
    assert pointwise["dense_macs"] == positions * n and pointwise["sparse_macs"] == positions * k


def test_str_resnet_on_images(tmp_path):
    cfg = _config("resnet", cnn_s_init=-100.0)
    model = _model(cfg, IMAGE_SHAPE)
    with torch.no_grad():
        for s in threshold_parameters(model):
            s.fill_(math.log(0.1 / 0.9))  # g(s) = 0.1: a sizeable share of weights under it
    x = _inputs(model)
    report = export_cnn_model(model, tmp_path / "r.onnx", x, fixed_batch=5, opset=17)
    assert report["sparsity"] > 0.3 and report["batch"] == 5 and report["opset"] == 17
    assert set(report["op_types"]) == {
        "Sub",
        "Div",
        "Transpose",
        "Conv",
        "Relu",
        "Add",
        "ReduceMean",
        "Gemm",
    }
    assert report["input"] == "image" and report["input_shape"] == [8, 8, 1]
    graph = onnx.load(str(tmp_path / "r.onnx"))
    assert graph.opset_import[0].version == 17
    assert graph.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 5
    with torch.no_grad():
        reference = model(x).numpy()
    assert np.abs(run_onnx(tmp_path / "r.onnx", x) - reference).max() <= PARITY_TOLERANCE
    assert report["budget"]["layers"][1]["threshold"] == pytest.approx(0.1)
    assert report["accuracy"] == {"torch": None, "onnx": None, "int8": None, "int8_change": None}


def test_int8_stores_every_weight_as_int8_and_keeps_zeros(dscnn, tmp_path):
    x = _inputs(dscnn)
    y = torch.arange(len(x)) % CLASSES
    report = export_cnn_model(dscnn, tmp_path / "q.onnx", x, y, int8=True)
    quantized = onnx.load(str(tmp_path / "q.int8.onnx"))
    onnx.checker.check_model(quantized, full_check=True)
    types = {n.op_type for n in quantized.graph.node}
    assert "DequantizeLinear" in types and types <= CNN_INT8_OPS
    layers = [e["layer"] for e in report["storage"]["layers"]]
    assert report["int8"]["weights_quantized"] == len(layers) == 10
    inits = _inits(tmp_path / "q.int8.onnx")
    floats = _inits(tmp_path / "q.onnx")
    for layer in layers:
        q = inits[f"{layer}.weight_q"]
        assert q.dtype == np.int8
        pruned = floats[f"{layer}.weight"] == 0
        assert np.all(q[pruned] == 0)  # symmetric, zero point 0: a pruned weight stays 0
    assert report["weight_bytes"]["int8"] < 0.35 * report["weight_bytes"]["float32"]
    assert report["file_bytes"]["int8"] == (tmp_path / "q.int8.onnx").stat().st_size
    int8_logits = run_onnx(tmp_path / "q.int8.onnx", x)
    accuracy = float((int8_logits.argmax(1) == y.numpy()).mean())
    assert report["accuracy"]["int8"] == pytest.approx(accuracy)
    assert report["accuracy"]["int8_change"] == pytest.approx(accuracy - report["accuracy"]["onnx"])
    assert 0 < report["int8"]["max_abs_diff_vs_float"] < 0.5


# --------------------------------------------------------------------------- graph passes


def test_fold_constants_and_pad_fusion_on_a_hand_made_graph():
    """Pad whose pads come from a Concat of constants, then a Conv: one Conv with pads."""
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 1, 5, 4])
    out = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)
    w = np.arange(6, dtype=np.float32).reshape(1, 1, 3, 2)
    inits = [
        numpy_helper.from_array(np.array([0, 0, 1, 0], np.int64), "a"),
        numpy_helper.from_array(np.array([0, 0, 2, 1], np.int64), "b"),
        numpy_helper.from_array(np.array(0, np.float32), "zero"),
        numpy_helper.from_array(w, "w"),
    ]
    nodes = [
        helper.make_node("Concat", ["a", "b"], ["pads"], axis=0),
        helper.make_node("Pad", ["x", "pads", "zero"], ["padded"], mode="constant"),
        helper.make_node("Conv", ["padded", "w"], ["y"], pads=[0, 1, 0, 0]),
    ]
    model = helper.make_model(
        helper.make_graph(nodes, "g", [x], [out], inits),
        opset_imports=[helper.make_opsetid("", 13)],
    )
    feed = {"x": np.random.default_rng(0).standard_normal((1, 1, 5, 4)).astype(np.float32)}
    from onnx.reference import ReferenceEvaluator

    expected = ReferenceEvaluator(model).run(None, feed)[0]
    fuse_pad_into_conv(fold_constants(model))
    assert [n.op_type for n in model.graph.node] == ["Conv"]
    conv = model.graph.node[0]
    pads = next(helper.get_attribute_value(a) for a in conv.attribute if a.name == "pads")
    assert list(pads) == [1, 1, 2, 1]  # (h_begin, w_begin, h_end, w_end): Pad's plus Conv's
    assert np.allclose(ReferenceEvaluator(model).run(None, feed)[0], expected)


# --------------------------------------------------------------------------- refusals


def test_refusals_write_nothing(dscnn, tmp_path, monkeypatch):
    out = tmp_path / "o"
    x = _inputs(dscnn, n=8)
    fastgrnn = FastGRNNClassifier(32, 8, CLASSES)
    with pytest.raises(EdgeStrError, match="not FastGRNNClassifier"):
        export_cnn_model(fastgrnn, out / "a.onnx", x)
    with pytest.raises(EdgeStrError, match="FastGRNN classifiers only"):
        export_model(dscnn, out / "a.onnx", x)
    with pytest.raises(EdgeStrError, match=r"the model takes \(N, 99, 32\)"):
        export_cnn_model(dscnn, out / "a.onnx", x[:, :50])
    with pytest.raises(EdgeStrError, match="3 labels for 8"):
        export_cnn_model(dscnn, out / "a.onnx", x, torch.zeros(3))

    broken = _model(_config(sparsity="gmp"), KWS_SHAPE)
    with torch.no_grad():
        broken.blocks[1].pointwise.bn.running_var[3] = float("nan")
    with pytest.raises(EdgeStrError, match=r"non-finite values in blocks\.1\.pointwise\.bn"):
        export_cnn_model(broken, out / "a.onnx", x)

    # a fully pruned stem: the logits no longer depend on the input
    dead = _model(_config(sparsity="dense"), KWS_SHAPE)
    with torch.no_grad():
        dead.stem.conv.weight.zero_()
    with pytest.raises(
        EdgeStrError, match=r"do not depend on its input \(fully pruned: stem\.conv"
    ):
        export_cnn_model(dead, out / "a.onnx", x)

    monkeypatch.setattr(pipeline, "PARITY_TOLERANCE", -1.0)  # no diff can pass
    with pytest.raises(EdgeStrError, match="disagrees with torch"):
        export_cnn_model(dscnn, out / "a.onnx", x, int8=True)
    assert not out.exists() or list(out.iterdir()) == []  # no files, no temporary folders


# --------------------------------------------------------------------------- command line


def _make_run(path, model, cfg, shape=KWS_SHAPE):
    path.mkdir(parents=True)
    save_run_info(path, RunInfo(cfg, [f"c{i}" for i in range(CLASSES)], shape))
    save_checkpoint(path / BEST_CHECKPOINT, {"model": model.state_dict(), "epoch": 1})
    return path


def test_cli_exports_a_cnn_run_and_refuses_streaming(dscnn, tmp_path, capsys, monkeypatch):
    monkeypatch.delattr(edge_str.data, "load_task", raising=False)  # no data: random inputs
    cfg = _config(sparsity="gmp")
    run = _make_run(tmp_path / "run", dscnn, cfg)
    out = tmp_path / "exp" / "kws.onnx"

    error = refused(["export", str(run), "--out", str(out), "--streaming"], capsys)
    assert "--streaming" in error and "dscnn run" in error and "per-frame step" in error
    assert not (tmp_path / "exp").exists()
    # FastGRNN's --loop scan: a CNN has no time loop
    error = refused(["export", str(run), "--out", str(out), "--loop", "scan"], capsys)
    assert error.startswith("edge-str: error: --loop scan:") and "dscnn run" in error
    assert "no time loop" in error and "FastGRNN runs only" in error
    assert not (tmp_path / "exp").exists()

    assert main(["export", str(run), "--out", str(out), "--int8"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"exported {out}: dscnn sparsity ")
    assert "random held-out inputs" in lines[0] and "sparse (bitmask)" in lines[0]
    assert "parity checked on random inputs" in captured.err
    report = json.loads((tmp_path / "exp" / "kws.json").read_text())
    assert report["run"] == str(run) and report["arch"] == "dscnn" and report["method"] == "gmp"
    assert report["heldout"]["source"] == "random" and report["heldout"]["examples"] == 64
    assert report["max_abs_diff"] <= PARITY_TOLERANCE and report["top1_agreement"] == 1.0
    assert report["class_names"] == [f"c{i}" for i in range(CLASSES)]
    assert sorted(p.name for p in out.parent.iterdir()) == ["kws.int8.onnx", "kws.json", "kws.onnx"]
    # the run's model, rebuilt from its config and checkpoint, is what the file computes
    x = _inputs(dscnn, n=6, seed=5)
    with torch.no_grad():
        assert np.abs(run_onnx(out, x) - dscnn(x).numpy()).max() <= PARITY_TOLERANCE

    # a run whose config (width 0.5) does not fit its weights (width 0.25)
    other = _make_run(tmp_path / "other", dscnn, _config(sparsity="gmp", width=0.5))
    assert "do not match" in refused(["export", str(other), "--out", str(out)], capsys)
