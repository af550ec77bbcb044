"""The resource graph a stack declares, rendered for a reviewer: a tree, or JSON for tools."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from infra.offline.mocks import RecordedResource
from infra.offline.runner import ProgramRun
from mlstack_policy.rules import Violation

# Set by the provider from the stack's default tags; the same on every resource, so noise here.
_HIDDEN_INPUTS = frozenset({"tagsAll"})
MASK = "[secret]"


def shown_inputs(resource: RecordedResource) -> dict[str, Any]:
    """The inputs a reviewer reads, with JSON documents (policies) parsed so they print as data."""
    shown: dict[str, Any] = {}
    for key in sorted(resource.inputs):
        if key in _HIDDEN_INPUTS:
            continue
        value = MASK if key in resource.secret_inputs else resource.inputs[key]
        if isinstance(value, str) and value.startswith("{"):
            with contextlib.suppress(json.JSONDecodeError):
                value = json.loads(value)
        shown[key] = value
    return shown


def shown_outputs(run: ProgramRun) -> dict[str, Any]:
    """Stack outputs with secret ones masked, as `pulumi stack output` shows them."""
    return {
        name: MASK if name in run.secret_outputs else value for name, value in run.outputs.items()
    }


def _ordered_children(run: ProgramRun) -> dict[str | None, list[RecordedResource]]:
    urns = {resource.urn for resource in run.resources}
    children: dict[str | None, list[RecordedResource]] = {}
    for resource in run.resources:
        parent = resource.parent_urn if resource.parent_urn in urns else None
        children.setdefault(parent, []).append(resource)
    for siblings in children.values():
        # Components first, then by name: a stable order whatever order registrations arrived in.
        siblings.sort(key=lambda r: (r.custom, r.name, r.resource_type))
    return children


def _yaml_lines(value: Any) -> list[str]:
    text = yaml.safe_dump(value, default_flow_style=None, sort_keys=True, width=100)
    return [line for line in text.splitlines() if line != "..."]


def _as_yaml(mapping: Mapping[str, Any], indent: str) -> list[str]:
    """One `key: value` line per input; nested documents follow as YAML, leaves on one line."""
    lines: list[str] = []
    for key, value in mapping.items():
        rendered = _yaml_lines(value)
        if len(rendered) == 1:
            lines.append(f"{indent}{key}: {rendered[0]}")
        else:
            lines.append(f"{indent}{key}:")
            lines.extend(f"{indent}  {line}" for line in rendered)
    return lines


def _in(run: ProgramRun, violations: Iterable[Violation]) -> list[Violation]:
    urns = {resource.urn for resource in run.resources}
    return [violation for violation in violations if violation.urn in urns]


def _title(run: ProgramRun) -> str:
    layer = f", {run.layer.name} layer (project {run.layer.project})" if run.layer else ""
    return f"stack {run.settings.stack}{layer}"


def render_tree(run: ProgramRun, violations: Iterable[Violation] = ()) -> str:
    """The stack as an indented tree: `type  name`, then its inputs as YAML; one tree per
    layer, in the order they deploy."""
    found = list(violations)
    return "\n\n".join(_layer_tree(layer, _in(layer, found)) for layer in run.runs)


def _layer_tree(run: ProgramRun, violations: list[Violation]) -> str:
    children = _ordered_children(run)
    lines = [
        f"{_title(run)}: {len(run.resources)} resources "
        f"({sum(r.custom for r in run.resources)} cloud, "
        f"{sum(not r.custom for r in run.resources)} components)",
        "",
    ]

    def walk(parent: str | None, indent: str) -> None:
        for resource in children.get(parent, []):
            flags = " [protected]" if resource.protect else ""
            lines.append(f"{indent}{resource.resource_type}  {resource.name}{flags}")
            inputs = shown_inputs(resource)
            if inputs:
                lines.extend(_as_yaml(inputs, indent + "  │ "))
            walk(resource.urn, indent + "  ")

    walk(None, "")
    lines += ["", "outputs:", *_as_yaml(shown_outputs(run), "  ")]
    lines += ["", f"policy: {len(violations)} violation(s)"]
    lines += [f"    {violation}" for violation in violations]
    return "\n".join(lines)


def render_json(run: ProgramRun, violations: Iterable[Violation] = ()) -> str:
    """The same graphs as JSON: per layer, resources in tree order, outputs and policy
    violations."""
    found = list(violations)
    document = {
        "stack": run.settings.stack,
        "layers": [_layer_json(layer, _in(layer, found)) for layer in run.runs],
    }
    return json.dumps(document, indent=2, sort_keys=False)


def _layer_json(run: ProgramRun, violations: list[Violation]) -> dict[str, Any]:
    children = _ordered_children(run)
    ordered: list[RecordedResource] = []

    def walk(parent: str | None) -> None:
        for resource in children.get(parent, []):
            ordered.append(resource)
            walk(resource.urn)

    walk(None)
    return {
        "layer": run.layer.name if run.layer else None,
        "project": run.layer.project if run.layer else None,
        "resources": [
            {
                "urn": r.urn,
                "type": r.resource_type,
                "name": r.name,
                "parent": r.parent_urn,
                "protect": r.protect,
                "inputs": shown_inputs(r),
            }
            for r in ordered
        ],
        "outputs": shown_outputs(run),
        "violations": [
            {"rule": v.rule_id, "urn": v.urn, "resource": v.resource_name, "message": v.message}
            for v in violations
        ],
    }
