"""The direct lane (serving/protocol.py): a whole `POST /invocations` is answered without ASGI;
a body still arriving, a pipelined request and anything unusual take the ASGI path. Whichever
way a request goes, its client sees the same answer."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest
import uvicorn

from serving.app import ServingApp
from serving.model import load_predictor
from serving.ports import free_port
from serving.protocol import serving_protocol
from serving.server import listen
from serving.settings import ServingSettings
from tests.serving.conftest import Server, start_server, stop_server

Answer = tuple[int, dict[bytes, bytes], bytes]


def _request(body: bytes, content_type: bytes = b"application/json", **headers: bytes) -> bytes:
    extra = b"".join(
        b"%s: %s\r\n" % (name.replace("_", "-").encode(), value) for name, value in headers.items()
    )
    return (
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\n%sContent-Length: %d\r\n\r\n"
        % (content_type, extra, len(body))
        + body
    )


def _answers(port: int, writes: list[bytes], count: int, pause: float = 0.2) -> list[Answer]:
    """Send `writes` on one connection, `pause` apart, and read `count` answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
        for index, data in enumerate(writes):
            if index:
                time.sleep(pause)
            client.sendall(data)
        received = b""
        answers: list[Answer] = []
        while len(answers) < count:
            parsed = _parse(received)
            if parsed is not None:
                answers.append(parsed[0])
                received = parsed[1]
                continue
            chunk = client.recv(65536)
            assert chunk, f"the server closed after {len(answers)} of {count} answers"
            received += chunk
        return answers


def _parse(data: bytes) -> tuple[Answer, bytes] | None:
    """The first whole answer in `data` and what follows it, or None while it is incomplete."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    status_line, *lines = data[:end].split(b"\r\n")
    headers = dict(line.split(b": ", 1) for line in lines)
    length = int(headers[b"content-length"])
    if len(data) < end + 4 + length:
        return None
    body = data[end + 4 : end + 4 + length]
    return (int(status_line.split()[1]), headers, body), data[end + 4 + length :]


def _comparable(answer: Answer) -> tuple[int, set[bytes], bytes]:
    """An answer without what differs per request (its date and request id)."""
    status, headers, body = answer
    names = {name for name in headers if name not in (b"date", b"x-request-id")}
    return status, {name + b": " + headers[name] for name in names}, body


@pytest.mark.parametrize(
    ("case", "body", "content_type", "accept", "status"),
    [
        ("one row", b"[[%s]]", b"application/json", b"application/json", 200),
        ("two rows as CSV", b"%s\n%s\n", b"text/csv", b"text/csv", 200),
        ("malformed JSON", b"[[1,2", b"application/json", b"*/*", 400),
        ("too few columns", b"[[1,2,3]]", b"application/json", b"*/*", 422),
        ("unsupported type", b"<rows/>", b"application/xml", b"*/*", 415),
        ("unacceptable answer", b"[[%s]]", b"application/json", b"image/png", 406),
    ],
)
def test_a_body_sent_after_its_headers_gets_the_answer_the_whole_request_gets(
    linear_server: Server,
    demo_rows: list[list[float]],
    case: str,
    body: bytes,
    content_type: bytes,
    accept: bytes,
    status: int,
) -> None:
    row = ",".join(repr(value) for value in demo_rows[0]).encode()
    body = body.replace(b"%s", row)
    request = _request(body, content_type, Accept=accept)
    split = request.index(b"\r\n\r\n") + 4
    whole = _answers(linear_server.port, [request], 1)[0]
    # The body arrives 200 ms after the headers: the ASGI path reads it.
    in_two = _answers(linear_server.port, [request[:split], request[split:]], 1)[0]
    assert whole[0] == status, (case, whole)
    assert _comparable(in_two) == _comparable(whole), case


def test_pipelined_requests_are_answered_in_order_each_with_its_own_rows(
    linear_server: Server, demo_rows: list[list[float]]
) -> None:
    parts = [demo_rows[0:1], demo_rows[1:3], demo_rows[3:6], demo_rows[6:7]]
    requests = [
        _request(json.dumps(rows).encode(), X_Request_Id=b"pipelined-%d" % index)
        for index, rows in enumerate(parts)
    ]
    answers = _answers(linear_server.port, [b"".join(requests)], len(requests))
    assert [headers[b"x-request-id"] for _, headers, _ in answers] == [
        b"pipelined-%d" % index for index in range(len(parts))
    ]
    for (status, _, body), rows in zip(answers, parts, strict=True):
        alone = linear_server.post(json.dumps(rows).encode())
        assert (status, json.loads(body)) == (alone[0], json.loads(alone[2]))


def test_a_keep_alive_connection_carries_many_requests_and_closes_when_asked(
    linear_server: Server, demo_rows: list[list[float]]
) -> None:
    body = json.dumps(demo_rows[:1]).encode()
    with socket.create_connection(("127.0.0.1", linear_server.port), timeout=30) as client:
        for _ in range(20):
            client.sendall(_request(body))
            received = b""
            while (parsed := _parse(received)) is None:
                received += client.recv(65536)
            assert parsed[0][0] == 200
            assert b"connection" not in parsed[0][1]
        client.sendall(_request(body, Connection=b"close"))
        received = b""
        while chunk := client.recv(65536):
            received += chunk
    parsed = _parse(received)
    assert parsed is not None
    (status, headers, _), rest = parsed
    assert (status, headers[b"connection"], rest) == (200, b"close", b"")


def test_a_request_over_the_batch_size_is_scored_in_chunks_with_the_same_answer(
    trained_models: dict[str, Path], tmp_path: Path, demo_rows: list[list[float]]
) -> None:
    server = start_server(str(trained_models["linear"]), tmp_path, MLSTACK_MAX_BATCH_ROWS="4")
    try:
        rows = demo_rows[:10]
        status, _, body = _answers(server.port, [_request(json.dumps(rows).encode())], 1)[0]
        singles = [json.loads(server.post(json.dumps([row]).encode())[2]) for row in rows]
        metrics = server.request("GET", "/metrics")[2].decode()
    finally:
        stop_server(server)
    answer = json.loads(body)
    assert status == 200
    assert answer["predictions"] == [single["predictions"][0] for single in singles]
    assert answer["probabilities"] == [single["probabilities"][0] for single in singles]
    # 1 request of 10 rows and 10 of one, each counted once; the model saw 20 rows.
    assert 'route="/invocations",status="200"} 11' in metrics.replace(".0\n", "\n")


def test_a_connection_left_idle_after_a_direct_answer_closes_after_the_keep_alive_timeout(
    trained_models: dict[str, Path], tmp_path: Path, demo_rows: list[list[float]]
) -> None:
    # In-process, to shorten uvicorn's keep-alive timeout (75 s in the server) to one second.
    settings = ServingSettings(host="127.0.0.1", port=free_port())
    app = ServingApp(settings, load_predictor(str(trained_models["linear"]), tmp_path))
    config = uvicorn.Config(
        app,
        loop="uvloop",
        http=serving_protocol(10.0, app.invocation, settings.max_body_bytes),
        lifespan="off",
        log_config=None,
        timeout_keep_alive=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listen(settings)]})
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        body = json.dumps(demo_rows[:1]).encode()
        with socket.create_connection(("127.0.0.1", settings.port), timeout=30) as client:
            for _ in range(2):  # still open right after an answer
                client.sendall(_request(body))
                received = b""
                while (parsed := _parse(received)) is None:
                    received += client.recv(65536)
                assert parsed[0][0] == 200
            idle_from = time.monotonic()
            assert client.recv(65536) == b"", "the server closes the idle connection"
            idle = time.monotonic() - idle_from
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    assert 0.9 <= idle < 5, idle
