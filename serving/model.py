"""The model behind the server: loaded once, checked, warmed up, then only `predict`."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlstack_common import storage
from mlstack_common.artifact import (
    METADATA_FILE,
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


FOREST_CROSSOVER_ROWS = 700
"""Above this many rows in one call, scikit-learn's compiled trees score a forest faster than
walking every tree in numpy: for the demo's 100 trees on one core, 7.1 against 9-12 ms at 500
rows, 16-17 against 10-11 ms at 1,000 (`bench/bench_forest_crossover.py`, bench/README.md)."""


class _PipelineOnFirstUse:
    """The fitted pipeline, loaded (with scikit-learn) only when a large call first needs it, so
    a forest served from the fast path keeps its cold start free of scikit-learn."""

    def __init__(self, directory: Path, classifier: bool) -> None:
        self.directory = directory
        self.classifier = classifier
        self._evaluate: Evaluate | None = None

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        if self._evaluate is None:
            import sklearn

            sklearn.set_config(assume_finite=True)
            pipeline, _ = load_model_dir(self.directory)
            self._evaluate = pipeline.predict_proba if self.classifier else pipeline.predict
        return np.asarray(self._evaluate(rows))


class Predictor:
    """What the server calls: rows in feature order in, predictions out."""

    def __init__(
        self,
        evaluate: Evaluate,
        metadata: ModelMetadata,
        fast: bool,
        large: Evaluate | None = None,
    ) -> None:
        self.evaluate = evaluate
        self.metadata = metadata
        self.fast = fast
        """Whether predictions come from the numpy fast path rather than scikit-learn."""
        self.large = large
        """What scores calls of more than FOREST_CROSSOVER_ROWS rows, when that is faster."""
        self.classifier = metadata.task == "classification"
        self.numeric_only = all(f.type == "numeric" for f in metadata.features)
        self.dtype: type = np.float64 if self.numeric_only else object
        self.classes = np.asarray(metadata.classes, dtype=object)

    @classmethod
    def from_pipeline(cls, pipeline: Any, metadata: ModelMetadata, fast: bool = True) -> Predictor:
        """Serve a fitted pipeline, through the fast path when it can be proven equal."""
        compiled = compile_pipeline(pipeline, metadata) if fast else None
        if compiled is not None:
            return cls(compiled.evaluate, metadata, fast=True)
        plain = pipeline.predict_proba if metadata.task == "classification" else pipeline.predict
        return cls(plain, metadata, fast=False)

    def predict(self, rows: np.ndarray) -> Predictions:
        large = self.large is not None and len(rows) > FOREST_CROSSOVER_ROWS
        output = self.large(rows) if large and self.large is not None else self.evaluate(rows)
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
        if predictor.classifier and [str(c) for c in pipeline.classes_] != list(metadata.classes):
            raise ArtifactError(
                f"the model's classes {[str(c) for c in pipeline.classes_]} differ from its "
                f"metadata's {list(metadata.classes)}: answers would be mislabelled"
            )
    try:
        output = predictor.evaluate(predictor.example_row())
    except Exception as error:
        raise ArtifactError(
            f"the model cannot score a row of its own metadata's features: {error}"
        ) from error
    width = output.shape[1] if output.ndim == 2 else 1
    if predictor.classifier and width != len(metadata.classes):
        raise ArtifactError(
            f"the model gives {width} class probabilities, its metadata lists "
            f"{len(metadata.classes)} classes: answers would be mislabelled"
        )


def load_predictor(uri: str, work_dir: Path, large_batches: bool = False) -> Predictor:
    """Load, verify the checksums, and make one prediction before anyone is told it is ready.

    A model with a fast path is served from it without importing scikit-learn, which is most
    of a cold start; any other is served by scikit-learn. With `large_batches` (batch scoring,
    100,000-row chunks), forests go to scikit-learn's compiled trees instead: walking every tree
    in numpy wins for a request's few rows, not for a chunk's many.
    """
    directory = _local_model_dir(uri, work_dir)
    metadata = read_metadata(directory)
    fast_path = read_fast_path(directory, metadata)
    use_fast = True
    if fast_path is not None and large_batches:
        use_fast = not CompiledModel.from_bytes(fast_path).kind.startswith("forest")
        fast_path = fast_path if use_fast else None
    pipeline: Any = None
    if fast_path is not None:
        # The whole artifact is checked, even the file the fast path makes unnecessary to load.
        verify_model_file(directory, metadata)
        compiled = CompiledModel.from_bytes(fast_path)
        large = (
            _PipelineOnFirstUse(directory, metadata.task == "classification")
            if compiled.kind.startswith("forest")
            else None
        )
        predictor = Predictor(compiled.evaluate, metadata, fast=True, large=large)
    else:
        import sklearn

        # Inputs are checked for finiteness by the codec before they reach the model.
        sklearn.set_config(assume_finite=True)
        pipeline, metadata = load_model_dir(directory)
        predictor = Predictor.from_pipeline(pipeline, metadata, fast=use_fast)
    _check_against_metadata(predictor, pipeline)
    log.info("model loaded", extra={"model": metadata.model_name, "sha256": metadata.model_sha256})
    return predictor
