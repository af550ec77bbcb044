"""The training itself: a seeded scikit-learn pipeline chosen by hyperparameters."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlstack_common.artifact import Feature, Task
from training.dataset import Dataset, DatasetError, DatasetProblem
from training.evaluation import evaluate
from training.settings import Hyperparameters


@dataclass(frozen=True)
class HoldOut:
    """The rows held out for evaluation, as the model takes them."""

    features: np.ndarray
    target: np.ndarray


@dataclass(frozen=True)
class TrainedModel:
    """A fitted pipeline, its hold-out set and metrics, and the dummy baseline's metrics."""

    pipeline: Pipeline
    holdout: HoldOut
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]
    classes: tuple[str, ...]


def as_matrix(features: Any, spec_features: tuple[Feature, ...]) -> np.ndarray:
    """Feature columns as the 2-D array the pipeline takes: float when every feature is numeric
    (the fast path serving relies on), object otherwise."""
    numeric = all(feature.type == "numeric" for feature in spec_features)
    return np.asarray(features, dtype=np.float64 if numeric else object)


def _preprocessor(features: tuple[Feature, ...], scale: bool) -> ColumnTransformer:
    numeric = [i for i, f in enumerate(features) if f.type == "numeric"]
    categorical = [i for i, f in enumerate(features) if f.type == "categorical"]
    numeric_steps: list[Any] = [SimpleImputer(strategy="median")]
    if scale:
        numeric_steps.append(StandardScaler())
    transformers: list[tuple[str, Any, list[int]]] = []
    if numeric:
        transformers.append(("numeric", make_pipeline(*numeric_steps), numeric))
    if categorical:
        transformers.append(
            (
                "categorical",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent", missing_values=None),
                    OneHotEncoder(
                        categories=[list(features[i].categories) for i in categorical],
                        handle_unknown="ignore",
                    ),
                ),
                categorical,
            )
        )
    return ColumnTransformer(transformers, sparse_threshold=0.0)


def build_pipeline(
    task: Task, features: tuple[Feature, ...], hyperparameters: Hyperparameters
) -> Pipeline:
    """The untrained pipeline for a task and algorithm."""
    h = hyperparameters
    estimator: Any
    if h.algorithm == "linear":
        estimator = (
            LogisticRegression(C=h.regularization, max_iter=h.max_iter, random_state=h.seed)
            if task == "classification"
            else Ridge(alpha=h.regularization, random_state=h.seed)
        )
    elif h.algorithm == "forest":
        forest = RandomForestClassifier if task == "classification" else RandomForestRegressor
        estimator = forest(n_estimators=h.n_estimators, random_state=h.seed, n_jobs=1)
    else:
        boosting = (
            HistGradientBoostingClassifier
            if task == "classification"
            else HistGradientBoostingRegressor
        )
        estimator = boosting(
            learning_rate=h.learning_rate,
            max_iter=h.max_iter,
            max_leaf_nodes=h.max_leaf_nodes,
            l2_regularization=h.l2_regularization,
            random_state=h.seed,
        )
    return Pipeline(
        [
            ("preprocess", _preprocessor(features, scale=h.algorithm == "linear")),
            ("model", estimator),
        ]
    )


def train(
    dataset: Dataset, features: tuple[Feature, ...], task: Task, hyperparameters: Hyperparameters
) -> TrainedModel:
    """Split, fit and evaluate. Pure: the same dataset and hyperparameters give the same model."""
    matrix = as_matrix(dataset.features, features)
    target = dataset.target.to_numpy(dtype=object if task == "classification" else np.float64)
    if task == "classification":
        _check_class_counts(str(dataset.target.name), target, hyperparameters.test_size)
    x_train, x_test, y_train, y_test = train_test_split(
        matrix,
        target,
        test_size=hyperparameters.test_size,
        random_state=hyperparameters.seed,
        stratify=target if task == "classification" else None,
    )
    if task == "classification":
        _check_every_class_held_out(
            str(dataset.target.name), target, y_train, y_test, hyperparameters.test_size
        )
    pipeline = build_pipeline(task, features, hyperparameters).fit(x_train, y_train)
    baseline = (
        DummyClassifier(strategy="prior") if task == "classification" else DummyRegressor()
    ).fit(x_train, y_train)
    return TrainedModel(
        pipeline=pipeline,
        holdout=HoldOut(features=x_test, target=y_test),
        metrics=evaluate(pipeline, task, x_test, y_test),
        baseline_metrics=evaluate(baseline, task, x_test, y_test),
        classes=tuple(str(c) for c in getattr(pipeline, "classes_", ())),
    )


def _needed_rows(test_size: float) -> int:
    """Rows a class needs so that a stratified split holds at least one of them out."""
    return max(2, math.ceil(1 / test_size))


def _check_class_counts(column: str, target: np.ndarray, test_size: float) -> None:
    """Refuse data whose classes cannot all appear in both the training and hold-out rows: a
    metric over a hold-out set missing a class is undefined (ROC AUC becomes NaN)."""
    counts = Counter(str(label) for label in target)
    needed = _needed_rows(test_size)
    holdout = math.ceil(len(target) * test_size)
    if holdout < len(counts):
        raise _refused(
            column,
            f"{len(counts)} classes but the hold-out set (test_size={test_size:g}) has "
            f"{holdout} rows; allowed: at least one hold-out row per class (more rows or a larger "
            "test_size)",
        )
    scarce = sorted((count, label) for label, count in counts.items() if count < needed)
    if scarce:
        listed = ", ".join(f"{label!r} ({count} rows)" for count, label in scarce)
        raise _refused(
            column,
            f"too few rows of class {listed} to hold one out for evaluation; allowed: at least "
            f"{needed} rows per class with test_size={test_size:g} (or a larger test_size)",
        )


def _check_every_class_held_out(
    column: str, target: np.ndarray, y_train: np.ndarray, y_test: np.ndarray, test_size: float
) -> None:
    counts = Counter(str(label) for label in target)
    for part, rows in (("hold-out", y_test), ("training", y_train)):
        missing = sorted(set(counts) - {str(label) for label in rows})
        if missing:
            listed = ", ".join(f"{label!r} ({counts[label]} rows)" for label in missing)
            raise _refused(
                column,
                f"the {part} rows hold no row of class {listed}; allowed: at least "
                f"{_needed_rows(test_size)} rows per class with test_size={test_size:g}",
            )


def _refused(column: str, problem: str) -> DatasetError:
    return DatasetError([DatasetProblem(column, problem)])
