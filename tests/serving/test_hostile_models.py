"""A broken model directory is refused at start with one line saying what is wrong, never a
traceback; and a model whose metadata orders its classes unlike its estimator is never served,
from the fast path either."""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlstack_common.artifact import FAST_PATH_FILE, METADATA_FILE, MODEL_FILE, ArtifactError
from mlstack_common.exits import ExitStatus
from serving import cli as serving_cli
from serving.model import load_predictor
from tests.logs import log_records
from tests.serving.conftest import serve_until_exit

SWAPPED = (
    "the model's classes ['benign', 'malignant'] differ from its metadata's "
    "['malignant', 'benign']: answers would be mislabelled"
)
REQUIRED = "schema_version, model_name, task, features, target"


def copied(model: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "model"
    shutil.copytree(model, copy)
    return copy


def with_metadata(model: Path, edit: Callable[[dict[str, Any]], Any]) -> Path:
    """`model` with its metadata.json replaced by `edit` of it: bytes as they are, anything
    else as JSON."""
    document = json.loads((model / METADATA_FILE).read_text())
    edited = edit(document)
    data = edited if isinstance(edited, bytes) else json.dumps(edited).encode()
    (model / METADATA_FILE).write_bytes(data)
    return model


def with_file(model: Path, name: str, data: bytes) -> Path:
    """`model` with `name` replaced by `data`, and the metadata recording its sha256, as if
    training had written it: the checksum passes, so what is read is what is tested."""
    (model / name).write_bytes(data)
    key = "fast_path_sha256" if name == FAST_PATH_FILE else "model_sha256"
    digest = hashlib.sha256(data).hexdigest()
    return with_metadata(model, lambda document: {**document, key: digest})


def swapped(document: dict[str, Any]) -> dict[str, Any]:
    return {**document, "classes": document["classes"][::-1]}


def member(**changes: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """An edit setting members (None for a value of null) or, given `...`, removing them."""

    def edit(document: dict[str, Any]) -> dict[str, Any]:
        kept = {k: v for k, v in document.items() if changes.get(k, 0) is not ...}
        return {**kept, **{k: v for k, v in changes.items() if v is not ...}}

    return edit


def feature(**entry: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """An edit making the first feature `entry`."""
    return lambda document: {**document, "features": [entry, *document["features"][1:]]}


OBJECT = f"allowed: an object with {REQUIRED}"
ALLOWED_FEATURE = "allowed: name, type, categories, minimum, maximum, nullable"
NOT_NAMES = "allowed: a list of non-empty strings"

# (an edit of the linear model's metadata, the message it is refused with)
MALFORMED: dict[str, tuple[Callable[[dict[str, Any]], Any], str]] = {
    "a list": (
        list,
        "metadata.json: the document = ['algorithm', 'classes', 'data_sha256', 'data_uri', "
        f"...]; {OBJECT}",
    ),
    "a string": (lambda d: "model", f"metadata.json: the document = 'model'; {OBJECT}"),
    "a number": (lambda d: 1, f"metadata.json: the document = 1; {OBJECT}"),
    "null": (lambda d: None, f"metadata.json: the document = null; {OBJECT}"),
    "not utf-8": (
        lambda d: b'{"model_name": "caf\xe9"}',
        "metadata.json is not UTF-8: byte 0xe9 at offset 19",
    ),
    "truncated": (
        lambda d: json.dumps(d).encode()[:40],
        "metadata.json is not JSON: Unterminated string starting at: line 1 column 37 (char 36)",
    ),
    "empty": (lambda d: b"", "metadata.json is not JSON: Expecting value: line 1 column 1"),
    "NaN": (
        lambda d: json.dumps({**d, "metrics": {"accuracy": float("nan")}}).encode(),
        "metadata.json is not JSON: NaN is not a JSON value",
    ),
    "nested 100,000 deep": (
        lambda d: b"[" * 100_000 + b"]" * 100_000,
        "metadata.json is not metadata: nested too deeply",
    ),
    "no task": (
        member(task=...),
        f"metadata.json: the document has no 'task'; required: {REQUIRED}",
    ),
    "no schema version": (
        member(schema_version=...),
        f"metadata.json: the document has no 'schema_version'; required: {REQUIRED}",
    ),
    "schema version 2": (
        member(schema_version=2),
        "metadata.json: schema_version 2; this reader understands 1",
    ),
    "schema version true": (
        member(schema_version=True),
        "metadata.json: schema_version true; this reader understands 1",
    ),
    "schema version text": (
        member(schema_version="1"),
        "metadata.json: schema_version '1'; this reader understands 1",
    ),
    "an unknown member": (
        member(owner="me"),
        "metadata.json: the document has unknown member 'owner'; allowed: model_name, task, ",
    ),
    "unknown task": (
        member(task="clustering"),
        "metadata.json: task = 'clustering'; allowed: classification or regression",
    ),
    "model name empty": (
        member(model_name=""),
        "metadata.json: model_name = ''; allowed: a non-empty string",
    ),
    "target a number": (member(target=3), "metadata.json: target = 3; allowed: a string"),
    "classes a string": (
        member(classes="benign"),
        f"metadata.json: classes = 'benign'; {NOT_NAMES}",
    ),
    "classes numbers": (member(classes=[0, 1]), f"metadata.json: classes = [0, 1]; {NOT_NAMES}"),
    "a class twice": (
        member(classes=["benign", "benign"]),
        "metadata.json: classes = ['benign', 'benign']; allowed: distinct names "
        "('benign' is listed twice)",
    ),
    "a classifier without classes": (
        member(classes=...),
        "metadata.json: classes = []; allowed: the class labels of a classifier, in order",
    ),
    "a regressor with classes": (
        member(task="regression"),
        "metadata.json: classes = ['benign', 'malignant']; allowed: none for a regression model",
    ),
    "features an object": (
        member(features={"mean radius": "numeric"}),
        "metadata.json: features = {'mean radius': 'numeric'}; "
        "allowed: a non-empty list of features",
    ),
    "features empty": (
        member(features=[]),
        "metadata.json: features = []; allowed: a non-empty list of features",
    ),
    "features a list of names": (
        member(features=["mean radius"]),
        "metadata.json: features[0] = 'mean radius'; allowed: an object with name, type",
    ),
    "a feature without a type": (
        feature(name="x"),
        "metadata.json: features[0] has no 'type'; required: name, type",
    ),
    "a feature without a name": (
        feature(type="numeric"),
        "metadata.json: features[0] has no 'name'; required: name, type",
    ),
    "a feature of unknown type": (
        feature(name="x", type="text"),
        "metadata.json: feature 'x': type = 'text'; allowed: numeric or categorical",
    ),
    "a feature with an unknown member": (
        feature(name="x", type="numeric", min=0),
        f"metadata.json: features[0] has unknown member 'min'; {ALLOWED_FEATURE}",
    ),
    "a categorical feature without categories": (
        feature(name="x", type="categorical"),
        "metadata.json: feature 'x': categories = []; "
        "allowed: a non-empty list for a categorical feature",
    ),
    "categories a string": (
        feature(name="x", type="categorical", categories="red"),
        f"metadata.json: feature 'x': categories = 'red'; {NOT_NAMES}",
    ),
    "minimum text": (
        feature(name="x", type="numeric", minimum="0"),
        "metadata.json: feature 'x': minimum = '0'; allowed: a number or null",
    ),
    "minimum above maximum": (
        feature(name="x", type="numeric", minimum=3, maximum=1),
        "metadata.json: feature 'x': minimum 3.0 > maximum 1.0; allowed: minimum <= maximum",
    ),
    "nullable text": (
        feature(name="x", type="numeric", nullable="yes"),
        "metadata.json: feature 'x': nullable = 'yes'; allowed: true or false",
    ),
    "a feature named twice": (
        lambda d: {**d, "features": [d["features"][1], *d["features"][1:]]},
        "metadata.json: feature names = ['mean texture', 'mean texture', 'mean perimeter', "
        "'mean area', ...]; allowed: distinct names ('mean texture' is listed twice)",
    ),
    "a metric as text": (
        member(metrics={"accuracy": "high"}),
        "metadata.json: metrics['accuracy'] = 'high'; allowed: a number or null",
    ),
    "library versions a list": (
        member(library_versions=["numpy"]),
        "metadata.json: library_versions = ['numpy']; allowed: an object of strings",
    ),
    "a checksum as a number": (
        member(model_sha256=0),
        "metadata.json: model_sha256 = 0; allowed: a string",
    ),
    "a long value": (
        member(model_name=["x" * 100_000]),
        f"metadata.json: model_name = ['{'x' * 27}...{'x' * 28}']; allowed: a non-empty string",
    ),
}


@pytest.mark.parametrize("case", list(MALFORMED), ids=list(MALFORMED))
def test_malformed_metadata_is_refused_with_one_line_naming_what_is_wrong(
    trained_models: dict[str, Path], tmp_path: Path, case: str
) -> None:
    edit, message = MALFORMED[case]
    model = with_metadata(copied(trained_models["linear"], tmp_path), edit)
    with pytest.raises(ArtifactError) as refused:
        load_predictor(str(model), tmp_path / "work")
    assert str(refused.value).startswith(message)
    assert "\n" not in str(refused.value)


def test_metadata_as_training_writes_it_is_read_back_unchanged(
    trained_models: dict[str, Path], tmp_path: Path
) -> None:
    for name in ("linear", "mixed"):
        predictor = load_predictor(str(trained_models[name]), tmp_path / name)
        written = json.loads((trained_models[name] / METADATA_FILE).read_text())
        assert json.loads(predictor.metadata.to_json()) == written


HEADER = b'{"format": "mlstack-fastpath-1", "kind": "forest-classifier", "arrays": ["leaf"]}\n'
# (the model it was, the file replaced, what it holds now, how the refusal starts)
NOT_WHAT_THEY_SAY: dict[str, tuple[str, str, bytes, str]] = {
    "fast path not one": ("linear", FAST_PATH_FILE, b"weights", "fastpath.bin cannot be read: "),
    "fast path header a list": (
        "linear",
        FAST_PATH_FILE,
        b"[1]\n",
        "fastpath.bin cannot be read: ",
    ),
    "fast path arrays missing": ("forest", FAST_PATH_FILE, HEADER, "fastpath.bin cannot be read: "),
    "model not a pickle": ("boosting", MODEL_FILE, b"weights", "model.joblib cannot be loaded: "),
    "model a dict": (
        "boosting",
        MODEL_FILE,
        pickle.dumps({"weights": [1.0]}),
        "model.joblib holds a dict, not a fitted model with predict_proba",
    ),
}


@pytest.mark.parametrize("case", list(NOT_WHAT_THEY_SAY), ids=list(NOT_WHAT_THEY_SAY))
def test_a_file_that_is_not_what_its_name_says_is_refused(
    trained_models: dict[str, Path], tmp_path: Path, case: str
) -> None:
    name, file, data, message = NOT_WHAT_THEY_SAY[case]
    model = with_file(copied(trained_models[name], tmp_path), file, data)
    with pytest.raises(ArtifactError, match=f"^{message}"):
        load_predictor(str(model), tmp_path / "work")


def test_a_classifier_described_as_a_regressor_is_refused(
    trained_models: dict[str, Path], tmp_path: Path
) -> None:
    model = with_metadata(
        copied(trained_models["linear"], tmp_path), member(task="regression", classes=[])
    )
    with pytest.raises(ArtifactError, match="gives 2 float64 values a row, its metadata says"):
        load_predictor(str(model), tmp_path / "work")


def test_classes_in_another_order_are_refused_from_the_fast_path_without_scikit_learn(
    trained_models: dict[str, Path], tmp_path: Path
) -> None:
    models = {
        name: str(with_metadata(copied(trained_models[name], tmp_path / name), swapped))
        for name in ("linear", "forest")
    }
    script = f"""
import json, sys
from pathlib import Path
from mlstack_common.artifact import ArtifactError
from serving.model import load_predictor
refused = {{}}
for name, model in {models!r}.items():
    try:
        load_predictor(model, Path({str(tmp_path)!r}) / "work" / name)
    except ArtifactError as error:
        refused[name] = str(error)
loaded = any(m.startswith("sklearn") for m in sys.modules)
print(json.dumps({{"refused": refused, "sklearn": loaded}}))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout) == {
        "refused": {"linear": SWAPPED, "forest": SWAPPED},
        "sklearn": False,
    }


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (list, MALFORMED["a list"][1]),
        (lambda d: json.dumps(d).encode("utf-16"), "metadata.json is not UTF-8: byte 0xff at "),
        (swapped, SWAPPED),
    ],
    ids=["a list", "utf-16", "classes swapped"],
)
def test_mlstack_serve_refuses_a_broken_model_with_one_line_and_its_status(
    trained_models: dict[str, Path],
    tmp_path: Path,
    edit: Callable[[dict[str, Any]], Any],
    message: str,
) -> None:
    model = with_metadata(copied(trained_models["linear"], tmp_path), edit)
    served = serve_until_exit(str(model), tmp_path / "work")
    assert served.returncode == ExitStatus.REFUSED, served.stderr
    assert "Traceback" not in served.stderr
    [refused] = log_records(served.stderr, serving_cli.COMMAND)
    assert refused["level"] == "ERROR"
    assert refused["message"].startswith("cannot start: ")
    assert message in refused["message"]
