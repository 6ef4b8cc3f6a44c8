"""One run of a study as a job: a trainer run directory, executed, reused or resumed.

A ``Job`` is a ``TrainConfig`` (as a dict, its ``out`` the run directory) and a name. Executing
it trains the run (continuing from ``last.pt`` where one exists) with its output in the run's
``train.log``; a failure becomes an ``Outcome`` with one line of error and the traceback in
``error.log``, never an exception. A run whose ``final.json`` exists is reused as it is;
subclasses change what executing means (the rank study's SVD runs evaluate instead of train).
Nothing here knows which model a run trains.
"""

from __future__ import annotations

import contextlib
import json
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_str.errors import EdgeStrError
from edge_str.run import CONFIG_FILE, FINAL_FILE, LAST_CHECKPOINT, flat_settings

LOG_FILE = "train.log"
ERROR_FILE = "error.log"
# Settings that may differ between a planned run and the one found on disk.
_IGNORED_KEYS = ("out", "class_names", "input_shape", "model.init_weights")


@dataclass
class Job:
    """One run: its name and its training config (``config["out"]`` is its run directory)."""

    name: str
    config: dict[str, Any]

    @property
    def run_dir(self) -> Path:
        return Path(self.config["out"])

    @property
    def wants_gpu(self) -> bool:
        """Whether the run trains on a GPU (a cluster backend then gives it one)."""
        return self.config.get("device") == "cuda"

    def execute(self, log: Callable[[str], None]) -> dict[str, Any]:
        """Train the run (resuming a half-finished one); returns its final.json."""
        from edge_str.config import TrainConfig
        from edge_str.training import train

        resume = (self.run_dir / LAST_CHECKPOINT).is_file()
        if resume:
            log(f"resuming {self.run_dir}")
        return train(TrainConfig.from_dict(self.config), resume=resume, log=log)


@dataclass
class Outcome:
    """What became of a job: ok (with the run's final.json), failed or skipped."""

    status: str  # ok | failed | skipped
    final: dict[str, Any] | None = None
    error: str = ""
    reused: bool = False


def one_line(error: BaseException) -> str:
    """An exception as one line: the message of a user error, else its type and first line."""
    text = str(error).strip().splitlines()
    first = text[0] if text else ""
    if isinstance(error, EdgeStrError):
        return first or type(error).__name__
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


def execute_job(job: Job) -> Outcome:
    """Run one job (in a worker process, a Ray task or inline); never raises for a failed run."""
    run_dir = job.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        with open(run_dir / LOG_FILE, "a") as log_file:

            def log(text: str) -> None:
                print(text, file=log_file, flush=True)

            # The trainer's per-epoch bars and messages go to the run's log, not the terminal.
            with contextlib.redirect_stdout(log_file), contextlib.redirect_stderr(log_file):
                final = job.execute(log)
        (run_dir / ERROR_FILE).unlink(missing_ok=True)
        return Outcome("ok", final=final)
    except Exception as error:  # noqa: BLE001 - any failure is recorded; the study goes on
        (run_dir / ERROR_FILE).write_text(traceback.format_exc())
        return Outcome("failed", error=one_line(error))


def config_difference(planned: dict[str, Any], saved: dict[str, Any]) -> str | None:
    """The first setting in which a run on disk differs from the planned one, or None."""
    a, b = flat_settings(planned), flat_settings(saved)
    for key in sorted(set(a) | set(b)):
        if key in _IGNORED_KEYS:
            continue
        if a.get(key, "<unset>") != b.get(key, "<unset>"):
            return f"{key} {b.get(key, '<unset>')!r}, planned {a.get(key, '<unset>')!r}"
    return None


def finished_outcome(job: Job) -> Outcome | None:
    """A finished run on disk (reused), a run of other settings (failed), or None (to run)."""
    config_path = job.run_dir / CONFIG_FILE
    if config_path.is_file():
        try:
            saved = json.loads(config_path.read_text())
        except json.JSONDecodeError:
            saved = None
        if saved is not None:
            difference = config_difference(job.config, saved)
            if difference:
                return Outcome(
                    "failed",
                    error=f"{job.run_dir} holds a run of other settings ({difference}); "
                    "delete it or choose another --out",
                )
    final_path = job.run_dir / FINAL_FILE
    if final_path.is_file():
        try:
            return Outcome("ok", final=json.loads(final_path.read_text()), reused=True)
        except json.JSONDecodeError:
            return None  # a foreign or broken file: run again (train rewrites it)
    return None
