"""Machines without espeak-ng: a PATH that hides the program, a Python without the wheel."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from edge_str.data.espeak import LibrarySpeech


def path_without(program: str, scratch: Path) -> str:
    """os.environ PATH with ``program`` hidden: each folder holding it is replaced by a folder
    of links to everything else in it (python, git, ... stay reachable)."""
    folders = []
    for number, folder in enumerate(os.environ.get("PATH", "").split(os.pathsep)):
        if folder and (Path(folder) / program).exists():
            mirror = scratch / f"bin{number}"
            mirror.mkdir(parents=True, exist_ok=True)
            for entry in Path(folder).iterdir():
                if entry.name != program and not (mirror / entry.name).exists():
                    (mirror / entry.name).symlink_to(entry)
            folder = str(mirror)
        folders.append(folder)
    return os.pathsep.join(folders)


def hide_espeak_program(monkeypatch: pytest.MonkeyPatch, scratch: Path) -> None:
    monkeypatch.setenv("PATH", path_without("espeak-ng", scratch))


def hide_espeak_wheel(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if espeakng-loader were not installed (``import`` raises ImportError)."""
    monkeypatch.setitem(sys.modules, "espeakng_loader", None)
    monkeypatch.setattr(LibrarySpeech, "_instance", None)
