"""The rank-vs-accuracy study: learned rank (STR) against fixed rank and post-hoc truncated SVD.

On the same data, splits, epochs and seed it runs

  dense         FastGRNN with dense W and U (the reference, and the source of the SVD runs)
  fixed         W and U of hand-chosen ranks, trained from scratch (a grid of (rank W, rank U))
  str           STR on the singular values (g = exp), one run per weight decay mu; each learns
                its own ranks
  svd           the trained dense model, W and U cut to the ranks an STR run found (truncated
                SVD, the best approximation of that rank), evaluated as it is
  svd+finetune  the same truncated model trained a few more epochs at that fixed rank
  budget        STR steered to a size budget (``--target-params``), one run per fraction of the
                dense model's parameters; STR still splits the ranks between W and U
  gru, lstm     nn.GRU / nn.LSTM classifiers (same features, normaliser, head and recipe), one
                run per hidden size: the models a user would pick instead

Every run is a trainer run directory under ``OUT/runs/<name>/`` (svd runs write the same files
without training). The SVD runs need the dense run and their STR run, so they start when those
have finished. A run whose ``final.json`` exists is reused; one with a ``last.pt`` but no
``final.json`` continues with resume; a failed run is recorded with its error and the study goes
on. Runs are ``edge_str.scheduling`` jobs: in worker processes ("spawn", one torch thread each),
with ``jobs=1`` in this process, or with ``backend="ray"`` as Ray tasks.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from edge_str.atomic import write_json
from edge_str.compare.report import write_csv, write_reports
from edge_str.compare.result import StudyResult
from edge_str.compare.settings import CompareSettings
from edge_str.compare.svd import truncated_model_config, truncated_svd_state
from edge_str.config import TrainConfig
from edge_str.errors import EdgeStrError
from edge_str.lowrank import full_rank
from edge_str.run import (
    BEST_CHECKPOINT,
    FINAL_FILE,
    LAST_CHECKPOINT,
    RunInfo,
    load_trained_model,
    save_checkpoint,
    save_run_info,
)
from edge_str.scheduling import (
    Backend,
    Job,
    Outcome,
    Scheduler,
    config_difference,
    make_backend,
)

METHODS = ("dense", "fixed", "str", "budget", "svd", "svd+finetune", "gru", "lstm")
RUNS_DIR = "runs"
SVD_INIT_FILE = "svd_init.pt"
STUDY_FILE = "compare.json"  # the study's training config and grids, for resuming
DENSE_RUN = "dense"


@dataclass
class StudyJob(Job):
    """One run of the study: a scheduler job with its method and what distinguishes it."""

    method: str = "dense"  # one of METHODS
    setting: str = ""  # what distinguishes it, for the table
    ranks: dict[str, int] | None = None  # svd runs: the ranks cut to
    target_params: int | None = None  # budget runs: the size asked for
    sources: list[str] = field(default_factory=list)  # svd runs: the STR runs with these ranks

    def execute(self, log: Callable[[str], None]) -> dict[str, Any]:
        if self.method == "svd":
            return evaluate_truncated(self)
        if self.method == "svd+finetune" and not (self.run_dir / LAST_CHECKPOINT).is_file():
            write_svd_init(self)
        return super().execute(log)


# ----------------------------------------------------------------------------- planning


def _run_config(base: TrainConfig, out: Path, name: str, **model: Any) -> TrainConfig:
    cfg = copy.deepcopy(base)
    cfg.out = str(out / RUNS_DIR / name)
    cfg.model.init_weights = None
    for key, value in model.items():
        setattr(cfg.model, key, value)
    return cfg


STR_DEFAULT_RUN = "str-default"


def _default_str_setting(cfg: TrainConfig) -> str:
    optim = cfg.optim
    decay = optim.weight_decay if optim.threshold_decay is None else optim.threshold_decay
    return (
        f"defaults: mu {mu_name(optim.weight_decay)}, threshold decay {mu_name(decay)}, "
        f"s_init {cfg.model.s_init:g}"
    )


def mu_name(mu: float) -> str:
    return f"{mu:g}"


def _job(name: str, method: str, setting: str, cfg: TrainConfig, **extra: Any) -> StudyJob:
    return StudyJob(name, cfg.to_dict(), method=method, setting=setting, **extra)


def plan_base_jobs(
    base: TrainConfig, settings: CompareSettings, out: Path, dense_params: int | None = None
) -> list[StudyJob]:
    """The dense run, the fixed-rank grid, the STR grid, the GRU/LSTM baselines and, given the
    dense model's ``dense_params``, the budget runs (the SVD runs come later)."""
    dense = _run_config(base, out, DENSE_RUN, rank_mode="dense", rank_w=None, rank_u=None)
    jobs = [_job(DENSE_RUN, "dense", f"hidden {base.model.hidden}", dense)]
    for rank_w, rank_u in settings.fixed_ranks:
        name = f"fixed-w{rank_w}-u{rank_u}"
        cfg = _run_config(base, out, name, rank_mode="fixed", rank_w=rank_w, rank_u=rank_u)
        jobs.append(_job(name, "fixed", f"ranks W {rank_w}, U {rank_u}", cfg))
    s_init = base.model.s_init if settings.str_s_init is None else settings.str_s_init
    for mu in settings.str_weight_decays:
        name = f"str-mu{mu_name(mu)}"
        cfg = _run_config(base, out, name, rank_mode="str", rank_w=None, rank_u=None, s_init=s_init)
        cfg.optim.weight_decay = mu
        cfg.optim.threshold_decay = None  # the paper's objective: the same mu on thresholds
        setting = f"mu {mu_name(mu)}, s_init {s_init:g}"
        jobs.append(_job(name, "str", setting, cfg))
    if settings.str_default:
        cfg = _run_config(base, out, STR_DEFAULT_RUN, rank_mode="str", rank_w=None, rank_u=None)
        jobs.append(_job(STR_DEFAULT_RUN, "str", _default_str_setting(cfg), cfg))
    if dense_params is not None:
        for fraction in settings.budget_fractions:
            target = round(fraction * dense_params)
            name = f"budget-{fraction:g}"
            # Budget mode (edge_str.training.budget): STR steered to ``target_params``.
            cfg = _run_config(
                base,
                out,
                name,
                rank_mode="str",
                rank_w=None,
                rank_u=None,
                target_params=target,
                target_kb=None,
            )
            setting = f"{fraction:g} x dense: {target:,} params"
            jobs.append(_job(name, "budget", setting, cfg, target_params=target))
    for kind in settings.baselines:
        for hidden in settings.baseline_hidden:
            name = f"{kind}-h{hidden}"
            cfg = _run_config(base, out, name, arch=kind, hidden=hidden)
            jobs.append(_job(name, kind, f"hidden {hidden}", cfg))
    return jobs


def dense_param_count(base: TrainConfig, input_shape: tuple[int, ...], num_classes: int) -> int:
    """Parameters of the study's dense FastGRNN (the reference of the budget fractions)."""
    from edge_str.models import build_model

    model = dataclasses.replace(base.model, rank_mode="dense", rank_w=None, rank_u=None)
    return build_model(model, input_shape, num_classes).cost().params_compact


def plan_svd_jobs(
    dense_config: dict[str, Any], settings: CompareSettings, out: Path, ranks: dict[str, int]
) -> list[StudyJob]:
    """Truncated SVD of the dense run at ``ranks``: as it is, and fine-tuned."""
    dense = TrainConfig.from_dict(dense_config)
    tag = f"w{ranks['W']}-u{ranks['U']}"
    model = truncated_model_config(dense.model, ranks)

    svd = copy.deepcopy(dense)
    svd.model, svd.out = model, str(out / RUNS_DIR / f"svd-{tag}")
    svd.optim.epochs = 0  # not trained: the dense run's weights, truncated

    tuned = copy.deepcopy(dense)
    tuned.out = str(out / RUNS_DIR / f"svdft-{tag}")
    tuned.model = copy.deepcopy(model)
    tuned.model.init_weights = str(Path(tuned.out) / SVD_INIT_FILE)
    tuned.optim.epochs = settings.finetune_epochs
    if settings.finetune_lr is not None:
        tuned.optim.lr = settings.finetune_lr
    setting = f"ranks W {ranks['W']}, U {ranks['U']}"
    return [
        _job(f"svd-{tag}", "svd", setting, svd, ranks=dict(ranks)),
        _job(
            f"svdft-{tag}",
            "svd+finetune",
            f"{setting}, {_plural(settings.finetune_epochs, 'epoch')} at lr {tuned.optim.lr:g}",
            tuned,
            ranks=dict(ranks),
        ),
    ]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# ----------------------------------------------------------------------------- the SVD runs


def _dense_dir(job: StudyJob) -> Path:
    return job.run_dir.parent / DENSE_RUN


def write_svd_init(job: StudyJob) -> Path:
    """The truncated SVD of the dense run's kept model, as the fine-tune's init_weights."""
    _, dense = load_trained_model(_dense_dir(job))
    state = truncated_svd_state(dense.state_dict(), job.ranks)
    path = Path(job.config["model"]["init_weights"])
    save_checkpoint(path, {"model": state})
    return path


def evaluate_truncated(job: StudyJob) -> dict[str, Any]:
    """The dense run cut to ``job.ranks`` without training: writes a run directory and final."""
    from edge_str.data import load_task
    from edge_str.models import build_model
    from edge_str.training.evaluation import accuracy
    from edge_str.training.summary import final_summary

    start = time.perf_counter()
    cfg = TrainConfig.from_dict(job.config)
    dense_info, dense = load_trained_model(_dense_dir(job))
    model = build_model(cfg.model, dense_info.input_shape, len(dense_info.class_names))
    model.load_state_dict(truncated_svd_state(dense.state_dict(), job.ranks))
    model.eval()
    data = load_task(cfg.task, cfg.data_dir, cfg.data)
    val = accuracy(model, *data.split_tensors("val"))
    test = accuracy(model, *data.split_tensors("test"))
    save_run_info(job.run_dir, RunInfo(cfg, data.class_names, tuple(data.input_shape)))
    save_checkpoint(
        job.run_dir / BEST_CHECKPOINT, {"model": model.state_dict(), "val_accuracy": val}
    )
    final = final_summary(
        cfg,
        model,
        method="svd",
        test_accuracy=test,
        val_accuracy=val,
        best_epoch=0,
        epochs=0,
        train_seconds=0.0,  # no training; the SVD itself took ``svd_seconds``
        svd_seconds=time.perf_counter() - start,
        svd_of=str(_dense_dir(job)),
    )
    write_json(job.run_dir / FINAL_FILE, final)
    return final


# ----------------------------------------------------------------------------- the study


def row_of(job: StudyJob, outcome: Outcome) -> dict[str, Any]:
    """One line of compare.csv."""
    final = outcome.final or {}
    ranks = final.get("ranks") or job.ranks or {}
    return {
        "method": job.method,
        "setting": job.setting + (f" (ranks of {', '.join(job.sources)})" if job.sources else ""),
        "run": f"{RUNS_DIR}/{job.name}" if job.config else "",
        "rank_w": ranks.get("W"),
        "rank_u": ranks.get("U"),
        "params": final.get("params"),
        "target_params": job.target_params,
        "bytes": final.get("bytes"),
        "macs_per_step": final.get("macs_per_step"),
        "val_accuracy": final.get("val_accuracy"),
        "test_accuracy": final.get("test_accuracy"),
        "train_seconds": final.get("train_seconds"),
        "status": outcome.status,
        "error": outcome.error,
    }


def _sort_key(row: dict[str, Any]) -> tuple:
    params = row["params"] if row["params"] is not None else float("inf")
    return (METHODS.index(row["method"]), params, row["setting"])


class Study:
    """Plans, runs and records one study on a scheduler backend; ``run()`` returns the rows.

    ``backend``: an ``edge_str.scheduling`` backend; default the local one of ``jobs`` processes.
    """

    def __init__(
        self,
        config: TrainConfig,
        settings: CompareSettings,
        out: str | os.PathLike,
        jobs: int = 1,
        *,
        backend: Backend | None = None,
        progress: bool = True,
        on_row: Callable[[list[dict[str, Any]]], None] | None = None,
        dense_params: int | None = None,
    ) -> None:
        self.backend = make_backend("local", jobs) if backend is None else backend
        self.config, self.settings, self.out = config, settings, Path(out)
        self.progress, self.on_row = progress, on_row
        self.base_jobs = plan_base_jobs(config, settings, self.out, dense_params)
        # The STR runs whose ranks the svd runs reproduce (none without posthoc_svd).
        self.str_jobs = [j for j in self.base_jobs if j.method == "str" and settings.posthoc_svd]
        self.results: dict[str, tuple[StudyJob, Outcome]] = {}
        self.svd_jobs: dict[str, StudyJob] = {}
        self._handled_str: set[str] = set()
        self._bar: Any = None

    # -- bookkeeping
    def rows(self) -> list[dict[str, Any]]:
        return sorted((row_of(j, o) for j, o in self.results.values()), key=_sort_key)

    def counts(self) -> dict[str, int]:
        outcomes = [o for _, o in self.results.values()]
        return {
            "new": sum(o.status == "ok" and not o.reused for o in outcomes),
            "reused": sum(o.reused for o in outcomes),
            "failed": sum(o.status == "failed" for o in outcomes),
            "skipped": sum(o.status == "skipped" for o in outcomes),
        }

    def _dependents(self) -> list[StudyJob]:
        """SVD jobs that became possible (or impossible) since the last call."""
        dense = self.results.get(DENSE_RUN)
        if dense is None:
            return []
        ready = []
        for str_job in self.str_jobs:
            if str_job.name in self._handled_str or str_job.name not in self.results:
                continue
            self._handled_str.add(str_job.name)
            outcome = self.results[str_job.name][1]
            blocker = next(
                (
                    n
                    for n, o in ((DENSE_RUN, dense[1]), (str_job.name, outcome))
                    if o.status != "ok"
                ),
                None,
            )
            if blocker is not None:
                for method in ("svd", "svd+finetune"):
                    job = StudyJob(
                        f"{method}<-{str_job.name}", {}, method, f"ranks of {str_job.name}"
                    )
                    self._record(job, Outcome("skipped", error=f"needs {blocker}, which failed"))
                continue
            ranks = {k: int(v) for k, v in outcome.final["ranks"].items()}
            for job in plan_svd_jobs(dense[0].config, self.settings, self.out, ranks):
                known = self.svd_jobs.get(job.name)
                if known is not None:  # another STR run found the same ranks: one run serves both
                    known.sources.append(str_job.name)
                    self._shrink_total()
                    continue
                job.sources.append(str_job.name)
                self.svd_jobs[job.name] = job
                ready.append(job)
        return ready

    def _shrink_total(self) -> None:
        if self._bar is not None:
            self._bar.total -= 1
            self._bar.refresh()

    def _record(self, job: StudyJob, outcome: Outcome) -> None:
        self.results[job.name] = (job, outcome)
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix_str(f"{job.name} {outcome.status}", refresh=True)
        if self.on_row is not None:
            self.on_row(self.rows())

    def _done(self, job: StudyJob, outcome: Outcome) -> list[StudyJob]:
        self._record(job, outcome)
        return self._dependents()

    # -- running
    def run(self) -> list[dict[str, Any]]:
        total = len(self.base_jobs) + 2 * len(self.str_jobs)
        self._bar = tqdm(total=total, desc="compare", unit="run", disable=not self.progress or None)
        try:
            Scheduler(self.backend, self._done).run(self.base_jobs)
        finally:
            self._bar.close()
        return self.rows()


def run_study(
    config: TrainConfig,
    settings: CompareSettings,
    out: str | os.PathLike,
    jobs: int | None = None,
    *,
    progress: bool = True,
    backend: str = "local",
    address: str | None = None,
) -> StudyResult:
    """Run (or resume) the study and write OUT/compare.csv, compare.md and compare.png.

    ``backend`` "local" runs ``jobs`` processes here (default: the cores); "ray" makes every
    run a Ray task on the cluster at ``address`` (None: a local cluster of ``jobs`` CPUs, all
    the cores when None), and OUT must then be a folder every node of the cluster sees.
    """
    from edge_str.data import load_task

    start = time.perf_counter()
    out = Path(out)
    # Ray tasks run in other folders (and on other nodes): they get absolute run directories.
    runs_root = out if backend == "local" else out.resolve()
    scheduler_backend = make_backend(backend, jobs, address=address, folder=runs_root)
    config = copy.deepcopy(config)
    if not config.data_dir:
        raise EdgeStrError("--data is required (or data_dir in the --config file)")
    config.data_dir = str(Path(config.data_dir).expanduser().resolve())
    # Load once here: a wrong folder is one clear error before any run, and the Google-12
    # feature cache is written once instead of by every worker at the same time.
    data = load_task(config.task, config.data_dir, config.data)
    test_examples = data.num_examples("test")
    hidden = config.model.hidden
    full_ranks = {"W": full_rank(hidden, data.input_shape[-1]), "U": full_rank(hidden, hidden)}
    dense_params = dense_param_count(config, tuple(data.input_shape), len(data.class_names))
    del data
    check_same_study(out, config)
    (out / RUNS_DIR).mkdir(parents=True, exist_ok=True)
    write_json(out / STUDY_FILE, {"config": config.to_dict(), "settings": settings.to_dict()})
    study = Study(
        config,
        settings,
        runs_root,
        backend=scheduler_backend,
        progress=progress,
        on_row=lambda rows: write_csv(rows, out / "compare.csv"),
        dense_params=dense_params,
    )
    try:
        study.run()
    finally:
        # Also after an interruption: the table of what has finished so far.
        result = StudyResult(
            study.rows(),
            out,
            time.perf_counter() - start,
            study.counts(),
            test_examples,
            settings,
            config,
            full_ranks,
        )
        if study.results:
            write_reports(result)
    return result


def check_same_study(out: Path, config: TrainConfig) -> None:
    """Refuse to resume a study made with other training settings (the grids may change)."""
    path = out / STUDY_FILE
    if not path.is_file():
        return
    try:
        saved = json.loads(path.read_text())["config"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise EdgeStrError(f"{path}: not a study file; choose another --out") from None
    difference = config_difference(config.to_dict(), saved)
    if difference:
        raise EdgeStrError(
            f"{out} holds a study of other settings ({difference}); "
            "choose another --out to start a new one"
        )
