"""Checks of the command line's refusals: one clear line on stderr, no traceback."""

from __future__ import annotations

from edge_str.cli import main


def _single_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edge-str: error: "), err
    assert "Traceback" not in err
    return lines[0]


def one_error_line(capsys) -> str:
    """The one error line the last command wrote to stderr."""
    return _single_error(capsys.readouterr().err)


def refused(argv: list[str], capsys) -> str:
    """``edge-str ARGV`` exits 2 with one error line and nothing on stdout; returns the line."""
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "", captured.out
    return _single_error(captured.err)
