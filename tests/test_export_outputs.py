"""What ``edge-str export`` leaves on disk when --out is odd or an earlier export is there."""

import json

import pytest

from edge_str.cli import main
from tests._cli import refused
from tests._data_trees import build_har_tree


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    tree = build_har_tree(root / "har")
    argv = ["train", "--task", "har2", "--data", str(tree), "--out", str(root / "run")]
    assert main([*argv, "--hidden", "8", "--epochs", "1", "--batch-size", "16"]) == 0
    return root / "run"


def test_an_output_whose_parent_is_a_file_is_one_line(run, tmp_path, capsys):
    (tmp_path / "plain").write_text("a file")
    capsys.readouterr()
    line = refused(
        ["export", str(run), "--out", str(tmp_path / "plain" / "sub" / "m.onnx")], capsys
    )
    assert f"{tmp_path / 'plain'} is a file, not a folder" in line


def test_a_re_export_leaves_no_stale_siblings(run, tmp_path, capsys):
    out = tmp_path / "m.onnx"
    assert main(["export", str(run), "--out", str(out), "--int8", "--streaming"]) == 0
    names = {"m.onnx", "m.json", "m.int8.onnx", "m.step.onnx", "m.step.int8.onnx"}
    assert {p.name for p in tmp_path.iterdir()} == names
    assert main(["export", str(run), "--out", str(out)]) == 0
    report = json.loads((tmp_path / "m.json").read_text())
    assert report["int8_onnx"] is None and report["step_onnx"] is None
    assert {p.name for p in tmp_path.iterdir()} == {"m.onnx", "m.json"}
