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
import reprlib
import tarfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, get_args

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
        """The metadata `to_json` wrote; anything else is refused with one line naming the
        member that is wrong, what it holds and what is allowed."""
        try:
            raw = json.loads(text, parse_constant=_not_a_number)
        except json.JSONDecodeError as error:
            raise ArtifactError(f"{METADATA_FILE} is not JSON: {error}") from error
        except RecursionError as error:
            raise ArtifactError(f"{METADATA_FILE} is not metadata: nested too deeply") from error
        return _metadata(raw)


def _not_a_number(constant: str) -> Any:
    """Python's json reads NaN and Infinity, which are not JSON and which `to_json` never
    writes (it writes null)."""
    raise ArtifactError(f"{METADATA_FILE} is not JSON: {constant} is not a JSON value")


class _Brief(reprlib.Repr):
    """A value of metadata.json for a message: shortened, with JSON's null, true and false."""

    def repr_NoneType(self, value: None, level: int) -> str:  # noqa: N802 (reprlib's naming)
        return "null"

    def repr_bool(self, value: bool, level: int) -> str:
        return "true" if value else "false"


_brief = _Brief()  # 3.11's Repr takes its limits as attributes, not arguments
_brief.maxlevel, _brief.maxstring, _brief.maxother = 2, 60, 60
_brief.maxlist, _brief.maxdict = 4, 3


def _refused(where: str, value: Any, allowed: str) -> ArtifactError:
    return ArtifactError(f"{METADATA_FILE}: {where} = {_brief.repr(value)}; allowed: {allowed}")


def _members(raw: Any, where: str, keys: Sequence[str], required: Sequence[str]) -> dict[str, Any]:
    """`raw` as an object holding only `keys`, among them every one of `required`."""
    if not isinstance(raw, dict):
        raise _refused(where, raw, f"an object with {', '.join(required)}")
    unknown = [key for key in raw if key not in keys]
    if unknown:
        raise ArtifactError(
            f"{METADATA_FILE}: {where} has unknown member {_brief.repr(unknown[0])}; "
            f"allowed: {', '.join(keys)}"
        )
    missing = [key for key in required if key not in raw]
    if missing:
        raise ArtifactError(
            f"{METADATA_FILE}: {where} has no {missing[0]!r}; required: {', '.join(required)}"
        )
    return raw


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _refused(where, value, "a string")
    return value


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise _refused(where, value, "a non-empty string")
    return value


def _choice(value: Any, where: str, allowed: tuple[str, ...]) -> Any:
    if not isinstance(value, str) or value not in allowed:
        raise _refused(where, value, " or ".join(allowed))
    return value


def _number(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _refused(where, value, "a number or null")
    return float(value)


def _names(value: Any, where: str) -> tuple[str, ...]:
    """A list of distinct non-empty strings."""
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _refused(where, value, "a list of non-empty strings")
    if len(set(value)) != len(value):
        twice = next(v for v in value if value.count(v) > 1)
        raise _refused(where, value, f"distinct names ({twice!r} is listed twice)")
    return tuple(value)


def _object(
    value: Any, where: str, item: Callable[[Any, str], Any], allowed: str
) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _refused(where, value, f"an object of {allowed}")
    return {key: item(v, f"{where}[{key!r}]") for key, v in value.items()}


_FEATURE_KEYS = tuple(f.name for f in fields(Feature))


def _feature(raw: Any, where: str) -> Feature:
    members = _members(raw, where, _FEATURE_KEYS, ("name", "type"))
    name = _name(members["name"], f"{where}.name")
    where = f"feature {name!r}"
    kind = _choice(members["type"], f"{where}: type", get_args(FeatureType))
    categories = _names(members.get("categories", []), f"{where}: categories")
    if kind == "categorical" and not categories:
        raise _refused(f"{where}: categories", [], "a non-empty list for a categorical feature")
    minimum = _number(members.get("minimum"), f"{where}: minimum")
    maximum = _number(members.get("maximum"), f"{where}: maximum")
    if minimum is not None and maximum is not None and minimum > maximum:
        raise ArtifactError(
            f"{METADATA_FILE}: {where}: minimum {minimum} > maximum {maximum}; "
            "allowed: minimum <= maximum"
        )
    nullable = members.get("nullable", False)
    if not isinstance(nullable, bool):
        raise _refused(f"{where}: nullable", nullable, "true or false")
    return Feature(
        name=name,
        type=kind,
        categories=categories,
        minimum=minimum,
        maximum=maximum,
        nullable=nullable,
    )


def _features(value: Any, where: str) -> tuple[Feature, ...]:
    if not isinstance(value, list) or not value:
        raise _refused(where, value, "a non-empty list of features")
    features = tuple(_feature(item, f"{where}[{index}]") for index, item in enumerate(value))
    _names([feature.name for feature in features], "feature names")
    return features


_READERS: Mapping[str, Callable[[Any, str], Any]] = {
    "model_name": _name,
    "task": lambda value, where: _choice(value, where, get_args(Task)),
    "features": _features,
    "target": _text,
    "classes": _names,
    "algorithm": _text,
    "hyperparameters": lambda value, where: _object(value, where, lambda v, _: v, "settings"),
    "metrics": lambda value, where: _object(value, where, _number, "numbers or null"),
    "library_versions": lambda value, where: _object(value, where, _text, "strings"),
    "data_sha256": _text,
    "data_uri": _text,
    "git_commit": _text,
    "image_digest": _text,
    "model_sha256": _text,
    "fast_path_sha256": _text,
}
"""How each member of metadata.json is read (every field of ModelMetadata but
`schema_version`, which is read first, on its own)."""


def _metadata(raw: Any) -> ModelMetadata:
    keys = [f.name for f in fields(ModelMetadata)]
    required = ("schema_version", "model_name", "task", "features", "target")
    members = _members(raw, "the document", keys, required)
    version = members["schema_version"]
    if isinstance(version, bool) or not isinstance(version, int) or version != SCHEMA_VERSION:
        raise ArtifactError(
            f"{METADATA_FILE}: schema_version {_brief.repr(version)}; this reader understands "
            f"{SCHEMA_VERSION}"
        )
    values = {
        key: _READERS[key](value, key) for key, value in members.items() if key != "schema_version"
    }
    classes = values.get("classes", ())
    if values["task"] == "classification" and not classes:
        raise _refused("classes", list(classes), "the class labels of a classifier, in order")
    if values["task"] == "regression" and classes:
        raise _refused("classes", list(classes), "none for a regression model")
    return ModelMetadata(**values)


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
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ArtifactError(f"cannot read {path}: {error.strerror}") from error
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ArtifactError(
            f"{METADATA_FILE} is not UTF-8: byte {data[error.start]:#04x} at offset {error.start}"
        ) from error
    return ModelMetadata.from_json(text)


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
