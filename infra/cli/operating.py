"""What `promote`, `rollback` and `verify` share on the command line: the project directory,
progress on stderr, and one mapping from what went wrong to the exit status."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from infra.config import ConfigError
from infra.operations.errors import OperationError
from infra.paths import PROJECT_ROOT
from infra.stackfiles import StackFileError
from serving.registry import RegistryError

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
