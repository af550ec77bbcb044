"""Every serving log line is one JSON object: time, level, message and the record's fields.

One function makes the line, for records of the `logging` module (start-up, shutdown, worker
restarts) and for the per-request lines the app writes directly on the hot path. The output is
real JSON whatever a message contains (quotes, newlines, non-ASCII), and a field that is not
JSON-native is written as its text.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


def json_line(level: str, message: str, fields: Mapping[str, Any] | None = None) -> str:
    """The log line: `{"time": ..., "level": ..., "message": ..., **fields}`."""
    record: dict[str, Any] = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "level": level,
        "message": message,
    }
    if fields:
        record.update(fields)
    return orjson.dumps(record, default=str).decode()


class JsonFormatter(logging.Formatter):
    """`logging` records as `json_line`s, `extra=` fields included."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {k: v for k, v in vars(record).items() if k not in _RECORD_ATTRIBUTES}
        fields["logger"] = record.name
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        return json_line(record.levelname, record.getMessage(), fields)


def configure_logging() -> None:
    """Serving's logs: INFO and above, one JSON line each, on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
