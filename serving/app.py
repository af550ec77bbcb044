"""The HTTP application: SageMaker's hosting contract plus Kubernetes probes and metrics.

A plain ASGI callable, no framework: every request on the hot path costs what it must (read
the body, parse, check, score in a batch, write) and nothing else.

    GET  /ping         200 when the model is loaded and not draining, else 503 (SageMaker)
    POST /invocations  predictions; JSON or CSV in, JSON or CSV out by Accept
    GET  /healthz      200 while the process is alive (liveness)
    GET  /readyz       as /ping (readiness)
    GET  /metrics      Prometheus text format
    GET  /metadata     the model's name, version, features and lineage
    GET  /execution-parameters
                       what SageMaker batch transform may send: concurrency, strategy, payload

A complete `POST /invocations` that arrived with its headers is handed over by the protocol
without ASGI (`invocation`, serving/protocol.py's direct lane); every other request, and every
slow or unusual one, takes the ASGI path. Both answer, count and log alike.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from mlstack_common.logs import json_line
from serving import codec
from serving.batching import MicroBatcher
from serving.capture import CLOSE_SECONDS, Capture
from serving.errors import (
    ClientGone,
    MethodNotAllowed,
    ModelNotReady,
    NotFound,
    PayloadTooLarge,
    RequestTimeout,
    ServingError,
    ShuttingDown,
)
from serving.metrics import Metrics, SharedMetrics
from serving.model import Predictions, Predictor
from serving.protocol import declared_length
from serving.request_log import RequestIds, RequestLog
from serving.settings import ServingSettings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]
Reply = Callable[[int, Headers, bytes, bytes], None]
"""Writes an answer: status, headers, body and the request id (the direct lane's)."""

JSON_HEADERS = [(b"content-type", b"application/json")]
PROMETHEUS_HEADERS = [(b"content-type", b"text/plain; version=0.0.4")]
ANSWER_HEADERS = {kind: [(b"content-type", kind.encode())] for kind in codec.CONTENT_TYPES}
ROUTES = {
    "/invocations": "POST",
    "/ping": "GET",
    "/healthz": "GET",
    "/readyz": "GET",
    "/metrics": "GET",
    "/metadata": "GET",
    "/execution-parameters": "GET",
}
MAX_FORMATS = 64
INTERNAL_ERROR = b'{"error":"internal error"}'
MIB = 1 << 20
SAGEMAKER_MAX_PAYLOAD_MB = 100
"""Batch transform's ceiling for MaxPayloadInMB, and for MaxConcurrentTransforms times it."""


def execution_parameters(settings: ServingSettings) -> dict[str, Any]:
    """What `GET /execution-parameters` tells SageMaker batch transform, from the settings that
    bound this server, so that batch transform never sends what the server would refuse.

    Batch transform asks for these when its job leaves them unset. `MaxConcurrentTransforms`
    is one request in flight per worker: scoring is CPU-bound and each worker is one process,
    so more would only queue. `MULTI_RECORD` because a request of many rows is scored in one
    model call. `MaxPayloadInMB` is the most whole mebibytes within `max_body_bytes`: the
    documentation says MB without saying which, and a count of 2^20-byte units that fits
    also fits as 10^6-byte units, so this reading is safe under both. It is at least 1 and
    at most what keeps MaxConcurrentTransforms times it within SageMaker's 100 (a job asking
    for more is refused). With a body limit under 1 MiB no value is safe: 1 is advertised
    and larger mini-batches are refused with 413.
    """
    payload = min(settings.max_body_bytes // MIB, SAGEMAKER_MAX_PAYLOAD_MB // settings.workers)
    return {
        "MaxConcurrentTransforms": settings.workers,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": max(1, payload),
    }


class ServingApp:
    """One worker's application. `draining` is set on SIGTERM, before the listener closes."""

    def __init__(
        self,
        settings: ServingSettings,
        predictor: Predictor,
        model_version: str = "unknown",
        shared_metrics: SharedMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.predictor = predictor
        self.model_version = model_version
        self.draining = False
        self.metrics = Metrics(
            predictor.metadata.model_name,
            model_version,
            predictor.classifier,
            predictor.metadata.features,
        )
        self.shared = shared_metrics
        self.batcher = MicroBatcher(
            predictor,
            settings.max_batch_rows,
            settings.batch_wait_ms / 1000,
            on_batch=self.metrics.batch,
        )
        self.capture = (
            Capture(
                settings.capture_uri,
                settings.capture_endpoint or predictor.metadata.model_name,
                settings.capture_percent,
            )
            if settings.capture_uri and settings.capture_percent > 0
            else None
        )
        self.metrics.capture = self.capture.counts if self.capture else None
        self.execution_parameters_body = orjson.dumps(execution_parameters(settings))
        self._request_id = RequestIds()
        self._known_formats: dict[tuple[bytes | None, bytes | None], tuple[str, str]] = {}
        self.log = RequestLog()
        self._ticker: asyncio.Task[None] | None = None
        metadata = predictor.metadata
        self.metadata_body = orjson.dumps(
            {
                "model": metadata.model_name,
                "model_version": model_version,
                "task": metadata.task,
                "features": [
                    {
                        "name": f.name,
                        "type": f.type,
                        "categories": list(f.categories),
                        "nullable": f.nullable,
                    }
                    for f in metadata.features
                ],
                "classes": list(metadata.classes),
                "metrics": dict(metadata.metrics),
                "lineage": {
                    "model_sha256": metadata.model_sha256,
                    "data_sha256": metadata.data_sha256,
                    "data_uri": metadata.data_uri,
                    "git_commit": metadata.git_commit,
                    "image_digest": metadata.image_digest,
                    "algorithm": metadata.algorithm,
                    "library_versions": dict(metadata.library_versions),
                },
            }
        )

    @property
    def ready(self) -> bool:
        return not self.draining

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        self._start_ticker()
        started = time.perf_counter()
        path, method = scope["path"], scope["method"]
        request_id = self._request_id(scope["headers"])
        status, rows = 500, 0
        try:
            if path not in ROUTES:
                raise NotFound(f"no route {path}; routes: {', '.join(ROUTES)}")
            if method != ROUTES[path] and not (method == "HEAD" and ROUTES[path] == "GET"):
                allow = ROUTES[path] + (", HEAD" if ROUTES[path] == "GET" else "")
                raise MethodNotAllowed(f"{path} takes {allow}, not {method}", allow)
            if path == "/invocations":
                status, rows = await self._invoke(scope, receive, send, request_id)
            else:
                status = await self._get(path, send, request_id)
        except ClientGone as gone:
            status = gone.status  # nobody to answer
        except ServingError as error:
            status = error.status
            await self._error(send, error, request_id)
        except Exception as error:  # noqa: BLE001 (a bug of ours: 500, logged, process lives on)
            status = 500
            self._internal_error(request_id, path, error)
            await _respond(send, 500, INTERNAL_ERROR, JSON_HEADERS, request_id)
        self._finish(method, path, status, started, request_id, rows)

    def invocation(self, headers: Headers, body: bytes, reply: Reply) -> None:
        """The direct lane: a `POST /invocations` whose whole body is here. `reply` is called
        once, from this call (a refused body) or from the batch that scores the rows."""
        self._start_ticker()
        started = time.perf_counter()
        request_id = self._request_id(headers)
        try:
            content_type, accept = _content_headers(headers)
            kind, answer = self._formats(content_type, accept)
            rows = codec.decode(body, kind, self.predictor)
        except Exception as error:  # noqa: BLE001 (answered as the ASGI path answers it)
            self._failed(error, reply, started, request_id)
            return

        def scored(result: Predictions | Exception) -> None:
            try:
                if isinstance(result, Exception):
                    raise result
                payload = codec.encode(result, answer, self.predictor)
            except Exception as error:  # noqa: BLE001
                self._failed(error, reply, started, request_id)
                return
            reply(200, ANSWER_HEADERS[answer], payload, request_id)
            self._answered(request_id, body, content_type, kind, payload, answer)
            self._finish("POST", "/invocations", 200, started, request_id, len(rows))

        self.batcher.submit(rows, scored)

    def _failed(self, error: Exception, reply: Reply, started: float, request_id: bytes) -> None:
        if isinstance(error, ServingError):
            status, body = error.status, orjson.dumps({"error": error.message})
        else:
            status, body = 500, INTERNAL_ERROR
            self._internal_error(request_id, "/invocations", error)
        reply(status, JSON_HEADERS, body, request_id)
        self._finish("POST", "/invocations", status, started, request_id, 0)

    def _finish(
        self, method: str, path: str, status: int, started: float, request_id: bytes, rows: int
    ) -> None:
        """Count and log a request, whichever way it came and however it ended."""
        seconds = time.perf_counter() - started
        self.metrics.request(path if path in ROUTES else "other", status, seconds)
        self.log.request(request_id, method, path, status, seconds, rows)

    def _start_ticker(self) -> None:
        if self._ticker is None and (self.shared is not None or self.capture is not None):
            self._ticker = asyncio.get_running_loop().create_task(self._every_second())

    async def _get(self, path: str, send: Send, request_id: bytes) -> int:
        if path == "/healthz":
            body = b'{"status":"alive"}'
        elif path in ("/ping", "/readyz"):
            if not self.ready:
                raise ModelNotReady("draining: shutting down")
            body = b'{"status":"ready"}'
        elif path == "/metrics":
            body = self.shared.render(self.metrics) if self.shared else b""
            await _respond(send, 200, body, PROMETHEUS_HEADERS, request_id)
            return 200
        elif path == "/execution-parameters":
            body = self.execution_parameters_body
        else:
            body = self.metadata_body
        await _respond(send, 200, body, JSON_HEADERS, request_id)
        return 200

    async def _invoke(
        self, scope: Scope, receive: Receive, send: Send, request_id: bytes
    ) -> tuple[int, int]:
        # A request that reached us is served even while draining: draining only tells load
        # balancers (through /ping and /readyz) to stop sending new ones.
        content_type, accept = _content_headers(scope["headers"])
        kind, answer = self._formats(content_type, accept)
        try:
            body = await self._body(scope["headers"], receive)
            rows = codec.decode(body, kind, self.predictor)
            predictions = await self.batcher.predict(rows)
        except asyncio.CancelledError:
            # uvicorn cancels what is still running when the shutdown grace ends: the client
            # gets a 503 it may retry elsewhere, not uvicorn's 500.
            _uncancel()
            raise ShuttingDown(
                "the server shut down before this request was read and scored; send it again"
            ) from None
        payload = codec.encode(predictions, answer, self.predictor)
        await _respond(send, 200, payload, ANSWER_HEADERS[answer], request_id)
        self._answered(request_id, body, content_type, kind, payload, answer)
        return 200, len(rows)

    def _answered(
        self,
        request_id: bytes,
        body: bytes,
        content_type: bytes | None,
        kind: str,
        payload: bytes,
        answer: str,
    ) -> None:
        """What follows a scored request's answer: its capture, and its payload in the log."""
        if self.capture is not None and self.capture.sampled():
            media = _text(content_type) or kind
            self.capture.record(request_id.decode(), body, media, payload, answer)
        if self.settings.log_payloads:
            self._log("INFO", "payload", {"request": body.decode("utf-8", "replace")})

    def _formats(self, content_type: bytes | None, accept: bytes | None) -> tuple[str, str]:
        """The request's format and the answer's, remembered per pair of headers: clients send
        the same few, and working them out is a tenth of a small request's time. A refused
        pair raises each time; the memory is emptied when it holds MAX_FORMATS pairs."""
        key = (content_type, accept)
        known = self._known_formats.get(key)
        if known is None:
            kind = codec.request_format(_text(content_type))
            known = (kind, codec.response_format(_text(accept), kind))
            if len(self._known_formats) >= MAX_FORMATS:
                self._known_formats.clear()
            self._known_formats[key] = known
        return known

    async def _body(self, headers: Headers, receive: Receive) -> bytes:
        """The whole body, refused at once when it is or grows over the limit: the connection
        is then closed in a way the client can read the answer from (serving/protocol.py)."""
        limit = self.settings.max_body_bytes
        declared = declared_length(headers)
        if declared is not None and declared > limit:
            raise PayloadTooLarge(f"body of {int(declared)} bytes; the limit is {limit}")
        # One timer per request, not asyncio.wait_for per part: wait_for starts a task each
        # time, which cost about a tenth of a small request's time.
        seconds = self.settings.body_timeout_seconds
        deadline = BodyDeadline(seconds)
        chunks: list[bytes] = []
        size = 0
        try:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientGone("the client went away before sending its body")
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"body over the limit of {limit} bytes")
                chunks.append(chunk)
                if not message.get("more_body"):
                    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
                deadline.restart()
        except asyncio.CancelledError:
            if not deadline.expired:
                raise
            _uncancel()
            raise RequestTimeout(f"no part of the body arrived for {seconds:g} s") from None
        finally:
            deadline.cancel()

    async def _error(self, send: Send, error: ServingError, request_id: bytes) -> None:
        headers = list(JSON_HEADERS)
        if isinstance(error, MethodNotAllowed):
            headers.append((b"allow", error.allow.encode()))
        if isinstance(error, RequestTimeout | PayloadTooLarge | ShuttingDown):
            # The rest of the body may still be on its way: this connection cannot be reused.
            headers.append((b"connection", b"close"))
        body = orjson.dumps({"error": error.message})
        await _respond(send, error.status, body, headers, request_id)

    async def _every_second(self) -> None:
        while True:
            if self.shared is not None:
                self.shared.publish(self.metrics)
            if self.capture is not None:
                self.capture.tick()
            await asyncio.sleep(1.0)

    def stopped(self) -> None:
        """The worker's server has drained: write the capture still buffered and leave the
        final metrics."""
        self.log.flush()
        if self.capture is not None:
            self.capture.close(timeout=CLOSE_SECONDS)
        if self.shared is not None:
            self.shared.publish(self.metrics)

    def _log(self, level: str, message: str, fields: dict[str, Any]) -> None:
        self.log.write(json_line(level, message, fields))

    def _internal_error(self, request_id: bytes, path: str, error: Exception) -> None:
        fields = {"request_id": request_id.decode(), "path": path, "error": repr(error)}
        self._log("ERROR", "internal error", fields)


class BodyDeadline:
    """Cancels the current task when no part of the body arrived for `seconds`; `expired` tells
    that cancellation from any other (a shutdown's)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._timer = self._loop.call_later(seconds, self._expire)

    def restart(self) -> None:
        self._timer.cancel()
        self._timer = self._loop.call_later(self.seconds, self._expire)

    def cancel(self) -> None:
        self._timer.cancel()

    def _expire(self) -> None:
        self.expired = True
        if self._task is not None:
            self._task.cancel()


def _uncancel() -> None:
    """A cancellation this request answers instead of ending with: counted as handled."""
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()


def _content_headers(headers: Headers) -> tuple[bytes | None, bytes | None]:
    """Content-Type and Accept (the last of each, as `dict(headers)` would keep)."""
    content_type = accept = None
    for name, value in headers:
        if name == b"content-type":
            content_type = value
        elif name == b"accept":
            accept = value
    return content_type, accept


def _text(value: bytes | None) -> str | None:
    return value.decode("latin-1") if value is not None else None


async def _respond(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]], request_id: bytes
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                *headers,
                (b"content-length", b"%d" % len(body)),
                (b"x-request-id", request_id),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
