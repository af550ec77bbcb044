"""How an operation fails, each with its status in the one exit-status table
(`mlstack_common.exits`)."""

from __future__ import annotations

from mlstack_common.exits import ExitStatus


class OperationError(RuntimeError):
    """An operation that did not happen; the message says why and what would let it."""

    exit_status = ExitStatus.REFUSED


class RefusedError(OperationError):
    """The registry, the stack or the repository does not allow it (a Rejected version, a dirty
    tree, an update that is not in the history)."""

    exit_status = ExitStatus.REFUSED


class UnreachableError(OperationError):
    """AWS, the registry or the cluster could not be read or changed."""

    exit_status = ExitStatus.UNREACHABLE


class PulumiCliMissingError(OperationError):
    """The step needs the Pulumi CLI (the Automation API runs it) and there is none."""

    exit_status = ExitStatus.TOOL_MISSING
