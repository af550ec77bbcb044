"""The documents of what CI runs as: who may assume each role, and what it may do.

Three roles per environment, and the runner's:

- *preview* — assumed by pull-request previews and by the scheduled drift check on the default
  branch. It reads what `pulumi preview --refresh` and the programs' own lookups read, and
  nothing that writes, decrypts or downloads data (a pull request runs code nobody has reviewed
  yet).
- *platform* — assumed by a job in the GitHub environment of the stack's name, on a
  GitHub-hosted runner: it changes the platform layer (network, cluster, storage settings,
  registries, the stack's roles, the runner).
- *workloads* — assumed by a job in that environment on the environment's own runner, inside
  its VPC: it builds and pushes the images, applies the Kubernetes objects (an EKS access entry
  makes it cluster admin) and changes the SageMaker endpoints and alarms.
- the *runner*'s service role — what every job on the runner holds before it assumes anything:
  only what CodeBuild needs to run the job in the VPC and log it.

Every grant is written from the stack's naming patterns and its environment tag, never from a
list of its current models, pins or optional parts, so the roles' policies do not change when a
model is pinned or added or the tracking server turned on (the CI roles cannot change their own
policies: that is an administrator's run). Names made from the environment end in `-<env>`
(environment names have no '-', so `*-<env>` never matches another environment's), and the
provider tags every resource with `environment: <env>` (`aws:defaultTags`, checked by the
config), which the conditions on roles, models, configurations and alarms read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from infra.documents.iam import VERSION
from infra.project import naming

GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
GITHUB_OIDC_URL = f"https://{GITHUB_OIDC_HOST}"
GITHUB_AUDIENCE = "sts.amazonaws.com"
"""The audience aws-actions/configure-aws-credentials asks GitHub's token for."""
DEFAULT_BRANCH = "main"
"""The branch the scheduled drift check runs on (a schedule runs on the default branch), and the
one the deploys start from."""
DEPLOY_SESSION_SECONDS = 5400
"""How long a deploy's credentials last: the deploy job's 90-minute timeout. A prod update that
shifts endpoint traffic in watched steps outlasts STS's default hour."""
ENVIRONMENT_TAG = "environment"
"""The tag key `aws:defaultTags` puts on every resource, its value the environment's name."""

READ_ONLY_VERB = re.compile(r"^[a-z0-9-]+:(Describe|List|Get|View|Head|BatchGet)[A-Za-z0-9*]*$")
"""Verbs of calls that only read, and the only ones the preview role is given."""

# What `pulumi preview --refresh` (and `refresh --preview-only`) reads back for every resource
# type the two layers declare, and what the programs look up while they run. No s3:GetObject,
# kms:Decrypt, image layers or log events: a preview needs the resources' settings, never their
# contents. (An image's manifest, which a refresh of a pushed image reads, lists its layers'
# digests, not the layers.) `tests/infra/test_ci_access.py` evaluates it against the provider's
# read calls of every resource type in every stack's plan.
READ_ACTIONS: tuple[str, ...] = (
    "application-autoscaling:DescribeScalableTargets",
    "application-autoscaling:DescribeScalingPolicies",
    "application-autoscaling:ListTagsForResource",
    "autoscaling:DescribeAutoScalingGroups",
    "autoscaling:DescribeTags",
    "budgets:ListTagsForResource",
    "budgets:ViewBudget",
    # `mlstack preflight`, which the platform's deploy runs first (infra/operations/preflight.py).
    "ce:ListCostAllocationTags",
    "cloudwatch:DescribeAlarms",
    "cloudwatch:GetDashboard",
    "cloudwatch:ListTagsForResource",
    "codebuild:BatchGetProjects",
    "codeconnections:GetConnection",
    "codeconnections:ListTagsForResource",
    "ec2:Describe*",
    "ecr:BatchGetImage",
    "ecr:DescribeImages",
    "ecr:DescribeRepositories",
    "ecr:GetAuthorizationToken",
    "ecr:GetLifecyclePolicy",
    "ecr:GetRepositoryPolicy",
    "ecr:ListTagsForResource",
    "eks:Describe*",
    "eks:List*",
    "iam:GetOpenIDConnectProvider",
    "iam:GetPolicy",
    "iam:GetPolicyVersion",
    "iam:GetRole",
    "iam:GetRolePolicy",
    "iam:ListAttachedRolePolicies",
    "iam:ListInstanceProfilesForRole",
    "iam:ListOpenIDConnectProviderTags",
    "iam:ListOpenIDConnectProviders",
    "iam:ListPolicyTags",
    "iam:ListPolicyVersions",
    "iam:ListRolePolicies",
    "iam:ListRoleTags",
    "iam:ListRoles",
    "kms:DescribeKey",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:ListAliases",
    "kms:ListResourceTags",
    "logs:DescribeLogGroups",
    "logs:ListTagsForResource",
    "logs:ListTagsLogGroup",
    "s3:GetAccelerateConfiguration",
    "s3:GetBucketAcl",
    "s3:GetBucketCORS",
    "s3:GetBucketLocation",
    "s3:GetBucketLogging",
    "s3:GetBucketObjectLockConfiguration",
    "s3:GetBucketOwnershipControls",
    "s3:GetBucketPolicy",
    "s3:GetBucketPublicAccessBlock",
    "s3:GetBucketRequestPayment",
    "s3:GetBucketTagging",
    "s3:GetBucketVersioning",
    "s3:GetBucketWebsite",
    "s3:GetEncryptionConfiguration",
    "s3:GetLifecycleConfiguration",
    "s3:GetReplicationConfiguration",
    "s3:ListBucket",
    "sagemaker:DescribeEndpoint",
    "sagemaker:DescribeEndpointConfig",
    "sagemaker:DescribeMlflowTrackingServer",
    "sagemaker:DescribeModel",
    "sagemaker:DescribeModelPackage",
    "sagemaker:DescribeModelPackageGroup",
    "sagemaker:GetModelPackageGroupPolicy",
    "sagemaker:ListModelPackages",
    "sagemaker:ListTags",
    "sns:GetSubscriptionAttributes",
    "sns:GetTopicAttributes",
    "sns:ListSubscriptionsByTopic",
    "sns:ListTagsForResource",
    "servicequotas:GetServiceQuota",  # `mlstack preflight`
    "servicequotas:ListServiceQuotas",  # `mlstack preflight`
    "tag:GetResources",
)

PASSED_TO: Mapping[str, tuple[str, ...]] = {
    # the control plane's role, the node role, and the add-ons' IRSA roles (CreateAddon)
    "platform": (
        "eks.amazonaws.com",
        "ec2.amazonaws.com",
        "vpc-flow-logs.amazonaws.com",
        "sagemaker.amazonaws.com",  # the MLflow tracking server's role
        "codebuild.amazonaws.com",  # the runner's role
    ),
    "workloads": ("sagemaker.amazonaws.com",),  # the models' endpoint execution roles
}
"""The services each deploy role hands the stack's roles to, and the only ones it may."""

ENDPOINT_ROLE_PATTERN = "endpoint-*-execution-*"
"""The physical names Pulumi gives the endpoint execution roles (`EndpointIdentity`, logical
name `endpoint-<model>-execution`, and a random suffix): the only roles the workloads deploy
role hands to SageMaker."""

SERVICE_LINKED_ROLES = (
    "autoscaling.amazonaws.com",
    "eks.amazonaws.com",
    "eks-nodegroup.amazonaws.com",
    "sagemaker.application-autoscaling.amazonaws.com",
)
"""Service-linked roles a first cluster, node group or endpoint autoscaling creates."""

UNSCOPED_SERVICES = (
    "acm",
    "autoscaling",
    "cloudwatch",
    "cognito-idp",
    "ec2",
    "eks",
    "eks-auth",
    "elasticloadbalancing",
    "logs",
    "shield",
    "ssm",
    "tag",
    "waf",
    "waf-regional",
    "wafv2",
    "xray",
)
"""Services the stack's roles act in on any resource (within the boundary): the AWS-managed
policies the stack attaches (EKS cluster and node policies, the CNI, EBS CSI and CloudWatch
agent policies) and the load balancer controller's act on resources AWS names at run time.
None of them holds the environment's data; the services that do (S3, KMS, ECR, SageMaker and
its MLflow) are granted only on the stack's own resources."""

_IAM_WRITES = (
    "iam:Add*",
    "iam:Attach*",
    "iam:Create*",
    "iam:Delete*",
    "iam:Detach*",
    "iam:Put*",
    "iam:Remove*",
    "iam:Set*",
    "iam:Tag*",
    "iam:Untag*",
    "iam:Update*",
)


@dataclass(frozen=True, kw_only=True)
class StackScope:
    """Where one stack's resources are, and the ARNs of those it names."""

    partition: str
    region: str
    account_id: str
    environment: str

    @property
    def iam(self) -> str:
        return f"arn:{self.partition}:iam::{self.account_id}"

    def regional(self, service: str) -> str:
        return f"arn:{self.partition}:{service}:{self.region}:{self.account_id}"

    @property
    def suffix(self) -> str:
        """The ending of every name made from the environment (`<model>-<env>`)."""
        return f"-{self.environment}"

    @property
    def cluster_name(self) -> str:
        return naming.cluster_name(self.environment)

    def role_arn(self, name: str) -> str:
        return f"{self.iam}:role/{name}"

    @property
    def boundary_arn(self) -> str:
        return f"{self.iam}:policy/{naming.role_boundary_name(self.environment)}"

    @property
    def ci_role_arns(self) -> list[str]:
        return [
            self.role_arn(naming.ci_role_name(self.environment, purpose))
            for purpose in naming.CI_ROLE_PURPOSES
        ]

    @property
    def budget_arn(self) -> str:
        return budget_arn(
            partition=self.partition,
            account_id=self.account_id,
            budget=naming.monitoring_name(self.environment),
        )

    @property
    def tagged(self) -> dict[str, Any]:
        """An existing resource of this stack."""
        return {"StringEquals": {f"aws:ResourceTag/{ENVIRONMENT_TAG}": self.environment}}

    @property
    def tagging(self) -> dict[str, Any]:
        """A resource created as this stack's."""
        return {"StringEquals": {f"aws:RequestTag/{ENVIRONMENT_TAG}": self.environment}}


@dataclass(frozen=True, kw_only=True)
class StackResources:
    """The stack's resources the roles name by ARN: all of them exist before any CI role acts
    (an administrator's first `pulumi up` creates them), and none depends on a pin or a
    model."""

    key_arn: str
    bucket_arns: Sequence[str]
    repository_arns: Sequence[str]
    topic_arn: str
    connection_arn: str = ""
    """The CodeConnections connection the runner receives GitHub's jobs through (with one)."""


def _document(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": VERSION, "Statement": list(statements)}


def _allow(
    sid: str,
    actions: Sequence[str],
    resources: Sequence[str],
    condition: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Sid": sid,
        "Effect": "Allow",
        "Action": list(actions),
        "Resource": list(resources),
    }
    if condition:
        statement["Condition"] = dict(condition)
    return statement


def _deny(sid: str, actions: Sequence[str], resources: Sequence[str]) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Deny", "Action": list(actions), "Resource": list(resources)}


def github_provider_arn(*, partition: str, account_id: str) -> str:
    """The ARN IAM gives the account's GitHub OIDC provider: one per account, by its host."""
    return f"arn:{partition}:iam::{account_id}:oidc-provider/{GITHUB_OIDC_HOST}"


def preview_subjects(repository: str) -> list[str]:
    """The token subjects of the repository's pull requests and of its default branch (the
    scheduled drift check), as GitHub writes them when no environment is named."""
    return [f"repo:{repository}:pull_request", f"repo:{repository}:ref:refs/heads/{DEFAULT_BRANCH}"]


def deploy_subject(repository: str, environment: str) -> str:
    """The token subject of a job running in the GitHub environment named after the stack;
    GitHub gives it only once that environment's protection rules (prod's reviewers) pass."""
    return f"repo:{repository}:environment:{environment}"


def github_trust_policy(*, provider_arn: str, subjects: Sequence[str]) -> dict[str, Any]:
    """Let GitHub's tokens for exactly `subjects` assume the role.

    StringEquals on both claims, never StringLike: a wildcard in the subject would let other
    branches, environments or repositories in; and the audience is the one the official action
    asks for."""
    if not subjects or any(not s.startswith("repo:") or "*" in s or "?" in s for s in subjects):
        raise ValueError(
            f"subjects = {list(subjects)}: allowed: exact repo:<owner>/<name>:... ones"
        )
    return _document(
        {
            "Effect": "Allow",
            "Principal": {"Federated": provider_arn},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {
                "StringEquals": {
                    f"{GITHUB_OIDC_HOST}:aud": GITHUB_AUDIENCE,
                    f"{GITHUB_OIDC_HOST}:sub": subjects[0]
                    if len(subjects) == 1
                    else list(subjects),
                }
            },
        }
    )


def budget_arn(*, partition: str, account_id: str, budget: str) -> str:
    return f"arn:{partition}:budgets::{account_id}:budget/{budget}"


def preview_policy() -> dict[str, Any]:
    """Read-only: the settings of what the stack declares and what its programs look up.

    Reads are granted on every resource, since most Describe and List calls name none and a
    preview must see a resource the stack does not know yet (one it adopts); the calls that read
    contents (objects, keys' plaintext, images, log events) are not among them."""
    return _document(_allow("ReadStackSettings", READ_ACTIONS, ["*"]))


def _never_change_ci(scope: StackScope) -> list[dict[str, Any]]:
    """What no deploy role may do, whatever else it is granted: change a CI role or the
    boundary, or lift a boundary."""
    return [
        _deny(
            "NeverChangeTheCiRolesOrTheBoundary",
            _IAM_WRITES,
            [*scope.ci_role_arns, scope.boundary_arn],
        ),
        _deny("NeverLiftABoundary", ["iam:DeleteRolePermissionsBoundary"], ["*"]),
    ]


def _pass_roles(
    sid: str, scope: StackScope, services: Sequence[str], names: str = "*"
) -> dict[str, Any]:
    return _allow(
        sid,
        ["iam:PassRole"],
        [scope.role_arn(names)],
        {
            "StringEquals": {
                f"aws:ResourceTag/{ENVIRONMENT_TAG}": scope.environment,
                "iam:PassedToService": list(services),
            }
        },
    )


def platform_deploy_policy(scope: StackScope, resources: StackResources) -> dict[str, Any]:
    """What `pulumi up` of the platform layer changes, and no more.

    The key, buckets, repositories and topic by ARN (creating them is the first, administrator's
    `pulumi up`); the cluster, its runner, the model package groups, the tracking server and the
    dashboard and budget by the names the stack gives them; roles by the environment tag, and
    only with the boundary; VPC parts and log groups by region and account."""
    r = scope.regional
    boundary = {"StringEquals": {"iam:PermissionsBoundary": scope.boundary_arn}}
    statements = [
        _allow("ReadStackSettings", READ_ACTIONS, ["*"]),
        _allow("ChangeTheNetwork", [f"ec2:{action}" for action in _EC2_WRITES], [f"{r('ec2')}:*"]),
        _allow("CreateTheCluster", ["eks:CreateCluster"], ["*"], scope.tagging),
        _allow(
            "ChangeTheCluster",
            [f"eks:{action}" for action in _EKS_WRITES],
            [
                f"{r('eks')}:{kind}/{scope.cluster_name}{suffix}"
                for kind, suffix in (
                    ("cluster", ""),
                    ("nodegroup", "/*"),
                    ("addon", "/*"),
                    ("access-entry", "/*"),
                )
            ],
        ),
        _allow(
            "TagTheClustersNodeGroups",
            ["autoscaling:CreateOrUpdateTags", "autoscaling:DeleteTags"],
            [f"{r('autoscaling')}:autoScalingGroup:*:autoScalingGroupName/eks-*"],
            {"StringEquals": {"aws:ResourceTag/eks:cluster-name": scope.cluster_name}},
        ),
        _allow(
            "ChangeTheEnvironmentKey",
            [f"kms:{action}" for action in _KMS_WRITES],
            [resources.key_arn],
        ),
        _allow(
            "LetServicesUseTheKey",
            ["kms:CreateGrant"],
            [resources.key_arn],
            {"Bool": {"kms:GrantIsForAWSResource": "true"}},
        ),
        _allow(
            "PointTheAlias",
            ["kms:CreateAlias", "kms:UpdateAlias", "kms:DeleteAlias"],
            [resources.key_arn, f"{r('kms')}:{naming.kms_alias(scope.environment)}"],
        ),
        _allow(
            "ConfigureTheBuckets",
            [f"s3:{action}" for action in _S3_WRITES],
            list(resources.bucket_arns),
        ),
        _allow(
            "ConfigureTheRepositories",
            [f"ecr:{action}" for action in _ECR_SETTINGS],
            list(resources.repository_arns),
        ),
        _allow(
            "ConfigureTheAlarmTopic",
            [f"sns:{action}" for action in _SNS_WRITES],
            [resources.topic_arn, f"{resources.topic_arn}:*"],
        ),
        _allow(
            "ChangeLogGroups",
            [f"logs:{action}" for action in _LOGS_WRITES],
            [f"{r('logs')}:log-group:*"],
        ),
        _allow(
            "ChangeTheBudget",
            [
                "budgets:ModifyBudget",
                "budgets:ViewBudget",
                "budgets:TagResource",
                "budgets:UntagResource",
                "budgets:ListTagsForResource",
            ],
            [scope.budget_arn],
        ),
        _allow(
            "ChangeTheModelPackageGroups",
            [f"sagemaker:{action}" for action in _REGISTRY_WRITES],
            [f"{r('sagemaker')}:model-package-group/*{scope.suffix}"],
        ),
        _allow(
            "ChangeTheTrackingServer",
            [f"sagemaker:{action}" for action in _TRACKING_WRITES],
            [
                f"{r('sagemaker')}:mlflow-tracking-server/"
                + naming.mlflow_tracking_server_name(scope.environment)
            ],
        ),
        _allow(
            "ChangeTheRunner",
            [f"codebuild:{action}" for action in _RUNNER_WRITES],
            [f"{r('codebuild')}:project/{naming.runner_project_name(scope.environment)}"],
        ),
        _allow(
            "CreateTheStacksRoles",
            ["iam:CreateRole"],
            [scope.role_arn("*")],
            {
                "StringEquals": {
                    "iam:PermissionsBoundary": scope.boundary_arn,
                    f"aws:RequestTag/{ENVIRONMENT_TAG}": scope.environment,
                }
            },
        ),
        _allow(
            "ChangeTheStacksRolesUnderTheBoundary",
            [f"iam:{action}" for action in _BOUNDED_ROLE_WRITES],
            [scope.role_arn("*")],
            {"StringEquals": {**boundary["StringEquals"], **scope.tagged["StringEquals"]}},
        ),
        # These calls take no boundary condition; none of them grants a permission (UpdateRole
        # sets a description and a session length), and a role with policies cannot be deleted.
        _allow(
            "RemoveTheStacksRoles",
            ["iam:UpdateRole", "iam:UpdateRoleDescription", "iam:DeleteRole"],
            [scope.role_arn("*")],
            scope.tagged,
        ),
        # EKS puts a node role in instance profiles of its own; a role is removed from them
        # before it is deleted.
        _allow(
            "TakeRolesOutOfEksInstanceProfiles",
            ["iam:RemoveRoleFromInstanceProfile"],
            [f"{scope.iam}:instance-profile/eks-*"],
        ),
        # The environment tag is what makes a role the stack's: it is never removed or changed.
        _allow(
            "UntagTheStacksRoles",
            ["iam:UntagRole"],
            [scope.role_arn("*")],
            {**scope.tagged, "ForAllValues:StringNotEquals": {"aws:TagKeys": [ENVIRONMENT_TAG]}},
        ),
        _allow(
            "RetagOnlyTheStacksRoles",
            ["iam:TagRole"],
            [scope.role_arn("*")],
            {
                "StringEquals": {f"aws:ResourceTag/{ENVIRONMENT_TAG}": scope.environment},
                "StringEqualsIfExists": {f"aws:RequestTag/{ENVIRONMENT_TAG}": scope.environment},
            },
        ),
        _allow(
            "CreateServiceLinkedRoles",
            ["iam:CreateServiceLinkedRole"],
            [f"{scope.iam}:role/aws-service-role/*"],
            {"StringEquals": {"iam:AWSServiceName": list(SERVICE_LINKED_ROLES)}},
        ),
        _allow(
            "ChangeTheClustersIdentityProvider",
            [f"iam:{action}" for action in _OIDC_WRITES],
            [f"{scope.iam}:oidc-provider/oidc.eks.{scope.region}.amazonaws.com/id/*"],
        ),
        _pass_roles("PassTheStacksRolesToTheirServices", scope, PASSED_TO["platform"]),
    ]
    if resources.connection_arn:
        statements.append(
            _allow(
                "GiveTheRunnerTheGithubConnection",
                ["codeconnections:PassConnection", "codeconnections:UseConnection"],
                [resources.connection_arn],
            )
        )
    return _document(*statements, *_never_change_ci(scope))


def workloads_deploy_policy(scope: StackScope, resources: StackResources) -> dict[str, Any]:
    """What `pulumi up` of the workloads layer changes through AWS's API, and no more: the
    images it pushes to the stack's repositories, its SageMaker models, endpoint configurations
    and endpoints (by the environment tag and the `<model>-<env>` endpoint names), their
    autoscaling and alarms, and the dashboard. It writes no role: it hands the models'
    execution roles, which the platform declares, to SageMaker. The Kubernetes objects go
    through the cluster's API, where its access entry makes it admin.

    Around each endpoint update the stack's own steps call AWS with this role too
    (`infra.components.endpoint_rollout`): before it, the variant's scalable target is
    deregistered when the instance type changes (`ScaleTheEndpoints`); after it, the check reads
    what serves, marks or unmarks the configuration it deployed (AddTags, DeleteTags), finds the
    endpoint's retained configurations (ListEndpointConfigs, which names no resource) and deletes
    the oldest with their models — only the stack's own, by the environment tag."""
    r = scope.regional
    endpoints = f"{r('sagemaker')}:endpoint/*{scope.suffix}"
    return _document(
        _allow("ReadStackSettings", READ_ACTIONS, ["*"]),
        _allow(
            "PushTheImages",
            [f"ecr:{action}" for action in _ECR_PUSH],
            list(resources.repository_arns),
        ),
        _allow(
            "CreateTheStacksModelsAndConfigurations",
            ["sagemaker:CreateModel", "sagemaker:CreateEndpointConfig"],
            [f"{r('sagemaker')}:model/*", f"{r('sagemaker')}:endpoint-config/*"],
            scope.tagging,
        ),
        _allow(
            "RemoveAndTagTheStacksModelsAndConfigurations",
            [
                "sagemaker:DeleteModel",
                "sagemaker:DeleteEndpointConfig",
                "sagemaker:AddTags",
                "sagemaker:DeleteTags",
            ],
            [f"{r('sagemaker')}:model/*", f"{r('sagemaker')}:endpoint-config/*"],
            scope.tagged,
        ),
        _allow(
            "FindTheEndpointsRetainedConfigurations",
            ["sagemaker:ListEndpointConfigs"],
            ["*"],
        ),
        _allow(
            "ChangeTheEndpoints",
            [f"sagemaker:{action}" for action in _ENDPOINT_WRITES],
            [endpoints],
        ),
        # CreateEndpoint and UpdateEndpoint are authorized against the configuration they name
        # as well; no other endpoint call is, so tags on another stack's configurations stay
        # out of reach.
        _allow(
            "PointTheEndpointsAtConfigurations",
            ["sagemaker:CreateEndpoint", "sagemaker:UpdateEndpoint"],
            [f"{r('sagemaker')}:endpoint-config/*"],
        ),
        # SageMaker encrypts an endpoint's storage and capture with the environment key through
        # grants it makes with the caller's permission.
        _allow(
            "LetSageMakerUseTheKey",
            ["kms:CreateGrant", "kms:DescribeKey"],
            [resources.key_arn],
            {"Bool": {"kms:GrantIsForAWSResource": "true"}},
        ),
        _allow(
            "ScaleTheEndpoints",
            [f"application-autoscaling:{action}" for action in _SCALING_WRITES],
            [f"{r('application-autoscaling')}:scalable-target/*"],
        ),
        # Application Auto Scaling checks these on the caller when a SageMaker variant is
        # registered and when a target-tracking policy makes its alarms.
        _allow(
            "LetAutoscalingResizeTheEndpoints",
            ["sagemaker:UpdateEndpointWeightsAndCapacities"],
            [endpoints],
        ),
        _allow(
            "ChangeTheStacksAlarms",
            ["cloudwatch:PutMetricAlarm", "cloudwatch:TagResource"],
            [f"{r('cloudwatch')}:alarm:*"],
            scope.tagging,
        ),
        _allow(
            "ChangeAndRemoveTheStacksAlarms",
            [
                "cloudwatch:PutMetricAlarm",
                "cloudwatch:DeleteAlarms",
                "cloudwatch:TagResource",
                "cloudwatch:UntagResource",
            ],
            [f"{r('cloudwatch')}:alarm:*"],
            scope.tagged,
        ),
        _allow(
            "ChangeTheDashboard",
            ["cloudwatch:PutDashboard", "cloudwatch:DeleteDashboards"],
            [
                f"arn:{scope.partition}:cloudwatch::{scope.account_id}:dashboard/"
                + naming.monitoring_name(scope.environment)
            ],
        ),
        _allow(
            "CreateTheAutoscalingServiceLinkedRole",
            ["iam:CreateServiceLinkedRole"],
            [f"{scope.iam}:role/aws-service-role/*"],
            {"StringEquals": {"iam:AWSServiceName": list(SERVICE_LINKED_ROLES)}},
        ),
        _pass_roles(
            "HandTheModelsExecutionRolesToSageMaker",
            scope,
            PASSED_TO["workloads"],
            ENDPOINT_ROLE_PATTERN,
        ),
        *_never_change_ci(scope),
    )


def runner_policy(
    scope: StackScope, *, log_group_arn: str, subnet_arns: Sequence[str], connection_arn: str
) -> dict[str, Any]:
    """The runner project's service role: what every job on the runner holds before it assumes
    a role of its own (deploys assume theirs through GitHub's OIDC token, behind the GitHub
    environment's rules). Only CodeBuild's own needs: network interfaces in the stack's private
    subnets, its log group, and the connection that brings GitHub's jobs."""
    return _document(
        _allow(
            "SeeTheVpc",
            [
                "ec2:DescribeDhcpOptions",
                "ec2:DescribeNetworkInterfaces",
                "ec2:DescribeSecurityGroups",
                "ec2:DescribeSubnets",
                "ec2:DescribeVpcs",
            ],
            ["*"],
        ),
        _allow(
            "RunInTheVpc",
            ["ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface"],
            [f"{scope.regional('ec2')}:*"],
        ),
        _allow(
            "AttachInterfacesInThePrivateSubnets",
            ["ec2:CreateNetworkInterfacePermission"],
            [f"{scope.regional('ec2')}:network-interface/*"],
            {
                "StringEquals": {
                    "ec2:Subnet": list(subnet_arns),
                    "ec2:AuthorizedService": "codebuild.amazonaws.com",
                }
            },
        ),
        _allow(
            "WriteOwnLogs",
            ["logs:CreateLogStream", "logs:PutLogEvents"],
            [log_group_arn, f"{log_group_arn}:*"],
        ),
        _allow(
            "ReceiveJobsThroughTheConnection",
            [
                "codeconnections:GetConnection",
                "codeconnections:GetConnectionToken",
                "codeconnections:UseConnection",
            ],
            [connection_arn],
        ),
    )


def permissions_boundary(scope: StackScope, resources: StackResources) -> dict[str, Any]:
    """The most any role of the stack may do, whatever its own policies say.

    Every role the deploy roles create or change must carry it, so a role they write cannot
    reach past the stack: the data services (S3, KMS, ECR, SageMaker and its MLflow) only on the
    stack's own resources; nothing in IAM beyond reading and service-linked roles (so no role
    it makes can make roles), nothing in STS, Organizations or the account."""
    r = scope.regional
    # Each resource type spelt out: IAM takes no wildcard for a resource type (the part before
    # the '/'), only for the name after it.
    sagemaker = [
        f"{r('sagemaker')}:{kind}/*{scope.suffix}{rest}"
        for kind, rest in (
            ("model-package-group", ""),
            ("model-package", "/*"),
            ("mlflow-tracking-server", ""),
            ("endpoint", ""),
        )
    ]
    statements = [
        _allow("ServicesThatHoldNoData", [f"{service}:*" for service in UNSCOPED_SERVICES], ["*"]),
        _allow(
            "TheStacksBuckets",
            ["s3:*"],
            [arn for bucket in resources.bucket_arns for arn in (bucket, f"{bucket}/*")],
        ),
        _allow("TheStacksKey", ["kms:*"], [resources.key_arn]),
        _allow("TheStacksRepositories", ["ecr:*"], list(resources.repository_arns)),
        _allow("AuthenticateToRegistries", ["ecr:GetAuthorizationToken"], ["*"]),
        # EKS add-ons and the node agents run images from AWS's own registries.
        _allow(
            "PullImagesOfOtherAccounts",
            ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
            ["*"],
            {"StringNotEquals": {"aws:ResourceAccount": scope.account_id}},
        ),
        _allow("TheStacksSageMakerResources", ["sagemaker:*", "sagemaker-mlflow:*"], sagemaker),
        _allow("ListSageMakerResources", ["sagemaker:List*", "sagemaker:Search"], ["*"]),
        _allow(
            "ReadIamAndCreateServiceLinkedRoles",
            ["iam:CreateServiceLinkedRole", "iam:Get*", "iam:List*"],
            ["*"],
        ),
    ]
    if resources.connection_arn:
        statements.append(
            _allow("TheRunnersConnection", ["codeconnections:*"], [resources.connection_arn])
        )
    return _document(*statements)


_EC2_WRITES = (
    "AllocateAddress",
    "AssociateRouteTable",
    "AttachInternetGateway",
    "AuthorizeSecurityGroupEgress",
    "AuthorizeSecurityGroupIngress",
    "CreateFlowLogs",
    "CreateInternetGateway",
    "CreateLaunchTemplate",
    "CreateLaunchTemplateVersion",
    "CreateNatGateway",
    "CreateRoute",
    "CreateRouteTable",
    "CreateSecurityGroup",
    "CreateSubnet",
    "CreateTags",
    "CreateVpc",
    "CreateVpcEndpoint",
    "DeleteFlowLogs",
    "DeleteInternetGateway",
    "DeleteLaunchTemplate",
    "DeleteNatGateway",
    "DeleteNetworkInterface",
    "DeleteRoute",
    "DeleteRouteTable",
    "DeleteSecurityGroup",
    "DeleteSubnet",
    "DeleteTags",
    "DeleteVpc",
    "DeleteVpcEndpoints",
    "DetachInternetGateway",
    "DetachNetworkInterface",
    "DisassociateAddress",
    "DisassociateRouteTable",
    "ModifyLaunchTemplate",
    "ModifySecurityGroupRules",
    "ModifySubnetAttribute",
    "ModifyVpcAttribute",
    "ModifyVpcEndpoint",
    "ReleaseAddress",
    "ReplaceRoute",
    "ReplaceRouteTableAssociation",
    "RevokeSecurityGroupEgress",
    "RevokeSecurityGroupIngress",
    "UpdateSecurityGroupRuleDescriptionsEgress",
    "UpdateSecurityGroupRuleDescriptionsIngress",
)
_EKS_WRITES = (
    "AssociateAccessPolicy",
    "AssociateEncryptionConfig",
    "CreateAccessEntry",
    "CreateAddon",
    "CreateNodegroup",
    "DeleteAccessEntry",
    "DeleteAddon",
    "DeleteNodegroup",
    "DisassociateAccessPolicy",
    "TagResource",
    "UntagResource",
    "UpdateAccessEntry",
    "UpdateAddon",
    "UpdateClusterConfig",
    "UpdateClusterVersion",
    "UpdateNodegroupConfig",
    "UpdateNodegroupVersion",
)
_KMS_WRITES = (
    "EnableKeyRotation",
    "PutKeyPolicy",
    "TagResource",
    "UntagResource",
    "UpdateKeyDescription",
)
_S3_WRITES = (
    "PutBucketOwnershipControls",
    "PutBucketPolicy",
    "PutBucketPublicAccessBlock",
    "PutBucketTagging",
    "PutBucketVersioning",
    "PutEncryptionConfiguration",
    "PutLifecycleConfiguration",
)
_ECR_SETTINGS = (
    "DeleteLifecyclePolicy",
    "PutImageScanningConfiguration",
    "PutImageTagMutability",
    "PutLifecyclePolicy",
    "TagResource",
    "UntagResource",
)
_ECR_PUSH = (
    "BatchCheckLayerAvailability",
    "BatchGetImage",
    "CompleteLayerUpload",
    "GetDownloadUrlForLayer",
    "InitiateLayerUpload",
    "PutImage",
    "UploadLayerPart",
)
_SNS_WRITES = ("SetTopicAttributes", "Subscribe", "TagResource", "Unsubscribe", "UntagResource")
_LOGS_WRITES = (
    "AssociateKmsKey",
    "CreateLogGroup",
    "DeleteLogGroup",
    "DeleteRetentionPolicy",
    "DisassociateKmsKey",
    "PutRetentionPolicy",
    "TagLogGroup",
    "TagResource",
    "UntagLogGroup",
    "UntagResource",
)
_REGISTRY_WRITES = (
    "AddTags",
    "CreateModelPackageGroup",
    "DeleteModelPackageGroupPolicy",
    "DeleteTags",
    "PutModelPackageGroupPolicy",
)
_ENDPOINT_WRITES = (
    "AddTags",
    "CreateEndpoint",
    "DeleteEndpoint",
    "DeleteTags",
    "UpdateEndpoint",
)
_TRACKING_WRITES = (
    "AddTags",
    "CreateMlflowTrackingServer",
    "DeleteMlflowTrackingServer",
    "DeleteTags",
    "UpdateMlflowTrackingServer",
)
_SCALING_WRITES = (
    "DeleteScalingPolicy",
    "DeregisterScalableTarget",
    "PutScalingPolicy",
    "RegisterScalableTarget",
    "TagResource",
    "UntagResource",
)
_RUNNER_WRITES = (
    "CreateProject",
    "CreateWebhook",
    "DeleteProject",
    "DeleteWebhook",
    "UpdateProject",
    "UpdateProjectVisibility",
    "UpdateWebhook",
)
_BOUNDED_ROLE_WRITES = (
    "AttachRolePolicy",
    "DeleteRolePolicy",
    "DetachRolePolicy",
    "PutRolePermissionsBoundary",
    "PutRolePolicy",
)
_OIDC_WRITES = (
    "AddClientIDToOpenIDConnectProvider",
    "CreateOpenIDConnectProvider",
    "DeleteOpenIDConnectProvider",
    "RemoveClientIDFromOpenIDConnectProvider",
    "TagOpenIDConnectProvider",
    "UntagOpenIDConnectProvider",
    "UpdateOpenIDConnectProviderThumbprint",
)
