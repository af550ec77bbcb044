"""The serving contract, against real server processes on 127.0.0.1."""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlstack_common.artifact import load_model_dir, pack
from mlstack_common.exits import ExitStatus
from tests.aws import Emulator
from tests.logs import log_messages
from tests.serving.conftest import Server, serve_until_exit, start_server, stop_server


def expected(model_dir: Path, rows: list[list[float]]) -> tuple[list[str], np.ndarray]:
    model, metadata = load_model_dir(model_dir)
    probabilities = model.predict_proba(np.asarray(rows))
    return [metadata.classes[i] for i in probabilities.argmax(axis=1)], probabilities


def test_probes_answer(linear_server: Server) -> None:
    for path in ("/ping", "/healthz", "/readyz"):
        status, headers, _ = linear_server.request("GET", path)
        assert status == 200, path
        assert headers["content-type"] == "application/json"


def test_json_rows_get_the_models_own_predictions_and_probabilities(
    linear_server: Server, trained_models: dict[str, Path], demo_rows: list[list[float]]
) -> None:
    rows = demo_rows[:25]
    status, headers, body = linear_server.post(json.dumps(rows).encode())
    assert status == 200
    assert headers["content-type"] == "application/json"
    answer = json.loads(body)
    labels, probabilities = expected(trained_models["linear"], rows)
    assert answer["predictions"] == labels
    assert answer["classes"] == ["benign", "malignant"]
    assert np.allclose(answer["probabilities"], probabilities, atol=1e-12)


def test_rows_as_objects_keyed_by_feature_name(
    linear_server: Server, trained_models: dict[str, Path], demo_rows: list[list[float]]
) -> None:
    _, metadata = load_model_dir(trained_models["linear"])
    objects = [
        dict(zip(reversed(metadata.feature_names), reversed(row), strict=True))
        for row in demo_rows[:3]
    ]
    for body in (objects, {"instances": objects}):
        status, _, answer = linear_server.post(json.dumps(body).encode())
        assert status == 200
        assert (
            json.loads(answer)["predictions"]
            == expected(trained_models["linear"], demo_rows[:3])[0]
        )


def test_csv_in_csv_out_as_batch_transform_sends_it(
    linear_server: Server, trained_models: dict[str, Path], demo_rows: list[list[float]]
) -> None:
    rows = demo_rows[:4]
    body = "".join(",".join(repr(v) for v in row) + "\n" for row in rows).encode()
    status, headers, answer = linear_server.post(body, "text/csv")
    assert status == 200
    assert headers["content-type"] == "text/csv"
    labels, probabilities = expected(trained_models["linear"], rows)
    lines = answer.decode().splitlines()
    assert [line.split(",")[0] for line in lines] == labels
    assert np.allclose([[float(v) for v in line.split(",")[1:]] for line in lines], probabilities)
    # A single CSV row without a trailing newline is valid too.
    single = ",".join(repr(v) for v in rows[0]).encode()
    assert linear_server.post(single, "text/csv")[0] == 200


def test_accept_picks_the_response_format(
    linear_server: Server, demo_rows: list[list[float]]
) -> None:
    csv_row = (",".join(repr(v) for v in demo_rows[0]) + "\n").encode()
    status, headers, body = linear_server.post(csv_row, "text/csv", Accept="application/json")
    assert (status, headers["content-type"]) == (200, "application/json")
    assert "predictions" in json.loads(body)
    status, headers, _ = linear_server.post(json.dumps([demo_rows[0]]).encode(), Accept="text/csv")
    assert (status, headers["content-type"]) == (200, "text/csv")


def test_regression_with_a_category_and_a_missing_nullable_value(
    mixed_server: Server, trained_models: dict[str, Path]
) -> None:
    rows = [{"colour": "red", "size": 10.0}, {"colour": "green", "size": None}, {"colour": "blue"}]
    status, _, body = mixed_server.post(json.dumps(rows).encode())
    assert status == 200, body
    answer = json.loads(body)
    assert "probabilities" not in answer
    model, _ = load_model_dir(trained_models["mixed"])
    direct = model.predict(
        np.asarray([["red", 10.0], ["green", np.nan], ["blue", np.nan]], dtype=object)
    )
    assert np.allclose(answer["predictions"], direct)
    status, _, body = mixed_server.post(b"red,10\ngreen,\n", "text/csv")
    assert status == 200
    assert np.allclose([float(v) for v in body.decode().split()], direct[:2])


def test_metadata_names_the_model_its_features_and_lineage(
    linear_server: Server, trained_models: dict[str, Path]
) -> None:
    status, _, body = linear_server.request("GET", "/metadata")
    assert status == 200
    document = json.loads(body)
    _, metadata = load_model_dir(trained_models["linear"])
    assert [f["name"] for f in document["features"]] == list(metadata.feature_names)
    assert document["lineage"]["model_sha256"] == metadata.model_sha256
    assert document["lineage"]["data_sha256"] == metadata.data_sha256
    assert document["task"] == "classification"


def test_metrics_count_requests_latency_batches_and_classes(
    trained_models: dict[str, Path], demo_rows: list[list[float]], tmp_path: Path
) -> None:
    server = start_server(
        str(trained_models["linear"]), tmp_path, MLSTACK_MODEL_VERSION="7", MLSTACK_WORKERS="2"
    )
    try:
        for _ in range(20):
            assert server.post(json.dumps(demo_rows[:3]).encode())[0] == 200
        assert server.post(b"{", "application/json")[0] == 400
        time.sleep(1.5)  # each worker publishes its numbers once a second
        status, headers, body = server.request("GET", "/metrics")
    finally:
        stop_server(server)
    text = body.decode()
    assert status == 200
    assert headers["content-type"].startswith("text/plain")
    assert 'mlstack_model_info{model="model",model_version="7"} 1' in text
    assert 'mlstack_requests_total{route="/invocations",status="200"} 20' in text
    assert 'mlstack_requests_total{route="/invocations",status="400"} 1' in text
    assert re.search(r'mlstack_request_duration_seconds_count\{route="/invocations"\} 21', text)
    assert re.search(r'mlstack_batch_rows_sum\{model="model",model_version="7"\} 60', text)
    classes = re.findall(
        r'mlstack_predictions_total\{model="model",model_version="7",class="(\w+)"\} (\d+)', text
    )
    assert sum(int(count) for _, count in classes) == 60


def test_a_model_whose_file_does_not_match_its_checksum_is_refused(
    trained_models: dict[str, Path], tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    for item in trained_models["linear"].iterdir():
        (broken / item.name).write_bytes(item.read_bytes())
    with (broken / "model.joblib").open("ab") as handle:
        handle.write(b"tampered")
    result = serve_until_exit(str(broken), tmp_path / "w")
    assert result.returncode == ExitStatus.REFUSED, result.stderr
    assert "the file is not the model that was evaluated" in log_messages(result.stderr)


def test_a_model_tarball_from_s3_is_downloaded_once_and_served(
    trained_models: dict[str, Path],
    demo_rows: list[list[float]],
    tmp_path: Path,
    emulator: Emulator,
) -> None:
    s3 = emulator.client("s3")
    s3.create_bucket(Bucket="models")
    s3.put_object(Bucket="models", Key="demo/model.tar.gz", Body=pack(trained_models["linear"]))
    server = start_server("s3://models/demo/model.tar.gz", tmp_path, **emulator.env)
    try:
        status, _, body = server.post(json.dumps(demo_rows[:2]).encode())
    finally:
        stop_server(server)
    assert status == 200
    assert json.loads(body)["predictions"] == expected(trained_models["linear"], demo_rows[:2])[0]


def test_the_fast_path_gives_scikit_learns_answers(
    trained_models: dict[str, Path], demo_rows: list[list[float]]
) -> None:
    from serving.model import Predictor

    for name in ("linear", "forest"):
        pipeline, metadata = load_model_dir(trained_models[name])
        fast = Predictor.from_pipeline(pipeline, metadata)
        plain = Predictor.from_pipeline(pipeline, metadata, fast=False)
        assert fast.fast
        assert not plain.fast
        rows = np.asarray(demo_rows, dtype=np.float64)
        fast_probabilities = fast.predict(rows).probabilities
        plain_probabilities = plain.predict(rows).probabilities
        assert fast_probabilities is not None
        assert plain_probabilities is not None
        assert np.allclose(fast_probabilities, plain_probabilities, atol=1e-9)
        assert list(fast.predict(rows).labels) == list(plain.predict(rows).labels)


def _swap_classes(metadata: dict[str, Any]) -> dict[str, Any]:
    return {**metadata, "classes": metadata["classes"][::-1]}


def _drop_a_feature(metadata: dict[str, Any]) -> dict[str, Any]:
    return {**metadata, "features": metadata["features"][:-1]}


@pytest.mark.parametrize(
    ("model", "edit", "message"),
    [
        ("boosting", _swap_classes, "answers would be mislabelled"),
        ("boosting", _drop_a_feature, "the model takes 30 features, its metadata lists 29"),
        ("linear", _drop_a_feature, "cannot score a row of its own metadata's features"),
    ],
)
def test_metadata_that_disagrees_with_its_model_is_refused_at_start(
    trained_models: dict[str, Path],
    tmp_path: Path,
    model: str,
    edit: Callable[[dict[str, Any]], dict[str, Any]],
    message: str,
) -> None:
    copy = tmp_path / "model"
    shutil.copytree(trained_models[model], copy)
    document = json.loads((copy / "metadata.json").read_text())
    (copy / "metadata.json").write_text(json.dumps(edit(document)))
    result = serve_until_exit(str(copy), tmp_path / "w")
    assert result.returncode == ExitStatus.REFUSED, result.stderr
    assert message in log_messages(result.stderr)
    assert "Traceback" not in result.stderr
