"""The configuration reference, docs/configuration.md, generated from the keys `Pulumi.yaml`
declares: `python -m infra.cli.config_reference` (or `make docs`) rewrites it, and a test fails
while the committed page differs from what `render` makes of the committed `Pulumi.yaml`.

Each `mlstack:*` key is one row of one table (key, type, default, description), in the order
`Pulumi.yaml` declares them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from infra.config.schema import ConfigKey, parse_schema
from infra.project.paths import PROJECT_FILE, PROJECT_ROOT

REFERENCE_FILE = PROJECT_ROOT / "docs" / "configuration.md"
"""The generated page."""

_HEADER = """\
# Configuration reference

<!-- Generated from Pulumi.yaml by `make docs`; edit the keys there, not this page. -->

Every `mlstack:*` key a stack reads, with its type, default and meaning, in the order
[`Pulumi.yaml`](../Pulumi.yaml) declares them. This page is generated from that file's
`config:` section: after changing a key there, run `make docs`
(`python -m infra.cli.config_reference`) and commit both; a test fails while the page is stale.

A stack file, `Pulumi.<env>.yaml`, holds only what differs from these defaults, for both
layers. How values are checked (all problems at once, misspelt and unknown keys, keys that can
have no effect in a stack) and what each environment sets: [stack.md](stack.md#configuration).
"""


def _yaml_value(value: Any) -> str:
    """`value` as it would be written in a stack file."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_yaml_value(item) for item in value) + "]"
    if isinstance(value, str):
        # Quoted where YAML would read the bare text as something else ("1.35", "", "true").
        try:
            plain = value != "" and ": " not in value and yaml.safe_load(value) == value
        except yaml.YAMLError:
            plain = False
        return value if plain else json.dumps(value)
    return str(value)


def _one_line(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _prose(text: str) -> str:
    """`text` for a table cell, with `<` escaped outside code spans: Markdown would take
    `<model>` for an HTML tag and show nothing."""
    spans = _one_line(text).split("`")
    return "`".join(
        span if index % 2 else span.replace("<", "&lt;") for index, span in enumerate(spans)
    )


def _type(key: ConfigKey) -> str:
    return f"array of {key.item_type}" if key.type == "array" and key.item_type else key.type


def _default(key: ConfigKey) -> str:
    return f"`{_one_line(_yaml_value(key.default))}`" if key.has_default else "required"


def _table(keys: Sequence[ConfigKey]) -> list[str]:
    rows = ["| key | type | default | description |", "| --- | --- | --- | --- |"]
    rows += [
        f"| `{key.full_name}` | {_type(key)} | {_default(key)} | {_prose(key.description)} |"
        for key in keys
    ]
    return rows


def render(project_file: Path) -> str:
    """The reference page for the keys `project_file` (a project's `Pulumi.yaml`) declares."""
    with project_file.open(encoding="utf-8") as handle:
        keys = parse_schema(yaml.safe_load(handle) or {}).values()
    return "\n".join([_HEADER, *_table(list(keys)), ""])


def main() -> int:
    """Rewrite docs/configuration.md from the project's `Pulumi.yaml`."""
    REFERENCE_FILE.write_text(render(PROJECT_FILE), encoding="utf-8")
    print(f"wrote {REFERENCE_FILE.relative_to(PROJECT_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
