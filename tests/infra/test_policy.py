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


Blame = Callable[[Resources, RecordedResource], str]


def _owner(owner_type: str, prop: str, key: str) -> Blame:
    """Blame the resource of `owner_type` whose `key` the broken resource's `prop` refers to."""

    def blame(resources: Resources, target: RecordedResource) -> str:
        return next(
            r.name
            for r in resources
            if r.resource_type == owner_type and r.props.get(key) == target.props[prop]
        )

    return blame


def _itself(_resources: Resources, target: RecordedResource) -> str:
    return target.name


BUCKET_OF = _owner("aws:s3/bucket:Bucket", "bucket", "bucket")
VPC_OF = _owner("aws:ec2/vpc:Vpc", "vpcId", "id")
REPOSITORY_OF = _owner("aws:ecr/repository:Repository", "repository", "name")


def _change(
    resource_type: str, edit: Callable[[dict[str, Any]], None], blame: Blame = _itself
) -> Breakage:
    """Edit the props of the first resource of a type; `blame` names who the rule reports."""

    def breakage(resources: Resources) -> tuple[Resources, str]:
        target = _first(resources, resource_type)
        props = json.loads(json.dumps(target.props))
        edit(props)
        changed = dataclasses.replace(target, props=props)
        return [changed if r is target else r for r in resources], blame(resources, target)

    return breakage


def _remove(resource_type: str, blame: Blame) -> Breakage:
    def breakage(resources: Resources) -> tuple[Resources, str]:
        target = _first(resources, resource_type)
        return [r for r in resources if r is not target], blame(resources, target)

    return breakage


def _set(path: tuple[str, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(props: dict[str, Any]) -> None:
        node: Any = props
        for step in path[:-1]:
            node = node[int(step)] if isinstance(node, list) else node[step]
        node[path[-1]] = value

    return edit


def _document_edit(
    prop: str, edit: Callable[[dict[str, Any]], None]
) -> Callable[[dict[str, Any]], None]:
    def apply(props: dict[str, Any]) -> None:
        document = json.loads(props[prop])
        edit(document)
        props[prop] = json.dumps(document)

    return apply


def _drop_tls_statement(document: dict[str, Any]) -> None:
    document["Statement"] = [
        s for s in document["Statement"] if "aws:SecureTransport" not in json.dumps(s)
    ]


def _open_key_to_everyone(document: dict[str, Any]) -> None:
    document["Statement"].append(
        {"Sid": "Anyone", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:Decrypt"}
    )


def _add_statement(action: str, resource: str) -> Callable[[dict[str, Any]], None]:
    def edit(document: dict[str, Any]) -> None:
        document["Statement"].append({"Effect": "Allow", "Action": action, "Resource": resource})

    return edit


def _trust_any_service_account(document: dict[str, Any]) -> None:
    condition = document["Statement"][0]["Condition"]
    subject = next(k for k in condition["StringEquals"] if k.endswith(":sub"))
    del condition["StringEquals"][subject]
    condition["StringLike"] = {subject: "system:serviceaccount:mlstack:*"}


def _disable_rules(props: dict[str, Any]) -> None:
    for lifecycle_rule in props["rules"]:
        lifecycle_rule["status"] = "Disabled"


def _allow_ingress(props: dict[str, Any]) -> None:
    props["ingress"] = [{"protocol": "-1", "fromPort": 0, "toPort": 0, "cidrBlocks": ["0.0.0.0/0"]}]


ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
IRSA_ROLE = "aws:iam/role:Role"

# One way to break each rule, applied to the prod stack's real resources.
BREAKAGES: Mapping[str, Breakage] = {
    "S3.5": _change(
        "aws:s3/bucketPolicy:BucketPolicy", _document_edit("policy", _drop_tls_statement), BUCKET_OF
    ),
    "S3.8": _change(
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        _set(("restrictPublicBuckets",), False),
        BUCKET_OF,
    ),
    "S3.12": _change(
        "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
        _set(("rule", "objectOwnership"), "ObjectWriter"),
        BUCKET_OF,
    ),
    "S3.13": _change(
        "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
        _disable_rules,
        BUCKET_OF,
    ),
    "S3.14": _change(
        "aws:s3/bucketVersioning:BucketVersioning",
        _set(("versioningConfiguration", "status"), "Suspended"),
        BUCKET_OF,
    ),
    "S3.17": _change(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        _set(("rules", "0", "applyServerSideEncryptionByDefault", "sseAlgorithm"), "AES256"),
        BUCKET_OF,
    ),
    "KMS.4": _change("aws:kms/key:Key", _set(("enableKeyRotation",), False)),
    "KMS.5": _change("aws:kms/key:Key", _document_edit("policy", _open_key_to_everyone)),
    "EKS.1": _change("aws:eks/cluster:Cluster", _set(("vpcConfig", "endpointPublicAccess"), True)),
    "EKS.2": _change("aws:eks/cluster:Cluster", _set(("version",), "1.24")),
    "EKS.3": _change("aws:eks/cluster:Cluster", _set(("encryptionConfig", "resources"), [])),
    "EKS.8": _change(
        "aws:eks/cluster:Cluster", _set(("enabledClusterLogTypes",), ["api", "authenticator"])
    ),
    "ECR.1": _change(
        "aws:ecr/repository:Repository", _set(("imageScanningConfiguration", "scanOnPush"), False)
    ),
    "ECR.2": _change("aws:ecr/repository:Repository", _set(("imageTagMutability",), "MUTABLE")),
    "ECR.3": _remove("aws:ecr/lifecyclePolicy:LifecyclePolicy", REPOSITORY_OF),
    "ECR.5": _change(
        "aws:ecr/repository:Repository",
        _set(("encryptionConfigurations", "0", "encryptionType"), "AES256"),
    ),
    "EC2.2": _change("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup", _allow_ingress, VPC_OF),
    "EC2.6": _remove("aws:ec2/flowLog:FlowLog", VPC_OF),
    "EC2.170": _change(
        "aws:ec2/launchTemplate:LaunchTemplate", _set(("metadataOptions", "httpTokens"), "optional")
    ),
    "IAM.21": _change(
        ROLE_POLICY, _document_edit("policy", _add_statement("s3:*", "arn:aws:s3:::x"))
    ),
    "MLSTACK.IAM.1": _change(
        ROLE_POLICY, _document_edit("policy", _add_statement("s3:PutObject", "*"))
    ),
    "MLSTACK.IAM.2": _change(
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
        _set(("policyArn",), "arn:aws:iam::aws:policy/AmazonS3FullAccess"),
    ),
    "MLSTACK.IAM.3": lambda resources: _change(
        IRSA_ROLE, _document_edit("assumeRolePolicy", _trust_any_service_account)
    )(_irsa_roles_first(resources)),
    "MLSTACK.LOGS.1": _change("aws:cloudwatch/logGroup:LogGroup", _set(("retentionInDays",), 0)),
}
# Settings that live in their own resources: leaving the resource out must fire the rule too.
MISSING_SETTINGS: Mapping[str, Breakage] = {
    "S3.5": _remove("aws:s3/bucketPolicy:BucketPolicy", BUCKET_OF),
    "S3.8": _remove("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", BUCKET_OF),
    "S3.12": _remove("aws:s3/bucketOwnershipControls:BucketOwnershipControls", BUCKET_OF),
    "S3.13": _remove("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", BUCKET_OF),
    "S3.14": _remove("aws:s3/bucketVersioning:BucketVersioning", BUCKET_OF),
    "S3.17": _remove(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        BUCKET_OF,
    ),
    "EC2.2": _remove("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup", VPC_OF),
}


def _irsa_roles_first(resources: Resources) -> Resources:
    """Put a web-identity role first, so `_change` edits a role that has an OIDC trust."""
    irsa = [
        r for r in resources if "AssumeRoleWithWebIdentity" in str(r.props.get("assumeRolePolicy"))
    ]
    return irsa[:1] + [r for r in resources if r is not irsa[0]]


def test_every_rule_has_a_test_that_makes_it_fire() -> None:
    assert set(BREAKAGES) == {rule.id for rule in all_rules()}


@pytest.mark.parametrize("rule_id", list(BREAKAGES))
def test_a_rule_fires_on_exactly_the_resource_that_breaks_it(
    stack_runs: dict[str, ProgramRun], rule_id: str
) -> None:
    broken, blamed = BREAKAGES[rule_id](list(stack_runs["prod"].resources))
    violations = evaluate(broken)
    assert [(v.rule_id, v.resource_name) for v in violations] == [(rule_id, blamed)]
    assert violations[0].message


@pytest.mark.parametrize("rule_id", list(MISSING_SETTINGS))
def test_a_rule_fires_when_the_resource_holding_its_setting_is_missing(
    stack_runs: dict[str, ProgramRun], rule_id: str
) -> None:
    broken, blamed = MISSING_SETTINGS[rule_id](list(stack_runs["prod"].resources))
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
    broken, _ = BREAKAGES["S3.8"](list(stack_runs["prod"].resources))
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
