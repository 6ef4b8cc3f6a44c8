"""Build a whole folder beside its target and rename it into place when complete.

An interrupted ``synth`` or ``fetch`` never leaves a half-made tree where a loader would look.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edge_str.atomic import file_in_the_way
from edge_str.errors import EdgeStrError


def check_free(target: Path) -> None:
    """``target`` must not exist, or be an empty folder."""
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise EdgeStrError(f"{target}: already exists and is not empty; choose a new folder")
    blocking = file_in_the_way(target)
    if blocking is not None:
        raise EdgeStrError(f"{target}: {blocking} is a file, not a folder; choose another --out")


@contextmanager
def staged_folder(target: str | Path) -> Iterator[Path]:
    """Yield an empty staging folder; on success it becomes ``target`` (atomic rename)."""
    target = Path(target).expanduser()
    check_free(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        yield staging
        check_free(target)
        if target.exists():
            target.rmdir()
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
