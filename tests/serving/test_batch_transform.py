"""SageMaker batch transform's contract, against real server processes on 127.0.0.1: the
server says what it can take (`GET /execution-parameters`) and answers every mini-batch cut to
that size with one line per record, in order, as `python -m serving.batch` scores them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlstack_common.artifact import read_metadata
from mlstack_common.exits import ExitStatus
from serving.app import execution_parameters
from serving.batch import main as score_files
from serving.settings import ServingSettings
from tests.serving.batch_transform import MIB, transform
from tests.serving.conftest import Server, start_server, stop_server
from tests.serving.test_answer_matrix import _dataset
from training.cli import main as train

LIMIT = MIB + 1000
"""A body limit just over 1 MiB: MaxPayloadInMB 1, so a few MiB of input is several batches."""
INPUT_BYTES = 5 * MIB // 2


@pytest.fixture(scope="module")
def multiclass_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three classes, a categorical feature: served by scikit-learn, not the fast path."""
    root = tmp_path_factory.mktemp("multiclass")
    data = _dataset(root / "data", "multiclass", "mixed")
    code = train(["--data", str(data), "--output-dir", str(root / "out"), "--algorithm", "hgb",
                  "--max-iter", "50", "--min-improvement", "0"])  # fmt: skip
    assert code in (0, ExitStatus.GATE)
    return root / "out" / "model"


@pytest.fixture(params=["linear", "forest", "mixed", "multiclass"])
def model(
    request: pytest.FixtureRequest, trained_models: dict[str, Path], multiclass_model: Path
) -> Path:
    """Binary classifiers on the fast path (linear) and the forest's, a regressor with a
    categorical and a nullable feature, a multiclass classifier served by scikit-learn."""
    name: str = request.param
    return multiclass_model if name == "multiclass" else trained_models[name]


def training_rows(model_dir: Path) -> tuple[list[str], list[str]]:
    """The header and rows (label column dropped) of the data the model was trained on."""
    lines = Path(read_metadata(model_dir).data_uri).read_text().splitlines()
    header, *rows = (line.rsplit(",", 1)[0] for line in lines)
    return header.split(","), rows


def input_file(model_dir: Path, directory: Path, size: int) -> tuple[Path, Path]:
    """About `size` bytes of the training rows, repeated: a header-less CSV for the transform
    job and the same rows with a header for `python -m serving.batch`."""
    header, rows = training_rows(model_dir)
    per_copy = sum(len(row) + 1 for row in rows)
    repeated = rows * (size // per_copy + 1)
    directory.mkdir()
    plain, headed = directory / "records.csv", directory / "with-header" / "records.csv"
    headed.parent.mkdir()
    plain.write_text("".join(row + "\n" for row in repeated))
    headed.write_text(",".join(header) + "\n" + plain.read_text())
    return plain, headed


@pytest.fixture
def server(model: Path, tmp_path: Path) -> Iterator[Server]:
    (tmp_path / "server").mkdir()
    running = start_server(
        str(model), tmp_path / "server", MLSTACK_WORKERS="2", MLSTACK_MAX_BODY_BYTES=str(LIMIT)
    )
    yield running
    stop_server(running)


def test_a_transform_job_gets_one_line_per_record_in_order_as_the_batch_scorer_scores_them(
    server: Server, model: Path, tmp_path: Path
) -> None:
    plain, headed = input_file(model, tmp_path / "input", INPUT_BYTES)
    done = transform(server, plain, tmp_path / "transformed")
    assert done.parameters == {
        "MaxConcurrentTransforms": 2,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": 1,
    }
    assert len(done.mini_batches) >= 3
    assert max(done.mini_batches) <= MIB
    lines = done.output.read_text().splitlines()
    assert len(lines) == len(plain.read_text().splitlines())

    assert score_files(["--input", str(headed), "--output", str(tmp_path / "scored"),
                        "--model", str(model)]) == 0  # fmt: skip
    scored = pd.read_csv(tmp_path / "scored" / "records.predictions.csv", dtype={"prediction": str})
    assert list(scored["id"]) == list(range(1, len(lines) + 1))
    cells = [line.split(",") for line in lines]
    probabilities = [c for c in scored.columns if c.startswith("probability_")]
    if probabilities:
        assert [c[0] for c in cells] == list(scored["prediction"])
        got = np.array([[float(v) for v in c[1:]] for c in cells])
        assert np.allclose(got, scored[probabilities].to_numpy(), rtol=0, atol=1e-9)
    else:
        assert np.allclose([float(c[0]) for c in cells], scored["prediction"].astype(float))


def exact_body(rows: list[str], size: int) -> bytes:
    """Whole CSV records of exactly `size` bytes: as many rows as fit, the last number padded
    with trailing zeros to the byte."""
    records: list[str] = []
    total = 0
    for row in rows * (size // len(rows) + 2):
        if total + len(row) + 1 > size:
            break
        records.append(row)
        total += len(row) + 1
    last = records[-1] if "." in records[-1].rsplit(",", 1)[-1] else records[-1] + "."
    records[-1] = last + "0" * (size - total - (len(last) - len(records[-1])))
    body = "".join(record + "\n" for record in records).encode()
    assert len(body) == size
    return body


def test_a_mini_batch_of_exactly_the_advertised_size_is_scored_and_one_past_the_limit_is_413(
    trained_models: dict[str, Path], tmp_path: Path
) -> None:
    limit = 2 * MIB + 12345
    model = str(trained_models["linear"])
    server = start_server(model, tmp_path, MLSTACK_MAX_BODY_BYTES=str(limit))
    try:
        _, headers, body = server.request("GET", "/execution-parameters")
        advertised = json.loads(body)["MaxPayloadInMB"]
        assert advertised == 2
        assert headers["content-type"] == "application/json"
        _, rows = training_rows(trained_models["linear"])
        largest = exact_body(rows, advertised * MIB)
        status, _, answer = server.post(largest, "text/csv", Accept="text/csv")
        assert status == 200
        assert len(answer.splitlines()) == largest.count(b"\n")
        status, _, answer = server.post(exact_body(rows, limit + 1), "text/csv", Accept="text/csv")
        assert status == 413
        assert f"the limit is {limit}" in json.loads(answer)["error"]
    finally:
        stop_server(server)


@pytest.mark.parametrize(
    ("env", "concurrency", "payload"),
    [
        ({}, 1, 6),  # the defaults: 6 MiB bodies, SageMaker's own real-time limit
        ({"MLSTACK_WORKERS": "2", "MLSTACK_MAX_BODY_BYTES": str(7 * MIB // 2)}, 2, 3),
        ({"MLSTACK_MAX_BODY_BYTES": str(300 * MIB)}, 1, 100),  # SageMaker's ceiling
    ],
)
def test_the_advertised_parameters_follow_the_servers_settings(
    env: dict[str, str],
    concurrency: int,
    payload: int,
    trained_models: dict[str, Path],
    tmp_path: Path,
) -> None:
    server = start_server(str(trained_models["linear"]), tmp_path, **env)
    try:
        status, _, body = server.request("GET", "/execution-parameters")
    finally:
        stop_server(server)
    assert status == 200
    assert json.loads(body) == {
        "MaxConcurrentTransforms": concurrency,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": payload,
    }


@pytest.mark.parametrize(
    ("workers", "max_body_bytes", "payload"),
    [
        (64, 6 * MIB, 1),  # 64 x 1 is within SageMaker's 100 MB of concurrent payloads
        (20, 6 * MIB, 5),  # 20 x 6 would not be
        (1, 1024, 1),  # SageMaker's smallest; such a server refuses larger mini-batches
        (1, MIB - 1, 1),
        (4, 25 * MIB, 25),
    ],
)
def test_concurrency_times_payload_stays_within_sagemakers_limit(
    workers: int, max_body_bytes: int, payload: int
) -> None:
    settings = ServingSettings(workers=workers, max_body_bytes=max_body_bytes)
    parameters = execution_parameters(settings)
    assert parameters["MaxConcurrentTransforms"] == workers
    assert parameters["MaxPayloadInMB"] == payload
