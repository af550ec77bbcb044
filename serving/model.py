"""The model behind the server: loaded once, checked, warmed up, then only `predict`."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlstack_common import storage
from mlstack_common.artifact import (
    FAST_PATH_FILE,
    METADATA_FILE,
    MODEL_FILE,
    TARBALL,
    ArtifactError,
    ModelMetadata,
    load_model_dir,
    read_fast_path,
    read_metadata,
    unpack,
    verify_model_file,
)
from mlstack_common.fastpath import CompiledModel, compile_pipeline

Evaluate = Callable[[np.ndarray], np.ndarray]

log = logging.getLogger("mlstack.serving")


@dataclass(frozen=True)
class Predictions:
    """Per row: the label (class or value) and, for classifiers, the class probabilities."""

    labels: np.ndarray
    probabilities: np.ndarray | None


class Predictor:
    """What the server calls: rows in feature order in, predictions out."""

    def __init__(
        self,
        evaluate: Evaluate,
        metadata: ModelMetadata,
        fast: bool,
    ) -> None:
        self.evaluate = evaluate
        self.metadata = metadata
        self.fast = fast
        """Whether predictions come from the numpy fast path rather than scikit-learn."""
        self.classifier = metadata.task == "classification"
        self.numeric_only = all(f.type == "numeric" for f in metadata.features)
        self.dtype: type = np.float64 if self.numeric_only else object
        self.classes = np.asarray(metadata.classes, dtype=object)
        self.class_names = list(metadata.classes)
        """As a response lists them; one list for every response."""

    @classmethod
    def from_pipeline(cls, pipeline: Any, metadata: ModelMetadata, fast: bool = True) -> Predictor:
        """Serve a fitted pipeline, through the fast path when it can be proven equal."""
        compiled = compile_pipeline(pipeline, metadata) if fast else None
        if compiled is not None:
            return cls(compiled.evaluate, metadata, fast=True)
        plain = pipeline.predict_proba if metadata.task == "classification" else pipeline.predict
        return cls(plain, metadata, fast=False)

    def predict(self, rows: np.ndarray) -> Predictions:
        output = self.evaluate(rows)
        if self.classifier:
            return Predictions(self.classes[output.argmax(axis=1)], output)
        return Predictions(np.asarray(output, dtype=np.float64), None)

    def example_row(self) -> np.ndarray:
        """A row every feature accepts: the middle of its range, or its first category."""
        values: list[Any] = []
        for feature in self.metadata.features:
            if feature.type == "categorical":
                values.append(feature.categories[0])
            else:
                low = feature.minimum if feature.minimum is not None else 0.0
                high = feature.maximum if feature.maximum is not None else low
                values.append((low + high) / 2)
        return np.asarray([values], dtype=self.dtype)


def _local_model_dir(uri: str, work_dir: Path) -> Path:
    """A directory holding model.joblib and metadata.json, fetching or unpacking as needed."""
    unpacked = work_dir / "model"
    if storage.is_s3(uri):
        work_dir.mkdir(parents=True, exist_ok=True)
        archive = work_dir / TARBALL
        # Downloaded once at start-up; the credentials are whatever boto3 finds (IRSA on EKS,
        # the endpoint's execution role on SageMaker), the endpoint AWS_ENDPOINT_URL if set.
        archive.write_bytes(storage.read_bytes(uri))
        shutil.rmtree(unpacked, ignore_errors=True)
        unpack(archive, unpacked)
        return unpacked
    path = Path(uri)
    if path.is_file():
        shutil.rmtree(unpacked, ignore_errors=True)
        unpack(path, unpacked)
        return unpacked
    if (path / METADATA_FILE).is_file():
        return path
    if (path / TARBALL).is_file():
        shutil.rmtree(unpacked, ignore_errors=True)
        unpack(path / TARBALL, unpacked)
        return unpacked
    raise ArtifactError(f"no model at {uri}: expected {METADATA_FILE} or {TARBALL} there")


def _check_classes(model_classes: Sequence[str], metadata: ModelMetadata) -> None:
    """The metadata names the probability columns; in another order than the model's, every
    answer would carry another class's label."""
    if list(model_classes) != list(metadata.classes):
        raise ArtifactError(
            f"the model's classes {list(model_classes)} differ from its metadata's "
            f"{list(metadata.classes)}: answers would be mislabelled"
        )


def _check_against_metadata(predictor: Predictor, pipeline: Any | None) -> None:
    """The model takes the features and gives the classes its metadata says, in that order;
    otherwise it would fail on every request, or answer with its labels swapped."""
    metadata = predictor.metadata
    if pipeline is not None:
        expected = getattr(pipeline, "n_features_in_", len(metadata.features))
        if expected != len(metadata.features):
            raise ArtifactError(
                f"the model takes {expected} features, its metadata lists "
                f"{len(metadata.features)}: the artifact is inconsistent"
            )
        if predictor.classifier:
            _check_classes([str(c) for c in getattr(pipeline, "classes_", ())], metadata)
    try:
        output = predictor.evaluate(predictor.example_row())
    except Exception as error:
        raise ArtifactError(
            f"the model cannot score a row of its own metadata's features: {error}"
        ) from error
    width = output.shape[1] if output.ndim == 2 else 1
    if predictor.classifier and (output.ndim != 2 or width != len(metadata.classes)):
        raise ArtifactError(
            f"the model gives {width} class probabilities, its metadata lists "
            f"{len(metadata.classes)} classes: answers would be mislabelled"
        )
    if not predictor.classifier and (
        output.ndim != 1 or not np.issubdtype(output.dtype, np.number)
    ):
        raise ArtifactError(
            f"the model gives {width} {output.dtype} values a row, its metadata says it is a "
            "regression model (one number a row): the artifact is inconsistent"
        )


def _compiled(fast_path: bytes) -> CompiledModel:
    try:
        return CompiledModel.from_bytes(fast_path)
    except Exception as error:  # whatever the bytes hold, they are not a fast path
        raise ArtifactError(
            f"{FAST_PATH_FILE} cannot be read: {type(error).__name__}: {error}"
        ) from error


def _pipeline(directory: Path, classifier: bool) -> Any:
    """The fitted pipeline, checked to be one: a file that unpickles to something else, or not
    at all (a library missing or of another version), is refused at start."""
    import sklearn

    # Inputs are checked for finiteness by the codec before they reach the model.
    sklearn.set_config(assume_finite=True)
    try:
        pipeline, _ = load_model_dir(directory)
    except ArtifactError:
        raise
    except Exception as error:  # unpickling can raise anything
        raise ArtifactError(
            f"{MODEL_FILE} cannot be loaded: {type(error).__name__}: {error}"
        ) from error
    method = "predict_proba" if classifier else "predict"
    if not callable(getattr(pipeline, method, None)):
        raise ArtifactError(
            f"{MODEL_FILE} holds a {type(pipeline).__name__}, not a fitted model with {method}"
        )
    return pipeline


def load_predictor(uri: str, work_dir: Path, large_batches: bool = False) -> Predictor:
    """Load, verify the checksums, and make one prediction before anyone is told it is ready.

    A model with a fast path is served from it without importing scikit-learn, which is most
    of a cold start; any other is served by scikit-learn. A forest's fast path is scored by ONNX
    Runtime at every size a request makes; with `large_batches` (batch scoring, 100,000-row
    chunks) forests go to scikit-learn's compiled trees instead, which walk all rows tree by
    tree and took 10-35 % less time there on one core (`bench/bench_forest_engines.py`). Either
    way the class order is checked against the estimator's: the fast path records the order it
    was compiled with.
    """
    directory = _local_model_dir(uri, work_dir)
    metadata = read_metadata(directory)
    fast_path = read_fast_path(directory, metadata)
    classifier = metadata.task == "classification"
    compiled = _compiled(fast_path) if fast_path is not None else None
    use_fast = not (compiled is not None and large_batches and compiled.kind.startswith("forest"))
    pipeline: Any = None
    if compiled is not None and use_fast:
        # The whole artifact is checked, even the file the fast path makes unnecessary to load.
        verify_model_file(directory, metadata)
        if classifier and compiled.classes is not None:
            _check_classes(compiled.classes, metadata)
        elif classifier:
            # Written before the fast path recorded its classes: only the pipeline knows them.
            pipeline = _pipeline(directory, classifier)
        predictor = Predictor(compiled.evaluate, metadata, fast=True)
    else:
        pipeline = _pipeline(directory, classifier)
        predictor = Predictor.from_pipeline(pipeline, metadata, fast=use_fast)
    _check_against_metadata(predictor, pipeline)
    log.info("model loaded", extra={"model": metadata.model_name, "sha256": metadata.model_sha256})
    return predictor
