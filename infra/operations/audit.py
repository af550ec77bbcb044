"""Who changed what an environment serves, when and why: one record per approval, promotion,
rollback and rejection, appended to the environment's audit log and never rewritten.

The registry keeps one free-text description per version, which each step replaces; the audit
log is where the story stays. It is a CloudWatch Logs group the platform layer declares
(`naming.audit_log_group`), encrypted with the environment's key: log events can be appended
and read but not edited, its name follows from the environment alone (no stack output, so no
Pulumi CLI, is needed to find it during an incident), and its retention is the stack's to set."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from infra.operations.errors import RefusedError, UnreachableError
from infra.project import naming

ACTIONS = ("approve", "promote", "rollback", "emergency-rollback", "reject", "revert")


@dataclass(frozen=True)
class AuditRecord:
    action: str
    stack: str
    reason: str
    aws_identity: str
    """The caller's ARN as STS names it: who the cloud saw."""
    git_user: str
    """The operator as git knows them: who the repository will show."""
    changes: tuple[str, ...]
    """One line per change: a pin, a registry status, traffic moved."""
    diff: str = ""
    """The stack file change, as `git diff` shows it."""
    models: tuple[str, ...] = ()
    when: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"audit action {self.action!r}: allowed: {', '.join(ACTIONS)}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> AuditRecord:
        data = json.loads(text)
        return cls(
            **{
                **data,
                "changes": tuple(data.get("changes") or ()),
                "models": tuple(data.get("models") or ()),
            }
        )

    def render(self) -> str:
        lines = [
            f"{self.when} {self.action} in {self.stack} by {self.git_user} "
            f"({self.aws_identity}): {self.reason}",
            *(f"  {change}" for change in self.changes),
        ]
        return "\n".join(lines)


def caller_identity(sts: Any) -> str:
    """The caller's ARN; a record names who the cloud saw, so an unknown caller is refused."""
    try:
        return str(sts.get_caller_identity()["Arn"])
    except Exception as error:
        raise UnreachableError(f"who you are cannot be read from STS: {error}") from error


class AuditLog:
    """One environment's audit log."""

    def __init__(self, logs: Any, environment: str) -> None:
        self.logs = logs
        self.group = naming.audit_log_group(environment)

    def append(self, record: AuditRecord) -> None:
        """The record, as one log event in today's stream; refused when the log cannot take it,
        so no change goes unrecorded."""
        stream = record.when[:10]
        try:
            with contextlib.suppress(self.logs.exceptions.ResourceAlreadyExistsException):
                self.logs.create_log_stream(logGroupName=self.group, logStreamName=stream)
            self.logs.put_log_events(
                logGroupName=self.group,
                logStreamName=stream,
                logEvents=[{"timestamp": int(time.time() * 1000), "message": record.to_json()}],
            )
        except self.logs.exceptions.ResourceNotFoundException as error:
            raise RefusedError(
                f"the audit log {self.group} does not exist, so this change could not be "
                "recorded and was not made: deploy the environment's platform layer first"
            ) from error
        except Exception as error:
            raise UnreachableError(
                f"the audit log {self.group} cannot be written ({error}); nothing was changed"
            ) from error

    def read(self, models: Sequence[str] = ()) -> list[AuditRecord]:
        """Every record, oldest first; only those about `models` when given."""
        records: list[AuditRecord] = []
        try:
            pages = self.logs.get_paginator("filter_log_events").paginate(logGroupName=self.group)
            for page in pages:
                for event in page.get("events", []):
                    try:
                        records.append(AuditRecord.from_json(event["message"]))
                    except (ValueError, TypeError, KeyError):
                        continue  # not a record of ours: shown by the console, not here
        except self.logs.exceptions.ResourceNotFoundException as error:
            raise RefusedError(
                f"the audit log {self.group} does not exist: deploy the platform layer"
            ) from error
        except Exception as error:
            raise UnreachableError(f"the audit log {self.group} cannot be read: {error}") from error
        records.sort(key=lambda r: r.when)
        if models:
            records = [r for r in records if set(r.models) & set(models)]
        return records
