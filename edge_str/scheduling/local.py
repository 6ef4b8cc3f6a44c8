"""The local backends: runs inline in this process, or in a pool of worker processes.

Workers are "spawn" processes with one torch thread each (small models train fastest that way
on a shared CPU); ``jobs=1`` runs inline, also on one thread.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

import torch

from edge_str.errors import EdgeStrError
from edge_str.scheduling.backend import Backend, Finished
from edge_str.scheduling.jobs import Job, Outcome, execute_job, one_line


def default_jobs() -> int:
    """Processes to use: the cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def init_worker() -> None:
    """A worker process's set-up: one torch (and OpenMP) thread."""
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")


class InlineBackend(Backend):
    """One job at a time in this process, first submitted first run."""

    def __init__(self) -> None:
        self._queue: deque[Job] = deque()

    @property
    def pending(self) -> int:
        return len(self._queue)

    def submit(self, job: Job) -> None:
        self._queue.append(job)

    def wait(self) -> list[Finished]:
        job = self._queue.popleft()
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return [(job, execute_job(job))]
        finally:
            torch.set_num_threads(threads)


class ProcessPoolBackend(Backend):
    """Up to ``jobs`` runs at once in spawned worker processes."""

    def __init__(self, jobs: int) -> None:
        if jobs < 1:
            raise EdgeStrError(f"--jobs must be at least 1, got {jobs}")
        self.jobs = jobs
        self._pool: ProcessPoolExecutor | None = None
        self._running: dict[Future, Job] = {}

    def __enter__(self) -> ProcessPoolBackend:
        context = multiprocessing.get_context("spawn")
        self._pool = ProcessPoolExecutor(self.jobs, mp_context=context, initializer=init_worker)
        return self

    def __exit__(self, kind, error, trace) -> None:
        if self._pool is not None:
            # After an error or an interruption: drop what has not started, wait for nothing.
            self._pool.shutdown(wait=error is None, cancel_futures=error is not None)
            self._pool = None

    @property
    def pending(self) -> int:
        return len(self._running)

    def submit(self, job: Job) -> None:
        assert self._pool is not None, "submit inside `with backend:`"
        self._running[self._pool.submit(execute_job, job)] = job

    def wait(self) -> list[Finished]:
        done, _ = wait(list(self._running), return_when=FIRST_COMPLETED)
        finished = []
        for future in done:
            job = self._running.pop(future)
            try:
                outcome = future.result()
            except Exception as error:  # noqa: BLE001 - e.g. a worker was killed
                outcome = Outcome("failed", error=f"worker process: {one_line(error)}")
            finished.append((job, outcome))
        return finished
