"""The rank-vs-accuracy study (``edge-str compare``): learned rank against fixed rank and SVD.

See ``edge_str.compare.study`` for what runs and how it resumes. From Python:

    from edge_str.compare import load_study_config, run_study
    cfg, settings = load_study_config("har2", overrides={"data_dir": "data/har"}, quick=True)
    result = run_study(cfg, settings, "studies/har2", jobs=2)  # or backend="ray", address=...
    print(result.summary_line())   # and studies/har2/compare.{csv,md,png}
"""

from edge_str.compare.report import (
    COLUMNS,
    best_at_size,
    markdown_table,
    pareto_front,
    plot,
    read_csv,
    reading,
    write_csv,
    write_reports,
)
from edge_str.compare.result import StudyResult
from edge_str.compare.settings import (
    COMPARE_TASKS,
    PRESETS,
    CompareSettings,
    load_study_config,
    preset,
)
from edge_str.compare.study import (
    METHODS,
    Study,
    StudyJob,
    plan_base_jobs,
    plan_svd_jobs,
    run_study,
)
from edge_str.compare.svd import truncated_model_config, truncated_svd_factors, truncated_svd_state
from edge_str.scheduling import default_jobs

__all__ = [
    "COLUMNS",
    "COMPARE_TASKS",
    "METHODS",
    "PRESETS",
    "CompareSettings",
    "Study",
    "StudyJob",
    "StudyResult",
    "best_at_size",
    "default_jobs",
    "load_study_config",
    "markdown_table",
    "pareto_front",
    "plan_base_jobs",
    "plan_svd_jobs",
    "plot",
    "preset",
    "read_csv",
    "reading",
    "run_study",
    "truncated_model_config",
    "truncated_svd_factors",
    "truncated_svd_state",
    "write_csv",
    "write_reports",
]
