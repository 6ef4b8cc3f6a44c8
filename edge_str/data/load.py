"""``load_task``: the one entry point the trainer uses."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from edge_str.data.config import DataConfig
from edge_str.data.task import TaskData
from edge_str.errors import EdgeStrError

TASKS = ("google12", "har2", "har6", "digits")


def load_task(task: str, data_dir: str | Path, config: DataConfig | None = None) -> TaskData:
    """Load ``task`` from ``data_dir``: google12, har2 (har6: all six activities), digits."""
    config = config or DataConfig()
    if task == "google12":
        from edge_str.data.google12 import load_google12

        return load_google12(data_dir, config)
    if task in ("har2", "har6"):
        from edge_str.data.har import load_har

        if task == "har6":
            config = dataclasses.replace(config, har_classes=6)
        return load_har(data_dir, config)
    if task == "digits":
        from edge_str.data.digits import load_digits_task

        return load_digits_task(config, data_dir)  # bundled with scikit-learn: no folder needed
    raise EdgeStrError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
