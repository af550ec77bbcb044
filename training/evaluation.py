"""Metrics fit for the task, and which one decides."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import metrics

from mlstack_common.artifact import Task

# The metric the quality gate compares, and whether a larger value is better.
PRIMARY_METRIC: dict[Task, tuple[str, bool]] = {
    "classification": ("roc_auc", True),
    "regression": ("rmse", False),
}


CALIBRATION_METRIC = "log_loss"
"""Classification only: the gate refuses probabilities worse calibrated than the baseline's."""


def primary(task: Task) -> tuple[str, bool]:
    return PRIMARY_METRIC[task]


def classification_metrics(
    y_true: np.ndarray, probabilities: np.ndarray, classes: np.ndarray
) -> dict[str, float]:
    predicted = classes[np.argmax(probabilities, axis=1)]
    if len(classes) == 2:
        auc = metrics.roc_auc_score(y_true == classes[1], probabilities[:, 1])
    else:
        auc = metrics.roc_auc_score(y_true, probabilities, multi_class="ovr", labels=classes)
    return {
        "roc_auc": float(auc),
        "accuracy": float(metrics.accuracy_score(y_true, predicted)),
        "balanced_accuracy": float(metrics.balanced_accuracy_score(y_true, predicted)),
        "f1_macro": float(metrics.f1_score(y_true, predicted, average="macro")),
        "log_loss": float(metrics.log_loss(y_true, probabilities, labels=classes)),
    }


def regression_metrics(y_true: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    return {
        "rmse": float(np.sqrt(metrics.mean_squared_error(y_true, predicted))),
        "mae": float(metrics.mean_absolute_error(y_true, predicted)),
        "r2": float(metrics.r2_score(y_true, predicted)),
    }


def evaluate(model: Any, task: Task, features: np.ndarray, y_true: np.ndarray) -> dict[str, float]:
    """Hold-out metrics of a fitted model (a candidate, the baseline or the approved version)."""
    if task == "classification":
        return classification_metrics(y_true, model.predict_proba(features), model.classes_)
    return regression_metrics(y_true, model.predict(features))


def improvement(task: Task, candidate: float, reference: float) -> float:
    """How much better `candidate` is than `reference` on the primary metric (negative: worse)."""
    _, larger_is_better = primary(task)
    return candidate - reference if larger_is_better else reference - candidate
