"""What `promote`, `rollback` and `verify` share on the command line: the project directory,
progress on stderr, and one mapping from what went wrong to the exit status."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infra.cli.output import write_stdout
from infra.config import ConfigError
from infra.operations.errors import OperationError
from infra.paths import PROJECT_ROOT
from infra.stackfiles import StackFileError
from mlstack_common.registry import RegistryError

if TYPE_CHECKING:
    from infra.operations.promotion import PinChange

REFUSED = "refused (the message says by what: the registry, the stack, the repository)"


def exit_statuses(one: str = REFUSED) -> str:
    """The exit statuses every operation command documents in its --help."""
    return (
        f"Exit status: 0 done; 1 {one}; 2 bad arguments, configuration or stack file; 4 AWS, "
        "the registry or the cluster could not be reached; 5 the Pulumi CLI is needed and "
        "missing (the message says what to install)."
    )


INVALID = 2
UNREACHABLE = 4


def add_project_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--project-dir",
        type=Path,
        default=PROJECT_ROOT,
        metavar="DIR",
        help="the checkout holding Pulumi.yaml and the stack files (default: %(default)s)",
    )


def progress(message: str) -> None:
    """A step as it starts, on stderr, so stdout carries only the result."""
    print(message, file=sys.stderr, flush=True)


def apply_pin_change(
    change: PinChange, client: Any, stack: str, *, dry_run: bool, verbs: tuple[str, str]
) -> int:
    """Say what the change records and edits, make it unless `dry_run`, print its diff and
    what to run next; `verbs` say what its registry records do, and would do in a dry run."""
    for note in change.notes:
        progress(note)
    if not change.edit.changed and not change.records:
        progress(f"{change.edit.path.name} already pins that; nothing to change")
        return 0
    for transfer in change.images:
        progress(f"{'would copy' if dry_run else 'copying'} the {transfer.describe()}")
    for record in change.records:
        verb = verbs[1] if dry_run else verbs[0]
        progress(f"{verb} {record.version.arn}: {record.description}")
    if not dry_run:
        change.apply(client)
    write_stdout(change.edit.diff())
    if dry_run:
        progress("dry run: nothing changed")
    else:
        progress(
            f"next: commit {change.edit.path.name}, then `pulumi up --stack {stack}` "
            f"and `mlstack verify {stack}`"
        )
    return 0


def guarded(command: str, action: Callable[[], int]) -> int:
    """`action`'s status, or the status of what stopped it, with one line saying what."""
    try:
        return action()
    except OperationError as error:
        status = error.exit_status
        message = str(error)
    except (StackFileError, ConfigError) as error:
        status, message = INVALID, str(error)
    except RegistryError as error:
        status, message = UNREACHABLE, str(error)
    print(f"mlstack {command}: {message}", file=sys.stderr)
    return status
