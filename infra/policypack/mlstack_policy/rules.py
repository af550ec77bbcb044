"""The forms a policy rule takes, and how a set of them is evaluated over a stack.

Resources are seen as CrossGuard sees them: a type, a name, a URN and props under their engine
(camelCase) names. So the same rule runs over an offline run of the program and, through
`mlstack_policy.crossguard`, inside `pulumi preview` and `pulumi up --policy-pack`.

A rule is one of two kinds, and the kind decides when it can stop a deployment:

- a *resource* rule judges one resource's own inputs. CrossGuard runs it on each resource before
  the resource is created or changed, so it blocks `pulumi up`, and `pulumi preview` of a new
  stack too as long as the inputs it reads do not wait on other resources' outputs;
- a *stack* rule needs several resources (a bucket and the separate resources that hold its
  settings). CrossGuard runs it once every resource has been declared: after `pulumi up` has
  created them, and in the preview of a new stack only as far as the references between the
  resources are known.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

FSBP = "AWS Foundational Security Best Practices"
MLSTACK = "mlstack"
"""The framework of rules no AWS control covers; their ids start with MLSTACK."""

Scope = Literal["resource", "stack"]


class Unknown:
    """A value that cannot be known yet: during a preview, an output of a resource not created."""

    _instance: Unknown | None = None

    def __new__(cls) -> Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<unknown until applied>"

    def __copy__(self) -> Unknown:
        return self

    def __deepcopy__(self, _memo: object) -> Unknown:
        return self


UNKNOWN = Unknown()


class NotKnownYetError(Exception):
    """A rule needed a value that is unknown until other resources exist; it cannot judge yet."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} is not known until the resources it refers to exist")
        self.what = what


def known(value: Any, what: str) -> Any:
    """`value`, or NotKnownYetError when it is still unknown."""
    if value is UNKNOWN:
        raise NotKnownYetError(what)
    return value


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
        """Resources of `resource_type` whose `prop` refers to `value` (an id, name or ARN).

        NotKnownYetError while any of them refers to something not created yet: which resource it
        is attached to cannot be told before then."""
        candidates = self.of_type(resource_type)
        for candidate in candidates:
            known(candidate.props.get(prop), f"the {prop} of {candidate.name}")
        known(value, f"the {prop} that {resource_type} resources refer to")
        if value is None:
            return []
        return [r for r in candidates if r.props.get(prop) == value]


ResourceCheck = Callable[[ResourceLike], "str | None"]
StackCheck = Callable[[ResourceLike, StackIndex], "str | None"]


@dataclass(frozen=True)
class Rule:
    """A policy: an id from the control it mirrors, the type it checks, and the check.

    The check returns None when the resource complies, else what is wrong in one sentence.
    """

    id: str
    title: str
    resource_type: str
    scope: Scope
    check: Callable[..., str | None]
    framework: str = FSBP

    def judge(self, resource: ResourceLike, index: StackIndex) -> str | None:
        """What is wrong with `resource`; NotKnownYetError when the rule cannot tell yet."""
        if self.scope == "resource":
            return self.check(resource)
        return self.check(resource, index)

    def evaluate(self, index: StackIndex) -> list[Violation]:
        violations = []
        for resource in index.of_type(self.resource_type):
            problem = self.judge(resource, index)
            if problem is not None:
                violations.append(Violation(self.id, resource.urn, resource.name, problem))
        return violations


_RULES: dict[str, Rule] = {}


def _register(rule: Rule) -> None:
    if rule.id in _RULES:
        raise ValueError(f"policy rule {rule.id} is defined twice")
    _RULES[rule.id] = rule


CheckT = TypeVar("CheckT", ResourceCheck, StackCheck)


def _registering(
    rule_id: str, title: str, resource_type: str, scope: Scope, framework: str
) -> Callable[[CheckT], CheckT]:
    def register(check: CheckT) -> CheckT:
        _register(Rule(rule_id, title, resource_type, scope, check, framework))
        return check

    return register


def resource_rule(
    rule_id: str, title: str, resource_type: str, framework: str = FSBP
) -> Callable[[ResourceCheck], ResourceCheck]:
    """Register a check of one resource's own inputs."""
    return _registering(rule_id, title, resource_type, "resource", framework)


def stack_rule(
    rule_id: str, title: str, resource_type: str, framework: str = FSBP
) -> Callable[[StackCheck], StackCheck]:
    """Register a check that looks at other resources of the stack too."""
    return _registering(rule_id, title, resource_type, "stack", framework)


def all_rules() -> tuple[Rule, ...]:
    """Every rule, ordered by id."""
    from mlstack_policy import (  # noqa: F401
        ec2,
        ecr,
        eks,
        iam,
        kms,
        kubernetes,
        logs,
        s3,
        sagemaker,
    )
    # (importing a module registers its rules)

    return tuple(_RULES[rule_id] for rule_id in sorted(_RULES, key=_natural_order))


def _natural_order(rule_id: str) -> tuple[str, int]:
    # "S3.5" before "S3.12"
    prefix, _, number = rule_id.rpartition(".")
    return prefix, int(number) if number.isdigit() else 0


def evaluate(
    resources: Sequence[ResourceLike], rules: Sequence[Rule] | None = None
) -> list[Violation]:
    """Every violation of `rules` (default: all) in a stack whose values are all known."""
    index = StackIndex(resources)
    return [v for r in (rules if rules is not None else all_rules()) for v in r.evaluate(index)]


@dataclass(frozen=True)
class Undecided:
    """A rule that could not judge a resource because a value it needs is not known yet."""

    rule_id: str
    resource_name: str
    reason: str


def evaluate_preview(
    resources: Sequence[ResourceLike], rules: Sequence[Rule] | None = None
) -> tuple[list[Violation], list[Undecided]]:
    """Like `evaluate` for a preview, where outputs of resources not yet created are unknown:
    the violations found, and the (rule, resource) pairs that must wait for `pulumi up`."""
    index = StackIndex(resources)
    violations: list[Violation] = []
    undecided: list[Undecided] = []
    for rule in rules if rules is not None else all_rules():
        for resource in index.of_type(rule.resource_type):
            try:
                problem = rule.judge(resource, index)
            except NotKnownYetError as waiting:
                undecided.append(Undecided(rule.id, resource.name, str(waiting)))
                continue
            if problem is not None:
                violations.append(Violation(rule.id, resource.urn, resource.name, problem))
    return violations, undecided
