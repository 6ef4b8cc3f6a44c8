"""The interface every backend offers, and the loop that drives one.

A backend takes jobs (``submit``) and hands back finished ones (``wait``, blocking until at least
one is done); it is used as a context manager, so that workers and clusters it started are shut
down, also after an interruption. ``Scheduler`` drives a backend: it reuses runs finished on disk
without submitting them, and asks its ``on_done`` callback, after each job, for the jobs that
became possible (dependent runs).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from edge_str.scheduling.jobs import Job, Outcome, finished_outcome

Finished = tuple[Job, Outcome]


class Backend:
    """Where jobs run. Subclasses implement ``submit``, ``wait`` and ``pending``."""

    name = "local"

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, kind, error, trace) -> None:
        return None

    @property
    def pending(self) -> int:
        """Jobs submitted and not yet handed back by ``wait``."""
        raise NotImplementedError

    def submit(self, job: Job) -> None:
        raise NotImplementedError

    def wait(self) -> list[Finished]:
        """Block until at least one submitted job has finished; those jobs and their outcomes."""
        raise NotImplementedError


class Scheduler:
    """Runs jobs and what they make possible on one backend, reusing finished runs.

    ``on_done(job, outcome)`` is called once per job (reused ones included) and returns the
    jobs to start next.
    """

    def __init__(self, backend: Backend, on_done: Callable[[Job, Outcome], Iterable[Job]]) -> None:
        self.backend, self.on_done = backend, on_done

    def run(self, jobs: Iterable[Job]) -> None:
        with self.backend:
            for job in jobs:
                self._start(job)
            while self.backend.pending:
                for job, outcome in self.backend.wait():
                    self._done(job, outcome)

    def _start(self, job: Job) -> None:
        outcome = finished_outcome(job)
        if outcome is not None:
            self._done(job, outcome)
        else:
            self.backend.submit(job)

    def _done(self, job: Job, outcome: Outcome) -> None:
        for ready in self.on_done(job, outcome):
            self._start(ready)
