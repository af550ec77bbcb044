"""The fast path: stored by training, equal to scikit-learn, served without importing it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mlstack_common.artifact import FAST_PATH_FILE, ArtifactError, load_model_dir, read_fast_path
from mlstack_common.fastpath import CompiledModel, compile_pipeline
from serving.model import load_predictor


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


def test_a_model_with_a_fast_path_is_served_without_importing_scikit_learn(
    trained_models: dict[str, Path], tmp_path: Path
) -> None:
    script = (
        "import sys, json; from pathlib import Path; from serving.model import load_predictor; "
        f"p = load_predictor({str(trained_models['linear'])!r}, Path({str(tmp_path)!r})); "
        "loaded = any(m.startswith('sklearn') for m in sys.modules); "
        "print(json.dumps({'fast': p.fast, 'sklearn': loaded}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout) == {"fast": True, "sklearn": False}


def test_a_tampered_fast_path_is_refused(trained_models: dict[str, Path], tmp_path: Path) -> None:
    copy = tmp_path / "model"
    copy.mkdir()
    for item in trained_models["linear"].iterdir():
        (copy / item.name).write_bytes(item.read_bytes())
    (copy / FAST_PATH_FILE).write_bytes((copy / FAST_PATH_FILE).read_bytes() + b"x")
    with pytest.raises(ArtifactError, match="not the one training checked"):
        load_predictor(str(copy), tmp_path / "work")
