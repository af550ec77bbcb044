"""One table of exit statuses for every command: `mlstack` and its subcommands, `mlstack-train`,
`mlstack-serve`, `python -m serving.batch` and `python -m serving.drift`.

The same kind of failure exits with the same status whichever command meets it (storage that
cannot be reached is 4 in training and in batch scoring alike), so a script, a Kubernetes Job's
`podFailurePolicy` or a person at 3 a.m. reads a status one way. Each command's --help lists the
statuses it can return, rendered from this table by `exit_status_help`.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from enum import IntEnum
from typing import Final


class ExitStatus(IntEnum):
    OK = 0
    """Done."""
    REFUSED = 1
    """The input or the operation is refused; running again unchanged cannot help."""
    USAGE = 2
    """Bad arguments, configuration or stack file (argparse exits 2 too)."""
    GATE = 3
    """Training: the quality gate kept the model out of the registry (or in it as Rejected)."""
    UNREACHABLE = 4
    """AWS, storage, the registry or the cluster could not be reached or failed."""
    TOOL_MISSING = 5
    """A tool the step needs, such as the Pulumi CLI, is missing."""
    INTERRUPTED = 130
    """Ctrl-C, a hang-up or SIGTERM stopped it: 128 + SIGINT, as a shell reports a process
    that Ctrl-C ended, so scripts read it as they already do."""


MEANINGS: Final[Mapping[ExitStatus, str]] = {
    ExitStatus.OK: "done",
    ExitStatus.REFUSED: "the input or the operation is refused (the message says what and why); "
    "running again unchanged cannot help",
    ExitStatus.USAGE: "bad arguments, configuration or stack file",
    ExitStatus.GATE: "the quality gate kept the version out of the registry",
    ExitStatus.UNREACHABLE: "AWS, storage, the registry or the cluster could not be reached or "
    "failed",
    ExitStatus.TOOL_MISSING: "a tool the step needs (the Pulumi CLI) is missing; the message says "
    "what to install",
    ExitStatus.INTERRUPTED: "Ctrl-C, a hang-up or SIGTERM stopped it; what it had started has "
    "ended, and the message says what is left to check",
}
"""What each status means, in the words every command's --help uses."""

NOT_RETRIED: Final = (ExitStatus.REFUSED, ExitStatus.USAGE, ExitStatus.GATE)
"""The failures a retry of the same command cannot change: a Kubernetes Job fails on them at
once (`podFailurePolicy`) instead of spending its retries."""


def exit_status_help(
    *statuses: ExitStatus, details: Mapping[ExitStatus, str] | None = None, width: int = 79
) -> str:
    """`Exit status: 0 done; 1 refused: ...; ...` for the statuses a command can return, in the
    table's order; `details` replace a status's general meaning with what it means for this
    command. Wrapped to `width`, so it reads the same in a raw or a re-wrapped epilog."""
    details = details or {}
    parts = []
    for status in sorted(set(statuses)):
        name = status.name.lower().replace("_", " ")
        meaning = details.get(status, MEANINGS[status])
        parts.append(
            f"{int(status)} {meaning}" if status == 0 else f"{int(status)} {name}: {meaning}"
        )
    return textwrap.fill("Exit status: " + "; ".join(parts) + ".", width=width)
