"""The rules as a Pulumi CrossGuard policy pack, for `pulumi preview --policy-pack` with the CLI."""

from __future__ import annotations

from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyComplianceFramework,
    ReportViolation,
    StackValidationArgs,
    StackValidationPolicy,
)

from infra.policy.rules import MLSTACK, Rule, StackIndex, all_rules


def policy_name(rule: Rule) -> str:
    """CrossGuard names allow letters, digits and '-': "S3.5" becomes "fsbp-s3-5", and
    "MLSTACK.IAM.1" becomes "mlstack-iam-1"."""
    name = rule.id.lower().replace(".", "-")
    return name if rule.framework == MLSTACK else f"fsbp-{name}"


def as_stack_policy(rule: Rule) -> StackValidationPolicy:
    """One rule as a mandatory stack validation policy (it may look at related resources)."""

    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        for violation in rule.evaluate(StackIndex(args.resources)):
            report_violation(f"[{rule.id}] {violation.message}", violation.urn)

    return StackValidationPolicy(
        name=policy_name(rule),
        description=rule.title,
        validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY,
        framework=PolicyComplianceFramework(name=rule.framework, reference=rule.id),
    )


def stack_policies() -> list[Any]:
    """Every rule, as CrossGuard policies."""
    return [as_stack_policy(rule) for rule in all_rules()]
