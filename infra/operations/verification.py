"""Comparing what a stack declares with what runs: each model's pinned version in the registry,
on its SageMaker endpoint and in its Deployment, and whether what serves it is healthy (its
alarms, its instances and ready pods). Pure functions over what `live_state` read, so every
mismatch has a test without any cloud.

A SageMaker endpoint whose update was rolled back by its alarms keeps its name and runs the old
configuration while the deployment tool records the update as a success; it shows here as a
model version that is not the pinned one, with no update in progress. An update still in
progress looks the same from the configuration alone; DescribeEndpoint's
`PendingDeploymentSummary` names the configuration it deploys, so the two are told apart.

A report that could not read a part keeps everything else it read: the part is a check of its
own that says what could not be reached and why."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from infra.operations.live_state import (
    ALARM,
    AlarmState,
    EndpointConfiguration,
    LiveDeployment,
    LiveEndpoint,
    PendingDeployment,
    digest_of,
)
from infra.project import naming
from mlstack_common.exits import ExitStatus
from mlstack_common.registry import APPROVED, ModelPackage

OK, MISMATCH, NOT_READ = "ok", "mismatch", "not read"
"""A check's outcome: as declared (or healthy), not, or not known because it could not be read."""
MARKS = {OK: "ok      ", MISMATCH: "MISMATCH", NOT_READ: "NOT READ"}


@dataclass(frozen=True)
class Check:
    target: str
    """What was read: `registry demo-prod`, `endpoint demo-prod`, `deployment mlstack/serving-x`,
    `alarms demo`."""
    item: str
    declared: str
    live: str
    ok: bool
    hint: str = ""
    read: bool = True
    """False when `target` could not be read: `live` says why, and `ok` is False."""

    @property
    def outcome(self) -> str:
        return NOT_READ if not self.read else OK if self.ok else MISMATCH

    def render(self) -> list[str]:
        line = f"{MARKS[self.outcome]} {self.target}: {self.item}: "
        if self.outcome == MISMATCH:
            line += f"declared {self.declared}, live {self.live}"
        else:
            line += self.live
        return [line] + ([f"         {self.hint}"] if self.hint and not self.ok else [])


def not_read(target: str, item: str, declared: str, why: str, hint: str = "") -> Check:
    """A check that could not be made: `why` names what could not be reached, and the error."""
    return Check(target, item, declared, why, ok=False, hint=hint, read=False)


@dataclass(frozen=True, kw_only=True)
class Expected:
    """What the stack declares for one served model."""

    model: str
    version: int
    package: ModelPackage | None
    """The pinned version as the registry describes it; None when the registry has no such
    version, or could not be read."""
    group: str
    image_digest: str
    """`sha256:…` of the serving image; empty when only the stack's outputs know it."""
    endpoint: str | None
    deployment: tuple[str, str] | None
    """Namespace and name of the model's Deployment."""
    min_replicas: int
    min_instances: int = 1
    """The endpoint's `endpointMinInstances`."""


@dataclass(frozen=True)
class Report:
    stack: str
    region: str = ""
    account: str = ""
    """The AWS account the caller's credentials reach; empty when it could not be asked."""
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    passed: str = "live matches the stack"
    """What the verdict says when every check passed."""

    @property
    def ok(self) -> bool:
        """Everything checked matches and was read, and something was checked."""
        return bool(self.checks) and all(check.ok for check in self.checks)

    @property
    def mismatches(self) -> list[Check]:
        return [check for check in self.checks if check.outcome == MISMATCH]

    @property
    def unread(self) -> list[Check]:
        return [check for check in self.checks if check.outcome == NOT_READ]

    @property
    def exit_status(self) -> ExitStatus:
        """Refused for a mismatch, or when nothing was checked (that verifies nothing);
        unreachable when all that was read matches but some could not be read."""
        if self.mismatches or not self.checks:
            return ExitStatus.REFUSED
        return ExitStatus.UNREACHABLE if self.unread else ExitStatus.OK

    def to_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "account": self.account or None,
            "region": self.region,
            "ok": self.ok,
            "exit_status": int(self.exit_status),
            "checks": [asdict(check) | {"outcome": check.outcome} for check in self.checks],
            "notes": self.notes,
        }

    def header(self) -> str:
        return f"{self.stack}: AWS account {self.account or 'unknown'}, region {self.region}"

    def verdict(self) -> str:
        if not self.checks:
            return f"{self.stack}: nothing was checked, so nothing is verified"
        if self.ok:
            return f"{self.stack}: {self.passed} ({len(self.checks)} checks)"
        parts = []
        if self.mismatches:
            parts.append(f"{len(self.mismatches)} of {len(self.checks)} checks do not match")
        if self.unread:
            parts.append(f"{len(self.unread)} of {len(self.checks)} could not be read")
        return f"{self.stack}: " + "; ".join(parts)

    def render(self) -> str:
        lines = [self.header()]
        for check in self.checks:
            lines.extend(check.render())
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join([*lines, self.verdict()])


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
    "the endpoint is in service on another version than the stack pins, with no update in "
    "progress: SageMaker rolled an update back when an alarm fired during the traffic shift, or "
    "the pin was never deployed (see docs/runbooks/endpoint-alarm.md)"
)
STAGES = {
    "Creating": "creating the new fleet",
    "Updating": "updating the new fleet's capacity",
    "Deleting": "terminating instances",
    "ActivatingTraffic": "turning traffic on for the new fleet",
    "Baking": "baking: the rollback alarms watch the new fleet before the next step",
}
"""What each `VariantStatus` of a deployment means (SageMaker API reference,
ProductionVariantStatus)."""


def _version(configuration: EndpointConfiguration) -> str:
    return configuration.model_version or "none"


def _deploying(pending: PendingDeployment) -> str:
    """`configuration X (version N), stage Baking since T` for the status line."""
    text = f"configuration {pending.configuration.name} (version {_version(pending.configuration)})"
    if pending.stage:
        text += f", stage {pending.stage}"
        text += f" since {pending.stage_since}" if pending.stage_since else ""
    elif pending.started:
        text += f", started {pending.started}"
    return text


def shift_in_progress(expected: Expected, live: LiveEndpoint) -> bool:
    """An update is deploying the pinned version's configuration."""
    return (
        live.pending is not None
        and live.pending.configuration.model_version == str(expected.version)
        and live.configuration.model_version != str(expected.version)
    )


def endpoint_checks(expected: Expected, live: LiveEndpoint | None) -> list[Check]:
    assert expected.endpoint is not None  # noqa: S101 (called for endpoints only)
    target = f"endpoint {expected.endpoint}"
    if live is None:
        return [Check(target, "exists", "yes", "no", ok=False, hint="run `pulumi up`")]
    shifting = shift_in_progress(expected, live)
    # During a shift to the pin, what the new fleet runs is what the stack declared.
    compared = live.pending.configuration if shifting and live.pending else live.configuration
    suffix = " (being deployed)" if shifting else ""
    return [
        _status_check(target, live),
        _version_check(target, expected, live),
        *_content_checks(target, expected, compared, suffix),
        *_instance_checks(target, expected, live),
    ]


def _status_check(target: str, live: LiveEndpoint) -> Check:
    status = live.status + (f" ({live.failure_reason})" if live.failure_reason else "")
    hint = ""
    if live.pending is not None:
        status += f", deploying {_deploying(live.pending)}"
        stage = STAGES.get(live.pending.stage, "")
        message = live.pending.stage_message
        hint = "an update is in progress" + (f" ({stage})" if stage else "")
        hint += f": {message}" if message else ""
        hint += "; verify again when the endpoint is InService"
    elif live.status == "UpdateRollbackFailed":
        hint = (
            "both the update and SageMaker's rollback of it failed: the endpoint serves a mix "
            "of the old and the new configuration (docs/runbooks/endpoint-alarm.md)"
        )
    return _check(target, "status", "InService", status, hint)


def _version_check(target: str, expected: Expected, live: LiveEndpoint) -> Check:
    running = _version(live.configuration)
    pending = live.pending
    if pending is not None and shift_in_progress(expected, live):
        stage = f", {pending.stage}" if pending.stage else ""
        return Check(
            target,
            "model version",
            str(expected.version),
            f"{running} (traffic shift to {expected.version} in progress{stage})",
            ok=False,
            hint=(
                f"SageMaker is shifting traffic from {live.configuration.name} to "
                f"{pending.configuration.name}, which runs the pinned version; not a rollback. "
                "Verify again when the endpoint is InService"
            ),
        )
    if pending is not None:
        hint = (
            f"an update to {pending.configuration.name} (version "
            f"{_version(pending.configuration)}) is in progress; it runs endpoint configuration "
            f"{live.configuration.name} until it finishes"
        )
    elif live.status == "InService":
        hint = f"{ROLLED_BACK}; it runs endpoint configuration {live.configuration.name}"
    else:
        hint = (
            f"the endpoint is {live.status}; it runs endpoint configuration "
            f"{live.configuration.name}"
        )
    return _check(target, "model version", str(expected.version), running, hint)


def _content_checks(
    target: str, expected: Expected, configuration: EndpointConfiguration, suffix: str
) -> list[Check]:
    checks = []
    if expected.package is not None:
        checks.append(
            _check(
                target,
                "model data" + suffix,
                expected.package.model_data_url,
                configuration.model_data_url,
            )
        )
    return checks + _package_and_image(
        target, expected, configuration.package_arn, configuration.image, suffix
    )


def _instance_checks(target: str, expected: Expected, live: LiveEndpoint) -> list[Check]:
    """`CurrentInstanceCount` of the serving fleet against `endpointMinInstances`; an endpoint
    not yet in service reports none, which its status check already says."""
    if live.instances is None and live.status != "InService":
        return []
    count = live.instances or 0
    return [
        Check(
            target,
            "instances",
            f"at least {expected.min_instances}",
            str(count) if live.instances is not None else "none reported",
            ok=count >= expected.min_instances,
            hint=(
                "fewer instances than endpointMinInstances: one is being replaced, or could not "
                f"be launched; its logs: {naming.endpoint_log_group(live.name)}"
            ),
        )
    ]


def _package_and_image(
    target: str, expected: Expected, package_arn: str, image: str, suffix: str = ""
) -> list[Check]:
    checks = []
    if expected.package is not None:
        checks.append(
            _check(target, "model package" + suffix, expected.package.arn, package_arn or "none")
        )
    if expected.image_digest:
        checks.append(
            _check(
                target, "image digest" + suffix, expected.image_digest, digest_of(image) or image
            )
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


ALARM_RUNBOOKS = "docs/runbooks/endpoint-alarm.md (a drift alarm: docs/runbooks/drift-alarm.md)"


def alarm_checks(
    model: str, alarms: Sequence[AlarmState], *, endpoint_prefix: str | None
) -> list[Check]:
    """One failed check per alarm in ALARM, naming it and CloudWatch's reason; otherwise one
    check listing the model's alarms and their states. `endpoint_prefix` is given when the
    model has an endpoint, whose alarms the stack always declares (they guard its traffic
    shifts): none by that prefix is a mismatch."""
    target = f"alarms {model}"
    firing = [alarm for alarm in alarms if alarm.state == ALARM]
    if firing:
        return [
            Check(
                target,
                alarm.name,
                "not in ALARM",
                f"ALARM since {alarm.since}: {alarm.reason}"
                if alarm.since
                else f"ALARM: {alarm.reason}",
                ok=False,
                hint=f"{alarm.description + '; ' if alarm.description else ''}{ALARM_RUNBOOKS}",
            )
            for alarm in firing
        ]
    if endpoint_prefix is not None and not any(
        alarm.name.startswith(endpoint_prefix) for alarm in alarms
    ):
        return [
            Check(
                target,
                "exist",
                f"{endpoint_prefix}* (the endpoint's alarms)",
                "none",
                ok=False,
                hint=(
                    "nothing watches the endpoint and its traffic shifts cannot roll back: run "
                    "`pulumi up` (or is this the stack's account and region?)"
                ),
            )
        ]
    if not alarms:
        return []
    states = ", ".join(f"{alarm.name} {alarm.state}" for alarm in alarms)
    return [Check(target, "state", "none in ALARM", f"none in ALARM ({states})", ok=True)]
