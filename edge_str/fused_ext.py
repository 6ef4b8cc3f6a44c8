"""Build, cache and load the C++ kernel of the fused FastGRNN sequence (csrc/fastgrnn_fused.cpp).

The kernel runs the whole time loop and its backward through time in C++ (one ATen gemm and one
fused elementwise pass per step). It is compiled once per machine, source and torch version with
``torch.utils.cpp_extension`` (10-25 s with g++ 12 on a loaded 2-core machine) into
``$EDGE_STR_CACHE`` (default ``~/.cache/edge_str``)``/ext/<key>/``; later processes load the cached
library directly (milliseconds, no compiler needed).

``EDGE_STR_FUSED_EXT`` picks the policy:
  ``auto`` (default)  load the cached build, or build it on first use; if that fails (no compiler,
                      no ninja, a build error) warn once and use the pure PyTorch fused path.
  ``off``             never use it (pure PyTorch fused path).
  ``on``              like auto, but a failed build raises.
``python -m edge_str.fused_ext`` builds it ahead of time and prints where and how long it took.
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
import threading
import time
import warnings
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("csrc") / "fastgrnn_fused.cpp"
CFLAGS = ["-O3", "-ffp-contract=fast"]
POLICIES = ("auto", "off", "on")
STALE_LOCK_SECONDS = 600  # a build lock older than this belongs to a build that died

_lock = threading.Lock()
_state: dict[str, object] = {"loaded": False, "failed": None, "build_seconds": None}


def policy() -> str:
    value = os.environ.get("EDGE_STR_FUSED_EXT", "auto").strip().lower() or "auto"
    if value not in POLICIES:
        raise ValueError(f"EDGE_STR_FUSED_EXT must be one of {POLICIES}, got {value!r}")
    return value


def _key() -> str:
    digest = hashlib.sha256()
    digest.update(SOURCE.read_bytes())
    for part in (torch.__version__, sys.version, platform.machine(), " ".join(CFLAGS)):
        digest.update(part.encode())
    return digest.hexdigest()[:16]


def build_directory() -> Path:
    root = Path(os.environ.get("EDGE_STR_CACHE", Path.home() / ".cache" / "edge_str"))
    return root / "ext" / _key()


def _library_name() -> str:
    return f"edge_str_fused_{_key()}"


def _load_or_build(verbose: bool) -> None:
    directory = build_directory()
    name = _library_name()
    library = directory / f"{name}.so"
    stamp = directory / "built.ok"
    if stamp.exists() and library.exists():
        torch.ops.load_library(str(library))
        return
    from torch.utils import cpp_extension

    directory.mkdir(parents=True, exist_ok=True)
    lock = directory / "lock"  # torch's build lock; a build killed midway leaves it behind
    if lock.exists() and time.time() - lock.stat().st_mtime > STALE_LOCK_SECONDS:
        lock.unlink(missing_ok=True)
    print(
        f"edge_str: compiling the fused FastGRNN CPU kernel once (cached in {directory})",
        file=sys.stderr,
        flush=True,
    )
    start = time.perf_counter()
    cpp_extension.load(
        name,
        [str(SOURCE)],
        extra_cflags=CFLAGS,
        build_directory=str(directory),
        is_python_module=False,
        verbose=verbose,
    )
    _state["build_seconds"] = time.perf_counter() - start
    tmp = stamp.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(f"{_state['build_seconds']:.1f} s\n")
    os.replace(tmp, stamp)


def load_extension(*, verbose: bool = False) -> bool:
    """Load (building if needed) the C++ kernel; True when ``torch.ops.edge_str_fused`` is usable.

    Follows ``EDGE_STR_FUSED_EXT``; tries at most once per process.
    """
    mode = policy()
    if mode == "off":
        return False
    if _state["loaded"]:
        return True
    if _state["failed"] is not None and mode == "auto":
        return False
    with _lock:
        if _state["loaded"]:
            return True
        try:
            _load_or_build(verbose)
        except Exception as exc:  # any build or load failure means: fall back
            _state["failed"] = f"{type(exc).__name__}: {exc}"
            if mode == "on":
                raise RuntimeError(f"building the fused FastGRNN kernel failed: {exc}") from exc
            warnings.warn(
                "edge_str: the fused FastGRNN C++ kernel is unavailable "
                f"({_state['failed'].splitlines()[0]}); using the PyTorch fused path",
                RuntimeWarning,
                stacklevel=3,
            )
            return False
        _state["loaded"] = True
        return True


def extension_info() -> dict[str, object]:
    """Where the build lives, whether it is loaded, and how long this process spent building."""
    return {
        "policy": policy(),
        "loaded": bool(_state["loaded"]),
        "failed": _state["failed"],
        "build_seconds": _state["build_seconds"],
        "build_directory": str(build_directory()),
    }


def main() -> None:
    start = time.perf_counter()
    ok = load_extension(verbose=False)
    info = extension_info()
    took = time.perf_counter() - start
    if not ok:
        print(f"edge_str: fused kernel unavailable: {info['failed']}", file=sys.stderr)
        raise SystemExit(1)
    built = info["build_seconds"]
    how = f"built in {built:.1f} s" if built is not None else f"loaded from cache in {took:.2f} s"
    print(f"fused FastGRNN kernel {how}: {info['build_directory']}")


if __name__ == "__main__":
    main()
