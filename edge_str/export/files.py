"""The files one export writes: their names (``ExportPaths``) and their atomic placement
(``Staging``: written under temporary names beside their targets, renamed into place at the end,
removed if anything fails)."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edge_str.atomic import file_in_the_way
from edge_str.errors import EdgeStrError

MAIN = ""  # the role of the main graph: FILE.onnx
# Graph roles any family may write beside FILE.onnx: a re-export removes those it did not write
STALE_ROLES = ("step",)


@dataclass(frozen=True)
class ExportPaths:
    """The files one export writes, all derived from ``--out FILE.onnx``."""

    onnx: Path
    report: Path

    @classmethod
    def for_output(cls, out: str | os.PathLike) -> ExportPaths:
        out = Path(out)
        if out.suffix != ".onnx":
            raise EdgeStrError(f"--out {out}: the file name must end in .onnx")
        if out.is_dir():
            raise EdgeStrError(f"--out {out}: is a directory")
        blocking = file_in_the_way(out)
        if blocking is not None:
            raise EdgeStrError(f"--out {out}: {blocking} is a file, not a folder")
        return cls(onnx=out, report=out.with_suffix(".json"))

    def graph(self, role: str = MAIN, int8: bool = False) -> Path:
        """FILE.onnx, FILE.int8.onnx, FILE.<role>.onnx, FILE.<role>.int8.onnx."""
        name = self.onnx.with_suffix("").name
        return self.onnx.with_name(
            f"{name}{f'.{role}' if role else ''}{'.int8' if int8 else ''}.onnx"
        )

    def siblings(self, roles: tuple[str, ...] = STALE_ROLES) -> list[Path]:
        """FILE.int8.onnx and FILE.<role>[.int8].onnx: the graphs an export may write besides
        FILE.onnx."""
        return [self.graph(int8=True)] + [
            self.graph(role, int8) for role in roles for int8 in (False, True)
        ]

    def remove_stale(self, written: set[Path], roles: tuple[str, ...] = STALE_ROLES) -> None:
        """Remove the siblings this export did not write: a FILE.int8.onnx or FILE.step.onnx of
        an earlier export (of another checkpoint, maybe) must not sit beside a report that says
        there is none."""
        for sibling in self.siblings(roles):
            if sibling not in written:
                sibling.unlink(missing_ok=True)


class Staging:
    """Files written under temporary names in a hidden folder beside their targets.

    ``file(target)`` hands out the temporary path and remembers the move; ``commit`` renames
    every file into place (``os.replace`` within one folder: atomic per file). Leaving the
    ``with`` block removes the temporary folders, so a failed export leaves nothing behind.
    """

    def __init__(self) -> None:
        self._dirs: dict[Path, Path] = {}
        self._moves: list[tuple[Path, Path]] = []

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc) -> None:
        for folder in self._dirs.values():
            shutil.rmtree(folder, ignore_errors=True)

    def _folder(self, parent: Path) -> Path:
        if parent not in self._dirs:
            parent.mkdir(parents=True, exist_ok=True)
            self._dirs[parent] = Path(tempfile.mkdtemp(prefix=".edge_str-export-", dir=parent))
        return self._dirs[parent]

    def file(self, target: str | os.PathLike) -> Path:
        """Where to write ``target`` now; ``commit`` moves it there."""
        target = Path(target)
        tmp = self._folder(target.parent) / target.name
        self._moves.append((tmp, target))
        return tmp

    def scratch(self, name: str, near: str | os.PathLike) -> Path:
        """A temporary file beside ``near`` that is never moved (removed with the folder)."""
        return self._folder(Path(near).parent) / f"~{name}"

    @property
    def targets(self) -> set[Path]:
        """Every file ``commit`` moves (or moved) into place."""
        return {target for _, target in self._moves}

    def commit(self) -> None:
        for tmp, target in self._moves:
            os.replace(tmp, target)
