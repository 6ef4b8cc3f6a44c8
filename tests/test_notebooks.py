"""Every notebook in notebooks/ runs top to bottom in a clean kernel (quick settings).

The notebooks read EDGE_STR_NOTEBOOK_QUICK=1 and shrink their data and training to a smoke test;
the committed copies hold the outputs of a full run.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests._speech import hide_espeak_program

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
TIMEOUT_PER_CELL = 240


def test_there_are_notebooks():
    names = [p.name for p in NOTEBOOKS]
    assert "01_quickstart.ipynb" in names and "02_rank_vs_accuracy.ipynb" in names


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGE_STR_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("EDGE_STR_NOTEBOOK_WORK", str(tmp_path))
    monkeypatch.setenv("EDGE_STR_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    # As on a fresh machine with pip only: no espeak-ng program (the wheel's library speaks).
    hide_espeak_program(monkeypatch, tmp_path / "path")
    # The kernel imports this checkout's edge_str, whatever is installed.
    paths = [str(ROOT), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in paths if p))
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=TIMEOUT_PER_CELL,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()  # raises CellExecutionError (with the cell and traceback) on any error
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert not errors
