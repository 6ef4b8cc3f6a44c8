"""Training and evaluation of edge_str models."""

from edge_str.training.evaluation import accuracy, classification_summary, predict
from edge_str.training.trainer import TrainingDiverged, train

__all__ = ["TrainingDiverged", "accuracy", "classification_summary", "predict", "train"]
