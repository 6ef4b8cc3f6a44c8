"""`edge-str export RUN --c DIR`: the C beside the ONNX files, in one checked export."""

from __future__ import annotations

import json
import re

import pytest
import torch

import edge_str.data
from edge_str.cli import main
from edge_str.config import make_config
from edge_str.export.c.toolchain import host_compiler
from edge_str.models import build_model
from edge_str.run import BEST_CHECKPOINT, RunInfo, save_checkpoint, save_run_info
from tests._cli import refused

FEATURES, HIDDEN, STEPS, CLASSES = 8, 16, 6, 3
pytestmark = pytest.mark.skipif(host_compiler() is None, reason="no C compiler (gcc/cc/clang)")


def _make_run(path, arch: str = "fastgrnn"):
    overrides = {"model": {"hidden": HIDDEN}} if arch == "fastgrnn" else {"model": {"arch": arch}}
    cfg = make_config("google12", overrides=overrides)
    cfg.data_dir = ""  # no data: the export checks on random inputs
    torch.manual_seed(0)
    shape = (STEPS, FEATURES) if arch == "fastgrnn" else (1, 16, 16)
    model = build_model(cfg.model, shape, CLASSES)
    path.mkdir(parents=True)
    save_run_info(path, RunInfo(cfg, ["a", "b", "c"], shape))
    save_checkpoint(path / BEST_CHECKPOINT, {"model": model.state_dict(), "epoch": 1})
    return path


def test_cli_writes_the_c_and_its_figures_into_the_report(tmp_path, capsys, monkeypatch):
    monkeypatch.delattr(edge_str.data, "load_task", raising=False)
    run = _make_run(tmp_path / "run")
    c_dir = tmp_path / "c"
    assert main(["export", str(run), "--c", str(c_dir), "--prefix", "kws", "--integer"]) == 0
    line = capsys.readouterr().out.strip()
    assert f"C integer {c_dir / 'kws.c'}" in line
    assert sorted(p.name for p in c_dir.iterdir()) == ["kws.c", "kws.h", "kws.json", "kws.onnx"]
    report = json.loads((c_dir / "kws.json").read_text())
    c = report["c"]
    assert c["mode"] == "integer" and c["compiled"]
    header = (c_dir / "kws.h").read_text()
    macs = re.search(r"MACs per frame: (\d+); head MACs per decision: (\d+)", header)
    assert int(macs[1]) == c["macs_per_frame"] == report["macs_per_step"]
    assert int(macs[2]) == report["head_macs"]
    assert int(re.search(r"Bytes of weights: (\d+)", header)[1]) == c["weight_bytes"]
    for name, r in report["ranks"].items():
        assert f"{name} {r['kept']}/{r['full']} stored {r['stored_as']}" in header
    assert "sample rate 16000 Hz, window 25 ms (400 samples), hop 10 ms (160 samples)" in header
    assert c["feature_settings"]["n_mels"] == 32  # the run's data settings (google12 defaults)
    assert set(c["accuracy"]) == {"float32", "int8", "integer"}

    # With --out as well, FILE.json is the ONNX export's and gains the same "c" part.
    out = tmp_path / "onnx" / "m.onnx"
    assert main(["export", str(run), "--out", str(out), "--c", str(tmp_path / "c2")]) == 0
    assert json.loads((tmp_path / "onnx" / "m.json").read_text())["c"]["mode"] == "float32"
    assert sorted(p.name for p in (tmp_path / "c2").iterdir()) == ["fastgrnn.c", "fastgrnn.h"]


def test_cli_refusals(tmp_path, capsys):
    run = _make_run(tmp_path / "run")
    out = str(tmp_path / "m.onnx")
    assert "--weights applies to the C export" in refused(
        ["export", str(run), "--out", out, "--weights", "int8"], capsys
    )
    assert "--integer applies to the C export" in refused(
        ["export", str(run), "--out", out, "--integer"], capsys
    )
    assert "give --out FILE.onnx, --c DIR, or both" in refused(["export", str(run)], capsys)
    c = str(tmp_path / "c")
    assert "--integer stores int8 weights" in refused(
        ["export", str(run), "--c", c, "--integer", "--weights", "float32"], capsys
    )
    assert "must be a C identifier" in refused(
        ["export", str(run), "--c", c, "--prefix", "int"], capsys
    )
    (tmp_path / "file").write_text("")
    assert "is a file" in refused(["export", str(run), "--c", str(tmp_path / "file")], capsys)
    cnn = _make_run(tmp_path / "cnn", arch="dscnn")
    assert "C export supports FastGRNN runs only" in refused(["export", str(cnn), "--c", c], capsys)
    assert not (tmp_path / "c").exists() and not (tmp_path / "m.onnx").exists()
