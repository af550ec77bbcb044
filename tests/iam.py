"""IAM's verdict on a request, from a real policy evaluator rather than string matching.

`@cloud-copilot/iam-simulate` (npm, run by Node; `make sync` installs it into tests/node/)
evaluates identity policies and permissions boundaries with every condition operator, checks
each action against AWS's Service Authorization Reference and each resource ARN against the
action's resource types, and authorizes actions that take no resource type against "*" as IAM
does. Without Node and npm the tests that need it are skipped and say so.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from infra.project.paths import PROJECT_ROOT

NODE_TOOLS = PROJECT_ROOT / "tests" / "node"
SIMULATOR = NODE_TOOLS / "node_modules" / "@cloud-copilot" / "iam-simulate"

needs_simulator = pytest.mark.skipif(
    not SIMULATOR.exists() or shutil.which("node") is None,
    reason="needs Node and npm: `make sync` installs the IAM policy simulator into tests/node/ "
    "where npm is on PATH",
)


@dataclass(frozen=True)
class Request:
    """One API call as IAM authorizes it."""

    action: str
    resource: str
    context: Mapping[str, str | list[str]] = field(default_factory=dict)
    why: str = ""
    """What makes the call (a resource and phase, a lookup): named in failure messages."""
    resource_policy: str | None = None
    """The name (among `evaluate`'s `resource_policies`) of the resource's own policy, which
    IAM evaluates beside the caller's (a KMS key's policy must allow the caller's account)."""


def _global_keys(resource: str, account: str) -> dict[str, str]:
    """Context keys IAM sets on every request (the simulator leaves them to its caller): the
    account that owns the resource, from its ARN (S3 ARNs carry none: the caller's account)."""
    parts = resource.split(":")
    owner = parts[4] if len(parts) > 5 and parts[4] else account
    return {"aws:ResourceAccount": owner, "aws:PrincipalAccount": account}


@dataclass(frozen=True)
class Verdict:
    request: Request
    result: str
    """Allowed, ImplicitlyDenied, ExplicitlyDenied, or Error (a malformed request: an action
    that does not exist, a resource ARN the action does not take)."""
    detail: Any = None

    @property
    def allowed(self) -> bool:
        return self.result == "Allowed"

    def __str__(self) -> str:
        r = self.request
        extra = f" {self.detail}" if self.detail else ""
        return f"{r.action} on {r.resource} ({r.why}): {self.result}{extra}"


def evaluate(
    requests: Sequence[Request],
    *,
    identity: Mapping[str, Any],
    boundary: Mapping[str, Any] | None = None,
    principal: str,
    account: str,
    resource_policies: Mapping[str, Any] | None = None,
) -> list[Verdict]:
    """IAM's verdict on each request made by `principal`, whose identity policies are
    `identity` (name -> document) and whose permissions boundary is `boundary`; a request
    naming a resource policy is judged with it (`resource_policies`, name -> document)."""
    policies: dict[str, Any] = {**(resource_policies or {}), **identity}
    if boundary is not None:
        policies["boundary"] = boundary
    payload = {
        "policies": policies,
        "requests": [
            {
                "action": r.action,
                "resource": r.resource,
                "context": {**_global_keys(r.resource, account), **dict(r.context)},
                "identity": list(identity),
                "boundary": "boundary" if boundary is not None else None,
                "principal": principal,
                "account": account,
                "resourcePolicy": r.resource_policy,
            }
            for r in requests
        ],
    }
    node = shutil.which("node") or "node"
    completed = subprocess.run(
        [node, str(NODE_TOOLS / "simulate.mjs")],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        cwd=NODE_TOOLS,
        check=False,
        timeout=600,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"the IAM simulator failed: {completed.stderr.strip()}")
    answers = json.loads(completed.stdout)
    return [
        Verdict(request, answer["result"], answer.get("errors") or answer.get("ignored") or None)
        for request, answer in zip(requests, answers, strict=True)
    ]
