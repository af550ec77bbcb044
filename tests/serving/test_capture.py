"""Data capture by the server: a sample of answered requests, in SageMaker's capture format and
layout, written in the background to an S3 emulator (moto_server on 127.0.0.1); read back with
the drift job's own reader, so the drift job reads a Kubernetes deployment's capture as it reads
a SageMaker endpoint's. A bucket that refuses the writes costs no request, and shows in
/metrics."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mlstack_common import storage
from serving import drift
from serving.capture import capture_record
from tests.aws import Emulator
from tests.serving.conftest import Server, start_server, stop_server

CAPTURE = "s3://capture/kubernetes"


def metric(server: Server, name: str) -> float:
    _, _, body = server.request("GET", "/metrics")
    match = re.search(rf"^{re.escape(name)} (\S+)$", body.decode(), re.MULTILINE)
    assert match, f"{name} not in /metrics"
    return float(match.group(1))


def records_under(emulator: Emulator, endpoint: str) -> tuple[list[str], list[dict[str, Any]]]:
    """The capture's object keys, and its records as the drift job reads them."""
    now = datetime.now(UTC) + timedelta(hours=1)
    prefixes = drift.hour_prefixes(CAPTURE, endpoint, "primary", now, 2)
    s3 = emulator.client("s3")
    keys = [
        item["Key"]
        for item in s3.list_objects_v2(Bucket="capture").get("Contents", [])
        if item["Key"].startswith(f"kubernetes/{endpoint}/")
    ]
    with pytest.MonkeyPatch.context() as env:
        for name, value in emulator.env.items():
            env.setenv(name, value)
        storage.s3_client.cache_clear()
        try:
            return keys, drift.captured_records(prefixes)
        finally:
            storage.s3_client.cache_clear()


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"1.5,red\n2.5,blue\n", "text/csv"),
        (b'{"instances": [{"size": 1.5, "colour": "red"}, [2.5, "blue"]]}', "application/json"),
    ],
    ids=["csv", "json"],
)
def test_a_captured_request_reads_back_as_the_rows_it_sent(body: bytes, content_type: str) -> None:
    line = capture_record("id-1", "2026-12-03T06:00:00Z", body, content_type, b"[1, 0]", "x/y")
    record = json.loads(line)
    assert record["eventMetadata"] == {"eventId": "id-1", "inferenceTime": "2026-12-03T06:00:00Z"}
    assert record["captureData"]["endpointOutput"]["encoding"] == "BASE64"  # not text: kept raw
    rows = drift._request_rows(record, ["size", "colour"])
    assert [[float(size), colour] for size, colour in rows] == [[1.5, "red"], [2.5, "blue"]]


def test_the_server_captures_every_answered_request_to_s3_in_sagemakers_layout(
    emulator: Emulator, trained_models: dict[str, Path], tmp_path: Path
) -> None:
    emulator.client("s3").create_bucket(Bucket="capture")
    server = start_server(
        str(trained_models["mixed"]),
        tmp_path,
        MLSTACK_CAPTURE_URI=CAPTURE,
        MLSTACK_CAPTURE_ENDPOINT="prices-dev",
        **emulator.env,
    )
    sent = {}
    for index in range(30):
        text = f"red,{10 + index}\n" if index % 2 else json.dumps([["blue", index]])
        kind = "text/csv" if index % 2 else "application/json"
        status, _, answer = server.post(text.encode(), kind, **{"X-Request-Id": f"r{index}"})
        assert status == 200
        sent[f"r{index}"] = (text, answer.decode())
    assert server.post(b"not,a,row\n", "text/csv")[0] in (400, 422)  # refused: not captured
    assert stop_server(server) == 0  # the last buffer is written on the way out

    keys, records = records_under(emulator, "prices-dev")
    assert keys
    hour = r"\d{4}/\d{2}/\d{2}/\d{2}"
    assert all(re.fullmatch(rf"kubernetes/prices-dev/primary/{hour}/.+\.jsonl", k) for k in keys)
    assert {r["eventMetadata"]["eventId"]: r for r in records}.keys() == sent.keys()
    for record in records:
        text, answered = sent[record["eventMetadata"]["eventId"]]
        assert record["captureData"]["endpointInput"]["data"] == text
        assert record["captureData"]["endpointOutput"]["data"] == answered
        assert record["eventVersion"] == "0"
    rows = [row for record in records for row in drift._request_rows(record, ["colour", "size"])]
    assert len(rows) == 30


def test_the_capture_percent_samples_the_traffic(
    emulator: Emulator, trained_models: dict[str, Path], tmp_path: Path
) -> None:
    emulator.client("s3").create_bucket(Bucket="capture")
    server = start_server(
        str(trained_models["linear"]),
        tmp_path,
        MLSTACK_CAPTURE_URI=CAPTURE,
        MLSTACK_CAPTURE_PERCENT="25",
        **emulator.env,
    )
    model = json.loads(server.request("GET", "/metadata")[2])["model"]
    row = ",".join(["1.0"] * 30) + "\n"
    for _ in range(400):
        assert server.post(row.encode(), "text/csv")[0] == 200
    assert stop_server(server) == 0
    _, records = records_under(emulator, model)  # no endpoint name given: the model's
    assert 50 <= len(records) <= 150  # 100 expected; 5.8 standard deviations either way


def test_a_bucket_refusing_the_capture_fails_no_request_and_shows_in_metrics(
    emulator: Emulator, trained_models: dict[str, Path], tmp_path: Path
) -> None:
    server = start_server(
        str(trained_models["linear"]),
        tmp_path,
        MLSTACK_CAPTURE_URI="s3://no-such-bucket/kubernetes",
        **emulator.env,
    )
    try:
        row = ",".join(["1.0"] * 30) + "\n"
        assert all(server.post(row.encode(), "text/csv")[0] == 200 for _ in range(20))
        deadline = time.monotonic() + 30  # the buffer is written within 10 s
        while metric(server, "mlstack_capture_write_failures_total") < 1:
            assert time.monotonic() < deadline, "no failed write counted"
            time.sleep(0.5)
        assert metric(server, 'mlstack_capture_records_total{outcome="lost"}') == 20
        assert metric(server, 'mlstack_capture_records_total{outcome="written"}') == 0
        assert server.post(row.encode(), "text/csv")[0] == 200
    finally:
        assert stop_server(server) == 0
