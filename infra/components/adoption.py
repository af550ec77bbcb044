"""Resources that outlive a stack, and are adopted instead of created when they already exist.

Some resources belong to the account more than to one deployment: the model package groups (their
versions are the models' history) and service-linked roles (one per account, shared by every
stack). They are declared `retain_on_delete`, so `pulumi destroy` leaves them, and the next
deployment finds them with a lookup and declares them with Pulumi's `import_` option instead of
failing with "already exists". The engine treats `import_` of a resource already in the stack's
state under the same id as no change, so the option may stay set on every later run and an
unchanged stack still previews as unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi


def kept_resource(
    parent: pulumi.Resource, existing_id: str | None, *, ignore_changes: Sequence[str] = ()
) -> pulumi.ResourceOptions:
    """Options for a resource the stack keeps on destroy and adopts when `existing_id` is set.

    `ignore_changes` names inputs the existing resource may have been given by someone else (a
    service-linked role AWS created has AWS's description), which an import would otherwise
    refuse as a difference."""
    return pulumi.ResourceOptions(
        parent=parent,
        import_=existing_id,
        retain_on_delete=True,
        ignore_changes=list(ignore_changes) or None,
    )
