"""A numpy-only form of common fitted pipelines, proven equal to scikit-learn before it is used.

scikit-learn spends most of a small request in per-call overhead (input checks, the
ColumnTransformer), and importing it is most of a server's start-up. For the pipelines training
produces (numeric imputer and scaler, then logistic or ridge regression, or a random forest),
`compile_pipeline` extracts the fitted parameters into plain arrays and checks, on probe rows
spanning every feature's range (and any rows given, such as the hold-out set), that evaluating
them gives scikit-learn's answers to 1e-9. Training stores the result beside the model
(`fastpath.bin`, its sha256 in the metadata), so the server can answer without importing
scikit-learn at all. Any other pipeline is served by scikit-learn itself.

Linear models are evaluated in numpy; forests by ONNX Runtime, from the same arrays
(`mlstack_common.forest_engine`), built when the model is read so no request waits for it.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlstack_common.artifact import ModelMetadata
from mlstack_common.forest_engine import ForestEngine

log = logging.getLogger("mlstack.serving")
TOLERANCE = 1e-9
FORMAT = "mlstack-fastpath-1"


@dataclass(frozen=True)
class CompiledModel:
    """Fitted parameters as arrays; `kind` says how to evaluate them."""

    kind: str
    arrays: dict[str, np.ndarray]
    classes: tuple[str, ...] | None = None
    """A classifier's labels in the order of its probability columns, as the estimator had
    them when it was compiled (empty for a regressor), so a reader can check the metadata's
    order without scikit-learn; None in a file written before it was recorded."""
    engine: ForestEngine | None = field(default=None, init=False, repr=False, compare=False)
    """What scores a forest, built from `arrays` with the model, before any request."""

    def __post_init__(self) -> None:
        if self.kind.startswith("forest"):
            engine = ForestEngine(self.arrays, classifier=self.kind == "forest-classifier")
            object.__setattr__(self, "engine", engine)

    def evaluate(self, rows: np.ndarray) -> np.ndarray:
        """Class probabilities (classifiers) or values (regressors), one row per input row."""
        a = self.arrays
        x = (np.where(np.isnan(rows), a["fill"], rows) - a["mean"]) / a["scale"]
        if self.kind == "logistic":
            scores = x @ a["coef"] + a["intercept"]
            if scores.shape[1] == 1:
                with np.errstate(over="ignore"):
                    positive = 1.0 / (1.0 + np.exp(-scores))
                return np.hstack([1.0 - positive, positive])
            scores -= scores.max(axis=1, keepdims=True)
            np.exp(scores, out=scores)
            result: np.ndarray = scores / scores.sum(axis=1, keepdims=True)
            return result
        if self.kind == "ridge":
            values: np.ndarray = x @ a["coef"] + a["intercept"]
            return values
        return self._forest(x)

    def _forest(self, x: np.ndarray) -> np.ndarray:
        if self.engine is None:
            raise ValueError(f"fast path kind {self.kind!r} has no forest engine")
        return self.engine(x)

    def to_bytes(self) -> bytes:
        """A header line, then each array as .npy bytes: deterministic, read without pickle."""
        buffer = io.BytesIO()
        names = sorted(self.arrays)
        header: dict[str, Any] = {"format": FORMAT, "kind": self.kind, "arrays": names}
        if self.classes is not None:
            # An added member: readers of this format before it ignore what they do not read.
            header["classes"] = list(self.classes)
        buffer.write(json.dumps(header).encode() + b"\n")
        for name in names:
            np.save(buffer, self.arrays[name], allow_pickle=False)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> CompiledModel:
        buffer = io.BytesIO(data)
        header = json.loads(buffer.readline())
        if header.get("format") != FORMAT:
            raise ValueError(f"fast path format {header.get('format')!r}; expected {FORMAT}")
        arrays = {name: np.load(buffer, allow_pickle=False) for name in header["arrays"]}
        classes = header.get("classes")
        if classes is not None and not (
            isinstance(classes, list) and all(isinstance(c, str) for c in classes)
        ):
            raise ValueError(f"fast path classes {classes!r}; expected a list of labels")
        return cls(header["kind"], arrays, None if classes is None else tuple(classes))


def _preprocessing(step: Any, width: int) -> dict[str, np.ndarray] | None:
    """ColumnTransformer([numeric: imputer (+ scaler) over every column in order])."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if not isinstance(step, ColumnTransformer) or len(step.transformers_) != 1:
        return None
    _, inner, columns = step.transformers_[0]
    if list(columns) != list(range(width)) or not isinstance(inner, Pipeline):
        return None
    parts = [part for _, part in inner.steps]
    if not parts or len(parts) > 2 or not isinstance(parts[0], SimpleImputer):
        return None
    arrays = {
        "fill": np.asarray(parts[0].statistics_, dtype=np.float64),
        "mean": np.zeros(width),
        "scale": np.ones(width),
    }
    if len(parts) == 2:
        scaler = parts[1]
        if not isinstance(scaler, StandardScaler):
            return None
        if scaler.with_mean:
            arrays["mean"] = np.asarray(scaler.mean_, dtype=np.float64)
        if scaler.with_std:
            arrays["scale"] = np.asarray(scaler.scale_, dtype=np.float64)
    return arrays


def _forest_arrays(model: Any, classifier: bool) -> dict[str, np.ndarray]:
    lefts, rights, features, thresholds, leaves, roots = [], [], [], [], [], []
    offset = 0
    width = len(model.classes_) if classifier else 1
    for estimator in model.estimators_:
        tree = estimator.tree_
        count = tree.node_count
        own = np.arange(count)
        leaf = tree.children_left == -1
        # A leaf points at itself, so walking on from it stays put.
        lefts.append(np.where(leaf, own, tree.children_left) + offset)
        rights.append(np.where(leaf, own, tree.children_right) + offset)
        features.append(np.where(leaf, 0, tree.feature))
        thresholds.append(np.where(leaf, 0.0, tree.threshold))
        value = np.asarray(tree.value)[:, 0, :width].astype(np.float64)
        if classifier:
            totals = value.sum(axis=1, keepdims=True)
            totals[totals == 0.0] = 1.0
            value = value / totals
        leaves.append(value)
        roots.append(offset)
        offset += count
    return {
        "left": np.concatenate(lefts).astype(np.int64),
        "right": np.concatenate(rights).astype(np.int64),
        "feature": np.concatenate(features).astype(np.int64),
        "threshold": np.concatenate(thresholds).astype(np.float64),
        "leaf": np.concatenate(leaves),
        "roots": np.asarray(roots, dtype=np.int64),
        # Unused since forests are scored by ForestEngine; still written, because servers
        # before it walk the trees in numpy that many steps and need it to read a newer file.
        "depth": np.asarray([max(e.tree_.max_depth for e in model.estimators_)], dtype=np.int64),
    }


def _estimator(model: Any, classifier: bool) -> tuple[str, dict[str, np.ndarray]] | None:
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.linear_model import LogisticRegression, Ridge

    if classifier and isinstance(model, LogisticRegression):
        return "logistic", {"coef": model.coef_.T.astype(np.float64), "intercept": model.intercept_}
    if not classifier and isinstance(model, Ridge):
        return "ridge", {
            "coef": np.ravel(model.coef_).astype(np.float64),
            "intercept": np.ravel(model.intercept_).astype(np.float64)[:1],
        }
    if isinstance(model, RandomForestClassifier | RandomForestRegressor) and model.n_outputs_ == 1:
        kind = "forest-classifier" if classifier else "forest-regressor"
        return kind, _forest_arrays(model, classifier)
    return None


def _probe_rows(metadata: ModelMetadata, count: int = 256) -> np.ndarray:
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


def threshold_edge_rows(
    arrays: dict[str, np.ndarray], base: np.ndarray, count: int = 512, seed: int = 0
) -> np.ndarray:
    """Rows of `base` with one feature moved onto a threshold the forest compares against, or
    one float64 or float32 step to either side of it: where an engine that compared in another
    precision than scikit-learn (float32 input, float64 threshold) would answer differently.
    Thresholds are mapped back through the scaler, so they are exact when there is none."""
    own = np.arange(len(arrays["left"]))
    splits = np.flatnonzero(arrays["left"] != own)
    if len(splits) == 0 or len(base) == 0:
        return base[:0]
    rng = np.random.default_rng(seed)
    nodes = rng.choice(splits, size=min(count, len(splits)), replace=False)
    feature = arrays["feature"][nodes]
    threshold = arrays["threshold"][nodes]
    narrow = threshold.astype(np.float32)
    values = [
        threshold,
        np.nextafter(threshold, -np.inf),
        np.nextafter(threshold, np.inf),
        narrow.astype(np.float64),
        np.nextafter(narrow, np.float32(-np.inf)).astype(np.float64),
        np.nextafter(narrow, np.float32(np.inf)).astype(np.float64),
    ]
    columns = np.tile(feature, len(values))
    raw = np.concatenate(values) * arrays["scale"][columns] + arrays["mean"][columns]
    rows = base[rng.integers(len(base), size=len(raw))].copy()
    rows[np.arange(len(raw)), columns] = raw
    return rows


def compile_pipeline(
    pipeline: Any, metadata: ModelMetadata, check_rows: np.ndarray | None = None
) -> CompiledModel | None:
    """The numpy form of `pipeline`, or None when its shape is not one this module knows or its
    answers differ from scikit-learn's on the probe rows (and `check_rows`, if given)."""
    from sklearn.pipeline import Pipeline

    if any(f.type != "numeric" for f in metadata.features) or not isinstance(pipeline, Pipeline):
        return None
    steps = [step for _, step in pipeline.steps]
    if len(steps) != 2:
        return None
    classifier = metadata.task == "classification"
    preprocessing = _preprocessing(steps[0], len(metadata.features))
    estimator = _estimator(steps[1], classifier)
    if preprocessing is None or estimator is None:
        return None
    classes = tuple(str(c) for c in steps[1].classes_) if classifier else ()
    arrays = {**preprocessing, **estimator[1]}
    probe = _probe_rows(metadata)
    if check_rows is not None and len(check_rows):
        probe = np.vstack([probe, np.asarray(check_rows, dtype=np.float64)])
    if estimator[0].startswith("forest"):
        probe = np.vstack([probe, threshold_edge_rows(arrays, probe)])
    try:
        compiled = CompiledModel(estimator[0], arrays, classes)
        expected = pipeline.predict_proba(probe) if classifier else pipeline.predict(probe)
        agrees = np.allclose(compiled.evaluate(probe), expected, rtol=0, atol=TOLERANCE)
    except Exception as error:  # noqa: BLE001 (any surprise means: use scikit-learn as is)
        log.warning("fast path failed (%s); using scikit-learn", error)
        return None
    if not agrees:
        log.warning("fast path disagrees with scikit-learn; using scikit-learn")
        return None
    return compiled
