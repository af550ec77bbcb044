"""What an operator reads and relies on: JSON logs with request ids, one work directory per
server, and requests that end early."""

from __future__ import annotations

import itertools
import json
import signal
import socket
import time
from pathlib import Path
from typing import Any

from mlstack_common.exits import ExitStatus
from tests.logs import log_messages, log_records
from tests.serving.conftest import Server, serve_until_exit, start_server, stop_server

ROW = [14.0] * 30


def log_lines(server: Server) -> list[dict[str, Any]]:
    return log_records(server.log.read_text(), "mlstack-serve")


def invocation_statuses(server: Server) -> list[int]:
    """The status of each POST /invocations, in the order the server logged them."""
    return [
        line["status"]
        for line in log_lines(server)
        if line["message"] == "request" and line["path"] == "/invocations"
    ]


def test_every_log_line_is_json_with_time_level_message_and_the_request_id(
    trained_models: dict[str, Path], tmp_path: Path
) -> None:
    server = start_server(str(trained_models["linear"]), tmp_path)
    try:
        status, headers, _ = server.post(
            json.dumps([ROW]).encode(), **{"X-Request-Id": "from-the-caller-1"}
        )
        assert (status, headers["x-request-id"]) == (200, "from-the-caller-1")
        # A message with quotes and a newline stays one valid JSON line.
        bad = server.post(b'{"instances": "a \\"quoted\\"\\nvalue"}')
        assert bad[0] == 422
        generated = bad[1]["x-request-id"]
        assert len(generated) == 16
        # Not HTTP at all: uvicorn itself answers and logs it, through the same formatter.
        assert _raw_exchange(server.port, b"NOT HTTP AT ALL\r\n\r\n", b"").startswith(
            b"HTTP/1.1 400"
        )
    finally:
        assert stop_server(server) == 0
    lines = log_lines(server)  # fails on any line that is not a JSON log line
    assert any(line["message"] == "Invalid HTTP request received." for line in lines)
    started = next(line for line in lines if line["message"] == "serving")
    assert {"port", "workers", "model", "model_version", "model_sha256"} <= set(started)
    assert started["port"] == server.port
    requests = [
        line for line in lines if line["message"] == "request" and line["path"] == "/invocations"
    ]
    assert [r["request_id"] for r in requests] == ["from-the-caller-1", generated]
    stopped = lines[-1]
    assert (stopped["message"], stopped["outcome"]) == ("stopped", "drained")


def test_a_second_server_refuses_a_work_directory_in_use(
    trained_models: dict[str, Path], tmp_path: Path
) -> None:
    first = start_server(str(trained_models["linear"]), tmp_path)
    try:
        # The work directory the first server holds.
        result = serve_until_exit(str(trained_models["linear"]), tmp_path / "work")
    finally:
        stop_server(first)
    assert result.returncode == ExitStatus.USAGE
    assert f"MLSTACK_WORK_DIR = '{tmp_path / 'work'}': in use by another server (pid" in (
        log_messages(result.stderr)
    )


def test_without_a_work_directory_each_server_gets_its_own_and_removes_it(
    trained_models: dict[str, Path], tmp_path: Path
) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    servers = [
        start_server(str(trained_models["linear"]), tmp_path / name, MLSTACK_WORK_DIR="")
        for name in ("a", "b")
    ]
    try:
        for server in servers:
            assert server.post(json.dumps([ROW]).encode())[0] == 200
        metrics = [s.request("GET", "/metrics")[2].decode() for s in servers]
    finally:
        for server in servers:
            stop_server(server)
    work_dirs = [
        Path(str(next(line for line in log_lines(s) if line["message"] == "serving")["work_dir"]))
        for s in servers
    ]
    assert work_dirs[0] != work_dirs[1]
    assert not any(path.exists() for path in work_dirs)
    # Each counts its own request only.
    for text in metrics:
        assert 'route="/invocations",status="200"} 1' in text.replace(" 1.0", " 1")


def test_a_client_that_leaves_mid_body_is_not_counted_as_a_server_failure(
    trained_models: dict[str, Path], tmp_path: Path
) -> None:
    server = start_server(str(trained_models["linear"]), tmp_path)
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as client:
            client.sendall(
                b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 1000\r\n\r\n[[1,2"
            )
        status, _, _ = server.post(json.dumps([ROW]).encode())
        assert status == 200
    finally:
        stop_server(server)
    # The two end in either order: the second is answered while the first is still read.
    assert sorted(invocation_statuses(server)) == [200, 499]


def test_workers_that_cannot_start_end_the_server_after_bounded_retries(
    trained_models: dict[str, Path], tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "metrics").write_text("a file where each worker needs a directory")
    result = serve_until_exit(str(trained_models["linear"]), work, MLSTACK_WORKERS="2")
    assert result.returncode == ExitStatus.REFUSED
    lines = log_records(result.stderr, "mlstack-serve")
    messages = [line["message"] for line in lines]
    assert "workers cannot start; stopping" in messages
    assert messages.count("worker exited; starting another") <= 6
    assert "worker failed" in messages


def test_request_counters_never_go_down_whichever_worker_answers_the_scrape(
    trained_models: dict[str, Path], tmp_path: Path
) -> None:
    server = start_server(str(trained_models["linear"]), tmp_path, MLSTACK_WORKERS="2")
    totals: list[int] = []
    try:
        for _ in range(60):
            assert server.post(json.dumps([ROW]).encode())[0] == 200
            text = server.request("GET", "/metrics")[2].decode()
            totals.append(
                sum(
                    int(float(line.rsplit(" ", 1)[1]))
                    for line in text.splitlines()
                    if line.startswith("mlstack_requests_total{")
                )
            )
    finally:
        stop_server(server)
    assert all(later >= earlier for earlier, later in itertools.pairwise(totals))
    assert totals[-1] > totals[0]


def _raw_exchange(port: int, head: bytes, body: bytes, wait: float = 0.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
        client.sendall(head)
        if wait:
            time.sleep(wait)
        client.sendall(body)
        received = b""
        while chunk := client.recv(65536):
            received += chunk
        return received


def test_a_body_over_the_limit_gets_its_413_even_from_a_closing_client(
    trained_models: dict[str, Path], tmp_path: Path
) -> None:
    server = start_server(str(trained_models["linear"]), tmp_path)
    body = b"[" + b"1," * (4 * 1024 * 1024) + b"1]"  # 8 MiB, the limit is 6 MiB
    try:
        head = (
            b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body)
        )
        answer = _raw_exchange(server.port, head, body)
    finally:
        stop_server(server)
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"the limit is 6291456" in answer


def test_any_declared_body_over_the_limit_gets_a_readable_413(
    trained_models: dict[str, Path], tmp_path: Path
) -> None:
    """Answered at once, unread; the server drains what still arrives, so the client that
    sends all of it and only then reads (as most do) finds the answer, not a reset."""
    server = start_server(str(trained_models["linear"]), tmp_path)
    sent = b"[" + b"1," * (12 * 1024 * 1024) + b"1]"  # 24 MiB, four times the 6 MiB limit
    answers = []
    try:
        for declared in (len(sent), 1 << 40):  # the whole of it; a terabyte, cut short
            head = (
                b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % declared
            )
            answers.append(_raw_exchange(server.port, head, sent))
        # Still serving.
        assert server.post(json.dumps([ROW]).encode())[0] == 200
    finally:
        stop_server(server)
    for answer, declared in zip(answers, (len(sent), 1 << 40), strict=True):
        assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
        assert b"connection: close" in answer
        assert b"body of %d bytes; the limit is 6291456" % declared in answer
    assert invocation_statuses(server) == [413, 413, 200]


def test_a_client_that_half_closes_after_its_request_gets_the_answer(
    trained_models: dict[str, Path], tmp_path: Path
) -> None:
    # The batch waits 200 ms, so the half-close arrives before the answer is ready.
    server = start_server(str(trained_models["linear"]), tmp_path, MLSTACK_BATCH_WAIT_MS="200")
    body = json.dumps([ROW]).encode()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as client:
            client.sendall(
                b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            client.shutdown(socket.SHUT_WR)
            received = b""
            while chunk := client.recv(65536):
                received += chunk
    finally:
        stop_server(server)
    assert received.startswith(b"HTTP/1.1 200 "), received[:200]
    assert b'"predictions":[' in received
    assert b"connection: close" in received
    assert invocation_statuses(server) == [200]


def test_an_upload_the_shutdown_grace_cuts_gets_503(
    trained_models: dict[str, Path], tmp_path: Path
) -> None:
    server = start_server(str(trained_models["linear"]), tmp_path, MLSTACK_GRACE_SECONDS="1")
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as client:
        client.sendall(
            b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n[[1,2"
        )
        time.sleep(0.3)  # the request is in the app, waiting for the rest of its body
        server.process.send_signal(signal.SIGTERM)
        received = b""
        while chunk := client.recv(65536):
            received += chunk
    assert server.process.wait(timeout=30) == 0
    assert received.startswith(b"HTTP/1.1 503 "), received[:200]
    assert b"the server shut down before this request was read and scored" in received
    assert invocation_statuses(server) == [503]


def test_headers_and_bodies_that_never_finish_time_out(
    trained_models: dict[str, Path], tmp_path: Path
) -> None:
    server = start_server(
        str(trained_models["linear"]),
        tmp_path,
        MLSTACK_HEADER_TIMEOUT_SECONDS="0.5",
        MLSTACK_BODY_TIMEOUT_SECONDS="0.5",
    )
    try:
        slow_headers = _raw_exchange(server.port, b"POST /invocations HTTP/1.1\r\nHo", b"", 1.5)
        slow_body = _raw_exchange(
            server.port,
            b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n[[1,2",
            b"",
            1.5,
        )
        # The server still answers everyone else.
        assert server.post(json.dumps([ROW]).encode())[0] == 200
    finally:
        stop_server(server)
    assert slow_headers.startswith(b"HTTP/1.1 408 ")
    assert b"headers did not arrive in time" in slow_headers
    assert slow_body.startswith(b"HTTP/1.1 408 ")
    assert b"no part of the body arrived for 0.5 s" in slow_body


def test_max_batch_rows_bounds_every_model_call_of_one_large_request(
    trained_models: dict[str, Path], tmp_path: Path
) -> None:
    server = start_server(str(trained_models["linear"]), tmp_path, MLSTACK_MAX_BATCH_ROWS="16")
    try:
        status, _, body = server.post(json.dumps([ROW] * 40).encode())
        assert status == 200
        assert len(json.loads(body)["predictions"]) == 40
        text = server.request("GET", "/metrics")[2].decode()
    finally:
        stop_server(server)
    calls = {
        line.split("{")[0].split("_")[-1]: line.rsplit(" ", 1)[1]
        for line in text.splitlines()
        if line.startswith(("mlstack_batch_rows_count", "mlstack_batch_rows_sum"))
    }
    # The warm-up prediction happens before the workers fork: only the request's calls count.
    assert (int(calls["count"]), float(calls["sum"])) == (3, 40.0)
    [up_to_16] = [
        line
        for line in text.splitlines()
        if line.startswith("mlstack_batch_rows_bucket") and 'le="16"' in line
    ]
    assert up_to_16.endswith(" 3"), "every call at most 16 rows"
