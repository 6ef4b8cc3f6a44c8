"""The study on Ray: same table as the local backend, resume, the shared-folder check, no Ray."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from _data_trees import build_har_tree

import edge_str.training
from edge_str.compare import Study, load_study_config, run_study
from edge_str.config import TrainConfig
from edge_str.scheduling import make_backend
from tests._cli import refused

try:
    import ray
except ImportError:  # the `ray` extra is not installed: the tests that need it are skipped
    ray = None

needs_ray = pytest.mark.skipif(ray is None, reason="Ray is not installed (pip install '.[ray]')")

TINY = """\
model: {hidden: 8}
compare:
  fixed_ranks: [[2, 3], [20, 4]]   # W of a 9-feature input has full rank 8: the second fails
  str_weight_decays: [0.01]
  str_s_init: -1.0
  finetune_epochs: 1
  baselines: []                    # the GRU/LSTM and budget runs: tests/test_compare.py
  budget_fractions: []
  epochs: 2
"""


@pytest.fixture(scope="module")
def har(tmp_path_factory) -> Path:
    return build_har_tree(tmp_path_factory.mktemp("har") / "UCI HAR Dataset")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A local Ray cluster of two CPUs, shared by this module's tests."""
    # The workers use the tests' cache (conftest), so the fused kernel is built once, not twice.
    cache = str(tmp_path_factory.getbasetemp() / "feature-cache")
    env = {"env_vars": {"EDGE_STR_CACHE": cache}}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env=env)
    yield
    ray.shutdown()


def _study(har: Path, tmp_path: Path):
    path = tmp_path / "study.yaml"
    path.write_text(TINY)
    return load_study_config("har2", path, {"data_dir": str(har)})


def _table(rows: list[dict]) -> list[dict]:
    """The rows without the one column that measures the machine."""
    return [{k: v for k, v in r.items() if k != "train_seconds"} for r in rows]


@pytest.mark.slow
@needs_ray
def test_ray_study_gives_the_local_table(har, tmp_path, cluster, capsys):
    cfg, settings = _study(har, tmp_path)
    local = run_study(cfg, settings, tmp_path / "local", jobs=1, progress=False)
    on_ray = run_study(cfg, settings, tmp_path / "ray", backend="ray", progress=False)
    assert _table(on_ray.rows) == _table(local.rows)
    assert on_ray.counts == local.counts == {"new": 5, "reused": 0, "failed": 1, "skipped": 0}
    failed = next(r for r in on_ray.rows if r["status"] == "failed")
    assert failed["error"] == "rank of W must be in 1..8, got 20"  # one line, as locally
    assert "Traceback" in (tmp_path / "ray/runs/fixed-w20-u4/error.log").read_text()
    assert (tmp_path / "ray/compare.md").read_text().count("| str |") == 1
    assert "warning" not in capsys.readouterr().err  # one node, and it sees the folder


@pytest.mark.slow
@needs_ray
def test_interrupted_ray_study_resumes(har, tmp_path, cluster):
    cfg, settings = _study(har, tmp_path)
    out = tmp_path / "study"
    cfg.data_dir = str(har.resolve())
    # A dense run interrupted after its first epoch (of 2): last.pt, no final.json.
    dense = TrainConfig.from_dict({**cfg.to_dict(), "out": str(out / "runs/dense")})
    dense.model.rank_mode = "dense"

    def stop_after_first_epoch(line: str) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        edge_str.training.train(dense, log=stop_after_first_epoch)
    first_epoch = (out / "runs/dense/metrics.jsonl").read_text()

    def stop_after_two(rows: list[dict]) -> None:
        if len(rows) == 2:
            raise KeyboardInterrupt

    backend = make_backend("ray", folder=out.resolve())
    study = Study(
        cfg, settings, out.resolve(), backend=backend, progress=False, on_row=stop_after_two
    )
    with pytest.raises(KeyboardInterrupt):
        study.run()
    finished = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("runs/*/final.json")}
    assert finished and len(finished) <= 3  # two recorded, a third may have been writing

    result = run_study(cfg, settings, out, backend="ray", progress=False)
    assert result.counts["reused"] == len(finished)
    assert result.counts["new"] == 5 - len(finished) and result.counts["failed"] == 1
    # the finished runs were not run again ...
    assert {n: (out / "runs" / n / "final.json").stat().st_mtime_ns for n in finished} == finished
    # ... and the half-finished dense run went on from its checkpoint, in a Ray task
    metrics = (out / "runs/dense/metrics.jsonl").read_text()
    assert metrics.startswith(first_epoch) and len(metrics.splitlines()) == 2


@needs_ray
def test_shared_folder_check_says_when_it_cannot_check(tmp_path, cluster, capsys):
    from edge_str.scheduling.ray_cluster import check_shared_folder

    check_shared_folder(ray, tmp_path)  # the one local node sees it: nothing said
    assert capsys.readouterr().err == ""
    check_shared_folder(ray, tmp_path, timeout=0.0)  # no time to answer: said, not fatal
    err = capsys.readouterr().err
    assert err.startswith("edge-str: warning: could not check that") and str(tmp_path) in err
    assert list(tmp_path.iterdir()) == []  # the marker file is gone


def test_backend_ray_without_ray_is_one_line(har, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if not installed
    argv = ["compare", "--task", "har2", "--data", str(har), "--out", str(tmp_path / "s")]
    line = refused([*argv, "--backend", "ray"], capsys)
    assert "--backend ray needs Ray" in line and "pip install 'edge_str[ray]'" in line
    assert "--address is for --backend ray" in refused([*argv, "--address", "auto"], capsys)
