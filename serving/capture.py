"""Data capture: a sample of requests and their responses, written to S3 as SageMaker does.

The same records, in the same place, whichever target serves the model: JSON lines in
SageMaker's capture format (`captureData.endpointInput` / `endpointOutput`, `eventMetadata`,
`eventVersion`), under `<destination>/<endpoint>/<variant>/yyyy/mm/dd/hh/`. So one drift job
(`serving.drift`) reads the capture of a Kubernetes deployment and of a SageMaker endpoint alike.

On the request path a captured request costs one `orjson.dumps` and a list append; the event
loop's once-a-second tick hands full or old buffers to one background thread that writes them.
A write that fails is counted and its records dropped (the capture is a sample, the request was
answered); so is a record arriving while MAX_PENDING_BYTES are already waiting, so a slow or
unreachable bucket costs memory up to that bound and never a request.
"""

from __future__ import annotations

import base64
import logging
import os
import random
import time
from collections import defaultdict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import orjson

from mlstack_common import storage
from serving.codec import CSV, JSON, media_type

log = logging.getLogger("mlstack.serving")

VARIANT = "primary"
"""The variant name records are filed under; the stack names its SageMaker variants the same."""
FLUSH_SECONDS = 10.0
"""A buffer is written at least this often while it holds records."""
FLUSH_BYTES = 4 * 1024 * 1024
"""...and as soon as it holds this much. Larger writes are fewer but hold the interpreter
longer while the S3 client prepares them, which requests then wait for: 16 MiB doubled the p99
latency of 4 MiB at full capture (bench/README.md, data capture)."""
MAX_PENDING_BYTES = 64 * 1024 * 1024
"""Buffered and being written, per worker; past it new records are dropped and counted."""
CLOSE_SECONDS = 4.0
"""How long a stopping worker waits for its last writes (the server allows a stopping worker
its grace period plus 5 s)."""
TEXT_ENCODINGS = {CSV: "CSV", JSON: "JSON"}


@dataclass
class CaptureCounts:
    """Per worker. `dropped` (records refused while MAX_PENDING_BYTES waited) and `submitted`
    change on the event loop only; `written`, `lost` (records of a failed write),
    `write_failures` and `completed` in the writer thread only: no counter has two writers."""

    dropped: int = 0
    written: int = 0
    lost: int = 0
    write_failures: int = 0
    submitted: int = 0
    """Bytes handed to the writer."""
    completed: int = 0
    """Bytes the writer is done with, written or not."""


@lru_cache(maxsize=256)
def _opening(mode: str, content_type: str, encoding: str) -> bytes:
    return (
        orjson.dumps({"mode": mode, "observedContentType": content_type, "encoding": encoding})[:-1]
        + b',"data":'
    )


def _payload(mode: str, body: bytes, content_type: str) -> bytes:
    """`{"mode", "observedContentType", "encoding", "data"}`: text as itself, anything else
    (or text that is not UTF-8) in base64."""
    encoding = TEXT_ENCODINGS.get(media_type(content_type))
    if encoding is not None:
        try:
            data = orjson.dumps(body.decode())
        except UnicodeDecodeError:
            encoding = None
    if encoding is None:
        encoding, data = "BASE64", b'"' + base64.b64encode(body) + b'"'
    return _opening(mode, content_type, encoding) + data + b"}"


def capture_record(
    event_id: str,
    inference_time: str,
    request: bytes,
    request_type: str,
    response: bytes,
    response_type: str,
) -> bytes:
    """One capture line, as SageMaker writes it. Put together from pieces rather than one
    `orjson.dumps` of a nested dict: it runs once per captured request, on the request path."""
    return b"".join(
        (
            b'{"captureData":{"endpointInput":',
            _payload("INPUT", request, request_type),
            b',"endpointOutput":',
            _payload("OUTPUT", response, response_type),
            b'},"eventMetadata":{"eventId":',
            orjson.dumps(event_id),
            b',"inferenceTime":',
            orjson.dumps(inference_time),
            b'},"eventVersion":"0"}',
        )
    )


@dataclass
class _Buffer:
    """One hour's records, newline-terminated, in one growing block: no object per record
    stays alive, so the request path reuses the same memory."""

    data: bytearray = field(default_factory=bytearray)
    records: int = 0


class Capture:
    """One worker's capture: sample, buffer by hour, write in the background."""

    def __init__(
        self, destination: str, endpoint: str, percent: float, variant: str = VARIANT
    ) -> None:
        self.prefix = storage.join(destination, endpoint, variant)
        self.share = percent / 100
        self.counts = CaptureCounts()
        self._buffers: dict[str, _Buffer] = defaultdict(_Buffer)
        self._buffered = 0
        self._oldest = time.monotonic()
        self._second = -1
        self._time = ""
        self._hour = ""
        # One thread: writes leave in order, and a worker never holds more than one upload.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="capture")
        self._put = _s3_put() if storage.is_s3(destination) else storage.write_bytes

    def sampled(self) -> bool:
        return self.share >= 1 or random.random() < self.share  # noqa: S311 (sampling, not secrets)

    def record(
        self,
        event_id: str,
        request: bytes,
        request_type: str,
        response: bytes,
        response_type: str,
    ) -> None:
        """Buffer one answered request (the caller has sampled it)."""
        writing = self.counts.submitted - self.counts.completed
        if self._buffered + writing > MAX_PENDING_BYTES:
            self.counts.dropped += 1
            return
        now = time.time()
        if int(now) != self._second:
            self._second = int(now)
            stamp = time.gmtime(now)
            self._time = time.strftime("%Y-%m-%dT%H:%M:%SZ", stamp)
            self._hour = time.strftime("%Y/%m/%d/%H", stamp)
        line = capture_record(event_id, self._time, request, request_type, response, response_type)
        if not self._buffered:
            self._oldest = time.monotonic()
        buffer = self._buffers[self._hour]
        buffer.data += line
        buffer.data += b"\n"
        buffer.records += 1
        self._buffered += len(line) + 1
        if self._buffered >= FLUSH_BYTES:
            self.flush()

    def tick(self) -> None:
        """Called once a second by the worker: write what has waited FLUSH_SECONDS."""
        if self._buffered and time.monotonic() - self._oldest >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> list[Future[None]]:
        """Hand every buffer to the writer thread."""
        buffers, self._buffers = self._buffers, defaultdict(_Buffer)
        self.counts.submitted += self._buffered
        self._buffered = 0
        return [self._writer.submit(self._write, hour, buffer) for hour, buffer in buffers.items()]

    def close(self, timeout: float) -> None:
        """Write what is left and wait for it, at most `timeout` seconds (the worker is
        stopping)."""
        pending = self.flush()
        deadline = time.monotonic() + timeout
        for future in pending:
            try:
                future.result(timeout=max(0.0, deadline - time.monotonic()))
            except Exception:  # noqa: BLE001 (counted by _write; a timeout leaves it running)
                log.warning("capture not written before stopping", extra={"prefix": self.prefix})
        self._writer.shutdown(wait=False)

    def _write(self, hour: str, buffer: _Buffer) -> None:
        stamp = time.time()
        name = time.strftime("%M-%S", time.gmtime(stamp))
        uri = storage.join(
            self.prefix,
            hour,
            f"{name}-{int(stamp * 1000) % 1000:03d}-{os.getpid()}-{os.urandom(6).hex()}.jsonl",
        )
        try:
            self._put(uri, bytes(buffer.data), "application/jsonlines")
            self.counts.written += buffer.records
        except Exception as error:  # noqa: BLE001 (a lost sample is counted, never raised)
            self.counts.write_failures += 1
            self.counts.lost += buffer.records
            log.warning("capture write failed", extra={"uri": uri, "error": str(error)})
        finally:
            self.counts.completed += len(buffer.data)


def _s3_put() -> Any:
    """A writer with its own S3 client: the worker is a forked process, and a client made
    before the fork would share its connections with the other workers."""
    import boto3

    client = boto3.session.Session().client("s3")

    def put(uri: str, data: bytes, content_type: str) -> None:
        bucket, key = storage.split_s3(uri)
        client.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)

    return put
