"""The rules as a Pulumi CrossGuard policy pack, for `pulumi preview/up --policy-pack`.

Resource rules become resource-validation policies, which CrossGuard runs on each resource before
it is created or changed; stack rules become stack-validation policies, which see every resource.
A rule that needs a value not known during a preview reports CrossGuard's "can't run during
preview" note instead of a verdict; the same policy judges it during `pulumi up`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyComplianceFramework,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import (
    UNKNOWN_ARRAY_VALUE,
    UNKNOWN_BOOLEAN_VALUE,
    UNKNOWN_NUMBER_VALUE,
    UNKNOWN_OBJECT_VALUE,
    UNKNOWN_STRING_VALUE,
    UnknownValueError,
)

from mlstack_policy.rules import MLSTACK, UNKNOWN, NotKnownYetError, Rule, StackIndex, all_rules

_UNKNOWN_SENTINELS = frozenset(
    {
        UNKNOWN_ARRAY_VALUE,
        UNKNOWN_BOOLEAN_VALUE,
        UNKNOWN_NUMBER_VALUE,
        UNKNOWN_OBJECT_VALUE,
        UNKNOWN_STRING_VALUE,
    }
)


def policy_name(rule: Rule) -> str:
    """CrossGuard names allow letters, digits and '-': "S3.5" becomes "fsbp-s3-5", and
    "MLSTACK.IAM.1" becomes "mlstack-iam-1"."""
    name = rule.id.lower().replace(".", "-")
    return name if rule.framework == MLSTACK else f"fsbp-{name}"


def plain(value: Any) -> Any:
    """CrossGuard's props as plain data, its unknown-value sentinels as `UNKNOWN`.

    CrossGuard hands props behind a proxy that raises on the first unknown value read; the rules
    decide for themselves which unknown values they can judge without."""
    if isinstance(value, str):
        return UNKNOWN if value in _UNKNOWN_SENTINELS else value
    if isinstance(value, Mapping):
        target = _target(value)
        return {key: plain(target[key]) for key in target}
    if isinstance(value, Sequence):
        return [plain(item) for item in _target(value)]
    return value


def _target(proxy: Any) -> Any:
    try:
        return proxy["__target"]  # pulumi_policy's proxies hand out what they wrap
    except (KeyError, TypeError, IndexError):
        return proxy


class _Resource:
    """A CrossGuard resource with plain props, in the shape the rules read."""

    def __init__(self, resource_type: str, name: str, urn: str, props: Any) -> None:
        self.resource_type = resource_type
        self.name = name
        self.urn = urn
        self.props: Mapping[str, Any] = plain(props)


def _cannot_judge_yet(rule: Rule, waiting: NotKnownYetError) -> UnknownValueError:
    error = UnknownValueError(UNKNOWN_STRING_VALUE, [waiting.what])
    error.message = f"[{rule.id}] {waiting}"
    return error


def as_resource_policy(rule: Rule) -> ResourceValidationPolicy:
    """A resource rule as a mandatory resource-validation policy: it gates each resource."""

    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if args.resource_type != rule.resource_type:
            return
        resource = _Resource(args.resource_type, args.name, args.urn, args.props)
        try:
            problem = rule.judge(resource, StackIndex([resource]))
        except NotKnownYetError as waiting:
            raise _cannot_judge_yet(rule, waiting) from waiting
        if problem is not None:
            report_violation(f"[{rule.id}] {problem}", None)

    return ResourceValidationPolicy(
        name=policy_name(rule),
        description=rule.title,
        validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY,
        framework=PolicyComplianceFramework(name=rule.framework, reference=rule.id),
    )


def as_stack_policy(rule: Rule) -> StackValidationPolicy:
    """A stack rule as a mandatory stack-validation policy: it sees every resource, so it runs
    once they are all declared (after `pulumi up` has created them)."""

    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        index = StackIndex(
            _Resource(r.resource_type, r.name, r.urn, r.props) for r in args.resources
        )
        waiting: NotKnownYetError | None = None
        for resource in index.of_type(rule.resource_type):
            try:
                problem = rule.judge(resource, index)
            except NotKnownYetError as unknown:
                waiting = unknown
                continue
            if problem is not None:
                report_violation(f"[{rule.id}] {problem}", resource.urn)
        if waiting is not None:
            raise _cannot_judge_yet(rule, waiting) from waiting

    return StackValidationPolicy(
        name=policy_name(rule),
        description=f"{rule.title} (stack policy: it needs several resources)",
        validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY,
        framework=PolicyComplianceFramework(name=rule.framework, reference=rule.id),
    )


def policies() -> list[Any]:
    """Every rule as a CrossGuard policy of its kind."""
    return [
        as_resource_policy(rule) if rule.scope == "resource" else as_stack_policy(rule)
        for rule in all_rules()
    ]
