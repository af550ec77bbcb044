"""SIGTERM under load: readiness goes false, no new connections, in-flight requests finish."""

from __future__ import annotations

import http.client
import json
import signal
import threading
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

from tests.logs import log_records
from tests.serving.conftest import start_server


def test_sigterm_under_load_drops_no_accepted_request(
    trained_models: dict[str, Path], demo_rows: list[list[float]], tmp_path: Path
) -> None:
    # Each request waits 200 ms in the batcher, so plenty are in flight when SIGTERM lands.
    server = start_server(
        str(trained_models["linear"]),
        tmp_path,
        MLSTACK_WORKERS="2",
        MLSTACK_BATCH_WAIT_MS="200",
        MLSTACK_GRACE_SECONDS="10",
    )
    body = json.dumps(demo_rows[:2]).encode()
    results: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            try:
                connection.connect()
            except ConnectionRefusedError:
                outcome = "refused"  # never accepted: the listener is closed
            else:
                try:
                    connection.request(
                        "POST", "/invocations", body, {"Content-Type": "application/json"}
                    )
                    response = connection.getresponse()
                    response.read()
                    outcome = str(response.status)
                except (OSError, http.client.HTTPException) as error:
                    outcome = f"failed: {type(error).__name__}"
            finally:
                connection.close()
            with lock:
                results.append(outcome)
            if outcome == "refused":
                return

    threads = [threading.Thread(target=client) for _ in range(16)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    in_flight_before = len(results)
    server.process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    code = server.process.wait(timeout=30)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)

    assert code == 0
    assert time.monotonic() - signalled < 10
    assert in_flight_before > 0
    # What the server accepted, it logged with its status once answered. Every one of those
    # must have reached its client as a 200. A connection reset before the server read the
    # request (the listener closing under a connect) was never accepted, and is retry-safe.
    handled = [
        record
        for record in log_records(server.log.read_text(), "mlstack-serve")
        if record.get("path") == "/invocations"
    ]
    assert handled
    assert all(entry["status"] == 200 for entry in handled)
    assert results.count("200") == len(handled)
    unaccepted = [r for r in results if r not in ("200", "refused")]
    assert all(r.startswith("failed: Connection") for r in unaccepted), set(unaccepted)
    assert results.count("200") > in_flight_before  # requests in flight at SIGTERM completed


def test_a_draining_worker_reports_not_ready_but_still_answers_what_it_accepted(
    trained_models: dict[str, Path], demo_rows: list[list[float]], tmp_path: Path
) -> None:
    import asyncio

    from serving.app import ServingApp
    from serving.model import load_predictor
    from serving.settings import ServingSettings

    app = ServingApp(
        ServingSettings(work_dir=tmp_path), load_predictor(str(trained_models["linear"]), tmp_path)
    )

    async def call(method: str, path: str, body: bytes = b"") -> int:
        sent: list[MutableMapping[str, Any]] = []
        scope = {
            "type": "http",
            "method": method,
            "path": path,
            "headers": [(b"content-type", b"application/json")],
        }

        async def receive() -> MutableMapping[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message)

        await app(scope, receive, send)
        return int(sent[0]["status"])

    body = json.dumps(demo_rows[:1]).encode()
    assert asyncio.run(call("GET", "/readyz")) == 200
    app.draining = True
    assert asyncio.run(call("GET", "/readyz")) == 503
    assert asyncio.run(call("GET", "/ping")) == 503
    assert asyncio.run(call("GET", "/healthz")) == 200
    assert asyncio.run(call("POST", "/invocations", body)) == 200
