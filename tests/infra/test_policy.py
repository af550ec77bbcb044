"""Policy rules: every stack passes them all, and each one fires on a resource that breaks it."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    StackValidationArgs,
)

from infra.offline.mocks import RecordedResource
from infra.offline.runner import ProgramRun
from infra.policy.crossguard import policy_name, stack_policies
from infra.policy.rules import Violation, all_rules, evaluate

from .conftest import STACKS

Resources = list[RecordedResource]
Breakage = Callable[[Resources], tuple[Resources, str]]


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_passes_every_rule(stack_runs: dict[str, ProgramRun], stack: str) -> None:
    assert evaluate(stack_runs[stack].resources) == []


def _first(resources: Resources, resource_type: str) -> RecordedResource:
    return next(r for r in resources if r.resource_type == resource_type)


def _bucket_of(resources: Resources, attachment: RecordedResource) -> str:
    return next(
        r.name
        for r in resources
        if r.resource_type == "aws:s3/bucket:Bucket"
        and r.props.get("bucket") == attachment.props["bucket"]
    )


def _change(
    resource_type: str, edit: Callable[[dict[str, Any]], None], blamed: str = ""
) -> Breakage:
    """Edit the props of the first resource of a type; the rule blames that resource's bucket."""

    def breakage(resources: Resources) -> tuple[Resources, str]:
        target = _first(resources, resource_type)
        props = json.loads(json.dumps(target.props))
        edit(props)
        changed = dataclasses.replace(target, props=props)
        name = target.name if blamed == "self" else _bucket_of(resources, target)
        return [changed if r is target else r for r in resources], name

    return breakage


def _remove(resource_type: str) -> Breakage:
    def breakage(resources: Resources) -> tuple[Resources, str]:
        target = _first(resources, resource_type)
        return [r for r in resources if r is not target], _bucket_of(resources, target)

    return breakage


def _set(path: tuple[str, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(props: dict[str, Any]) -> None:
        node: Any = props
        for step in path[:-1]:
            node = node[int(step)] if isinstance(node, list) else node[step]
        node[path[-1]] = value

    return edit


def _policy_edit(edit: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def apply(props: dict[str, Any]) -> None:
        document = json.loads(props["policy"])
        edit(document)
        props["policy"] = json.dumps(document)

    return apply


def _drop_tls_statement(document: dict[str, Any]) -> None:
    document["Statement"] = [
        s for s in document["Statement"] if "aws:SecureTransport" not in json.dumps(s)
    ]


def _open_key_to_everyone(document: dict[str, Any]) -> None:
    document["Statement"].append(
        {"Sid": "Anyone", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:Decrypt"}
    )


def _disable_rules(rules: list[dict[str, Any]]) -> None:
    for lifecycle_rule in rules:
        lifecycle_rule["status"] = "Disabled"


# One way to break each rule, applied to the dev stack's real resources.
BREAKAGES: Mapping[str, Breakage] = {
    "S3.5": _change("aws:s3/bucketPolicy:BucketPolicy", _policy_edit(_drop_tls_statement)),
    "S3.8": _change(
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        _set(("restrictPublicBuckets",), False),
    ),
    "S3.12": _change(
        "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
        _set(("rule", "objectOwnership"), "ObjectWriter"),
    ),
    "S3.13": _change(
        "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
        lambda props: _disable_rules(props["rules"]),
    ),
    "S3.14": _change(
        "aws:s3/bucketVersioning:BucketVersioning",
        _set(("versioningConfiguration", "status"), "Suspended"),
    ),
    "S3.17": _change(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        _set(("rules", "0", "applyServerSideEncryptionByDefault", "sseAlgorithm"), "AES256"),
    ),
    "KMS.4": _change("aws:kms/key:Key", _set(("enableKeyRotation",), False), blamed="self"),
    "KMS.5": _change("aws:kms/key:Key", _policy_edit(_open_key_to_everyone), blamed="self"),
}
MISSING_ATTACHMENTS: Mapping[str, str] = {
    "S3.5": "aws:s3/bucketPolicy:BucketPolicy",
    "S3.8": "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
    "S3.12": "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
    "S3.13": "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
    "S3.14": "aws:s3/bucketVersioning:BucketVersioning",
    "S3.17": (
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    ),
}


def test_every_rule_has_a_test_that_makes_it_fire() -> None:
    assert set(BREAKAGES) == {rule.id for rule in all_rules()}


@pytest.mark.parametrize("rule_id", list(BREAKAGES))
def test_a_rule_fires_on_exactly_the_resource_that_breaks_it(
    stack_runs: dict[str, ProgramRun], rule_id: str
) -> None:
    broken, blamed = BREAKAGES[rule_id](list(stack_runs["dev"].resources))
    violations = evaluate(broken)
    assert [(v.rule_id, v.resource_name) for v in violations] == [(rule_id, blamed)]
    assert violations[0].message


@pytest.mark.parametrize("rule_id", list(MISSING_ATTACHMENTS))
def test_a_bucket_rule_fires_when_its_setting_is_missing_altogether(
    stack_runs: dict[str, ProgramRun], rule_id: str
) -> None:
    broken, blamed = _remove(MISSING_ATTACHMENTS[rule_id])(list(stack_runs["dev"].resources))
    assert [(v.rule_id, v.resource_name) for v in evaluate(broken)] == [(rule_id, blamed)]


def _as_policy_resource(resource: RecordedResource) -> PolicyResource:
    return PolicyResource(
        resource_type=resource.resource_type,
        props=resource.props,
        urn=resource.urn,
        name=resource.name,
        opts=PolicyResourceOptions(
            protect=resource.protect,
            ignore_changes=[],
            delete_before_replace=None,
            aliases=[],
            additional_secret_outputs=[],
            custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
        ),
        provider=None,
        parent=None,
        dependencies=[],
        property_dependencies={},
    )


def test_the_crossguard_pack_reports_what_the_offline_rules_report(
    stack_runs: dict[str, ProgramRun],
) -> None:
    broken, _ = BREAKAGES["S3.8"](list(stack_runs["dev"].resources))
    args = StackValidationArgs(resources=[_as_policy_resource(r) for r in broken])
    reported: list[tuple[str, str, str | None]] = []
    for policy in stack_policies():
        policy.validate(
            args, lambda message, urn=None, p=policy: reported.append((p.name, message, urn))
        )
    expected: list[Violation] = evaluate(broken)
    assert [(name, urn) for name, _, urn in reported] == [
        (policy_name(next(r for r in all_rules() if r.id == v.rule_id)), v.urn) for v in expected
    ]
    assert reported[0][0] == "fsbp-s3-8"
    assert reported[0][1].startswith("[S3.8] public access block leaves restrictPublicBuckets off")
