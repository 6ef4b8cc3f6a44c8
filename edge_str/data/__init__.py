"""Data sets for edge_str: Google-12 (Speech Commands) and HAR-2 (UCI HAR).

Usage: ``data = load_task("google12", "data/speech_commands", DataConfig())``, then
``data.split_tensors("val")`` (raw features [N, T, F], labels [N]) and
``data.train_batches(epoch, batch_size=100, seed=0)``.
"""

from edge_str.data.config import DataConfig
from edge_str.data.har import ACTIVITIES, HAR2_CLASSES
from edge_str.data.load import TASKS, load_task
from edge_str.data.speech_commands import COMMAND_WORDS, GOOGLE12_CLASSES
from edge_str.data.task import TaskData

__all__ = [
    "ACTIVITIES",
    "COMMAND_WORDS",
    "GOOGLE12_CLASSES",
    "HAR2_CLASSES",
    "TASKS",
    "DataConfig",
    "TaskData",
    "load_task",
]
