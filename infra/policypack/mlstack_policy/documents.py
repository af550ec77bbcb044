"""Reading IAM-style policy documents the way AWS does: single values may stand for lists."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from mlstack_policy.rules import known


def parse(document: Any) -> dict[str, Any]:
    """A policy document from its JSON text or an already parsed mapping; {} when absent.

    A document built from other resources' ARNs is unknown until they exist: NotKnownYetError."""
    known(document, "the policy document")
    if isinstance(document, str):
        try:
            parsed = json.loads(document)
        except json.JSONDecodeError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return dict(document) if isinstance(document, Mapping) else {}


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def statements(document: Any) -> list[dict[str, Any]]:
    return [s for s in as_list(parse(document).get("Statement")) if isinstance(s, dict)]


def is_everyone(principal: Any) -> bool:
    """True for `"*"` and `{"AWS": "*"}`: a statement that applies to any caller."""
    if principal == "*":
        return True
    return isinstance(principal, Mapping) and "*" in as_list(principal.get("AWS"))
