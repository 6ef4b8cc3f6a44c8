"""On-disk cache of decoded waveforms and clean features, so WAVs are decoded only once.

An entry is a folder of ``.npy`` arrays plus ``meta.json``, written last: an entry without a
matching ``meta.json`` is incomplete and ignored. Each file is written atomically (temp file +
rename). The key hashes the file list with sizes and mtimes and every setting that changes the
arrays, so adding, touching or editing a file, or changing such a setting, makes a new entry.
One entry is kept per (task, data folder): saving a new one removes the stale ones beside it,
so the cache does not grow each time a setting changes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from edge_str.atomic import atomic_path, write_json
from edge_str.errors import EdgeStrError

CACHE_FORMAT = 1


def file_stats(root: Path, files: Iterable[Path]) -> list[tuple[str, int, int]]:
    """(path relative to root, size in bytes, mtime in ns) for each file, sorted by path."""
    stats = []
    for path in files:
        st = path.stat()
        stats.append((path.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns))
    return sorted(stats)


def cache_key(payload: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of ``payload`` (file stats, settings, versions)."""
    text = json.dumps({"cache_format": CACHE_FORMAT, **payload}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class ArrayCache:
    """Named numpy arrays + JSON metadata under ``cache_dir/<task>-<data folder hash>/<key>/``."""

    def __init__(self, cache_dir: str | Path, task: str, data_dir: str | Path) -> None:
        folder_id = hashlib.sha256(str(Path(data_dir).resolve()).encode()).hexdigest()[:12]
        self.slot = Path(cache_dir).expanduser() / f"{task}-{folder_id}"

    def entry(self, key: str) -> Path:
        return self.slot / key[:32]

    def load(
        self, key: str, required: Iterable[str] = ()
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
        """The arrays and metadata stored under ``key``; None if absent, incomplete or damaged."""
        folder = self.entry(key)
        try:
            meta = json.loads((folder / "meta.json").read_text())
            if meta.get("key") != key or not set(required) <= set(meta["arrays"]):
                return None
            arrays = {}
            for name, spec in meta["arrays"].items():
                array = np.load(folder / f"{name}.npy", allow_pickle=False)
                if list(array.shape) != spec["shape"] or str(array.dtype) != spec["dtype"]:
                    return None
                arrays[name] = array
        except (OSError, ValueError, KeyError, TypeError, EOFError):
            return None  # missing or damaged entry: rebuild it
        return arrays, meta["info"]

    def save(self, key: str, arrays: dict[str, np.ndarray], info: dict[str, Any]) -> Path:
        folder = self.entry(key)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for name, array in arrays.items():
                with atomic_path(folder / f"{name}.npy") as tmp, open(tmp, "wb") as handle:
                    np.save(handle, np.ascontiguousarray(array), allow_pickle=False)
            specs = {n: {"shape": list(a.shape), "dtype": str(a.dtype)} for n, a in arrays.items()}
            write_json(folder / "meta.json", {"key": key, "arrays": specs, "info": info})
        except OSError as error:
            raise EdgeStrError(
                f"cannot write the data cache in {folder}: {error.strerror or error} "
                "(set EDGE_STR_CACHE or the cache_dir data setting to a writable folder)"
            ) from None
        self._remove_stale(keep=folder)
        return folder

    def _remove_stale(self, keep: Path) -> None:
        for other in self.slot.iterdir():
            if other.is_dir() and other != keep:
                shutil.rmtree(other, ignore_errors=True)


def describe(path: Path) -> str:
    """Short form of a cache folder for summaries (home shown as ~)."""
    home = str(Path.home())
    text = str(path)
    return "~" + text[len(home) :] if text.startswith(home + os.sep) else text
