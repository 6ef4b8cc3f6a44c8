"""Running many training runs: jobs, their outcomes, and the backends that execute them.

    from edge_str.scheduling import Job, Scheduler, make_backend
    backend = make_backend("local", jobs=2)          # or "ray", address="auto", folder=OUT
    Scheduler(backend, on_done=lambda job, outcome: []).run([Job("a", cfg.to_dict()), ...])

A job is a trainer run directory; a finished one is reused, a half-finished one continues from
its checkpoint, a failed one is an ``Outcome`` with one line of error. Backends: ``local`` (this
process with ``jobs=1``, else a pool of worker processes; no extra dependency) and ``ray``
(each job a Ray task; ``pip install 'edge_str[ray]'``). Used by ``edge-str compare`` and by
``benchmarks/cnn_budget_study.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

from edge_str.errors import EdgeStrError
from edge_str.scheduling.backend import Backend, Scheduler
from edge_str.scheduling.jobs import (
    ERROR_FILE,
    LOG_FILE,
    Job,
    Outcome,
    config_difference,
    execute_job,
    finished_outcome,
    one_line,
)
from edge_str.scheduling.local import InlineBackend, ProcessPoolBackend, default_jobs

BACKENDS = ("local", "ray")


def make_backend(
    name: str = "local",
    jobs: int | None = None,
    *,
    address: str | None = None,
    folder: str | os.PathLike | None = None,
) -> Backend:
    """The backend ``name``. local: ``jobs`` processes (default: the cores). ray: the cluster at
    ``address`` (None: a local one of ``jobs`` CPUs), writing under ``folder``."""
    if jobs is not None and jobs < 1:
        raise EdgeStrError(f"--jobs must be at least 1, got {jobs}")
    if name == "local":
        if address is not None:
            raise EdgeStrError("--address is for --backend ray")
        jobs = default_jobs() if jobs is None else jobs
        return InlineBackend() if jobs == 1 else ProcessPoolBackend(jobs)
    if name == "ray":
        from edge_str.scheduling.ray_cluster import RayBackend

        return RayBackend(Path(folder or "."), address, jobs)
    raise EdgeStrError(f"--backend must be one of {', '.join(BACKENDS)}, got {name!r}")


__all__ = [
    "BACKENDS",
    "ERROR_FILE",
    "LOG_FILE",
    "Backend",
    "InlineBackend",
    "Job",
    "Outcome",
    "ProcessPoolBackend",
    "Scheduler",
    "config_difference",
    "default_jobs",
    "execute_job",
    "finished_outcome",
    "make_backend",
    "one_line",
]
