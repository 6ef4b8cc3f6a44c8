"""The confusion matrix as a labelled PNG (scikit-learn's display on a matplotlib Agg figure)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_str.atomic import write_atomic


def plot_confusion(
    matrix: list[list[int]], class_names: list[str], path: str | Path, title: str
) -> Path:
    """Rows are the true classes, columns the predicted ones; counts in the cells."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from sklearn.metrics import ConfusionMatrixDisplay

    size = max(5.0, 0.55 * len(class_names) + 2.0)
    fig = Figure(figsize=(size, size))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    display = ConfusionMatrixDisplay(np.asarray(matrix), display_labels=class_names)
    display.plot(ax=ax, cmap="Blues", colorbar=False, xticks_rotation=45)
    ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    return path
