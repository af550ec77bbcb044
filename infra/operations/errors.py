"""How an operation fails, each with the exit status the commands document."""

from __future__ import annotations


class OperationError(RuntimeError):
    """An operation that did not happen; the message says why and what would let it."""

    exit_status = 1


class RefusedError(OperationError):
    """The registry, the stack or the repository does not allow it (a Rejected version, a dirty
    tree, an update that is not in the history)."""

    exit_status = 1


class UnreachableError(OperationError):
    """AWS, the registry or the cluster could not be read or changed."""

    exit_status = 4


class PulumiCliMissingError(OperationError):
    """The step needs the Pulumi CLI (the Automation API runs it) and there is none."""

    exit_status = 5
