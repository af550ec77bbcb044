"""The fast path: stored by training, equal to scikit-learn, served without importing it."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlstack_common.artifact import (
    FAST_PATH_FILE,
    METADATA_FILE,
    ArtifactError,
    Feature,
    ModelMetadata,
    Task,
    load_model_dir,
    read_fast_path,
)
from mlstack_common.fastpath import CompiledModel, compile_pipeline, threshold_edge_rows
from mlstack_common.forest_engine import LEAF_BLOCK_ROWS
from serving.model import load_predictor
from training.model import build_pipeline
from training.settings import Algorithm, Hyperparameters


@pytest.mark.parametrize(
    ("name", "kind"), [("linear", "logistic"), ("forest", "forest-classifier")]
)
def test_training_stores_a_fast_path_that_matches_scikit_learn(
    trained_models: dict[str, Path], demo_rows: list[list[float]], name: str, kind: str
) -> None:
    pipeline, metadata = load_model_dir(trained_models[name])
    stored = read_fast_path(trained_models[name], metadata)
    assert stored is not None
    compiled = CompiledModel.from_bytes(stored)
    assert compiled.kind == kind
    assert compiled.classes == metadata.classes == tuple(str(c) for c in pipeline.classes_)
    rows = np.asarray(demo_rows)
    assert np.allclose(compiled.evaluate(rows), pipeline.predict_proba(rows), rtol=0, atol=1e-9)
    again = compile_pipeline(pipeline, metadata)
    assert again is not None
    assert again.to_bytes() == stored  # the same model always stores the same bytes


def test_models_it_cannot_express_have_none(trained_models: dict[str, Path]) -> None:
    for name in ("boosting", "mixed"):
        _, metadata = load_model_dir(trained_models[name])
        assert metadata.fast_path_sha256 == ""
        assert not (trained_models[name] / FAST_PATH_FILE).exists()


def test_ridge_regression_with_missing_values_matches(tmp_path: Path) -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import StandardScaler

    from mlstack_common.artifact import Feature, ModelMetadata

    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 3))
    y = x @ [1.0, -2.0, 0.5] + 3
    x[::9, 1] = np.nan
    pipeline = Pipeline(
        [
            (
                "preprocess",
                ColumnTransformer(
                    [
                        (
                            "numeric",
                            make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
                            [0, 1, 2],
                        )
                    ]
                ),
            ),
            ("model", Ridge(alpha=0.3)),
        ]
    ).fit(x, y)
    metadata = ModelMetadata(
        model_name="r",
        task="regression",
        features=tuple(Feature(name=f"f{i}", type="numeric", nullable=True) for i in range(3)),
        target="y",
    )
    compiled = compile_pipeline(pipeline, metadata, x)
    assert compiled is not None
    assert compiled.kind == "ridge"
    assert np.allclose(compiled.evaluate(x), pipeline.predict(x), rtol=0, atol=1e-9)


@pytest.mark.parametrize("name", ["linear", "forest"])
def test_a_model_with_a_fast_path_is_served_without_importing_scikit_learn(
    trained_models: dict[str, Path], demo_rows: list[list[float]], tmp_path: Path, name: str
) -> None:
    pipeline, _ = load_model_dir(trained_models[name])
    compiled = CompiledModel.from_bytes((trained_models[name] / FAST_PATH_FILE).read_bytes())
    # 809 rows for a forest: one call, above the size at which the server used to load
    # scikit-learn to score a forest.
    rows = np.asarray(demo_rows)
    if compiled.kind.startswith("forest"):
        rows = np.vstack([rows, threshold_edge_rows(compiled.arrays, rows, count=40)])
    np.save(tmp_path / "rows.npy", rows)
    script = (
        "import sys, json; from pathlib import Path; import numpy as np; "
        "from serving.model import load_predictor; "
        f"p = load_predictor({str(trained_models[name])!r}, Path({str(tmp_path)!r})); "
        f"answers = p.predict(np.load({str(tmp_path / 'rows.npy')!r})).probabilities; "
        "loaded = any(m.startswith('sklearn') for m in sys.modules); "
        "print(json.dumps({'fast': p.fast, 'sklearn': loaded, 'answers': answers.tolist()}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    served = json.loads(result.stdout)
    assert (served["fast"], served["sklearn"]) == (True, False)
    expected = pipeline.predict_proba(rows)
    assert np.allclose(served["answers"], expected, rtol=0, atol=1e-9)


def test_a_tampered_fast_path_is_refused(trained_models: dict[str, Path], tmp_path: Path) -> None:
    copy = tmp_path / "model"
    copy.mkdir()
    for item in trained_models["linear"].iterdir():
        (copy / item.name).write_bytes(item.read_bytes())
    (copy / FAST_PATH_FILE).write_bytes((copy / FAST_PATH_FILE).read_bytes() + b"x")
    with pytest.raises(ArtifactError, match="not the one training checked"):
        load_predictor(str(copy), tmp_path / "work")


@pytest.mark.parametrize("swap", [False, True], ids=["same order", "classes swapped"])
def test_a_fast_path_stored_before_it_recorded_its_classes_is_checked_against_the_pipeline(
    trained_models: dict[str, Path], tmp_path: Path, swap: bool
) -> None:
    copy = tmp_path / "model"
    shutil.copytree(trained_models["forest"], copy)
    stored = CompiledModel.from_bytes((copy / FAST_PATH_FILE).read_bytes())
    unrecorded = CompiledModel(stored.kind, stored.arrays).to_bytes()
    assert b'"classes"' not in unrecorded.splitlines()[0]
    (copy / FAST_PATH_FILE).write_bytes(unrecorded)
    metadata = json.loads((copy / METADATA_FILE).read_text())
    metadata["fast_path_sha256"] = hashlib.sha256(unrecorded).hexdigest()
    if swap:
        metadata["classes"] = metadata["classes"][::-1]
    (copy / METADATA_FILE).write_text(json.dumps(metadata))
    if swap:
        with pytest.raises(ArtifactError, match=r"^the model's classes \['benign', 'malignant'\]"):
            load_predictor(str(copy), tmp_path / "work")
    else:
        predictor = load_predictor(str(copy), tmp_path / "work")
        assert predictor.fast
        assert list(predictor.classes) == ["benign", "malignant"]


TASKS = ("binary", "multiclass", "regression")


def _fitted(algorithm: Algorithm, task: str) -> tuple[Any, ModelMetadata, np.ndarray]:
    """A pipeline as `mlstack-train --algorithm ALGORITHM` builds it, fitted on rows with a
    missing value in one column, its metadata, and the rows."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(400, 5)) * [1.0, 10.0, 0.1, 1.0, 3.0]
    score = x @ [1.0, 0.1, 5.0, -1.0, 0.2] + rng.normal(0, 0.3, 400)
    y: np.ndarray = score
    if task == "binary":
        y = np.where(score > 0, "yes", "no")
    elif task == "multiclass":
        y = np.array(["low", "mid", "high"])[
            np.searchsorted(np.quantile(score, [1 / 3, 2 / 3]), score)
        ]
    x[::11, 1] = np.nan
    kind: Task = "regression" if task == "regression" else "classification"
    features = tuple(
        Feature(name=f"f{i}", type="numeric", minimum=-40.0, maximum=40.0, nullable=i == 1)
        for i in range(5)
    )
    pipeline = build_pipeline(kind, features, Hyperparameters(algorithm=algorithm)).fit(x, y)
    classes = tuple(str(c) for c in getattr(pipeline, "classes_", ()))
    metadata = ModelMetadata(
        model_name=task, task=kind, features=features, target="y", classes=classes
    )
    return pipeline, metadata, x


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("algorithm", ["linear", "forest"])
def test_every_fast_path_answers_as_scikit_learn_does(algorithm: Algorithm, task: str) -> None:
    pipeline, metadata, x = _fitted(algorithm, task)
    compiled = compile_pipeline(pipeline, metadata)
    assert compiled is not None
    expected_kind = {
        ("linear", "regression"): "ridge",
        ("forest", "regression"): "forest-regressor",
    }.get((algorithm, task), "logistic" if algorithm == "linear" else "forest-classifier")
    assert compiled.kind == expected_kind
    rows = np.vstack([x, np.random.default_rng(6).uniform(-40, 40, size=(300, 5))])
    if algorithm == "forest":
        rows = np.vstack([rows, threshold_edge_rows(compiled.arrays, x, count=2000)])
    expected = pipeline.predict(rows) if task == "regression" else pipeline.predict_proba(rows)
    answers = compiled.evaluate(rows)
    assert answers.shape == expected.shape
    assert np.max(np.abs(answers - expected)) <= 1e-9


def test_a_forest_compares_as_scikit_learn_does_float32_inputs_against_float64_thresholds() -> None:
    """scikit-learn rounds a row to float32 before comparing it with a float64 threshold, so
    a value just above a threshold can still go left; an engine comparing in float64 (or with
    float32 thresholds) would answer these rows differently."""
    features = (Feature(name="f", type="numeric"),)
    pipeline = build_pipeline("regression", features, Hyperparameters(algorithm="forest"))
    # One tree on both rows: its one split lies between float32(0.1) and float32(0.2).
    pipeline.set_params(model__n_estimators=1, model__bootstrap=False)
    pipeline.fit(np.array([[0.1], [0.2]]), [1.0, 2.0])
    threshold = pipeline.steps[-1][1].estimators_[0].tree_.threshold[0]
    near = [threshold + step * np.spacing(threshold) for step in range(-40, 41)]
    narrow = np.float32(threshold)
    near += [
        float(v)
        for v in (narrow, np.nextafter(narrow, np.float32(-1)), np.nextafter(narrow, np.float32(1)))
    ]
    rows = np.array(near)[:, None]
    in_float64 = rows[:, 0] <= threshold
    in_float32 = rows[:, 0].astype(np.float32) <= threshold
    assert (in_float64 != in_float32).any()  # the rows tell the two comparisons apart
    metadata = ModelMetadata(model_name="edge", task="regression", features=features, target="y")
    compiled = compile_pipeline(pipeline, metadata)
    assert compiled is not None
    assert list(compiled.evaluate(rows)) == list(pipeline.predict(rows))
    assert list(compiled.evaluate(rows)) == list(np.where(in_float32, 1.0, 2.0))


def test_a_forest_with_trees_that_are_one_leaf_answers_as_scikit_learn_does() -> None:
    """A bootstrap sample of one class makes a tree with no split at all."""
    x = np.array([[0.0], [1.0], [2.0], [3.0], [4.0]])
    y = np.array(["a", "a", "a", "a", "b"])
    features = (Feature(name="f", type="numeric", minimum=-1.0, maximum=5.0),)
    pipeline = build_pipeline("classification", features, Hyperparameters(algorithm="forest")).fit(
        x, y
    )
    forest = pipeline.steps[-1][1]
    assert any(tree.tree_.node_count == 1 for tree in forest.estimators_)
    metadata = ModelMetadata(
        model_name="stumps",
        task="classification",
        features=features,
        target="y",
        classes=("a", "b"),
    )
    compiled = compile_pipeline(pipeline, metadata)
    assert compiled is not None
    rows = np.linspace(-1, 5, 61)[:, None]
    assert np.max(np.abs(compiled.evaluate(rows) - pipeline.predict_proba(rows))) <= 1e-9


def test_a_three_class_forest_answers_calls_of_several_leaf_blocks() -> None:
    pipeline, metadata, x = _fitted("forest", "multiclass")
    compiled = compile_pipeline(pipeline, metadata)
    assert compiled is not None
    rows = np.resize(x, (2 * LEAF_BLOCK_ROWS + 7, x.shape[1]))
    answers = compiled.evaluate(rows)
    assert answers.shape == (len(rows), 3)
    assert np.max(np.abs(answers - pipeline.predict_proba(rows))) <= 1e-9
