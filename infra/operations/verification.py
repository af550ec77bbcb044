"""Comparing what a stack declares with what runs: each model's pinned version in the registry,
on its SageMaker endpoint and in its Deployment. Pure functions over what `live_state` read, so
every mismatch has a test without any cloud.

A SageMaker endpoint whose update was rolled back by its alarms keeps its name and runs the old
configuration while the deployment tool records the update as a success; it shows here as a
model version that is not the pinned one."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from infra.operations.live_state import LiveDeployment, LiveEndpoint, digest_of
from mlstack_common.registry import APPROVED, ModelPackage


@dataclass(frozen=True)
class Check:
    target: str
    """What was read: `registry demo-prod`, `endpoint demo-prod`, `deployment mlstack/serving-x`."""
    item: str
    declared: str
    live: str
    ok: bool
    hint: str = ""


@dataclass(frozen=True, kw_only=True)
class Expected:
    """What the stack declares for one served model."""

    model: str
    version: int
    package: ModelPackage | None
    """The pinned version as the registry describes it; None when the registry has no such
    version."""
    group: str
    image_digest: str
    """`sha256:…` of the serving image; empty when only the stack's outputs know it."""
    endpoint: str | None
    deployment: tuple[str, str] | None
    """Namespace and name of the model's Deployment."""
    min_replicas: int


@dataclass(frozen=True)
class Report:
    stack: str
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def mismatches(self) -> list[Check]:
        return [check for check in self.checks if not check.ok]

    def to_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "ok": self.ok,
            "checks": [asdict(check) for check in self.checks],
            "notes": self.notes,
        }

    def render(self) -> str:
        lines = []
        for check in self.checks:
            mark = "ok      " if check.ok else "MISMATCH"
            line = f"{mark} {check.target}: {check.item}: "
            line += check.live if check.ok else f"declared {check.declared}, live {check.live}"
            lines.append(line)
            if check.hint and not check.ok:
                lines.append(f"         {check.hint}")
        lines.extend(f"note: {note}" for note in self.notes)
        verdict = (
            f"{self.stack}: live matches the stack ({len(self.checks)} checks)"
            if self.ok
            else f"{self.stack}: {len(self.mismatches)} of {len(self.checks)} checks do not match"
        )
        return "\n".join([*lines, verdict])


def _check(target: str, item: str, declared: str, live: str, hint: str = "") -> Check:
    return Check(target, item, declared, live, declared == live, hint)


def registry_checks(expected: Expected) -> list[Check]:
    target = f"registry {expected.group}"
    if expected.package is None:
        return [
            Check(
                target,
                f"version {expected.version}",
                "present",
                "absent",
                ok=False,
                hint="the pinned version is not in the registry; pin one that is",
            )
        ]
    return [
        _check(
            target,
            f"version {expected.version} status",
            APPROVED,
            expected.package.approval_status or "none",
            hint="the pinned version is no longer Approved: roll back, or approve it again",
        )
    ]


ROLLED_BACK = (
    "the endpoint runs another version than the stack pins: SageMaker rolls an update back "
    "when an alarm fires during the traffic shift (see docs/runbooks/endpoint-alarm.md)"
)


def endpoint_checks(expected: Expected, live: LiveEndpoint | None) -> list[Check]:
    assert expected.endpoint is not None  # noqa: S101 (called for endpoints only)
    target = f"endpoint {expected.endpoint}"
    if live is None:
        return [Check(target, "exists", "yes", "no", ok=False, hint="run `pulumi up`")]
    checks = [
        _check(
            target,
            "status",
            "InService",
            live.status + (f" ({live.failure_reason})" if live.failure_reason else ""),
        ),
        _check(
            target,
            "model version",
            str(expected.version),
            f"{live.model_version or 'none'}",
            hint=f"{ROLLED_BACK}; it runs endpoint configuration {live.config_name}",
        ),
    ]
    if expected.package is not None:
        checks.append(
            _check(target, "model data", expected.package.model_data_url, live.model_data_url)
        )
    return checks + _package_and_image(target, expected, live.package_arn, live.image)


def _package_and_image(
    target: str, expected: Expected, package_arn: str, image: str
) -> list[Check]:
    checks = []
    if expected.package is not None:
        checks.append(_check(target, "model package", expected.package.arn, package_arn or "none"))
    if expected.image_digest:
        checks.append(
            _check(target, "image digest", expected.image_digest, digest_of(image) or image)
        )
    return checks


def deployment_checks(expected: Expected, live: LiveDeployment | None) -> list[Check]:
    assert expected.deployment is not None  # noqa: S101 (called for Deployments only)
    namespace, name = expected.deployment
    target = f"deployment {namespace}/{name}"
    if live is None:
        return [Check(target, "exists", "yes", "no", ok=False, hint="run `pulumi up`")]
    checks = [
        _check(target, "model version", str(expected.version), live.model_version or "none"),
        *_package_and_image(target, expected, live.package_arn, live.image),
    ]
    checks.append(
        Check(
            target,
            "rollout",
            "complete",
            "complete"
            if live.rolled_out
            else (
                f"in progress ({live.updated_replicas} of {live.replicas} pods updated, "
                f"generation {live.observed_generation} of {live.generation} observed)"
            ),
            ok=live.rolled_out,
            hint="`kubectl -n mlstack rollout status deployment/" + name + "`",
        )
    )
    checks.append(
        Check(
            target,
            "ready replicas",
            f"at least {expected.min_replicas}",
            str(live.ready_replicas),
            ok=live.ready_replicas >= expected.min_replicas,
            hint="`kubectl -n mlstack describe deployment/" + name + "` and its pods' events",
        )
    )
    return checks
