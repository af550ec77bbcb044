"""Faster evaluation of common fitted pipelines, proven equal to scikit-learn at load time.

scikit-learn spends most of a small request in per-call overhead: input validation and the
ColumnTransformer cost more than a logistic regression itself. For the pipeline shapes training
produces (numeric imputer and scaler, then a linear model or a random forest), this module
builds a numpy evaluation of the same fitted parameters (other models, gradient boosting
among them, keep their own `predict` but skip the ColumnTransformer). It is used only if, on
probe rows spanning every feature's range (missing values included where allowed), its output
matches scikit-learn's to 1e-9; otherwise the server calls scikit-learn as is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from serving.artifact import ModelMetadata

log = logging.getLogger("mlstack.serving")
Evaluate = Callable[[np.ndarray], np.ndarray]
TOLERANCE = 1e-9


def _numeric_preprocessor(step: Any, width: int) -> Evaluate | None:
    """ColumnTransformer([numeric: imputer(+scaler) over all columns in order]) as numpy."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if not isinstance(step, ColumnTransformer) or len(step.transformers_) != 1:
        return None
    _, inner, columns = step.transformers_[0]
    if list(columns) != list(range(width)) or not isinstance(inner, Pipeline):
        return None
    parts = [s for _, s in inner.steps]
    if not parts or not isinstance(parts[0], SimpleImputer) or len(parts) > 2:
        return None
    fill = np.asarray(parts[0].statistics_, dtype=np.float64)
    if len(parts) == 1:
        return lambda x: np.where(np.isnan(x), fill, x)
    scaler = parts[1]
    if not isinstance(scaler, StandardScaler):
        return None
    mean = scaler.mean_ if scaler.with_mean else np.zeros(width)
    scale = scaler.scale_ if scaler.with_std else np.ones(width)
    return lambda x: (np.where(np.isnan(x), fill, x) - mean) / scale


def _estimator(model: Any, classifier: bool) -> Evaluate | None:
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.linear_model import LogisticRegression, Ridge

    if classifier and isinstance(model, LogisticRegression):
        coef, intercept = model.coef_.T, model.intercept_
        if coef.shape[1] == 1:

            def binary(x: np.ndarray) -> np.ndarray:
                positive = 1.0 / (1.0 + np.exp(-(x @ coef + intercept)))
                return np.hstack([1.0 - positive, positive])

            return binary

        def multinomial(x: np.ndarray) -> np.ndarray:
            scores = x @ coef + intercept
            scores -= scores.max(axis=1, keepdims=True)
            np.exp(scores, out=scores)
            probabilities: np.ndarray = scores / scores.sum(axis=1, keepdims=True)
            return probabilities

        return multinomial
    if not classifier and isinstance(model, Ridge):
        coef, intercept = np.ravel(model.coef_), float(np.ravel(model.intercept_)[0])
        return lambda x: x @ coef + intercept
    if isinstance(model, RandomForestClassifier | RandomForestRegressor) and model.n_outputs_ == 1:
        # Each tree's own Cython predict, without the per-call input checks and thread pool of
        # the forest's predict: the forest's answer is the mean of its trees' answers.
        trees = [tree.tree_ for tree in model.estimators_]
        count = len(trees)
        if classifier:
            width = len(model.classes_)

            def forest_proba(x: np.ndarray) -> np.ndarray:
                rows = np.ascontiguousarray(x, dtype=np.float32)
                total = np.zeros((len(rows), width))
                for tree in trees:
                    votes = np.asarray(tree.predict(rows)).reshape(len(rows), -1)[:, :width]
                    sums = votes.sum(axis=1, keepdims=True)
                    sums[sums == 0.0] = 1.0
                    total += votes / sums
                result: np.ndarray = total / count
                return result

            return forest_proba

        def forest_mean(x: np.ndarray) -> np.ndarray:
            rows = np.ascontiguousarray(x, dtype=np.float32)
            total = np.zeros(len(rows))
            for tree in trees:
                total += np.asarray(tree.predict(rows)).reshape(len(rows), -1)[:, 0]
            result: np.ndarray = total / count
            return result

        return forest_mean
    return None


def _probe_rows(metadata: ModelMetadata, count: int = 64) -> np.ndarray:
    rng = np.random.default_rng(0)
    columns = []
    for feature in metadata.features:
        low = feature.minimum if feature.minimum is not None else -10.0
        high = feature.maximum if feature.maximum is not None else 10.0
        column = rng.uniform(low, high, size=count)
        if feature.nullable:
            column[::7] = np.nan
        columns.append(column)
    return np.column_stack(columns)


def compile_pipeline(pipeline: Any, metadata: ModelMetadata) -> Evaluate | None:
    """A numpy evaluation of the pipeline's probabilities (classifier) or values (regressor),
    or None when its shape is not one this module knows or it does not match exactly."""
    from sklearn.pipeline import Pipeline

    if any(f.type != "numeric" for f in metadata.features) or not isinstance(pipeline, Pipeline):
        return None
    steps = [step for _, step in pipeline.steps]
    if len(steps) != 2:
        return None
    classifier = metadata.task == "classification"
    preprocess = _numeric_preprocessor(steps[0], len(metadata.features))
    if preprocess is None:
        return None
    # A model this module cannot evaluate itself still skips the ColumnTransformer.
    estimate = _estimator(steps[1], classifier) or (
        steps[1].predict_proba if classifier else steps[1].predict
    )

    def evaluate(rows: np.ndarray) -> np.ndarray:
        return estimate(preprocess(rows))

    probe = _probe_rows(metadata)
    try:
        expected = pipeline.predict_proba(probe) if classifier else pipeline.predict(probe)
        agrees = np.allclose(evaluate(probe), expected, rtol=0, atol=TOLERANCE)
    except Exception as error:  # noqa: BLE001 (any surprise means: use scikit-learn as is)
        log.warning("fast path failed (%s); using scikit-learn", error)
        return None
    if not agrees:
        log.warning("fast path disagrees with scikit-learn; using scikit-learn")
        return None
    return evaluate
