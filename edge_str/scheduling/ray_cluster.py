"""The Ray backend: every job a Ray task, on an existing cluster or a local one.

Each task asks for one CPU, or one GPU where the run trains on CUDA (Ray then sets
CUDA_VISIBLE_DEVICES, so ``device: cuda`` is that GPU). Tasks write their run directories
themselves, so the study folder must be one path that every node sees (a shared file system);
``check_shared_folder`` tries that by a marker file looked for on every node. Ray is an
optional dependency (``pip install 'edge_str[ray]'``); this module imports it only when a Ray
backend is entered.
"""

from __future__ import annotations

import logging
import sys
import uuid
from pathlib import Path
from typing import Any

from edge_str.errors import EdgeStrError
from edge_str.scheduling.backend import Backend, Finished
from edge_str.scheduling.jobs import Job, Outcome, execute_job, one_line

# How long the shared-folder check waits for every node's answer.
CHECK_SECONDS = 60.0


CANCEL_WAIT_SECONDS = 60.0  # at most this long for cancelled tasks to end


def import_ray() -> Any:
    """The ray module, or one clear error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise EdgeStrError(
            "--backend ray needs Ray, which is not installed: pip install 'edge_str[ray]'"
        ) from None
    return ray


def _execute_on_node(job: Job) -> Outcome:
    import torch

    torch.set_num_threads(1)  # the task holds one CPU
    return execute_job(job)


def _sees(path: str, token: str) -> bool:
    try:
        return Path(path).read_text() == token
    except OSError:
        return False


def warn(text: str) -> None:
    print(f"edge-str: warning: {text}", file=sys.stderr)


def check_shared_folder(ray: Any, folder: Path, timeout: float = CHECK_SECONDS) -> None:
    """Refuse a folder some node cannot see; warn when a node does not answer in time."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    folder.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    marker = folder / f".edge-str-shared-{token}"
    marker.write_text(token)
    try:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        sees = ray.remote(_sees)
        refs = {
            n.get("NodeManagerAddress", n["NodeID"]): sees.options(
                num_cpus=0,
                scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False),
            ).remote(str(marker), token)
            for n in nodes
        }
        ready, late = ray.wait(list(refs.values()), num_returns=len(refs), timeout=timeout)
        answers = dict(zip(ready, ray.get(ready)))
    except Exception as error:  # noqa: BLE001 - a check that cannot run is said, not fatal
        warn(
            f"could not check that {folder} is visible on every Ray node ({one_line(error)}); "
            "the run folders must be on a path every node sees"
        )
        return
    finally:
        marker.unlink(missing_ok=True)
    blind = [node for node, ref in refs.items() if ref in answers and not answers[ref]]
    if blind:
        raise EdgeStrError(
            f"--out {folder}: not visible on Ray node(s) {', '.join(blind)}; put the study on a "
            "path every node shares (a network file system mounted at the same place)"
        )
    if late:
        silent = [node for node, ref in refs.items() if ref in late]
        warn(
            f"could not check that {folder} is visible on Ray node(s) {', '.join(silent)} "
            f"(no answer in {timeout:.0f}s); the run folders must be on a path every node sees"
        )


class RayBackend(Backend):
    """Jobs as Ray tasks. ``address``: an existing cluster ("auto", "ray://host:10001", ...);
    None starts a local one with ``jobs`` CPUs (all the machine's when None). A Ray already
    initialised in this process is used as it is, and left running."""

    name = "ray"

    def __init__(self, folder: Path, address: str | None = None, jobs: int | None = None) -> None:
        if jobs is not None and jobs < 1:
            raise EdgeStrError(f"--jobs must be at least 1, got {jobs}")
        self.folder, self.address, self.jobs = Path(folder), address, jobs
        self._ray: Any = None
        self._started = False
        self._task: Any = None
        self._running: dict[Any, Job] = {}

    def __enter__(self) -> RayBackend:
        ray = self._ray = import_ray()
        if not ray.is_initialized():
            local = {} if self.address else {"num_cpus": self.jobs}
            ray.init(
                address=self.address,
                include_dashboard=False,
                log_to_driver=False,  # each run's output is in its train.log
                logging_level=logging.WARNING,
                **local,
            )
            self._started = True
        self._task = ray.remote(_execute_on_node)
        try:
            check_shared_folder(ray, self.folder)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, kind, error, trace) -> None:
        ray = self._ray
        if ray is None:
            return
        refs = list(self._running)
        for ref in refs:  # after an error or an interruption
            ray.cancel(ref, force=True)
        if refs:
            # ray.cancel only asks: wait until the tasks have ended, so that nothing writes
            # into the study folder after the study has returned (a resume then sees it all).
            ray.wait(refs, num_returns=len(refs), timeout=CANCEL_WAIT_SECONDS)
        self._running.clear()
        if self._started:
            ray.shutdown()
            self._started = False
        self._ray = None

    @property
    def pending(self) -> int:
        return len(self._running)

    def submit(self, job: Job) -> None:
        assert self._task is not None, "submit inside `with backend:`"
        resources = {"num_cpus": 1, "num_gpus": 1} if job.wants_gpu else {"num_cpus": 1}
        self._running[self._task.options(**resources).remote(job)] = job

    def wait(self) -> list[Finished]:
        ray = self._ray
        ready, _ = ray.wait(list(self._running), num_returns=1)
        finished = []
        for ref in ready:
            job = self._running.pop(ref)
            try:
                outcome = ray.get(ref)
            except Exception as error:  # noqa: BLE001 - the task's worker or node died
                outcome = Outcome("failed", error=f"ray task: {one_line(error)}")
            finished.append((job, outcome))
        return finished
