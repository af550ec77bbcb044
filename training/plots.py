"""Evaluation plots, as PNG files a reviewer opens from the model card."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mlstack_common.artifact import Task


def _figure() -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(6, 5), dpi=100)


def _save(figure: Any, path: Path, title: str) -> Path:
    import matplotlib.pyplot as plt

    figure.tight_layout()
    # The title is also stored in the PNG's text chunk, so tools can tell the plots apart.
    figure.savefig(path, format="png", metadata={"Title": title, "Software": None})
    plt.close(figure)
    return path


def classification_plots(
    directory: Path, y_true: np.ndarray, probabilities: np.ndarray, classes: np.ndarray
) -> list[Path]:
    """ROC and precision-recall curves (one line per class when there are more than two) and
    the confusion matrix."""
    from sklearn import metrics

    directory.mkdir(parents=True, exist_ok=True)
    positives = [classes[1]] if len(classes) == 2 else list(classes)
    columns = [list(classes).index(c) for c in positives]
    paths = []

    figure, axes = _figure()
    for label, column in zip(positives, columns, strict=True):
        fpr, tpr, _ = metrics.roc_curve(y_true == label, probabilities[:, column])
        auc = metrics.auc(fpr, tpr)
        axes.plot(fpr, tpr, label=f"{label} (AUC {auc:.3f})")
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    axes.set(xlabel="False positive rate", ylabel="True positive rate")
    axes.legend(loc="lower right")
    title = "ROC curve"
    axes.set_title(title)
    paths.append(_save(figure, directory / "roc_curve.png", title))

    figure, axes = _figure()
    for label, column in zip(positives, columns, strict=True):
        precision, recall, _ = metrics.precision_recall_curve(
            y_true == label, probabilities[:, column]
        )
        average = metrics.average_precision_score(y_true == label, probabilities[:, column])
        axes.plot(recall, precision, label=f"{label} (AP {average:.3f})")
    axes.set(xlabel="Recall", ylabel="Precision", ylim=(0, 1.05))
    axes.legend(loc="lower left")
    title = "Precision-recall curve"
    axes.set_title(title)
    paths.append(_save(figure, directory / "precision_recall_curve.png", title))

    figure, axes = _figure()
    predicted = classes[np.argmax(probabilities, axis=1)]
    matrix = metrics.confusion_matrix(y_true, predicted, labels=classes)
    metrics.ConfusionMatrixDisplay(matrix, display_labels=classes).plot(ax=axes, colorbar=False)
    title = "Confusion matrix"
    axes.set_title(title)
    paths.append(_save(figure, directory / "confusion_matrix.png", title))
    return paths


def regression_plots(directory: Path, y_true: np.ndarray, predicted: np.ndarray) -> list[Path]:
    """Residuals against predictions, and predictions against actual values."""
    directory.mkdir(parents=True, exist_ok=True)
    figure, axes = _figure()
    axes.scatter(predicted, y_true - predicted, s=8, alpha=0.6)
    axes.axhline(0, color="grey", linestyle="--")
    axes.set(xlabel="Predicted", ylabel="Residual (actual - predicted)")
    title = "Residuals"
    axes.set_title(title)
    residuals = _save(figure, directory / "residuals.png", title)

    figure, axes = _figure()
    axes.scatter(y_true, predicted, s=8, alpha=0.6)
    low, high = float(min(y_true.min(), predicted.min())), float(max(y_true.max(), predicted.max()))
    axes.plot([low, high], [low, high], color="grey", linestyle="--", label="perfect")
    axes.set(xlabel="Actual", ylabel="Predicted")
    axes.legend(loc="upper left")
    title = "Predicted vs actual"
    axes.set_title(title)
    return [residuals, _save(figure, directory / "predicted_vs_actual.png", title)]


def evaluation_plots(
    directory: Path, task: Task, model: Any, features: np.ndarray, y_true: np.ndarray
) -> list[Path]:
    if task == "classification":
        return classification_plots(
            directory, y_true, model.predict_proba(features), model.classes_
        )
    return regression_plots(directory, y_true, model.predict(features))
