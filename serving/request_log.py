"""Each request's id and its log line, at a cost a request of tens of microseconds can carry.

A request id is a per-process random prefix and a counter (16 hex digits, as a random one
would be): unique across the workers and restarts of a server, without a system call per
request. Log lines are collected during one turn of the event loop and written together: the
requests a micro-batch answers end in the same turn, so they cost one write instead of one
each. A line waits at most until the loop's next turn; `flush` writes what is left when the
worker stops.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
from collections.abc import Iterable

import orjson

from mlstack_common.logs import log_record

MAX_REQUEST_ID = 128
"""Longest caller's X-Request-Id kept; a longer (or unprintable) one is replaced."""


class RequestIds:
    """The caller's X-Request-Id when it is a short printable token, else a new one, so that a
    request can be found in the logs from either side."""

    def __init__(self) -> None:
        self._prefix = os.urandom(4).hex().encode()
        self._count = itertools.count()

    def __call__(self, headers: Iterable[tuple[bytes, bytes]]) -> bytes:
        for name, value in headers:
            if name == b"x-request-id":
                if 0 < len(value) <= MAX_REQUEST_ID and all(32 < byte < 127 for byte in value):
                    return value
                break
        return b"%s%08x" % (self._prefix, next(self._count) & 0xFFFFFFFF)


class RequestLog:
    """JSON lines to stderr, written once per turn of the event loop."""

    def __init__(self) -> None:
        self._lines: list[bytes] = []
        self._scheduled = False

    def request(
        self, request_id: bytes, method: str, path: str, status: int, seconds: float, rows: int
    ) -> None:
        record = log_record("INFO", "request")
        record["request_id"] = request_id.decode()
        record["method"] = method
        record["path"] = path
        record["status"] = status
        record["ms"] = int(seconds * 1_000_000) / 1000
        record["rows"] = rows
        self._add(orjson.dumps(record))

    def write(self, line: str) -> None:
        """A line made by `json_line`."""
        self._add(line.encode())

    def _add(self, line: bytes) -> None:
        self._lines.append(line)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        if self._lines:
            lines, self._lines = self._lines, []
            stream = getattr(sys.stderr, "buffer", None)
            if stream is None:  # a text-only stream (a test's)
                sys.stderr.write(b"\n".join(lines).decode() + "\n")
            else:
                sys.stderr.flush()  # what the text layer holds goes first
                stream.write(b"\n".join(lines) + b"\n")
                stream.flush()
