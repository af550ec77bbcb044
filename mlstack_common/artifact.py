"""The model artifact: the one contract between training (writes it) and serving (reads it).

A model directory holds `model.joblib` (the fitted scikit-learn pipeline, fed a 2-D array whose
columns are `metadata.features` in order) and `metadata.json`. `model.tar.gz` is that directory
packed the way SageMaker unpacks it into `/opt/ml/model`. The metadata carries the sha256 of
the model file, so a reader can refuse a file that is not the one that was evaluated.

This module only needs the standard library and joblib, which both images have.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

SCHEMA_VERSION = 1
MODEL_FILE = "model.joblib"
METADATA_FILE = "metadata.json"
FAST_PATH_FILE = "fastpath.bin"
"""Optional: the model's parameters as plain arrays (see mlstack_common.fastpath)."""
TARBALL = "model.tar.gz"

Task = Literal["classification", "regression"]
FeatureType = Literal["numeric", "categorical"]


def json_safe(value: Any) -> Any:
    """`value` with every non-finite float (NaN, infinity) as None: strict JSON parsers refuse
    them, and a metric that could not be computed is absent, not a number."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return value


def strict_json(value: Any, *, sort_keys: bool = False) -> str:
    """Indented JSON that any parser accepts: non-finite numbers become null."""
    return json.dumps(json_safe(value), indent=2, sort_keys=sort_keys, allow_nan=False)


class ArtifactError(ValueError):
    """A model artifact is missing a file, is malformed, or does not match its checksum."""


@dataclass(frozen=True, kw_only=True)
class Feature:
    """One input column, in the order the model takes them."""

    name: str
    type: FeatureType
    categories: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    nullable: bool = False
    """Whether a missing value is acceptable (the pipeline imputes it)."""


@dataclass(frozen=True, kw_only=True)
class ModelMetadata:
    """What a reader must know to use a model, and where it came from."""

    model_name: str
    task: Task
    features: tuple[Feature, ...]
    target: str
    classes: tuple[str, ...] = ()
    """Class labels in the order of `predict_proba` columns; empty for regression."""
    algorithm: str = ""
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    library_versions: Mapping[str, str] = field(default_factory=dict)
    data_sha256: str = ""
    data_uri: str = ""
    git_commit: str = ""
    image_digest: str = ""
    model_sha256: str = ""
    fast_path_sha256: str = ""
    """sha256 of fastpath.bin, when training could express the model in it."""
    schema_version: int = SCHEMA_VERSION

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(feature.name for feature in self.features)

    def to_json(self) -> str:
        return strict_json(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelMetadata:
        try:
            raw = json.loads(text)
            version = raw.get("schema_version")
            if version != SCHEMA_VERSION:
                raise ArtifactError(
                    f"{METADATA_FILE}: schema_version {version!r}; this reader understands "
                    f"{SCHEMA_VERSION}"
                )
            features = tuple(
                Feature(**{**item, "categories": tuple(item.get("categories", ()))})
                for item in raw.pop("features")
            )
            return cls(**{**raw, "features": features, "classes": tuple(raw.get("classes", ()))})
        except (KeyError, TypeError, json.JSONDecodeError) as error:
            raise ArtifactError(f"{METADATA_FILE} is malformed: {error}") from error


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_model_dir(
    directory: Path, model: object, metadata: ModelMetadata, fast_path: bytes | None = None
) -> ModelMetadata:
    """Write the model, its fast path if any, and its metadata, which records their sha256."""
    import joblib

    directory.mkdir(parents=True, exist_ok=True)
    model_path = directory / MODEL_FILE
    joblib.dump(model, model_path, compress=3)
    fast_path_sha256 = ""
    if fast_path is not None:
        (directory / FAST_PATH_FILE).write_bytes(fast_path)
        fast_path_sha256 = hashlib.sha256(fast_path).hexdigest()
    else:
        (directory / FAST_PATH_FILE).unlink(missing_ok=True)
    final = replace(
        metadata, model_sha256=sha256_file(model_path), fast_path_sha256=fast_path_sha256
    )
    (directory / METADATA_FILE).write_text(final.to_json() + "\n", encoding="utf-8")
    return final


def read_metadata(directory: Path) -> ModelMetadata:
    path = directory / METADATA_FILE
    if not path.is_file():
        raise ArtifactError(f"no {METADATA_FILE} in {directory}")
    return ModelMetadata.from_json(path.read_text(encoding="utf-8"))


def read_fast_path(directory: Path, metadata: ModelMetadata) -> bytes | None:
    """The fast path's bytes, checked against the metadata; None when the model has none."""
    if not metadata.fast_path_sha256:
        return None
    path = directory / FAST_PATH_FILE
    if not path.is_file():
        raise ArtifactError(f"{METADATA_FILE} lists {FAST_PATH_FILE}, but {directory} has none")
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != metadata.fast_path_sha256:
        raise ArtifactError(
            f"{FAST_PATH_FILE} does not match the sha256 in {METADATA_FILE}: "
            "it is not the one training checked"
        )
    return data


def load_model_dir(directory: Path) -> tuple[Any, ModelMetadata]:
    """The fitted model and its metadata, after checking the model file against its sha256."""
    import joblib

    metadata = read_metadata(directory)
    verify_model_file(directory, metadata)
    return joblib.load(directory / MODEL_FILE), metadata


def verify_model_file(directory: Path, metadata: ModelMetadata) -> None:
    """Refuse a model file that is not the one whose sha256 the metadata records."""
    model_path = directory / MODEL_FILE
    if not model_path.is_file():
        raise ArtifactError(f"no {MODEL_FILE} in {directory}")
    actual = sha256_file(model_path)
    if actual != metadata.model_sha256:
        raise ArtifactError(
            f"{MODEL_FILE} sha256 is {actual}, but {METADATA_FILE} says {metadata.model_sha256}: "
            "the file is not the model that was evaluated"
        )


def pack(directory: Path, files: Sequence[str] | None = None) -> bytes:
    """`model.tar.gz` bytes of a model directory, byte-identical for identical files.

    Owners, times and order are fixed so that the same model always packs to the same bytes.
    """
    if files is None:
        files = [
            n for n in (MODEL_FILE, METADATA_FILE, FAST_PATH_FILE) if (directory / n).is_file()
        ]
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name in sorted(files):
            data = (directory / name).read_bytes()
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            archive.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


def unpack(tarball: Path, directory: Path) -> None:
    """Extract a `model.tar.gz`, refusing links and paths that leave `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(tarball, mode="r:gz") as archive:
            archive.extractall(directory, filter="data")
    except (tarfile.TarError, OSError) as error:
        raise ArtifactError(f"{tarball.name} is not a valid model archive: {error}") from error
