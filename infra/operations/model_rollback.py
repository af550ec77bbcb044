"""Rolling one model back in one environment: the pin goes back to the previous Approved version
(or a named one), and the version rolled back from records who did it and why, so the registry
tells the story to whoever looks at that version next."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from infra.operations.errors import RefusedError
from infra.operations.promotion import PinChange, RegistryRecord, accepted, stack_config
from infra.operations.stack_edit import PINS_KEY, set_entries
from infra.project import naming
from infra.project.paths import stack_file
from mlstack_common.registry import APPROVED, describe_versions, list_versions


def roll_back_model(
    root: Path,
    stack: str,
    *,
    model: str | None,
    to: int | None,
    client: Any,
    operator: str,
    reason: str,
    now: datetime | None = None,
) -> PinChange:
    config = stack_config(root, stack)
    pins = config.serving.model_versions
    if not pins:
        raise RefusedError(f"{stack} pins no model version; there is nothing to roll back")
    if model is None:
        if len(pins) > 1:
            raise RefusedError(f"{stack} serves {', '.join(pins)}: name one with --model")
        [model] = pins
    if model not in pins:
        raise RefusedError(f"{stack} does not serve {model!r}; it serves: {', '.join(pins)}")
    current = pins[model]
    group = naming.model_package_group(model, config.environment)
    versions = list_versions(client, group)
    if to is None:
        earlier = [v for v in versions if v.status == APPROVED and v.version < current]
        if not earlier:
            raise RefusedError(
                f"{group!r} has no Approved version before {current} to roll back to; versions "
                f"there: {describe_versions(versions)}"
            )
        target = earlier[-1]
    else:
        found = next((v for v in versions if v.version == to), None)
        if found is None or found.status != APPROVED or to == current:
            why = (
                "it is the version served now"
                if to == current
                else f"it is {found.status or 'without a status'}"
                if found
                else "there is no such version"
            )
            raise RefusedError(
                f"cannot roll {model} back to version {to} of {group!r}: {why}; versions there: "
                + describe_versions(versions)
            )
        target = found
    rolled_back = next((v for v in versions if v.version == current), None)
    when = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    records = (
        (
            RegistryRecord(
                rolled_back,
                rolled_back.status,
                f"rolled back in {stack} to version {target.version} by {operator} at {when}: "
                f"{reason}",
            ),
        )
        if rolled_back is not None
        else ()
    )
    edit = accepted(
        set_entries(stack_file(stack, root), {PINS_KEY: {model: str(target.version)}}), root
    )
    return PinChange(
        edit=edit,
        records=records,
        notes=(f"{model}: {stack} goes from version {current} back to {target.version}",),
    )
