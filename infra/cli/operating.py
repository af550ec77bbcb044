"""What the operation commands (`promote`, `rollback`, `verify`, `train`, `score`) share on the
command line: the project directory, progress as log lines on stderr, and one mapping from what
went wrong to its status in the exit-status table (`mlstack_common.exits`)."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infra.cli.output import write_stdout
from infra.config.errors import ConfigError
from infra.config.stackfiles import StackFileError
from infra.operations.errors import OperationError
from infra.project.paths import PROJECT_ROOT
from mlstack_common.exits import ExitStatus, exit_status_help
from mlstack_common.registry import RegistryError

if TYPE_CHECKING:
    from infra.operations.aws_access import StackAws
    from infra.operations.promotion import PinChange

log = logging.getLogger("mlstack.cli")
REFUSED = "the message says by what: the registry, the stack or the repository"


def exit_statuses(refused: str = REFUSED, done: str | None = None) -> str:
    """The exit statuses every operation command lists in its --help epilog; `refused` and
    `done` say what 1 and 0 mean for the command."""
    return exit_status_help(
        ExitStatus.OK,
        ExitStatus.REFUSED,
        ExitStatus.USAGE,
        ExitStatus.UNREACHABLE,
        ExitStatus.TOOL_MISSING,
        ExitStatus.INTERRUPTED,
        details={ExitStatus.REFUSED: refused} | ({ExitStatus.OK: done} if done else {}),
    )


def add_project_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--project-dir",
        type=Path,
        default=PROJECT_ROOT,
        metavar="DIR",
        help="the checkout holding Pulumi.yaml and the stack files (default: %(default)s)",
    )


def progress(message: str) -> None:
    """A step as it starts, as a log line on stderr, so stdout carries only the result."""
    log.info(message)


def apply_pin_change(
    change: PinChange,
    client: Any,
    stack: str,
    *,
    aws: StackAws,
    environment: str,
    operator: str,
    dry_run: bool,
    verbs: tuple[str, str],
    deploys: bool = True,
) -> int:
    """Say what the change records and edits, make it unless `dry_run` (recorded first in the
    environment's audit log), print its diff and what to run next; `verbs` say what its
    registry records do, and would do in a dry run; `deploys` says the next step is a deploy."""
    from infra.operations.audit import AuditLog, caller_identity

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
        audit = AuditLog(aws.client("logs"), environment)
        entry = change.audit_record(
            stack, aws_identity=caller_identity(aws.client("sts")), git_user=operator
        )
        change.apply(client, audit, entry)
        progress(f"recorded in {audit.group}: {entry.action} by {operator}")
    write_stdout(change.edit.diff())
    if dry_run:
        progress("dry run: nothing changed")
    elif deploys:
        progress(
            f"next: commit {change.edit.path.name}, then `pulumi up --stack {stack}` "
            f"and `mlstack verify {stack}`"
        )
    return 0


def guarded(action: Callable[[], int]) -> int:
    """`action`'s status, or the status of what stopped it, with one line saying what: an
    operator meets no traceback for a refusal, a bad stack file, a service out of reach, a file
    the system will not let it read or write, or Ctrl-C."""
    try:
        return action()
    except OperationError as error:
        status = error.exit_status
        message = str(error)
    except (StackFileError, ConfigError) as error:
        status, message = ExitStatus.USAGE, str(error)
    except RegistryError as error:
        status, message = ExitStatus.UNREACHABLE, str(error)
    except KeyboardInterrupt as interrupt:
        # A supervised Pulumi CLI names what interrupted it (a hang-up, SIGTERM) and has ended
        # by now (infra.operations.supervised); anything else was stopped where it stood.
        cause = str(interrupt.args[0]) if interrupt.args else "Ctrl-C"
        status = ExitStatus.INTERRUPTED
        message = f"interrupted ({cause}) before it finished; the lines above say how far it got"
    except OSError as error:
        # A file (a stack file, a checkout, a program such as git) the system refused: the
        # setup is wrong, as with an unreadable stack file. Without a file it is the network.
        if error.filename is not None:
            # A rename or copy names its source, then the file it was making (filename2).
            target = error.filename2 if error.filename2 is not None else error.filename
            status = ExitStatus.USAGE
            message = f"{target}: {error.strerror or error}"
        else:
            status, message = ExitStatus.UNREACHABLE, str(error)
    log.error(message, extra={"exit_status": int(status)})
    return status
