"""Every log line of every command is one JSON object: time, level, message, the command that
wrote it, and the record's fields.

`configure_logging(command)` is the one set-up each command's `main` runs (`mlstack`,
`mlstack-train`, `mlstack-serve`, the batch scorer, the drift job): its diagnostic lines
(progress, failures) go to stderr through this formatter, and stdout keeps the command's result.
One function makes the line's content (`log_record`), for records of the `logging` module and
for the per-request lines the server writes directly on the hot path. The output is real JSON
whatever a message contains (quotes, newlines, non-ASCII), and a field that is not JSON-native
is written as its text.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


def _standard_dumps(record: Mapping[str, Any]) -> str:
    """The line with the standard library, as orjson writes it: compact, UTF-8 text, a value
    that is not JSON-native as its text, a non-finite number as null."""
    try:
        return json.dumps(
            record, default=str, ensure_ascii=False, separators=(",", ":"), allow_nan=False
        )
    except ValueError:
        finite = {
            key: None if isinstance(value, float) and not math.isfinite(value) else value
            for key, value in record.items()
        }
        return json.dumps(finite, default=str, ensure_ascii=False, separators=(",", ":"))


def _serializer() -> Callable[[Mapping[str, Any]], str]:
    """orjson where it is installed (the serving image: the per-request line is on the hot
    path); elsewhere (the training image, the operator CLI) the standard library, for a few
    lines a run."""
    try:
        import orjson
    except ImportError:
        return _standard_dumps
    return lambda record: orjson.dumps(record, default=str).decode()


_dumps = _serializer()

LOGGER = "mlstack"
"""The project's loggers are `mlstack.<part>`; they log at INFO, everything else at WARNING."""
_context: dict[str, str] = {}
"""What every line carries besides its own fields: the command, once `configure_logging` ran."""


_clock: list[Any] = [None, "", None, ""]
"""The last whole second and millisecond formatted, and their texts: a server writes thousands
of lines a second, most of them in a millisecond that has been formatted already."""


def timestamp() -> str:
    """Now in UTC, as `datetime.isoformat(timespec="milliseconds")` writes it, at a fraction of
    its cost: the date and time of day are formatted once a second, the rest once a
    millisecond."""
    millisecond = int(time.time() * 1000)
    if millisecond != _clock[2]:
        second, fraction = divmod(millisecond, 1000)
        if second != _clock[0]:
            _clock[0] = second
            _clock[1] = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _clock[2] = millisecond
        _clock[3] = "%s.%03d+00:00" % (_clock[1], fraction)  # noqa: UP031 (the fastest here)
    text: str = _clock[3]
    return text


def log_record(level: str, message: str, fields: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The log line's content: `{"time": ..., "level": ..., "message": ..., "command": ...,
    **fields}`; the server's per-request line adds its fields to it and serialises it itself."""
    record: dict[str, Any] = {
        "time": timestamp(),
        "level": level,
        "message": message,
        **_context,
    }
    if fields:
        record.update(fields)
    return record


def json_line(level: str, message: str, fields: Mapping[str, Any] | None = None) -> str:
    """The log line: `log_record` as one line of JSON."""
    return _dumps(log_record(level, message, fields))


class JsonFormatter(logging.Formatter):
    """`logging` records as `json_line`s, `extra=` fields included."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {k: v for k, v in vars(record).items() if k not in _RECORD_ATTRIBUTES}
        fields["logger"] = record.name
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        return json_line(record.levelname, record.getMessage(), fields)


class _Stderr(logging.Handler):
    """Lines to `sys.stderr` as it is when each is written, not as it was when the handler was
    made: a command run in-process (a test's `main([...])`) logs to the stderr of that moment."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 (logging's own way: report it, never raise)
            self.handleError(record)


def configure_logging(command: str) -> None:
    """`command`'s logs: one JSON line each on stderr, every line with `"command": command`;
    the project's loggers at INFO and above, other libraries' at WARNING and above, and
    Python's warnings among them. Replaces whatever handlers were set up before."""
    _context["command"] = command
    handler = _Stderr()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger(LOGGER).setLevel(logging.INFO)
    logging.captureWarnings(True)
