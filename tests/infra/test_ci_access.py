"""What CI runs as, judged by a real IAM policy evaluator (tests/iam.py) against the calls the AWS
provider makes for every resource type in each stack's plan (tests/infra/provider_calls.yaml,
read from terraform-provider-aws's source), and against calls that must be denied.

Each environment runs at its fullest for this: a model pinned (served on its endpoint where the
stack serves on SageMaker), through an ingress, with its tracking server. The documents are the
ones the program declares, read back from its plan.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.components.endpoint_rollout import (
    ROLLOUT_CHECK_ACTIONS,
    ROLLOUT_CHECK_TYPE,
    SCALING_PAUSE_ACTIONS,
    SCALING_PAUSE_TYPE,
)
from infra.documents.ci import (
    DEFAULT_BRANCH,
    DEPLOY_SESSION_SECONDS,
    ENDPOINT_ROLE_PATTERN,
    ENVIRONMENT_TAG,
    GITHUB_OIDC_HOST,
    READ_ONLY_VERB,
    github_trust_policy,
)
from infra.offline.mocks import ACCOUNT_ID, RecordedResource
from infra.offline.runner import ProgramRun
from infra.project import naming
from tests.iam import Request, Verdict, evaluate, needs_simulator
from tests.infra.conftest import CERTIFICATE, run_served

CI_STACKS = ("dev", "staging", "prod")
REGION = "eu-west-1"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
CALLS = yaml.safe_load((Path(__file__).parent / "provider_calls.yaml").read_text())

_SAGEMAKER = "arn:{partition}:sagemaker:{region}:{account}"
_CONFIGS, _MODELS = f"{_SAGEMAKER}:endpoint-config/*", f"{_SAGEMAKER}:model/*"
_READ_ENDPOINT = [
    {
        "action": "sagemaker:DescribeEndpoint",
        "resources": [f"{_SAGEMAKER}:endpoint/{{input:endpoint}}"],
    },
    {"action": "sagemaker:DescribeEndpointConfig", "resources": [_CONFIGS]},
]
_READ_SCALING = [{"action": "application-autoscaling:DescribeScalableTargets", "resources": ["*"]}]
_CHECK = [
    *_READ_ENDPOINT,
    {"action": "sagemaker:DescribeModel", "resources": [_MODELS]},
    {"action": "sagemaker:ListTags", "resources": [_CONFIGS, _MODELS]},
    # marks (or unmarks) the configuration it deployed
    {
        "action": "sagemaker:AddTags",
        "resources": [f"{_SAGEMAKER}:endpoint-config/{{input:expected_config}}"],
    },
    {
        "action": "sagemaker:DeleteTags",
        "resources": [f"{_SAGEMAKER}:endpoint-config/{{input:expected_config}}"],
    },
    # ListEndpointConfigs names no resource (Service Authorization Reference)
    {"action": "sagemaker:ListEndpointConfigs", "resources": ["*"]},
    {"action": "sagemaker:DeleteEndpointConfig", "resources": [_CONFIGS]},
    {"action": "sagemaker:DeleteModel", "resources": [_MODELS]},
]
_PAUSE = [
    *_READ_ENDPOINT,
    *_READ_SCALING,
    {
        "action": "application-autoscaling:DeregisterScalableTarget",
        "resources": [
            "arn:{partition}:application-autoscaling:{region}:{account}:scalable-target/*"
        ],
    },
]
DYNAMIC_CALLS: dict[str, dict[str, Any]] = {
    # The stack's own steps around an endpoint's update (infra/components/endpoint_rollout.py),
    # which call AWS from the provider host with the deploy's credentials: their calls, read from
    # that code (and recorded against moto in tests/infra/test_endpoint_rollout.py). The check
    # reads nothing in a preview or refresh; the pause's diff reads in every one.
    ROLLOUT_CHECK_TYPE: {"create": _CHECK, "update": _CHECK},
    SCALING_PAUSE_TYPE: {
        "read": [*_READ_ENDPOINT, *_READ_SCALING],
        "create": _PAUSE,
        "update": _PAUSE,
    },
}
CALLS["resources"].update(DYNAMIC_CALLS)

NO_AWS_CALLS = re.compile(r"^(kubernetes:|pulumi:providers:kubernetes$)")
"""Types applied through the cluster's API (the workloads deploy role is cluster admin there
through its access entry), not AWS's."""

# What only an administrator's `pulumi up` does: create, change or delete the CI roles, the
# boundary and GitHub's provider; create or delete the key, the buckets, the repositories and
# the alarm topic, which hold the environment's data and history. The deploy role reads and
# configures them, and is denied these.
ADMINISTRATOR_ONLY: Mapping[str, tuple[str, ...]] = {
    "aws:kms/key:Key": ("create", "delete"),
    "aws:s3/bucket:Bucket": ("create", "delete"),
    "aws:ecr/repository:Repository": ("create", "delete"),
    "aws:sns/topic:Topic": ("create", "delete"),
    "aws:eks/cluster:Cluster": ("delete",),
}
CI_ONLY_BY_ADMINISTRATOR = re.compile(r"^ci-(preview|platform|workloads|boundary|github)$")
ADMINISTRATOR_ONLY_CALLS = frozenset(
    {
        "iam:UpdateAssumeRolePolicy",  # who may assume a role
        "iam:DeleteRolePermissionsBoundary",  # the boundary itself
        "kms:DisableKeyRotation",
        "eks:DeleteCluster",
        "s3:DeleteBucketPolicy",  # a bucket's TLS-only, right-key policy
    }
)
"""Calls of resources CI changes that only an administrator makes: they loosen what the stack
is (trust, boundaries, key rotation) or destroy the cluster."""


@cache
def full_run(stack: str) -> ProgramRun:
    return run_served(stack, servingIngressCertificateArn=CERTIFICATE, mlflowServerSize="Small")


def document(run: ProgramRun, resource_type: str, name: str) -> dict[str, Any]:
    [resource] = [r for r in run.of_type(resource_type) if r.name == name]
    policy: dict[str, Any] = json.loads(resource.inputs["policy"])
    return policy


def ci_policy(run: ProgramRun, purpose: str) -> dict[str, Any]:
    return document(run, ROLE_POLICY, f"ci-{purpose}")


def boundary(run: ProgramRun) -> dict[str, Any]:
    return document(run, "aws:iam/policy:Policy", "ci-boundary")


def role_arn(environment: str, purpose: str) -> str:
    return f"arn:aws:iam::{ACCOUNT_ID}:role/{naming.ci_role_name(environment, purpose)}"


class Templates:
    """Turns provider_calls.yaml's templates into one resource's concrete ARNs and context."""

    def __init__(self, run: ProgramRun) -> None:
        self.run = run
        keys = run.of_type("aws:kms/key:Key")
        self.key_arn = str(keys[0].props["arn"]) if keys else ""
        self.roles: dict[str, RecordedResource] = {}
        for role in run.of_type(ROLE):
            self.roles[str(role.props["name"])] = role
            self.roles[str(role.props["arn"])] = role
            self.roles[role.physical_id] = role

    @staticmethod
    def value(resource: RecordedResource, path: str) -> Any:
        value: Any = resource.props
        for part in path.split("."):
            if isinstance(value, list) and part.isdigit() and int(part) < len(value):
                value = value[int(part)]
            elif isinstance(value, Mapping) and part in value:
                value = value[part]
            else:
                return None
        return value

    def fill(self, template: str, resource: RecordedResource) -> str | None:
        """The template for `resource`; None when it names an argument the resource leaves
        unset (the provider makes that call only with it)."""
        env = self.run.settings.values
        known = {
            "partition": "aws",
            "region": str(env.get("aws:region", REGION)),
            "account": ACCOUNT_ID,
            "arn": str(resource.props.get("arn", "")),
            "id": resource.physical_id,
            "cluster_name": naming.cluster_name(str(env["mlstack:environment"])),
            "stack_key": self.key_arn,
        }
        missing = False

        def substitute(match: re.Match[str]) -> str:
            nonlocal missing
            kind, _, path = match.group(1).partition(":")
            if kind in known and not path:
                return known[kind]
            if kind == "image_repository":
                url = str((resource.props.get("tags") or [""])[0]).rpartition(":")[0]
                name = url.split("/", 1)[-1]
                return f"arn:aws:ecr:{known['region']}:{ACCOUNT_ID}:repository/{name}"
            found = self.value(resource, path)
            if found in (None, "", [], {}):
                missing = True
                return ""
            if kind == "input":
                return str(found)
            if kind == "bucket":
                return f"arn:aws:s3:::{found}"
            role = self.roles.get(str(found))
            if kind == "role":
                return str(role.props["arn"]) if role else str(found)
            if kind == "boundary":
                bound = role.props.get("permissionsBoundary") if role else None
                if not bound:
                    missing = True
                return str(bound or "")
            raise AssertionError(f"provider_calls.yaml: unknown template {match.group(0)}")

        filled = re.sub(r"\{([a-z_]+(?::[A-Za-z0-9_.]+)?)\}", substitute, template)
        return None if missing else filled

    def requests(self, resource: RecordedResource, phases: tuple[str, ...]) -> Iterator[Request]:
        entry = CALLS["resources"].get(resource.resource_type)
        assert entry is not None, (
            f"{resource.resource_type} ({resource.name}) is not in provider_calls.yaml: add the "
            "calls the provider makes for it (its internal/service source) so the CI roles are "
            "checked against them"
        )
        environment = str(self.run.settings.values["mlstack:environment"])
        for phase in phases:
            for call in entry.get(phase) or []:
                when = call.get("when")
                if when and all(
                    self.value(resource, path) in (None, "", [], {}, False)
                    for path in ([when] if isinstance(when, str) else when)
                ):
                    continue  # the provider makes it only for an argument the stack leaves unset
                context: dict[str, str] = {f"aws:ResourceTag/{ENVIRONMENT_TAG}": environment}
                if phase == "create":
                    # The provider creates every resource with the stack's default tags.
                    context[f"aws:RequestTag/{ENVIRONMENT_TAG}"] = environment
                skip = False
                for key, template in (call.get("context") or {}).items():
                    filled = self.fill(str(template), resource)
                    if filled is None:
                        skip = key != "iam:PermissionsBoundary"
                        continue
                    context[key] = filled
                if skip:
                    continue
                for template in call["resources"]:
                    arn = self.fill(template, resource)
                    if arn is not None:
                        yield Request(
                            call["action"],
                            arn,
                            context,
                            why=f"{phase} {resource.resource_type} {resource.name}",
                            resource_policy=self.resource_policy(arn),
                        )

    def resource_policy(self, arn: str) -> str | None:
        """A KMS key of the stack is judged with its key policy as well."""
        return "key-policy" if arn.startswith("arn:aws:kms:") and ":key/" in arn else None

    def resource_policies(self) -> dict[str, Any]:
        keys = self.run.of_type("aws:kms/key:Key")
        return {"key-policy": json.loads(keys[0].inputs["policy"])} if keys else {}


def invoke_requests(run: ProgramRun) -> Iterator[Request]:
    for token, _ in run.calls:
        entry = CALLS["invokes"].get(token)
        assert entry is not None, f"the lookup {token} is not in provider_calls.yaml"
        for call in entry.get("calls") or []:
            for resource in call["resources"]:
                region = str(run.settings.values.get("aws:region", REGION))
                arn = resource.replace("{partition}", "aws").replace("{region}", region)
                yield Request(call["action"], arn.replace("{account}", ACCOUNT_ID), why=token)


def administrator_only(resource: RecordedResource, phase: str) -> bool:
    if CI_ONLY_BY_ADMINISTRATOR.match(resource.name) and phase != "read":
        return True
    return phase in ADMINISTRATOR_ONLY.get(resource.resource_type, ())


def layer_requests(run: ProgramRun, layer: str, *, administrator: bool) -> list[Request]:
    """Every call of every phase for the layer's resources (those only an administrator makes,
    or all the others), and the layer's lookups."""
    own = run.of_layer(layer)
    templates = Templates(run)
    found: list[Request] = []
    for resource in own.resources:
        if not resource.custom or NO_AWS_CALLS.match(resource.resource_type):
            continue
        for phase in ("create", "read", "update", "delete"):
            if phase == "delete" and resource.retain_on_delete:
                continue  # kept on destroy: the provider never deletes it
            for request in templates.requests(resource, (phase,)):
                by_administrator = (
                    administrator_only(resource, phase)
                    or request.action in ADMINISTRATOR_ONLY_CALLS
                )
                if by_administrator == administrator:
                    found.append(request)
    if not administrator:
        found.extend(invoke_requests(own))
    return _unique(found)


def read_requests(run: ProgramRun) -> list[Request]:
    templates = Templates(run)
    found = [
        request
        for resource in run.resources
        if resource.custom and not NO_AWS_CALLS.match(resource.resource_type)
        for request in templates.requests(resource, ("read",))
    ]
    found.extend(invoke_requests(run))
    return _unique(found)


def _unique(requests: list[Request]) -> list[Request]:
    seen: dict[tuple[str, str, str], Request] = {}
    for request in requests:
        key = (request.action, request.resource, json.dumps(dict(request.context), sort_keys=True))
        seen.setdefault(key, request)
    return list(seen.values())


def verdicts(
    run: ProgramRun, purpose: str, requests: list[Request], bounded: bool = False
) -> list[Verdict]:
    environment = str(run.settings.values["mlstack:environment"])
    return evaluate(
        requests,
        identity={purpose: ci_policy(run, purpose)},
        boundary=boundary(run) if bounded else None,
        principal=role_arn(environment, purpose),
        account=ACCOUNT_ID,
        resource_policies=Templates(run).resource_policies(),
    )


def refused(found: list[Verdict]) -> str:
    lines = [str(v) for v in found if not v.allowed]
    return f"{len(lines)} of {len(found)} calls refused:\n  " + "\n  ".join(lines[:40])


# --- the provider's calls ------------------------------------------------------------------------


@needs_simulator
@pytest.mark.parametrize("stack", CI_STACKS)
def test_the_platform_deploy_role_may_make_every_call_the_platform_layer_needs(stack: str) -> None:
    run = full_run(stack)
    found = verdicts(run, "platform", layer_requests(run, "platform", administrator=False))
    assert all(v.allowed for v in found), refused(found)
    assert len(found) > 300


@needs_simulator
@pytest.mark.parametrize("stack", CI_STACKS)
def test_the_preview_role_may_make_every_call_of_the_preflight(stack: str) -> None:
    """`mlstack preflight`, which every deploy runs first, with the read-only role."""
    run = full_run(stack)
    connection = str(run.settings.values["mlstack:ciGithubConnectionArn"])
    quota = f"arn:aws:servicequotas:{REGION}:{ACCOUNT_ID}:vpc/L-F678F1CE"
    found = verdicts(
        run,
        "preview",
        [
            Request("ec2:DescribeRegions", "*"),
            Request("servicequotas:GetServiceQuota", quota),
            Request("servicequotas:ListServiceQuotas", "*"),
            Request("eks:DescribeAddonVersions", "*"),
            Request("ce:ListCostAllocationTags", "*"),
            Request("iam:ListOpenIDConnectProviders", "*"),
            Request("codeconnections:GetConnection", connection),
        ],
    )
    assert all(v.allowed for v in found), refused(found)


@needs_simulator
@pytest.mark.parametrize("stack", CI_STACKS)
def test_the_workloads_deploy_role_may_make_every_call_the_workloads_layer_needs(
    stack: str,
) -> None:
    run = full_run(stack)
    found = verdicts(run, "workloads", layer_requests(run, "workloads", administrator=False))
    assert all(v.allowed for v in found), refused(found)
    assert {v.request.action for v in found} >= {"ecr:PutImage", "cloudwatch:PutMetricAlarm"}


@needs_simulator
@pytest.mark.parametrize("stack", CI_STACKS)
def test_the_preview_role_may_read_back_every_resource_of_both_layers(stack: str) -> None:
    run = full_run(stack)
    found = verdicts(run, "preview", read_requests(run))
    assert all(v.allowed for v in found), refused(found)


@needs_simulator
@pytest.mark.parametrize("stack", CI_STACKS)
def test_what_only_an_administrator_does_is_denied_to_the_deploy_roles(stack: str) -> None:
    """Creating or deleting the key, buckets, repositories and topic, any change to the CI
    roles, the boundary and GitHub's provider, rewriting a role's trust or lifting a boundary:
    an administrator's `pulumi up`. Each such operation has a call the deploy roles are denied,
    so it cannot complete (its other calls may be ones they make when configuring)."""
    run = full_run(stack)
    requests = [
        r
        for r in layer_requests(run, "platform", administrator=True)
        if not READ_ONLY_VERB.match(r.action)
    ]
    assert {r.action for r in requests} >= {"s3:CreateBucket", "kms:CreateKey", "iam:CreateRole"}
    for purpose in ("platform", "workloads"):
        by_operation: dict[str, list[Verdict]] = {}
        for verdict in verdicts(run, purpose, requests):
            operation = (
                verdict.request.action
                if verdict.request.action in ADMINISTRATOR_ONLY_CALLS
                else verdict.request.why
            )
            by_operation.setdefault(operation, []).append(verdict)
        completes = sorted(
            operation for operation, found in by_operation.items() if all(v.allowed for v in found)
        )
        assert not completes, f"the {purpose} role could complete: {completes}"


def test_every_call_in_the_table_is_a_real_action_on_a_resource_it_takes() -> None:
    """The table itself is checked by the simulator's data: a misspelt action or an ARN of the
    wrong type would make the evaluation above meaningless (Error verdicts fail it)."""
    actions = {
        call["action"]
        for entry in CALLS["resources"].values()
        for phase in ("create", "read", "update", "delete")
        for call in entry.get(phase) or []
    }
    assert all(re.fullmatch(r"[a-z0-9-]+:[A-Z][A-Za-z0-9]+", action) for action in actions)
    assert len(CALLS["resources"]) >= 55


# --- what must be denied -------------------------------------------------------------------------


def forbidden_calls(environment: str, run: ProgramRun) -> list[Request]:
    other = "prod" if environment != "prod" else "dev"
    iam = f"arn:aws:iam::{ACCOUNT_ID}"
    sagemaker = f"arn:aws:sagemaker:{REGION}:{ACCOUNT_ID}"
    theirs = {f"aws:ResourceTag/{ENVIRONMENT_TAG}": other}
    ours = {f"aws:ResourceTag/{ENVIRONMENT_TAG}": environment}
    bound = {"iam:PermissionsBoundary": f"{iam}:policy/{naming.role_boundary_name(environment)}"}
    ci_roles = [role_arn(environment, p) for p in naming.CI_ROLE_PURPOSES]
    bucket = str(run.named("storage-data-bucket").props["arn"])
    key = str(run.named("key-key").props["arn"])
    calls = [
        Request(
            "iam:PutRolePolicy",
            f"{iam}:role/serving-role-x",
            {**theirs, **bound},
            "another environment's role",
        ),
        Request(
            "iam:AttachRolePolicy",
            f"{iam}:role/serving-role-x",
            {**theirs, **bound},
            "another environment's role",
        ),
        Request(
            "iam:DeleteRole", f"{iam}:role/serving-role-x", theirs, "another environment's role"
        ),
        Request(
            "iam:TagRole",
            f"{iam}:role/serving-role-x",
            {**theirs, f"aws:RequestTag/{ENVIRONMENT_TAG}": environment},
            "taking another environment's role over by its tag",
        ),
        Request(
            "iam:UntagRole",
            f"{iam}:role/serving-role-x",
            {**ours, "aws:TagKeys": [ENVIRONMENT_TAG]},
            "untagging a role out of the stack",
        ),
        Request(
            "iam:PassRole",
            f"{iam}:role/endpoint-demo-execution-x",
            {**theirs, "iam:PassedToService": "sagemaker.amazonaws.com"},
            "another environment's role",
        ),
        Request(
            "iam:PassRole",
            f"{iam}:role/anything",
            {**ours, "iam:PassedToService": "lambda.amazonaws.com"},
            "a role to a service the stack does not use",
        ),
        Request(
            "iam:CreateRole",
            f"{iam}:role/new",
            {f"aws:RequestTag/{ENVIRONMENT_TAG}": environment},
            "a role without the boundary",
        ),
        Request(
            "iam:CreateRole",
            f"{iam}:role/new",
            {**bound, f"aws:RequestTag/{ENVIRONMENT_TAG}": other},
            "a role for another environment",
        ),
        Request(
            "iam:DeleteRolePermissionsBoundary",
            f"{iam}:role/serving-role-x",
            ours,
            "lifting a boundary",
        ),
        Request(
            "iam:CreatePolicyVersion",
            f"{iam}:policy/{naming.role_boundary_name(environment)}",
            {},
            "the boundary",
        ),
        Request("iam:CreateUser", f"{iam}:user/someone", {}, "a user"),
        Request("sts:AssumeRole", f"{iam}:role/OrganizationAccountAccessRole", {}, "admin"),
        Request(
            "s3:PutBucketPolicy",
            f"arn:aws:s3:::storage-data-bucket-{other}",
            theirs,
            "another environment's bucket",
        ),
        Request("s3:GetObject", f"{bucket}/demo/data.csv", {}, "the stack's data"),
        Request("kms:Decrypt", key, {}, "the stack's data", "key-policy"),
        Request("kms:ScheduleKeyDeletion", key, {}, "deleting the key", "key-policy"),
        Request("s3:DeleteBucket", bucket, {}, "deleting a bucket"),
        Request(
            "ecr:PutImage",
            f"arn:aws:ecr:{REGION}:{ACCOUNT_ID}:repository/images-{other}",
            theirs,
            "another environment's repository",
        ),
        Request(
            "sagemaker:UpdateEndpoint",
            f"{sagemaker}:endpoint/demo-{other}",
            theirs,
            "another environment's endpoint",
        ),
        Request(
            "sagemaker:DeleteModel",
            f"{sagemaker}:model/endpoint-demo-model-x",
            theirs,
            "another environment's model",
        ),
        Request(
            "sagemaker:DeleteEndpointConfig",
            f"{sagemaker}:endpoint-config/endpoint-demo-config-x",
            theirs,
            "another environment's retained configuration",
        ),
        Request(
            "sagemaker:AddTags",
            f"{sagemaker}:endpoint-config/endpoint-demo-config-x",
            theirs,
            "marking another environment's configuration rolled back",
        ),
        Request(
            "sagemaker:DeleteModelPackageGroup",
            f"{sagemaker}:model-package-group/demo-{other}",
            theirs,
            "another environment's model history",
        ),
        Request(
            "cloudwatch:DeleteAlarms",
            f"arn:aws:cloudwatch:{REGION}:{ACCOUNT_ID}:alarm:demo-{other}-errors",
            theirs,
            "another environment's alarm",
        ),
        Request(
            "codebuild:UpdateProject",
            f"arn:aws:codebuild:{REGION}:{ACCOUNT_ID}:project/mlstack-{other}-runner",
            theirs,
            "another environment's runner",
        ),
        Request(
            "eks:DeleteCluster",
            f"arn:aws:eks:{REGION}:{ACCOUNT_ID}:cluster/mlstack-{environment}",
            ours,
            "deleting the cluster",
        ),
    ]
    for arn in ci_roles:
        calls += [
            Request(action, arn, {**ours, **bound}, "a CI role")
            for action in (
                "iam:PutRolePolicy",
                "iam:AttachRolePolicy",
                "iam:UpdateAssumeRolePolicy",
                "iam:DeleteRolePermissionsBoundary",
                "iam:TagRole",
            )
        ]
    return calls


@needs_simulator
@pytest.mark.parametrize("stack", CI_STACKS)
@pytest.mark.parametrize("purpose", ["platform", "workloads", "preview"])
def test_no_ci_role_may_reach_another_stack_itself_or_the_data(stack: str, purpose: str) -> None:
    run = full_run(stack)
    found = verdicts(run, purpose, forbidden_calls(stack, run))
    allowed = [str(v) for v in found if v.allowed]
    assert not allowed, "allowed:\n  " + "\n  ".join(allowed)
    errors = [str(v) for v in found if v.result == "Error"]
    assert not errors, "malformed:\n  " + "\n  ".join(errors)


@needs_simulator
@pytest.mark.parametrize("stack", CI_STACKS)
def test_the_boundary_keeps_any_role_the_deploy_roles_write_inside_the_stack(stack: str) -> None:
    """A role of the stack given everything by its own policy still reaches only the stack's
    data, makes no role and assumes none."""
    run = full_run(stack)
    other = "prod" if stack != "prod" else "dev"
    everything = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
    }
    data = str(run.named("storage-data-bucket").props["arn"])
    key = str(run.named("key-key").props["arn"])
    sagemaker = f"arn:aws:sagemaker:{REGION}:{ACCOUNT_ID}"
    [repository] = [
        str(r.props["arn"])
        for r in run.of_type("aws:ecr/repository:Repository")
        if r.name == "images-serving"
    ]
    denied = [
        Request("s3:GetObject", f"arn:aws:s3:::storage-data-bucket-{other}/x", {}, "theirs"),
        Request("kms:Decrypt", f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/theirs", {}, "theirs"),
        Request(
            "sagemaker:CreateModelPackage",
            f"{sagemaker}:model-package/demo-{other}/1",
            {},
            "theirs",
        ),
        Request(
            "sagemaker-mlflow:CreateExperiment",
            f"{sagemaker}:mlflow-tracking-server/mlstack-{other}",
            {},
            "theirs",
        ),
        Request(
            "ecr:BatchGetImage",
            f"arn:aws:ecr:{REGION}:{ACCOUNT_ID}:repository/images-serving-{other}",
            {},
            "their images, same account",
        ),
        Request("iam:CreateRole", f"arn:aws:iam::{ACCOUNT_ID}:role/x", {}, "a role"),
        Request("iam:PutRolePolicy", f"arn:aws:iam::{ACCOUNT_ID}:role/x", {}, "a role"),
        Request("sts:AssumeRole", f"arn:aws:iam::{ACCOUNT_ID}:role/x", {}, "a role"),
        Request("organizations:LeaveOrganization", "*", {}, "the account"),
    ]
    allowed = [
        Request("s3:GetObject", f"{data}/demo/data.csv", {}, "its data"),
        Request("kms:Decrypt", key, {}, "its key", "key-policy"),
        Request("ecr:BatchGetImage", repository, {}, "its images"),
        Request(
            "ecr:BatchGetImage",
            f"arn:aws:ecr:{REGION}:602401143452:repository/eks/aws-ebs-csi-driver",
            {"aws:ResourceAccount": "602401143452"},
            "AWS's add-on images",
        ),
        Request(
            "sagemaker:CreateModelPackage",
            f"{sagemaker}:model-package/demo-{stack}/3",
            {},
            "its model registry",
        ),
        Request(
            "sagemaker-mlflow:CreateExperiment",
            f"{sagemaker}:mlflow-tracking-server/mlstack-{stack}",
            {},
            "its tracking server",
        ),
        Request(
            "ec2:CreateNetworkInterface",
            f"arn:aws:ec2:{REGION}:{ACCOUNT_ID}:network-interface/*",
            {},
            "the CNI",
        ),
    ]
    found = evaluate(
        [*denied, *allowed],
        identity={"everything": everything},
        boundary=boundary(run),
        principal=f"arn:aws:iam::{ACCOUNT_ID}:role/some-role-of-the-stack",
        account=ACCOUNT_ID,
        resource_policies=Templates(run).resource_policies(),
    )
    assert [v.allowed for v in found] == [False] * len(denied) + [True] * len(allowed), "\n".join(
        map(str, found)
    )


@needs_simulator
@pytest.mark.parametrize("stack", CI_STACKS)
def test_the_boundary_lets_through_what_the_stacks_own_roles_are_given(stack: str) -> None:
    """Every action on every resource a role of the stack carrying the boundary is granted
    (its inline policy, conditions aside) passes the boundary too: the boundary takes nothing
    the stack's workloads need."""
    run = full_run(stack)
    bounded = {
        str(r.props["name"]) for r in run.of_type(ROLE) if r.inputs.get("permissionsBoundary")
    }
    requests = []
    templates = Templates(run)
    for policy in run.of_type(ROLE_POLICY):
        role = templates.roles.get(str(policy.inputs["role"]))
        if role is None or str(role.props["name"]) not in bounded:
            continue
        for statement in json.loads(policy.inputs["policy"])["Statement"]:
            if statement["Effect"] != "Allow":
                continue
            actions = statement["Action"]
            resources = statement["Resource"]
            for action in [actions] if isinstance(actions, str) else actions:
                for resource in [resources] if isinstance(resources, str) else resources:
                    requests.append(
                        Request(
                            action, resource, {}, policy.name, templates.resource_policy(resource)
                        )
                    )
    allow_all = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
    }
    found = evaluate(
        _unique(requests),
        identity={"own": allow_all},
        boundary=boundary(run),
        principal=f"arn:aws:iam::{ACCOUNT_ID}:role/a-role",
        account=ACCOUNT_ID,
        resource_policies=templates.resource_policies(),
    )
    # A statement naming several actions and resources pairs each action with the resources of
    # its own type only; the other pairs are no request IAM ever judges (Error here).
    judged = [v for v in found if v.result != "Error"]
    assert len(judged) > 50
    assert all(v.allowed for v in judged), refused(judged)


def test_the_calls_listed_for_the_stacks_own_steps_are_the_ones_they_make() -> None:
    for resource_type, actions in (
        (ROLLOUT_CHECK_TYPE, ROLLOUT_CHECK_ACTIONS),
        (SCALING_PAUSE_TYPE, SCALING_PAUSE_ACTIONS),
    ):
        listed = {
            call["action"] for phase in DYNAMIC_CALLS[resource_type].values() for call in phase
        }
        assert listed == set(actions), resource_type


@needs_simulator
def test_the_workloads_deploy_role_may_check_and_prune_its_endpoints_not_anothers() -> None:
    """What the rollout check and the scaling pause call, on prod's endpoint and its retained
    configurations and models (all tagged `environment: prod`); the same writes on staging's
    are refused."""
    run = full_run("prod")
    sagemaker = f"arn:aws:sagemaker:{REGION}:{ACCOUNT_ID}"
    ours = {f"aws:ResourceTag/{ENVIRONMENT_TAG}": "prod"}
    theirs = {f"aws:ResourceTag/{ENVIRONMENT_TAG}": "staging"}
    config, model = (
        f"{sagemaker}:endpoint-config/endpoint-demo-config-1a2b3c4",
        f"{sagemaker}:model/endpoint-demo-model-1a2b3c4",
    )
    allowed = [
        Request("sagemaker:DescribeEndpoint", f"{sagemaker}:endpoint/demo-prod", ours),
        Request("sagemaker:DescribeEndpointConfig", config, ours),
        Request("sagemaker:DescribeModel", model, ours),
        Request("sagemaker:ListTags", config, ours),
        Request("sagemaker:ListEndpointConfigs", "*"),
        Request("sagemaker:AddTags", config, ours),
        Request("sagemaker:DeleteTags", config, ours),
        Request("sagemaker:DeleteEndpointConfig", config, ours),
        Request("sagemaker:DeleteModel", model, ours),
        Request("application-autoscaling:DescribeScalableTargets", "*"),
        Request(
            "application-autoscaling:DeregisterScalableTarget",
            f"arn:aws:application-autoscaling:{REGION}:{ACCOUNT_ID}:scalable-target/0123abcd",
        ),
    ]
    assert {r.action for r in allowed} == {*ROLLOUT_CHECK_ACTIONS, *SCALING_PAUSE_ACTIONS}
    denied = [
        Request("sagemaker:AddTags", config, theirs, "marking staging's configuration"),
        Request("sagemaker:DeleteTags", config, theirs, "unmarking staging's configuration"),
        Request("sagemaker:DeleteEndpointConfig", config, theirs, "staging's configuration"),
        Request("sagemaker:DeleteModel", model, theirs, "staging's model"),
    ]
    found = verdicts(run, "workloads", [*allowed, *denied])
    assert [v.allowed for v in found] == [True] * len(allowed) + [False] * len(denied), "\n".join(
        map(str, found)
    )


# --- what the policies depend on -----------------------------------------------------------------


def ci_documents(run: ProgramRun) -> dict[str, Any]:
    return {
        **{purpose: ci_policy(run, purpose) for purpose in naming.CI_ROLE_PURPOSES},
        "boundary": boundary(run),
    }


def test_the_ci_roles_policies_do_not_change_with_pins_models_or_the_tracking_server() -> None:
    """The CI roles cannot change their own policies (that is an administrator's run), so a
    daily promotion, a new model or the tracking server turned on must not need a change."""
    base = ci_documents(full_run("dev"))
    variants = [
        run_served("dev", servingIngressCertificateArn=CERTIFICATE),  # no tracking server
        run_served(
            "dev", version=7, servingIngressCertificateArn=CERTIFICATE, mlflowServerSize="Small"
        ),
        run_served(
            "dev",
            models=["demo", "churn"],
            servingIngressCertificateArn=CERTIFICATE,
            mlflowServerSize="Small",
        ),
        run_served(
            "dev",
            servingTarget="both",
            servingIngressCertificateArn=CERTIFICATE,
            mlflowServerSize="Small",
        ),
    ]
    for variant in variants:
        assert ci_documents(variant) == base


# --- who may assume them -------------------------------------------------------------------------


def trust(run: ProgramRun, purpose: str) -> dict[str, Any]:
    [role] = [r for r in run.of_type(ROLE) if r.name == f"ci-{purpose}"]
    policy: dict[str, Any] = json.loads(role.inputs["assumeRolePolicy"])
    return policy


def subjects(run: ProgramRun, purpose: str) -> list[str]:
    [statement] = trust(run, purpose)["Statement"]
    equals = statement["Condition"]["StringEquals"]
    assert equals[f"{GITHUB_OIDC_HOST}:aud"] == "sts.amazonaws.com"
    assert "StringLike" not in statement["Condition"]
    subject = equals[f"{GITHUB_OIDC_HOST}:sub"]
    return [subject] if isinstance(subject, str) else list(subject)


@pytest.mark.parametrize("stack", CI_STACKS)
def test_previews_are_trusted_for_pull_requests_and_the_default_branch_deploys_for_the_environment(
    stack: str,
) -> None:
    run = full_run(stack)
    repo = str(run.settings.values["mlstack:ciGithubRepository"])
    assert subjects(run, "preview") == [
        f"repo:{repo}:pull_request",
        f"repo:{repo}:ref:refs/heads/{DEFAULT_BRANCH}",
    ]
    for purpose in ("platform", "workloads"):
        assert subjects(run, purpose) == [f"repo:{repo}:environment:{stack}"]
        [role] = [r for r in run.of_type(ROLE) if r.name == f"ci-{purpose}"]
        assert role.inputs["maxSessionDuration"] == DEPLOY_SESSION_SECONDS


@pytest.mark.parametrize(
    "subject", ["repo:example-org/*:pull_request", "repo:example-org/mlstack:*", "example"]
)
def test_a_subject_with_a_wildcard_or_without_a_repository_is_refused(subject: str) -> None:
    with pytest.raises(ValueError, match="exact repo"):
        github_trust_policy(provider_arn="arn", subjects=[subject])


@pytest.mark.parametrize("stack", CI_STACKS)
def test_every_action_of_the_preview_role_only_reads(stack: str) -> None:
    for statement in ci_policy(full_run(stack), "preview")["Statement"]:
        assert all(READ_ONLY_VERB.match(action) for action in statement["Action"])


def test_the_workloads_deploy_role_hands_sagemaker_only_the_endpoint_roles() -> None:
    run = full_run("prod")
    roles = [str(r.props["name"]) for r in run.of_type(ROLE) if r.name.endswith("-execution")]
    assert roles
    assert all(re.fullmatch(ENDPOINT_ROLE_PATTERN.replace("*", ".*"), role) for role in roles)
