"""Reading what a command wrote on stderr: one JSON log line each (`mlstack_common.logs`)."""

from __future__ import annotations

import json
from typing import Any

REQUIRED = ("time", "level", "message", "command")
"""The fields every line carries."""


def log_records(stderr: str, command: str | None = None) -> list[dict[str, Any]]:
    """Every non-blank line of `stderr` as its JSON object; fails, naming the line, when one is
    not a JSON object with time, level, message and command (`command`, when given)."""
    records = []
    for line in stderr.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise AssertionError(f"not a JSON log line: {line!r}") from None
        assert isinstance(record, dict), f"not a JSON object: {line!r}"
        missing = [field for field in REQUIRED if field not in record]
        assert not missing, f"no {', '.join(missing)} in {line!r}"
        assert command is None or record["command"] == command, f"not {command!r}: {line!r}"
        records.append(record)
    return records


def log_messages(stderr: str) -> str:
    """The messages of `stderr`'s log lines, one per line: what a person reads, for `in`."""
    return "\n".join(record["message"] for record in log_records(stderr))
