"""The form every policy rule takes, and how a set of them is evaluated over a stack.

A rule checks one resource type and may look at the rest of the stack (a bucket's policy is a
separate resource). Resources are seen as CrossGuard sees them: a type, a name, a URN and props
under their engine (camelCase) names. So the same rule runs over an offline run of the program
here and, through `infra.policy.crossguard`, inside `pulumi preview --policy-pack`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

FSBP = "AWS Foundational Security Best Practices"
MLSTACK = "mlstack"
"""The framework of rules no AWS control covers; their ids start with MLSTACK."""


class ResourceLike(Protocol):
    """What a rule may read of a resource; `pulumi_policy.PolicyResource` has the same shape."""

    @property
    def resource_type(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def urn(self) -> str: ...
    @property
    def props(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class Violation:
    """One resource that breaks one rule."""

    rule_id: str
    urn: str
    resource_name: str
    message: str

    def __str__(self) -> str:
        return f"[{self.rule_id}] {self.resource_name}: {self.message}"


class StackIndex:
    """The stack's resources, for rules that need to find what is attached to a resource."""

    def __init__(self, resources: Iterable[ResourceLike]) -> None:
        self.resources = list(resources)

    def of_type(self, resource_type: str) -> list[ResourceLike]:
        return [r for r in self.resources if r.resource_type == resource_type]

    def attached(self, resource_type: str, *, prop: str, value: Any) -> list[ResourceLike]:
        """Resources of `resource_type` whose `prop` refers to `value` (an id, name or ARN)."""
        if value is None:
            return []
        return [r for r in self.of_type(resource_type) if r.props.get(prop) == value]


Check = Callable[[ResourceLike, StackIndex], str | None]


@dataclass(frozen=True)
class Rule:
    """A policy: an id from the control it mirrors, the type it checks, and the check.

    `check` returns None when the resource complies, else what is wrong in one sentence.
    """

    id: str
    title: str
    resource_type: str
    check: Check
    framework: str = FSBP

    def evaluate(self, index: StackIndex) -> list[Violation]:
        violations = []
        for resource in index.of_type(self.resource_type):
            problem = self.check(resource, index)
            if problem is not None:
                violations.append(Violation(self.id, resource.urn, resource.name, problem))
        return violations


_RULES: dict[str, Rule] = {}


def rule(
    rule_id: str, title: str, resource_type: str, framework: str = FSBP
) -> Callable[[Check], Check]:
    """Register a check as a rule; ids are unique."""

    def register(check: Check) -> Check:
        if rule_id in _RULES:
            raise ValueError(f"policy rule {rule_id} is defined twice")
        _RULES[rule_id] = Rule(rule_id, title, resource_type, check, framework)
        return check

    return register


def all_rules() -> tuple[Rule, ...]:
    """Every rule, ordered by id."""
    from infra.policy import ec2, ecr, eks, iam, kms, logs, s3  # noqa: F401  (registers rules)

    return tuple(_RULES[rule_id] for rule_id in sorted(_RULES, key=_natural_order))


def _natural_order(rule_id: str) -> tuple[str, int]:
    # "S3.5" before "S3.12"
    prefix, _, number = rule_id.rpartition(".")
    return prefix, int(number) if number.isdigit() else 0


def evaluate(
    resources: Sequence[ResourceLike], rules: Sequence[Rule] | None = None
) -> list[Violation]:
    """Every violation of `rules` (default: all) in a stack's resources."""
    index = StackIndex(resources)
    return [v for r in (rules if rules is not None else all_rules()) for v in r.evaluate(index)]
