"""Policy rules: every stack passes them all, and each one fires on a resource that breaks it."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import subprocess
import sys
from collections.abc import Callable, Mapping
from datetime import date
from typing import Any

import pytest
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError, unknown_checking_proxy

from infra.offline.mocks import RecordedResource
from infra.offline.registry import offline_registry
from infra.offline.runner import ProgramRun, run_program
from infra.project.paths import PROJECT_ROOT
from mlstack_policy import eks
from mlstack_policy.crossguard import policies, policy_name
from mlstack_policy.eks_support import EKS_RELEASE_CALENDAR, support_problem
from mlstack_policy.rules import UNKNOWN, Rule, all_rules, evaluate, evaluate_preview

from .conftest import STACKS

Resources = list[RecordedResource]
Breakage = Callable[[Resources], tuple[Resources, str]]


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_passes_every_rule(stack_runs: dict[str, ProgramRun], stack: str) -> None:
    assert evaluate(stack_runs[stack].resources) == []


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_serving_a_model_passes_every_rule(
    served_runs: dict[str, ProgramRun], stack: str
) -> None:
    assert evaluate(served_runs[stack].resources) == []


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
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
CONTAINER = ("spec", "template", "spec", "containers", "0")
SM_CONFIGURATION = "aws:sagemaker/endpointConfiguration:EndpointConfiguration"
SERVING_DEPLOYMENT = "kubernetes-deployment-serving-demo"
JOB_CONTAINER = ("spec", "jobTemplate", *CONTAINER)
CRON_JOB = "kubernetes:batch/v1:CronJob"
DAEMON_SET = "kubernetes:apps/v1:DaemonSet"
VPC_OF = _owner("aws:ec2/vpc:Vpc", "vpcId", "id")
REPOSITORY_OF = _owner("aws:ecr/repository:Repository", "repository", "name")


def _change(
    resource_type: str, edit: Callable[[dict[str, Any]], None], blame: Blame = _itself
) -> Breakage:
    """Edit the props of the first resource of a type; `blame` names who the rule reports."""

    def breakage(resources: Resources) -> tuple[Resources, str]:
        target = _first(resources, resource_type)
        props = copy.deepcopy(dict(target.props))
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


def _trust_any_github_branch(document: dict[str, Any]) -> None:
    document["Statement"] = ANY_GITHUB_BRANCH["Statement"]


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
    "MLSTACK.IAM.4": _change(
        IRSA_ROLE, _document_edit("assumeRolePolicy", _trust_any_github_branch)
    ),
    "MLSTACK.LOGS.1": _change("aws:cloudwatch/logGroup:LogGroup", _set(("retentionInDays",), 0)),
    "MLSTACK.K8S.1": _change(
        DEPLOYMENT, _set((*CONTAINER, "securityContext", "readOnlyRootFilesystem"), False)
    ),
    "MLSTACK.K8S.2": _change(DEPLOYMENT, _set((*CONTAINER, "readinessProbe"), None)),
    "MLSTACK.K8S.3": _change(DEPLOYMENT, _set((*CONTAINER, "image"), "mlstack-serving:latest")),
    "MLSTACK.K8S.5": _change(
        CRON_JOB, _set((*JOB_CONTAINER, "securityContext", "allowPrivilegeEscalation"), True)
    ),
    "MLSTACK.K8S.6": _change(DAEMON_SET, _set((*CONTAINER, "securityContext", "privileged"), True)),
    "MLSTACK.SM.1": _change(SM_CONFIGURATION, _set(("kmsKeyArn",), None)),
    "MLSTACK.SM.2": _change(
        "aws:sagemaker/endpoint:Endpoint",
        _set(("deploymentConfig", "autoRollbackConfiguration", "alarms"), []),
    ),
    "MLSTACK.CW.1": _change(
        "aws:cloudwatch/metricAlarm:MetricAlarm",
        _set(("dimensions",), {"EndpointName": "demo-staging"}),
    ),
    "MLSTACK.K8S.7": lambda resources: _change(
        "aws:eks/addon:Addon", _set(("configurationValues",), None)
    )(_vpc_cni_first(resources)),
    "MLSTACK.K8S.4": _change(
        "kubernetes:policy/v1:PodDisruptionBudget",
        _set(("spec", "selector", "matchLabels", "app.kubernetes.io/instance"), "other"),
        _owner(DEPLOYMENT, "metadata", "metadata"),
    ),
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
    "MLSTACK.K8S.4": lambda resources: (
        [
            r
            for r in resources
            if r.name != SERVING_DEPLOYMENT.replace("deployment", "networkpolicy")
        ],
        SERVING_DEPLOYMENT,
    ),
}


def _vpc_cni_first(resources: Resources) -> Resources:
    [cni] = [r for r in resources if r.props.get("addonName") == "vpc-cni"]
    return [cni] + [r for r in resources if r is not cni]


def _irsa_roles_first(resources: Resources) -> Resources:
    """Put a web-identity role first, so `_change` edits a role that has an OIDC trust."""
    irsa = [
        r
        for r in resources
        if "AssumeRoleWithWebIdentity" in str(r.props.get("assumeRolePolicy"))
        and "token.actions.githubusercontent.com" not in str(r.props.get("assumeRolePolicy"))
    ]
    return irsa[:1] + [r for r in resources if r is not irsa[0]]


def test_every_rule_has_a_test_that_makes_it_fire() -> None:
    assert set(BREAKAGES) == {rule.id for rule in all_rules()}


@pytest.mark.parametrize("rule_id", list(BREAKAGES))
def test_a_rule_fires_on_exactly_the_resource_that_breaks_it(
    served_runs: dict[str, ProgramRun], rule_id: str
) -> None:
    broken, blamed = BREAKAGES[rule_id](list(served_runs["staging"].resources))
    violations = evaluate(broken)
    assert [(v.rule_id, v.resource_name) for v in violations] == [(rule_id, blamed)]
    assert violations[0].message


@pytest.mark.parametrize("rule_id", list(MISSING_SETTINGS))
def test_a_rule_fires_when_the_resource_holding_its_setting_is_missing(
    served_runs: dict[str, ProgramRun], rule_id: str
) -> None:
    broken, blamed = MISSING_SETTINGS[rule_id](list(served_runs["staging"].resources))
    assert [(v.rule_id, v.resource_name) for v in evaluate(broken)] == [(rule_id, blamed)]


def _break_alarm(
    resources: Resources, name: str, edit: Callable[[dict[str, Any]], None]
) -> tuple[Resources, str]:
    """Like _change, for the alarm of that name."""
    target = next(
        r for r in resources if r.props.get("name") == name and "metricAlarm" in r.resource_type
    )
    props = copy.deepcopy(dict(target.props))
    edit(props)
    changed = dataclasses.replace(target, props=props)
    return [changed if r is target else r for r in resources], target.name


@pytest.mark.parametrize(
    ("alarm", "edit", "message"),
    [
        (
            "demo-staging-drift",
            _set(
                ("metricQueries", "0", "expression"),
                "SELECT MAX(PopulationStabilityIndex) "
                "FROM \"mlstack/Drift\" WHERE EndpointName = 'demo-other'",
            ),
            "queries drift of demo-other, for which no declared drift job publishes",
        ),
        (
            "mlstack-staging-serving-demo-replicas",
            _set(("dimensions", "Service"), "serving-other"),
            "watches Service mlstack/serving-other on mlstack-staging, which the stack does not "
            "declare",
        ),
        (
            "mlstack-staging-serving-demo-replicas",
            _set(("dimensions",), {"ClusterName": "mlstack-staging"}),
            "without ClusterName, Namespace and Service dimensions",
        ),
    ],
    ids=["drift of an endpoint nobody checks", "another service", "no service"],
)
def test_drift_and_replica_alarms_must_watch_what_the_stack_declares(
    served_runs: dict[str, ProgramRun],
    alarm: str,
    edit: Callable[[dict[str, Any]], None],
    message: str,
) -> None:
    resources = list(served_runs["staging"].resources)
    assert evaluate(resources) == []
    broken, blamed = _break_alarm(resources, alarm, edit)
    [violation] = evaluate(broken)
    assert (violation.rule_id, violation.resource_name) == ("MLSTACK.CW.1", blamed)
    assert message in violation.message


# In the preview of a new stack, these rules read documents built from ARNs of resources not yet
# created, so they can only judge during `pulumi up` (still before the resource is created).
# MLSTACK.K8S.3 and K8S.5 read the images' digests, known once `pulumi up` has built them.
JUDGED_AT_UP = {
    "IAM.21", "MLSTACK.IAM.1", "MLSTACK.IAM.3", "MLSTACK.IAM.4", "MLSTACK.K8S.3", "MLSTACK.K8S.5"
}  # fmt: skip
# A stack rule whose references are labels, known before anything exists.
STACK_RULES_JUDGED_AT_PREVIEW = {"MLSTACK.K8S.4"}
STACK_RULES = {
    "S3.5", "S3.8", "S3.12", "S3.13", "S3.14", "S3.17", "EC2.2", "EC2.6", "ECR.3", "MLSTACK.K8S.4",
    "MLSTACK.CW.1",
}  # fmt: skip


@pytest.fixture(scope="module")
def preview() -> ProgramRun:
    """staging (prod's shape, with a GPU group) serving a model, as `pulumi preview` of a
    brand-new stack sees it: every id and ARN unknown, and the image digests too (images are
    built on `pulumi up` only)."""
    with offline_registry("staging", {"demo": 1}, "eu-west-1"):
        return run_program(
            "staging", preview=True, overrides={"mlstack:servingModelVersions": ["demo=1"]}
        )


def test_rules_that_need_several_resources_are_stack_rules_and_the_rest_resource_rules() -> None:
    scopes = {rule.id: rule.scope for rule in all_rules()}
    assert {rule_id for rule_id, scope in scopes.items() if scope == "stack"} == STACK_RULES


def test_a_preview_of_a_new_stack_really_has_unknown_references(preview: ProgramRun) -> None:
    policy = next(
        r for r in preview.resources if r.resource_type == "aws:s3/bucketPolicy:BucketPolicy"
    )
    assert policy.props["bucket"] is UNKNOWN
    cluster = next(r for r in preview.resources if r.resource_type == "aws:eks/cluster:Cluster")
    assert cluster.props["encryptionConfig"]["provider"]["keyArn"] is UNKNOWN


def test_the_preview_of_a_new_stack_passes_and_says_which_rules_wait(preview: ProgramRun) -> None:
    violations, undecided = evaluate_preview(preview.resources)
    assert violations == []
    assert {u.rule_id for u in undecided} == JUDGED_AT_UP | (
        STACK_RULES - STACK_RULES_JUDGED_AT_PREVIEW
    )


def _known_document(prop: str, document: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    return _set((prop,), json.dumps(document))


def _allow(action: str, resource: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": action, "Resource": resource}],
    }


WILDCARD = _allow("s3:*", "arn:aws:s3:::x")
WRITE_ANYWHERE = _allow("s3:PutObject", "*")
ANY_SERVICE_ACCOUNT = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/x"},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringLike": {"x:sub": "system:serviceaccount:mlstack:*"}},
        }
    ],
}
ANY_GITHUB_BRANCH = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {
                "Federated": "arn:aws:iam::123456789012:oidc-provider/"
                "token.actions.githubusercontent.com"
            },
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {
                "StringEquals": {"token.actions.githubusercontent.com:aud": "sts.amazonaws.com"},
                "StringLike": {"token.actions.githubusercontent.com:sub": "repo:example-org/*"},
            },
        }
    ],
}
# In a preview the documents above are unknown, so the breakage sets a known, broken document on
# a resource whose other inputs (the role it belongs to) are still unknown.
PREVIEW_BREAKAGES: Mapping[str, Breakage] = {
    **{rule.id: BREAKAGES[rule.id] for rule in all_rules() if rule.scope == "resource"},
    "IAM.21": _change(ROLE_POLICY, _known_document("policy", WILDCARD)),
    "MLSTACK.IAM.1": _change(ROLE_POLICY, _known_document("policy", WRITE_ANYWHERE)),
    "MLSTACK.IAM.3": _change(IRSA_ROLE, _known_document("assumeRolePolicy", ANY_SERVICE_ACCOUNT)),
    "MLSTACK.IAM.4": _change(IRSA_ROLE, _known_document("assumeRolePolicy", ANY_GITHUB_BRANCH)),
}


@pytest.mark.parametrize("rule_id", sorted(PREVIEW_BREAKAGES))
def test_a_resource_rule_fires_in_the_preview_of_a_new_stack(
    preview: ProgramRun, rule_id: str
) -> None:
    broken, blamed = PREVIEW_BREAKAGES[rule_id](list(preview.resources))
    violations, _ = evaluate_preview(broken)
    assert [(v.rule_id, v.resource_name) for v in violations] == [(rule_id, blamed)]


def _rule(rule_id: str) -> Rule:
    return next(rule for rule in all_rules() if rule.id == rule_id)


def _wire(value: Any) -> Any:
    """Props as the engine hands them to CrossGuard: unknowns as its sentinel strings."""
    if value is UNKNOWN:
        return UNKNOWN_STRING_VALUE
    if isinstance(value, Mapping):
        return {key: _wire(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_wire(item) for item in value]
    return value


def _options(resource: RecordedResource) -> PolicyResourceOptions:
    return PolicyResourceOptions(
        protect=resource.protect,
        ignore_changes=[],
        delete_before_replace=None,
        aliases=[],
        additional_secret_outputs=[],
        custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
    )


def _as_policy_resource(resource: RecordedResource) -> PolicyResource:
    return PolicyResource(
        resource_type=resource.resource_type,
        props=unknown_checking_proxy(_wire(resource.props)),
        urn=resource.urn,
        name=resource.name,
        opts=_options(resource),
        provider=None,
        parent=None,
        dependencies=[],
        property_dependencies={},
    )


def _recorder(
    reported: list[tuple[str, str]],
    policy: str,
    resource: str | None,
    by_urn: Mapping[str, str] | None = None,
) -> Callable[..., None]:
    """A `report_violation` that notes (policy, resource name); stack policies pass the URN."""

    def report(_message: str, urn: str | None = None) -> None:
        name = resource if resource is not None else (by_urn or {})[str(urn)]
        reported.append((policy, name))

    return report


def _crossguard_verdicts(resources: Resources) -> list[tuple[str, str]]:
    """(policy, resource name) for every violation the CrossGuard policies report, running each
    as the analyzer does: resource policies once per resource, stack policies once. A policy
    that raises UnknownValueError gives the analyzer's advisory note, not a verdict."""
    by_urn = {r.urn: r.name for r in resources}
    reported: list[tuple[str, str]] = []
    for policy in policies():
        if isinstance(policy, ResourceValidationPolicy):
            for resource in resources:
                args = ResourceValidationArgs(
                    resource.resource_type,
                    unknown_checking_proxy(_wire(resource.props)),
                    resource.urn,
                    resource.name,
                    _options(resource),
                    None,
                )
                with contextlib.suppress(UnknownValueError):
                    policy.validate(args, _recorder(reported, policy.name, resource.name))
        else:
            assert isinstance(policy, StackValidationPolicy)
            with contextlib.suppress(UnknownValueError):
                policy.validate(
                    StackValidationArgs(resources=[_as_policy_resource(r) for r in resources]),
                    _recorder(reported, policy.name, None, by_urn),
                )
    return reported


def test_each_rule_becomes_a_crossguard_policy_of_its_kind() -> None:
    kinds = {policy.name: type(policy) for policy in policies()}
    for rule in all_rules():
        expected = ResourceValidationPolicy if rule.scope == "resource" else StackValidationPolicy
        assert kinds[policy_name(rule)] is expected, rule.id


@pytest.mark.parametrize("rule_id", ["S3.8", "KMS.5", "EKS.1", "MLSTACK.IAM.2"])
def test_the_crossguard_pack_reports_what_the_offline_rules_report(
    stack_runs: dict[str, ProgramRun], rule_id: str
) -> None:
    broken, blamed = BREAKAGES[rule_id](list(stack_runs["prod"].resources))
    assert _crossguard_verdicts(broken) == [(policy_name(_rule(rule_id)), blamed)]


@pytest.mark.parametrize("rule_id", ["KMS.4", "EKS.2", "ECR.2", "EC2.170", "IAM.21"])
def test_the_crossguard_pack_blocks_a_new_stacks_preview_on_resource_rules(
    preview: ProgramRun, rule_id: str
) -> None:
    broken, blamed = PREVIEW_BREAKAGES[rule_id](list(preview.resources))
    assert _crossguard_verdicts(broken) == [(policy_name(_rule(rule_id)), blamed)]


def test_a_policy_that_cannot_judge_during_preview_says_so_instead_of_passing(
    preview: ProgramRun,
) -> None:
    # CrossGuard turns UnknownValueError into its "can't run policy during preview" note.
    policy = next(p for p in policies() if p.name == policy_name(_rule("IAM.21")))
    # (A CI role's policy is known before anything exists: it names no resource's output.)
    role_policy = next(
        r
        for r in preview.resources
        if r.resource_type == ROLE_POLICY and r.props.get("policy") == UNKNOWN
    )
    args = ResourceValidationArgs(
        ROLE_POLICY,
        unknown_checking_proxy(_wire(role_policy.props)),
        role_policy.urn,
        role_policy.name,
        _options(role_policy),
        None,
    )
    with pytest.raises(UnknownValueError) as caught:
        policy.validate(args, lambda *_: pytest.fail("no verdict without the document"))
    assert caught.value.message.startswith("[IAM.21] the policy document is not known")


def test_eks_support_runs_out_on_the_calendar_dates() -> None:
    end = EKS_RELEASE_CALENDAR["1.34"].end_of_standard_support
    assert end == date(2026, 12, 2)
    assert support_problem("1.34", "STANDARD", date(2026, 12, 1)) is None
    problem = support_problem("1.34", "STANDARD", end)
    assert problem is not None
    assert "left standard support on 2026-12-02" in problem
    assert support_problem("1.34", "EXTENDED", end) is None
    assert "left extended support on 2027-12-02" in str(
        support_problem("1.34", "EXTENDED", date(2027, 12, 2))
    )
    assert "is not one of" in str(support_problem("1.24", "EXTENDED", date(2026, 1, 1)))


@pytest.mark.parametrize(
    ("version", "policy", "fires"),
    [("1.35", "STANDARD", False), ("1.33", "STANDARD", True), ("1.33", "EXTENDED", False)],
)
def test_eks2_fails_a_version_past_standard_support_unless_extended_support_was_chosen(
    monkeypatch: pytest.MonkeyPatch, version: str, policy: str, fires: bool
) -> None:
    monkeypatch.setattr(eks, "today", lambda: date(2026, 11, 23))
    run = run_program(
        "prod",
        overrides={"mlstack:kubernetesVersion": version, "mlstack:clusterUpgradePolicy": policy},
    )
    found = [v for v in evaluate(run.resources) if v.rule_id == "EKS.2"]
    assert bool(found) is fires
    if fires:
        assert "left standard support on 2026-07-29" in found[0].message


def test_the_policy_pack_loads_on_its_own_like_a_published_pack() -> None:
    # A published pack is its directory plus its requirements: nothing of the project's code.
    pack = PROJECT_ROOT / "infra" / "policypack"
    code = (
        "import sys; sys.modules['infra'] = None; sys.path.insert(0, '.');"
        "from mlstack_policy.crossguard import policies; print(len(policies()))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=pack, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) == len(all_rules())
    assert "pulumi-policy" in (pack / "requirements.txt").read_text()
    settings = (pack / "PulumiPolicy.yaml").read_text()
    assert ".." not in settings, "the pack must not reach into a checkout"


def test_a_wildcard_within_a_read_verb_is_a_read_and_one_within_a_write_verb_is_not(
    stack_runs: dict[str, ProgramRun],
) -> None:
    """`ec2:Describe*` only ever matches calls that read, so it may name every resource, as
    most Describe calls require; `ec2:Create*` may not."""
    resources = list(stack_runs["prod"].resources)
    reads, _ = _change(ROLE_POLICY, _document_edit("policy", _add_statement("ec2:Describe*", "*")))(
        resources
    )
    assert evaluate(reads) == []
    writes, blamed = _change(
        ROLE_POLICY, _document_edit("policy", _add_statement("ec2:Create*", "*"))
    )(resources)
    assert [(v.rule_id, v.resource_name) for v in evaluate(writes)] == [("MLSTACK.IAM.1", blamed)]
