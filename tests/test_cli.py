"""The ``edge-str`` entry point itself."""

import re

import pytest
import torch

import edge_str
from edge_str.cli import main


def test_version_names_the_package_and_torch(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    line = capsys.readouterr().out.strip()
    assert line == f"edge-str {edge_str.__version__} (torch {torch.__version__})"
    assert re.fullmatch(r"\d+\.\d+\.\d+", edge_str.__version__)
