"""Every kind of model training can produce answers JSON and CSV as its own pipeline does.

Each algorithm, for binary, multiclass and regression targets, served through the fast path or by
scikit-learn is trained by the training command, served by a real server process, and its
answers compared with the fitted pipeline's on the same rows.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from mlstack_common.artifact import load_model_dir, read_metadata
from mlstack_common.exits import ExitStatus
from tests.serving.conftest import Server, start_server, stop_server
from training.cli import main as train
from training.model import as_matrix

ALGORITHMS = ("linear", "hgb", "forest")
TASKS = ("binary", "multiclass", "regression")
# "numeric": every feature is a number, so linear models and forests get the numpy fast path;
# "mixed": a categorical feature, so scikit-learn serves every algorithm.
FEATURES = ("numeric", "mixed")
ROWS = 240
REQUEST_ROWS = 25


def _dataset(directory: Path, task: str, features: str) -> Path:
    rng = np.random.default_rng(7)
    size = rng.normal(10, 3, ROWS)
    weight = rng.normal(50, 10, ROWS)
    colour = rng.choice(["red", "green", "blue"], ROWS)
    score = size + 0.1 * weight + np.where(colour == "red", 3.0, 0.0) + rng.normal(0, 1, ROWS)
    if task == "regression":
        target: list[str] = [f"{v:.4f}" for v in score]
    elif task == "binary":
        target = ["high" if v > np.median(score) else "low" for v in score]
    else:
        cuts = np.quantile(score, [1 / 3, 2 / 3])
        target = [("low", "mid", "high")[int(np.searchsorted(cuts, v))] for v in score]
    spec: dict[str, Any] = {
        "target": {"name": "label", "type": "numeric" if task == "regression" else "categorical"},
        "features": [
            {"name": "size", "type": "numeric"},
            {"name": "weight", "type": "numeric"},
        ],
    }
    columns = ["size", "weight"]
    if features == "mixed":
        spec["features"].append(
            {"name": "colour", "type": "categorical", "categories": ["red", "green", "blue"]}
        )
        columns.append("colour")
    directory.mkdir(parents=True)
    values = {"size": size, "weight": weight, "colour": colour}
    with (directory / "data.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*columns, "label"])
        for i in range(ROWS):
            writer.writerow([*(_cell(values[c][i]) for c in columns), target[i]])
    (directory / "dataset.yaml").write_text(yaml.safe_dump(spec))
    return directory / "data.csv"


def _cell(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float | np.floating) else str(value)


CASES = [(a, t, f) for a in ALGORITHMS for t in TASKS for f in FEATURES]


@pytest.fixture(params=CASES, ids=["-".join(case) for case in CASES])
def served(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Server, Path, list[list[str]]]]:
    algorithm, task, features = request.param
    data = _dataset(tmp_path / "data", task, features)
    settings = ["--n-estimators", "20"] if algorithm == "forest" else ["--max-iter", "50"]
    # The model is written whatever the gate decides (a small forest's probabilities can be
    # worse calibrated than the class frequencies); serving it is what is tested here.
    assert train(
        ["--data", str(data), "--output-dir", str(tmp_path / "out"),
         "--algorithm", algorithm, "--min-improvement", "0", *settings]
    ) in (0, ExitStatus.GATE)  # fmt: skip
    model_dir = tmp_path / "out" / "model"
    fast = bool(read_metadata(model_dir).fast_path_sha256)
    assert fast == (features == "numeric" and algorithm != "hgb"), "the matrix covers both paths"
    rows = [line.split(",")[:-1] for line in data.read_text().splitlines()[1 : 1 + REQUEST_ROWS]]
    (tmp_path / "server").mkdir()
    server = start_server(str(model_dir), tmp_path / "server")
    yield server, model_dir, rows
    stop_server(server)


def _as_json_row(row: list[str]) -> list[Any]:
    return [float(v) if i < 2 else v for i, v in enumerate(row)]


def test_json_and_csv_answers_match_the_pipeline(
    served: tuple[Server, Path, list[list[str]]],
) -> None:
    server, model_dir, rows = served
    pipeline, metadata = load_model_dir(model_dir)
    matrix = as_matrix([_as_json_row(r) for r in rows], metadata.features)
    classifier = metadata.task == "classification"
    expected_labels = pipeline.predict(matrix)
    expected_probabilities = (
        np.asarray(pipeline.predict_proba(matrix), dtype=np.float64) if classifier else np.empty(0)
    )

    status, _, body = server.post(json.dumps([_as_json_row(r) for r in rows]).encode())
    assert status == 200, body
    answer = json.loads(body)
    if classifier:
        assert answer["predictions"] == [str(label) for label in expected_labels]
        assert answer["classes"] == list(metadata.classes)
        np.testing.assert_allclose(
            np.array(answer["probabilities"]), expected_probabilities, rtol=1e-7
        )
    else:
        np.testing.assert_allclose(answer["predictions"], expected_labels, rtol=1e-7)

    csv_body = "".join(",".join(row) + "\n" for row in rows).encode()
    status, _, body = server.post(csv_body, "text/csv", Accept="text/csv")
    assert status == 200, body
    lines = [line.split(",") for line in body.decode().splitlines()]
    assert len(lines) == len(rows)
    if classifier:
        assert [line[0] for line in lines] == [str(label) for label in expected_labels]
        answered = np.array([[float(p) for p in line[1:]] for line in lines])
        np.testing.assert_allclose(answered, expected_probabilities, rtol=1e-7)
    else:
        np.testing.assert_allclose([float(line[0]) for line in lines], expected_labels, rtol=1e-7)
