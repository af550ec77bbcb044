"""The declared `mlstack:*` configuration keys, read from the project's `Pulumi.yaml`.

`Pulumi.yaml` is the one place that declares each key's type, description and default: the
Pulumi CLI validates stack files against it, and `infra.config.reader` reads values by it, so
the two can never disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal, cast

import yaml

from infra.project.paths import PROJECT_FILE

NAMESPACE = "mlstack"

KeyType = Literal["string", "integer", "boolean", "array"]
_KEY_TYPES: tuple[KeyType, ...] = ("string", "integer", "boolean", "array")


@dataclass(frozen=True, kw_only=True)
class ConfigKey:
    """One declared key; `name` is without the `mlstack:` namespace."""

    name: str
    type: KeyType
    description: str
    default: Any = None
    has_default: bool = False
    item_type: KeyType | None = None

    @property
    def full_name(self) -> str:
        return f"{NAMESPACE}:{self.name}"


def parse_schema(project: Mapping[str, Any]) -> dict[str, ConfigKey]:
    """Turn the `config:` block of a parsed `Pulumi.yaml` into declared keys, by short name."""
    declared = project.get("config") or {}
    keys: dict[str, ConfigKey] = {}
    for full_name, spec in declared.items():
        namespace, _, name = str(full_name).partition(":")
        if namespace != NAMESPACE or not isinstance(spec, Mapping):
            continue
        key_type = spec.get("type")
        if key_type not in _KEY_TYPES:
            raise ValueError(f"{full_name} in Pulumi.yaml: type must be one of {_KEY_TYPES}")
        item_type = (spec.get("items") or {}).get("type") if key_type == "array" else None
        keys[name] = ConfigKey(
            name=name,
            type=cast(KeyType, key_type),
            description=str(spec.get("description", "")),
            default=spec.get("default"),
            has_default="default" in spec,
            item_type=cast("KeyType | None", item_type),
        )
    return keys


@cache
def load_schema(project_file: Path = PROJECT_FILE) -> dict[str, ConfigKey]:
    """The declared keys of this project, parsed once per process."""
    with project_file.open(encoding="utf-8") as handle:
        return parse_schema(yaml.safe_load(handle))
