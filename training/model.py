"""The training itself: a seeded scikit-learn pipeline chosen by hyperparameters."""

from __future__ import annotations

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

from serving.artifact import Feature, Task
from training.dataset import Dataset
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
    x_train, x_test, y_train, y_test = train_test_split(
        matrix,
        target,
        test_size=hyperparameters.test_size,
        random_state=hyperparameters.seed,
        stratify=target if task == "classification" else None,
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
