"""The roles GitHub Actions assumes: what they trust and what they may do.

The documents are tested as data, and judged by a small evaluator of IAM's own rules (an
explicit Deny wins; an Allow needs a matching action, resource and every condition), because
neither moto nor anything else here simulates IAM policies. Then the whole program runs under
the mock runtime with `ciGithubRepository` set and empty.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from fnmatch import fnmatchcase
from functools import cache
from typing import Any

import pytest
import yaml

from infra import naming, outputs
from infra.components.cluster import ADDON_SERVICE_ACCOUNTS
from infra.documents.ci import (
    DEFAULT_BRANCH,
    DEPLOY_SESSION_SECONDS,
    GITHUB_OIDC_HOST,
    READ_ONLY_VERB,
    deploy_policy,
    deploy_subject,
    github_trust_policy,
    permissions_boundary,
    preview_policy,
    preview_subjects,
    within_boundary,
)
from infra.offline.registry import offline_registry
from infra.offline.runner import ProgramRun, run_program
from infra.paths import PROJECT_ROOT
from mlstack_policy.rules import evaluate

REPO = "example-org/mlstack"
ACCOUNT = "123456789012"
IAM = f"arn:aws:iam::{ACCOUNT}"
BOUNDARY = f"{IAM}:policy/mlstack-prod-role-boundary"
PREVIEW_ROLE = f"{IAM}:role/mlstack-prod-ci-preview"
DEPLOY_ROLE = f"{IAM}:role/mlstack-prod-ci-deploy"
CLUSTER_ROLE = f"{IAM}:role/cluster-control-plane-abc"
ENDPOINT_ROLE = f"{IAM}:role/endpoint-demo-execution-abc"
ADMIN_ROLE = f"{IAM}:role/OrganizationAccountAccessRole"
BUCKET = "arn:aws:s3:::storage-data-bucket-abc"
PROVIDER = f"{IAM}:oidc-provider/{GITHUB_OIDC_HOST}"

# Calls that read what a resource holds rather than how it is set up.
CONTENT_READS = (
    "s3:GetObject",
    "s3:GetObjectVersion",
    "kms:Decrypt",
    "kms:GenerateDataKey",
    "ecr:GetDownloadUrlForLayer",
    "logs:GetLogEvents",
    "logs:FilterLogEvents",
    "secretsmanager:GetSecretValue",
    "ssm:GetParameter",
)


def allowed(
    document: Mapping[str, Any], action: str, resource: str, **context: str | list[str]
) -> bool:
    """IAM's verdict for one identity policy: an explicit Deny wins, else an Allow must match
    the action, the resource and every condition. Condition keys absent from `context` do not
    match, as in IAM; an operator this evaluator does not know fails the test."""

    def matches(statement: Mapping[str, Any]) -> bool:
        actions = statement["Action"]
        resources = statement["Resource"]
        if not any(
            fnmatchcase(action, a) for a in ([actions] if isinstance(actions, str) else actions)
        ):
            return False
        if not any(
            fnmatchcase(resource, r)
            for r in ([resources] if isinstance(resources, str) else resources)
        ):
            return False
        for operator, tests in statement.get("Condition", {}).items():
            assert operator in ("StringEquals", "Bool"), f"no evaluator for {operator}"
            for key, expected in tests.items():
                given = context.get(key)
                wanted = expected if isinstance(expected, list) else [expected]
                values = given if isinstance(given, list) else [given]
                if given is None or not all(v in wanted for v in values):
                    return False
        return True

    statements = document["Statement"]
    if any(s["Effect"] == "Deny" and matches(s) for s in statements):
        return False
    return any(s["Effect"] == "Allow" and matches(s) for s in statements)


def actions_of(document: Mapping[str, Any], effect: str = "Allow") -> list[str]:
    return [
        action
        for statement in document["Statement"]
        if statement["Effect"] == effect
        for action in (
            [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
        )
    ]


@cache
def deploy() -> dict[str, Any]:
    return deploy_policy(
        partition="aws",
        region="eu-west-1",
        account_id=ACCOUNT,
        cluster_name="mlstack-prod",
        budget="mlstack-prod",
        dashboard="mlstack-prod",
        key_arn=f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/k1",
        key_alias="alias/mlstack-prod",
        bucket_arns=[BUCKET],
        repository_arns=[f"arn:aws:ecr:eu-west-1:{ACCOUNT}:repository/images-serving-abc"],
        topic_arn=f"arn:aws:sns:eu-west-1:{ACCOUNT}:monitoring-alarms-abc",
        model_package_group_arns=[
            f"arn:aws:sagemaker:eu-west-1:{ACCOUNT}:model-package-group/demo-prod"
        ],
        endpoint_arns=[f"arn:aws:sagemaker:eu-west-1:{ACCOUNT}:endpoint/demo-prod"],
        passed_roles={"cluster": [CLUSTER_ROLE], "endpoints": [ENDPOINT_ROLE]},
        boundary_arn=BOUNDARY,
        protected_arns=[BOUNDARY, PREVIEW_ROLE, DEPLOY_ROLE],
    )


PREVIEW = preview_policy(partition="aws", account_id=ACCOUNT, budget="mlstack-prod")


# --- trust ----------------------------------------------------------------------------------


def test_the_preview_role_trusts_the_repositorys_pull_requests_and_default_branch_only() -> None:
    trust = github_trust_policy(provider_arn=PROVIDER, subjects=preview_subjects(REPO))
    [statement] = trust["Statement"]
    assert statement["Principal"] == {"Federated": PROVIDER}
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Condition"] == {
        "StringEquals": {
            f"{GITHUB_OIDC_HOST}:aud": "sts.amazonaws.com",
            f"{GITHUB_OIDC_HOST}:sub": [
                f"repo:{REPO}:pull_request",
                f"repo:{REPO}:ref:refs/heads/main",
            ],
        }
    }


def test_the_deploy_role_trusts_only_the_github_environment_named_after_the_stack() -> None:
    trust = github_trust_policy(provider_arn=PROVIDER, subjects=[deploy_subject(REPO, "prod")])
    condition = trust["Statement"][0]["Condition"]
    assert set(condition) == {"StringEquals"}  # never StringLike
    assert condition["StringEquals"][f"{GITHUB_OIDC_HOST}:sub"] == f"repo:{REPO}:environment:prod"


@pytest.mark.parametrize(
    "subject",
    ["repo:example-org/*", "repo:example-org/mlstack:ref:refs/heads/?", "example-org/mlstack"],
)
def test_a_subject_with_a_wildcard_or_without_a_repository_is_refused(subject: str) -> None:
    with pytest.raises(ValueError, match="exact repo:<owner>/<name>"):
        github_trust_policy(provider_arn=PROVIDER, subjects=[subject])


def test_the_default_branch_trusted_is_the_one_the_workflows_deploy_and_check_drift_on() -> None:
    workflows = PROJECT_ROOT / ".github" / "workflows"
    deploy_on = yaml.safe_load((workflows / "deploy.yml").read_text())[True]
    assert deploy_on["push"]["branches"] == [DEFAULT_BRANCH]


def test_deploy_credentials_last_as_long_as_the_deploy_job_may_run() -> None:
    workflow = yaml.safe_load((PROJECT_ROOT / ".github/workflows/deploy-stack.yml").read_text())
    up = workflow["jobs"]["up"]
    [credentials] = [s for s in up["steps"] if "configure-aws-credentials" in s.get("uses", "")]
    assert credentials["with"]["role-duration-seconds"] == DEPLOY_SESSION_SECONDS
    assert up["timeout-minutes"] * 60 == DEPLOY_SESSION_SECONDS


# --- the preview role -----------------------------------------------------------------------


def test_every_action_of_the_preview_role_only_reads() -> None:
    writes = [a for a in actions_of(PREVIEW) if not READ_ONLY_VERB.match(a)]
    assert writes == []


@pytest.mark.parametrize("action", CONTENT_READS)
def test_the_preview_role_reads_no_contents(action: str) -> None:
    """A pull request runs code nobody has reviewed: it may see how things are set up, never the
    data, the models, the images or the logs."""
    assert not allowed(PREVIEW, action, "*")
    assert not allowed(PREVIEW, action, f"{BUCKET}/data.csv")


def test_the_preview_role_reads_what_a_refresh_of_the_stack_reads() -> None:
    for action, resource in [
        ("s3:GetBucketPolicy", BUCKET),
        ("ec2:DescribeVpcs", "*"),
        ("eks:DescribeCluster", "arn:aws:eks:eu-west-1:123456789012:cluster/mlstack-prod"),
        ("iam:ListRoles", "*"),
        ("iam:GetOpenIDConnectProvider", PROVIDER),
        ("tag:GetResources", "*"),
        ("sagemaker:DescribeModelPackage", "*"),
        ("budgets:ViewBudget", f"arn:aws:budgets::{ACCOUNT}:budget/mlstack-prod"),
    ]:
        assert allowed(PREVIEW, action, resource), action


# --- the deploy role ------------------------------------------------------------------------


def test_the_deploy_role_creates_and_writes_roles_only_under_the_boundary() -> None:
    document = deploy()
    for action in ("iam:CreateRole", "iam:PutRolePolicy", "iam:AttachRolePolicy"):
        role = f"{IAM}:role/anything"
        assert allowed(document, action, role, **{"iam:PermissionsBoundary": BOUNDARY}), action
        assert not allowed(document, action, role), f"{action} without a boundary"
        assert not allowed(
            document, action, role, **{"iam:PermissionsBoundary": f"{IAM}:policy/Other"}
        )


def test_the_deploy_role_cannot_change_itself_the_preview_role_or_the_boundary() -> None:
    document = deploy()
    bounded = {"iam:PermissionsBoundary": BOUNDARY}
    for arn in (DEPLOY_ROLE, PREVIEW_ROLE):
        for action in (
            "iam:PutRolePolicy",
            "iam:AttachRolePolicy",
            "iam:DeleteRole",
            "iam:TagRole",
        ):
            assert not allowed(document, action, arn, **bounded), (action, arn)
    for action in ("iam:CreatePolicyVersion", "iam:SetDefaultPolicyVersion", "iam:DeletePolicy"):
        assert not allowed(document, action, BOUNDARY)
    assert not allowed(document, "iam:DeleteRolePermissionsBoundary", f"{IAM}:role/x", **bounded)


def test_the_deploy_role_grants_no_path_around_the_boundary() -> None:
    """Rewriting a trust policy, making a managed policy, a user or a role session, or touching
    Organizations would each let it reach past what it is."""
    iam = {a for a in actions_of(deploy()) if a.startswith(("iam:", "sts:", "organizations:"))}
    assert not any(
        fnmatchcase(forbidden, granted)
        for granted in iam
        for forbidden in (
            "iam:UpdateAssumeRolePolicy",
            "iam:CreatePolicy",
            "iam:CreatePolicyVersion",
            "iam:CreateUser",
            "iam:AttachUserPolicy",
            "iam:CreateAccessKey",
            "sts:AssumeRole",
            "organizations:LeaveOrganization",
        )
    ), sorted(iam)


def test_the_deploy_role_passes_only_the_stacks_roles_and_only_to_their_service() -> None:
    document = deploy()
    assert allowed(
        document,
        "iam:PassRole",
        ENDPOINT_ROLE,
        **{"iam:PassedToService": "sagemaker.amazonaws.com"},
    )
    assert allowed(
        document, "iam:PassRole", CLUSTER_ROLE, **{"iam:PassedToService": "eks.amazonaws.com"}
    )
    assert not allowed(
        document, "iam:PassRole", ENDPOINT_ROLE, **{"iam:PassedToService": "ec2.amazonaws.com"}
    )
    assert not allowed(
        document, "iam:PassRole", ADMIN_ROLE, **{"iam:PassedToService": "sagemaker.amazonaws.com"}
    )
    assert not allowed(document, "iam:PassRole", ENDPOINT_ROLE)  # no service named: no pass
    for statement in document["Statement"]:
        if "iam:PassRole" in statement["Action"]:
            assert not any("*" in arn for arn in statement["Resource"]), statement


def test_the_deploy_role_changes_the_stacks_named_resources_and_not_others() -> None:
    document = deploy()
    assert allowed(document, "s3:PutBucketPolicy", BUCKET)
    assert not allowed(document, "s3:PutBucketPolicy", "arn:aws:s3:::org-cloudtrail")
    assert allowed(
        document,
        "eks:UpdateClusterVersion",
        "arn:aws:eks:eu-west-1:123456789012:cluster/mlstack-prod",
    )
    assert not allowed(
        document,
        "eks:UpdateClusterVersion",
        "arn:aws:eks:eu-west-1:123456789012:cluster/mlstack-dev",
    )
    assert not allowed(document, "ec2:CreateVpc", "arn:aws:ec2:us-east-1:123456789012:vpc/*")
    assert allowed(
        document,
        "sagemaker:UpdateEndpoint",
        f"arn:aws:sagemaker:eu-west-1:{ACCOUNT}:endpoint/demo-prod",
    )
    assert not allowed(
        document,
        "sagemaker:UpdateEndpoint",
        f"arn:aws:sagemaker:eu-west-1:{ACCOUNT}:endpoint/demo-dev",
    )
    # Grants on the key only for AWS services acting for the stack's resources.
    key = f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/k1"
    assert allowed(document, "kms:CreateGrant", key, **{"kms:GrantIsForAWSResource": "true"})
    assert not allowed(document, "kms:CreateGrant", key)
    # Creating a key, deleting a bucket or reading data is the administrator's, not CI's.
    for action, resource in (
        ("kms:CreateKey", "*"),
        ("kms:ScheduleKeyDeletion", key),
        ("s3:DeleteBucket", BUCKET),
        ("s3:GetObject", f"{BUCKET}/x"),
        ("kms:Decrypt", key),
    ):
        assert not allowed(document, action, resource), action


def test_only_reads_are_granted_on_every_resource() -> None:
    for statement in deploy()["Statement"]:
        if statement["Effect"] == "Allow" and "*" in statement["Resource"]:
            assert all(READ_ONLY_VERB.match(a) for a in statement["Action"]), statement["Sid"]


# --- the boundary ---------------------------------------------------------------------------


def test_a_bounded_role_can_make_no_role_and_assume_none() -> None:
    boundary = permissions_boundary()
    for action in (
        "iam:CreateRole",
        "iam:PutRolePolicy",
        "iam:AttachRolePolicy",
        "iam:PassRole",
        "iam:CreatePolicyVersion",
        "sts:AssumeRole",
        "organizations:LeaveOrganization",
    ):
        assert not allowed(boundary, action, "*"), action
        assert not within_boundary(action), action
    assert allowed(boundary, "s3:GetObject", "*")
    assert within_boundary("s3:GetObject")
    assert allowed(boundary, "iam:CreateServiceLinkedRole", "*")


# --- the program ----------------------------------------------------------------------------

CI_TYPES = (
    "mlstack:ci:CiRoles",
    "mlstack:ci:CiDeployAccess",
    "aws:iam/policy:Policy",
)


def with_ci(stack: str, **overrides: Any) -> ProgramRun:
    values = {"mlstack:ciGithubRepository": REPO, **overrides}
    with offline_registry(stack, {"demo": 1}, "eu-west-1"):
        return run_program(stack, overrides=values)


@pytest.fixture(scope="module")
def prod() -> ProgramRun:
    """prod serving the demo model on the cluster and an endpoint: every kind of role."""
    return with_ci("prod", **{"mlstack:servingModelVersions": ["demo=1"]})


def document(resource: Any, prop: str) -> dict[str, Any]:
    value = resource.inputs[prop]
    return json.loads(value) if isinstance(value, str) else dict(value)


def role(run: ProgramRun, name: str) -> Any:
    [found] = [r for r in run.of_type("aws:iam/role:Role") if r.name == name]
    return found


def role_policy(run: ProgramRun, name: str) -> Any:
    [policy] = [r for r in run.of_type("aws:iam/rolePolicy:RolePolicy") if r.name == name]
    return policy


def stack_roles(run: ProgramRun) -> Iterator[Any]:
    return (r for r in run.of_type("aws:iam/role:Role") if not r.name.startswith("ci-"))


def test_without_a_repository_the_stack_declares_no_ci_roles_and_no_boundary(
    stack_runs: dict[str, ProgramRun],
) -> None:
    run = stack_runs["prod"]
    assert [r for t in CI_TYPES for r in run.of_type(t)] == []
    assert all(not r.inputs.get("permissionsBoundary") for r in run.of_type("aws:iam/role:Role"))
    assert outputs.CI_DEPLOY_ROLE_ARN not in run.outputs


def test_with_a_repository_the_stack_exports_both_roles_for_the_repositorys_variables(
    prod: ProgramRun,
) -> None:
    assert prod.outputs[outputs.CI_PREVIEW_ROLE_ARN] == PREVIEW_ROLE
    assert prod.outputs[outputs.CI_DEPLOY_ROLE_ARN] == DEPLOY_ROLE
    preview, deploy_role = role(prod, "ci-preview"), role(prod, "ci-deploy")
    assert preview.inputs["name"] == naming.ci_role_name("prod", "preview")
    subjects = [
        document(resource, "assumeRolePolicy")["Statement"][0]["Condition"]["StringEquals"][
            f"{GITHUB_OIDC_HOST}:sub"
        ]
        for resource in (preview, deploy_role)
    ]
    assert subjects == [preview_subjects(REPO), f"repo:{REPO}:environment:prod"]
    assert deploy_role.inputs["maxSessionDuration"] == DEPLOY_SESSION_SECONDS


def test_every_other_role_of_the_stack_carries_the_boundary(prod: ProgramRun) -> None:
    boundary = prod.named("ci-boundary")
    assert boundary.inputs["name"] == naming.role_boundary_name("prod")
    roles = list(stack_roles(prod))
    kinds = ("control-plane", "nodes", "flow-logs", "execution", "training-role", "vpc-cni-role")
    assert all(any(r.name.endswith(kind) for r in roles) for kind in kinds), [r.name for r in roles]
    for resource in roles:
        assert resource.inputs.get("permissionsBoundary") == BOUNDARY, resource.name
    assert "permissionsBoundary" not in role(prod, "ci-deploy").inputs


CERTIFICATE = "arn:aws:acm:eu-west-1:123456789012:certificate/12345678-1234-1234-1234-123456789012"


@pytest.mark.parametrize("variant", ["prod serving", "dev with an ingress"])
def test_the_boundary_lets_through_every_permission_the_stacks_roles_are_given(
    prod: ProgramRun, variant: str
) -> None:
    """Every inline policy the stack writes, the load balancer controller's included."""
    run = (
        prod
        if variant == "prod serving"
        else with_ci(
            "dev",
            **{
                "mlstack:servingModelVersions": ["demo=1"],
                "mlstack:servingIngressCertificateArn": CERTIFICATE,
            },
        )
    )
    assert variant == "prod serving" or any(
        r.name.startswith("cluster-addons-load-balancer") for r in stack_roles(run)
    ), [r.name for r in stack_roles(run)]
    for policy in run.of_type("aws:iam/rolePolicy:RolePolicy"):
        if policy.name.startswith("ci-"):
            continue
        outside = [a for a in actions_of(document(policy, "policy")) if not within_boundary(a)]
        assert outside == [], policy.name


def test_the_deploy_role_may_pass_exactly_the_roles_the_stack_hands_to_services(
    prod: ProgramRun,
) -> None:
    policy = document(role_policy(prod, "ci-deploy"), "policy")
    passed = sorted(
        arn
        for statement in policy["Statement"]
        if statement["Action"] == ["iam:PassRole"]
        for arn in statement["Resource"]
    )
    addons = [f"cluster-{addon}-role" for addon in ADDON_SERVICE_ACCOUNTS]
    handed = [
        role(prod, name).props["arn"]
        for name in (
            "cluster-control-plane",
            "cluster-nodes",
            "network-flow-logs",
            "tracking-role",  # prod's MLflow tracking server runs as it
            *addons,
        )
    ] + [r.props["arn"] for r in stack_roles(prod) if r.name.endswith("-execution")]
    assert passed == sorted(handed)
    assert len(handed) == 5 + len(addons)  # prod serves demo on an endpoint too
    server = next(s for s in policy["Statement"] if s["Sid"] == "ChangeTheTrackingServer")
    assert server["Resource"] == [prod.outputs[outputs.MLFLOW_TRACKING_SERVER_ARN]]
    assert "sagemaker:CreateMlflowTrackingServer" in server["Action"]


def test_both_roles_reach_the_cluster_one_to_view_one_to_administer(prod: ProgramRun) -> None:
    associations = {
        r.inputs["principalArn"]: r.inputs["policyArn"].rpartition("/")[2]
        for r in prod.of_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation")
        if r.name.startswith("ci-")
    }
    assert associations == {
        PREVIEW_ROLE: "AmazonEKSViewPolicy",
        DEPLOY_ROLE: "AmazonEKSClusterAdminPolicy",
    }


def test_a_stack_with_ci_roles_passes_every_policy_rule(prod: ProgramRun) -> None:
    assert evaluate(prod.resources) == []


def test_a_stack_without_a_cluster_gets_roles_without_cluster_access() -> None:
    run = with_ci("local")
    assert run.outputs[outputs.CI_DEPLOY_ROLE_ARN].endswith("mlstack-local-ci-deploy")
    assert run.of_type("aws:eks/accessEntry:AccessEntry") == []
    statements = document(role_policy(run, "ci-deploy"), "policy")["Statement"]
    assert [s for s in statements if s["Action"] == ["iam:PassRole"]] == []
