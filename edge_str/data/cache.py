"""On-disk cache of decoded waveforms and clean features, so WAVs are decoded only once.

An entry is a folder of ``.npy`` arrays plus ``meta.json``, written last: an entry without a
matching ``meta.json`` is incomplete and ignored. Each file is written atomically (temp file +
rename). ``meta.json`` holds a CRC-32 of each array's data: an entry whose bytes were changed on
disk (overwritten, zeroed) is found on load and rebuilt, with a note on stderr, rather than
trained on. The key hashes the file list with sizes and mtimes and every setting that changes the
arrays, so adding, touching or editing a file, or changing such a setting, makes a new entry.
One entry is kept per (task, data folder): saving a new one removes the stale ones beside it,
so the cache does not grow each time a setting changes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from edge_str.atomic import atomic_path, write_json
from edge_str.errors import EdgeStrError

CACHE_FORMAT = 2  # 2: arrays carry a CRC-32
META_FILE = "meta.json"
SLOT_NAME = re.compile(r"^[a-z0-9]+-[0-9a-f]{12}$")  # <task>-<data folder hash>


def checksum(array: np.ndarray) -> int:
    """CRC-32 of the array's bytes (about 1 GB/s: cheap beside decoding the WAVs again)."""
    return zlib.crc32(np.ascontiguousarray(array).reshape(-1).view(np.uint8))


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
        self.data_dir = str(Path(data_dir).resolve())
        folder_id = hashlib.sha256(self.data_dir.encode()).hexdigest()[:12]
        self.slot = Path(cache_dir).expanduser() / f"{task}-{folder_id}"

    def entry(self, key: str) -> Path:
        return self.slot / key[:32]

    def load(
        self, key: str, required: Iterable[str] = ()
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
        """The arrays and metadata stored under ``key``; None if absent, incomplete or damaged
        (a damaged entry is removed, with a note on stderr, so the caller rebuilds it)."""
        folder = self.entry(key)
        try:
            meta = json.loads((folder / META_FILE).read_text())
        except FileNotFoundError:
            return None  # absent, or incomplete (meta.json is written last)
        except (OSError, ValueError) as error:
            return self._damaged(folder, f"unreadable {META_FILE} ({type(error).__name__})")
        try:
            if meta.get("key") != key or not set(required) <= set(meta["arrays"]):
                return None  # another format or version: replaced on save
            arrays = {}
            for name, spec in meta["arrays"].items():
                array = np.load(folder / f"{name}.npy", allow_pickle=False)
                if list(array.shape) != spec["shape"] or str(array.dtype) != spec["dtype"]:
                    return self._damaged(folder, f"{name}.npy has another shape or type")
                if checksum(array) != spec["crc32"]:
                    return self._damaged(folder, f"{name}.npy fails its checksum")
                arrays[name] = array
        except (OSError, ValueError, KeyError, TypeError, EOFError, AttributeError) as error:
            return self._damaged(folder, f"unreadable entry ({type(error).__name__})")
        return arrays, meta["info"]

    @staticmethod
    def _damaged(folder: Path, why: str) -> None:
        print(
            f"edge-str: note: the feature cache {describe(folder)} is damaged ({why}); "
            "rebuilding it from the data",
            file=sys.stderr,
        )
        shutil.rmtree(folder, ignore_errors=True)
        return None

    def save(self, key: str, arrays: dict[str, np.ndarray], info: dict[str, Any]) -> Path:
        folder = self.entry(key)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for name, array in arrays.items():
                with atomic_path(folder / f"{name}.npy") as tmp, open(tmp, "wb") as handle:
                    np.save(handle, np.ascontiguousarray(array), allow_pickle=False)
            specs = {
                n: {"shape": list(a.shape), "dtype": str(a.dtype), "crc32": checksum(a)}
                for n, a in arrays.items()
            }
            meta = {"key": key, "data_dir": self.data_dir, "arrays": specs, "info": info}
            write_json(folder / META_FILE, meta)
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


# ----------------------------------------------------------------------------- edge-str cache
def cache_entries(cache_dir: Path) -> list[dict[str, Any]]:
    """Every entry under ``cache_dir``: its folder, task, data folder, bytes, completeness."""
    if not cache_dir.is_dir():
        return []
    entries = []
    slots = sorted(p for p in cache_dir.iterdir() if p.is_dir() and SLOT_NAME.match(p.name))
    for slot in slots:
        for folder in sorted(p for p in slot.iterdir() if p.is_dir()):
            try:
                meta = json.loads((folder / META_FILE).read_text())
            except (OSError, ValueError):
                meta = {}
            data_dir = meta.get("data_dir")
            entries.append(
                {
                    "folder": folder,
                    "task": slot.name.rsplit("-", 1)[0],
                    "data_dir": data_dir,
                    "data_exists": bool(data_dir) and Path(data_dir).is_dir(),
                    "complete": bool(meta),
                    "bytes": sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()),
                }
            )
    return entries


def remove_entries(entries: list[dict[str, Any]]) -> int:
    """Delete the entries (and slots left empty); returns the bytes freed."""
    freed = 0
    for entry in entries:
        shutil.rmtree(entry["folder"], ignore_errors=True)
        freed += entry["bytes"]
        slot = entry["folder"].parent
        if slot.is_dir() and not any(slot.iterdir()):
            slot.rmdir()
    return freed
