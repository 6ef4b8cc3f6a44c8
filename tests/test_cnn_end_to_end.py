"""End to end through the command line: train a sparse CNN, then export it to ONNX.

DS-CNN with STR on a tiny Google-12 tree (the real layout, ``_data_trees``), and a small ResNet
on digits with STR and then GMP with the STR run's budget. Checked: exit codes, final.json and
budget.png, the exported file against the run's own model on the test split, and the storage
figures against a hand computation.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from _data_trees import build_speech_tree

from edge_str.cli import main
from edge_str.data import load_task
from edge_str.export import run_onnx
from edge_str.export.pipeline import PARITY_TOLERANCE
from edge_str.run import load_trained_model

pytestmark = pytest.mark.slow  # end-to-end runs: skipped by make test-fast

FINAL_KEYS = {
    "task",
    "arch",
    "method",
    "test_accuracy",
    "val_accuracy",
    "best_epoch",
    "epochs",
    "sparsity",
    "params",
    "params_dense",
    "bytes",
    "bytes_dense",
    "macs",
    "macs_dense",
    "budget",
}
PNG = b"\x89PNG\r\n\x1a\n"


def _train(args, capsys) -> dict:
    assert main(["train", *args]) == 0
    out = args[args.index("--out") + 1]
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith("trained ") and "sparsity" in summary
    final = json.loads((Path(out) / "final.json").read_text())
    assert set(final) >= FINAL_KEYS
    assert (Path(out) / "budget.png").read_bytes()[:8] == PNG
    return final


def _export(run, out, capsys, *extra) -> dict:
    assert main(["export", str(run), "--out", str(out), *extra]) == 0
    assert capsys.readouterr().out.startswith(f"exported {out}: ")
    return json.loads(out.with_suffix(".json").read_text())


def _check_export(run, out, report, final, data):
    """The file against the run's model on the test split; the report against final.json."""
    info, model = load_trained_model(run)
    x, y = data.split_tensors("test")
    with torch.no_grad():
        reference = model(x).numpy()
    logits = run_onnx(out, x)
    assert np.abs(logits - reference).max() <= PARITY_TOLERANCE
    assert (logits.argmax(1) == reference.argmax(1)).all()
    assert report["max_abs_diff"] <= PARITY_TOLERANCE and report["top1_agreement"] == 1.0
    assert report["heldout"]["examples"] == len(y)
    assert report["accuracy"]["onnx"] == pytest.approx(final["test_accuracy"], abs=1e-6)
    assert report["accuracy"]["onnx"] == pytest.approx(
        float((logits.argmax(1) == y.numpy()).mean())
    )
    for key in ("sparsity", "params", "params_dense", "macs", "macs_dense"):
        assert report[key] == pytest.approx(final[key]), key
    assert (
        report["storage"]["weights"]["best_bytes"] + report["storage"]["other_bytes"]
        <= (report["storage"]["total_bytes"]["dense"])
    )
    return model


def _check_storage(report, model, layer):
    """Every layer's formats against its sparsity; ``layer`` by hand from the model's weights."""
    for entry in report["storage"]["layers"]:
        n, k, b = entry["numel"], entry["nonzero"], entry["index_bytes"]
        sparsity = 1 - k / n
        # values + bitmask beats dense above 1/32 sparsity, values + b-byte indices above b/(4+b)
        assert (entry["bitmask_bytes"] < entry["dense_bytes"]) == (sparsity > 1 / 32)
        assert (entry["indices_bytes"] < entry["dense_bytes"]) == (sparsity > b / (4 + b))
        assert entry["onnx_nonzero"] == k
    weight = dict(model.named_modules())[layer].weight.detach()
    n, k = weight.numel(), int((weight != 0).sum())
    entry = next(e for e in report["storage"]["layers"] if e["layer"] == layer)
    b = 1 if n <= 256 else 2 if n <= 65536 else 4
    assert (entry["numel"], entry["nonzero"], entry["index_bytes"]) == (n, k, b)
    assert entry["dense_bytes"] == 4 * n
    assert entry["indices_bytes"] == (4 + b) * k
    assert entry["bitmask_bytes"] == 4 * k + -(-n // 8)
    weights = report["storage"]["weights"]
    assert weights["bitmask_bytes"] < weights["dense_bytes"]


def test_dscnn_on_a_google12_tree(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("EDGE_STR_CACHE", str(tmp_path / "cache"))
    tree = build_speech_tree(tmp_path / "sc", speakers=12)
    run = tmp_path / "run"
    final = _train(
        [
            "--task", "google12", "--data", str(tree), "--out", str(run),
            "--model", "dscnn", "--width", "0.25", "--sparsity", "str",
            "--epochs", "3", "--batch-size", "16", "--weight-decay", "5e-3", "--cnn-s-init", "-2",
        ],
        capsys,
    )  # fmt: skip
    assert final["arch"] == "dscnn" and final["method"] == "str" and final["epochs"] == 3
    # STR with this decay prunes the sparsified layers well past where sparse storage pays
    assert final["budget"]["sparsified_sparsity"] > 0.3
    assert final["macs"] < 0.85 * final["macs_dense"]

    out = tmp_path / "exp" / "kws.onnx"
    report = _export(run, out, capsys, "--int8")
    data = load_task("google12", str(tree))
    model = _check_export(run, out, report, final, data)
    _check_storage(report, model, "blocks.1.pointwise.conv")
    assert report["accuracy"]["int8"] is not None
    assert report["weight_bytes"]["int8"] < 0.4 * report["weight_bytes"]["float32"]
    assert out.with_suffix(".int8.onnx").stat().st_size == report["file_bytes"]["int8"]

    # a CNN has no per-frame step graph
    assert main(["export", str(run), "--out", str(tmp_path / "s.onnx"), "--streaming"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("edge-str: error: --streaming:") and "\n" not in err
    assert "dscnn run" in err and not (tmp_path / "s.onnx").exists()


def test_resnet_on_digits_str_then_gmp_with_its_budget(tmp_path, capsys):
    common = ["--task", "digits", "--model", "resnet", "--depth", "10", "--width", "0.125"]
    common += ["--epochs", "2", "--weight-decay", "2e-3", "--cnn-s-init", "-3"]
    str_final = _train([*common, "--sparsity", "str", "--out", str(tmp_path / "str")], capsys)
    assert str_final["test_accuracy"] > 0.5  # 10 classes: chance is 0.1
    assert str_final["sparsity"] > 0.3

    gmp_args = ["--sparsity", "gmp", "--budget-from", str(tmp_path / "str")]
    gmp_final = _train([*common, *gmp_args, "--out", str(tmp_path / "gmp")], capsys)
    learned = {e["layer"]: e["sparsity"] for e in str_final["budget"]["layers"]}
    for entry in gmp_final["budget"]["layers"]:  # GMP reached STR's per-layer budget
        assert entry["nonzero"] == entry["params"] - round(
            learned[entry["layer"]] * entry["params"]
        )
    assert gmp_final["sparsity"] == pytest.approx(str_final["sparsity"], abs=1e-3)

    data = load_task("digits", "")
    for name, final in (("str", str_final), ("gmp", gmp_final)):
        out = tmp_path / f"{name}.onnx"
        report = _export(tmp_path / name, out, capsys)
        assert report["heldout"]["source"] == "test split of digits"
        assert report["method"] == name and report["input"] == "image"
        model = _check_export(tmp_path / name, out, report, final, data)
        _check_storage(report, model, "layer2.0.conv2")


def test_gmp_keeps_a_model_at_its_target_sparsity(tmp_path, capsys, monkeypatch):
    """Validation accuracy falls every epoch here, so the first epoch is the best one; GMP
    (3 epochs, targets reached at 75% of training) may only keep epoch 3, STR keeps epoch 1."""
    import edge_str.training.trainer as trainer

    scores = iter([0.9, 0.8, 0.7, 0.6] * 2)
    monkeypatch.setattr(trainer, "accuracy", lambda *args, **kwargs: next(scores))
    common = ["--task", "digits", "--model", "resnet", "--depth", "10", "--width", "0.125"]
    common += ["--epochs", "3", "--cnn-s-init", "-3"]
    gmp = _train(
        [*common, "--sparsity", "gmp", "--gmp-target", "0.6", "--out", str(tmp_path / "g")], capsys
    )
    assert gmp["best_epoch"] == 3 and gmp["val_accuracy"] == 0.7
    assert gmp["budget"]["sparsified_sparsity"] == pytest.approx(0.6, abs=1e-3)
    learned = _train([*common, "--sparsity", "str", "--out", str(tmp_path / "s")], capsys)
    assert learned["best_epoch"] == 1 and learned["val_accuracy"] == 0.9
