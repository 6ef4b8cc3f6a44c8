"""Predictions, accuracy and the per-class report (scikit-learn metrics)."""

from __future__ import annotations

from typing import Any

import torch
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix
from torch import nn


@torch.no_grad()
def predict(
    model: nn.Module, x: torch.Tensor, batch_size: int = 500, device: str = "cpu"
) -> torch.Tensor:
    """Top-1 class of every row of x (raw features), in eval mode, batched."""
    was_training = model.training
    model.eval()
    out = [
        model(x[i : i + batch_size].to(device)).argmax(-1).cpu()
        for i in range(0, len(x), batch_size)
    ]
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: str = "cpu") -> float:
    if len(y) == 0:
        return float("nan")
    return float((predict(model, x, device=device) == y).float().mean())


def classification_summary(
    y_true: torch.Tensor, y_pred: torch.Tensor, class_names: list[str]
) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1/support and the confusion matrix (rows = truth)."""
    labels = list(range(len(class_names)))
    report = classification_report(
        y_true.numpy(),
        y_pred.numpy(),
        labels=labels,
        target_names=class_names,
        output_dict=True,
        zero_division=0,
    )
    return {
        "accuracy": float(accuracy_score(y_true.numpy(), y_pred.numpy())),
        "examples": len(y_true),
        "per_class": {name: report[name] for name in class_names},
        "macro_avg": report["macro avg"],
        "weighted_avg": report["weighted avg"],
        "class_names": class_names,
        "confusion_matrix": confusion_matrix(
            y_true.numpy(), y_pred.numpy(), labels=labels
        ).tolist(),
    }
