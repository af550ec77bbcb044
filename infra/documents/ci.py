"""The documents of the roles GitHub Actions assumes: who may assume them, and what they may do.

Two roles per environment. The *preview* role is assumed by pull-request previews and by the
scheduled drift check on the default branch: it reads what `pulumi preview --refresh` and the
program's own lookups read, and nothing that writes, decrypts or downloads data (a pull request
runs code nobody has reviewed yet). The *deploy* role is assumed only by a job running in the
GitHub environment of the stack's name (the one that gives `prod` its required reviewers): it
changes the stack's own resources, named by ARN where the stack knows them and by region and
account where AWS names them, and it cannot make itself more than it is: every role it creates
or changes must carry the stack's permissions boundary, it passes only the stack's roles, and it
may not touch its own role, the preview role or the boundary.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from infra.documents.iam import VERSION

GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
GITHUB_OIDC_URL = f"https://{GITHUB_OIDC_HOST}"
GITHUB_AUDIENCE = "sts.amazonaws.com"
"""The audience aws-actions/configure-aws-credentials asks GitHub's token for."""
DEFAULT_BRANCH = "main"
"""The branch the scheduled drift check runs on (a schedule runs on the default branch), and the
one `deploy.yml` deploys from."""
DEPLOY_SESSION_SECONDS = 5400
"""How long a deploy's credentials last: the deploy job's 90-minute timeout. A prod update that
shifts endpoint traffic in watched steps outlasts STS's default hour."""

READ_ONLY_VERB = re.compile(r"^[a-z0-9-]+:(Describe|List|Get|View|Head|BatchGet)[A-Za-z0-9*]*$")
"""Verbs of calls that only read, and the only ones the preview role is given."""

# What `pulumi preview --refresh` reads back for every resource type the stack declares, and
# what the program looks up while it runs. No s3:GetObject, kms:Decrypt, image layers or log
# events: a preview needs the resources' settings, never their contents. (An image's manifest,
# which a refresh of a pushed image reads, lists its layers' digests, not the layers.)
READ_ACTIONS: tuple[str, ...] = (
    "application-autoscaling:DescribeScalableTargets",
    "application-autoscaling:DescribeScalingPolicies",
    "application-autoscaling:ListTagsForResource",
    "autoscaling:DescribeAutoScalingGroups",
    "autoscaling:DescribeTags",
    "cloudwatch:DescribeAlarms",
    "cloudwatch:GetDashboard",
    "cloudwatch:ListTagsForResource",
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
    "tag:GetResources",
)

PASSED_TO: Mapping[str, tuple[str, ...]] = {
    "cluster": ("eks.amazonaws.com",),  # the control plane's role and the add-ons' IRSA roles
    "nodes": ("eks.amazonaws.com", "ec2.amazonaws.com"),
    "flow-logs": ("vpc-flow-logs.amazonaws.com",),
    "endpoints": ("sagemaker.amazonaws.com",),
    "tracking": ("sagemaker.amazonaws.com",),  # the MLflow tracking server's role
}
"""Which service each kind of the stack's roles is handed to, and the only ones it may be."""

SERVICE_LINKED_ROLES = (
    "autoscaling.amazonaws.com",
    "eks.amazonaws.com",
    "eks-nodegroup.amazonaws.com",
    "sagemaker.application-autoscaling.amazonaws.com",
)
"""Service-linked roles a first cluster, node group or endpoint autoscaling creates."""

BOUNDED_SERVICES = (
    "acm",
    "autoscaling",
    "cloudwatch",
    "cognito-idp",
    "ec2",
    "ecr",
    "eks",
    "eks-auth",
    "elasticloadbalancing",
    "kms",
    "logs",
    "s3",
    "sagemaker",
    "sagemaker-mlflow",  # training records its runs on the environment's tracking server
    "shield",
    "ssm",
    "tag",
    "waf",
    "waf-regional",
    "wafv2",
    "xray",
)
"""The services the stack's roles act in: its own policies, and the AWS-managed ones it
attaches (EKS cluster and node policies, the CNI, EBS CSI and CloudWatch agent policies) and the
load balancer controller's. Nothing in IAM beyond reading and service-linked roles, nothing in
STS, Organizations or the account."""

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


def preview_policy(*, partition: str, account_id: str, budget: str) -> dict[str, Any]:
    """Read-only: the settings of what the stack declares and what its program looks up.

    Reads are granted on every resource, since most Describe and List calls name none and a
    preview must see a resource the stack does not know yet (one it adopts); the calls that read
    contents (objects, keys' plaintext, images, log events) are not among them."""
    return _document(
        _allow("ReadStackSettings", READ_ACTIONS, ["*"]),
        _allow(
            "ReadTheEnvironmentsBudget",
            ["budgets:ViewBudget", "budgets:ListTagsForResource"],
            [budget_arn(partition=partition, account_id=account_id, budget=budget)],
        ),
    )


def deploy_policy(
    *,
    partition: str,
    region: str,
    account_id: str,
    cluster_name: str,
    budget: str,
    dashboard: str,
    key_arn: str,
    key_alias: str,
    bucket_arns: Sequence[str],
    repository_arns: Sequence[str],
    topic_arn: str,
    model_package_group_arns: Sequence[str],
    endpoint_arns: Sequence[str],
    passed_roles: Mapping[str, Sequence[str]],
    boundary_arn: str,
    protected_arns: Sequence[str],
    tracking_server_arn: str | None = None,
) -> dict[str, Any]:
    """What `pulumi up` of one stack changes, and no more.

    Resources the stack names (its key, buckets, repositories, topic, groups, endpoints, cluster,
    budget) are named here by ARN; resources AWS names at creation (VPC parts, log groups,
    alarms, endpoint configurations and models) by the stack's region and account. Creating a
    key, a bucket or a repository is not here: those are the stack's first `pulumi up`, run with
    administrator credentials. `passed_roles` maps a kind in `PASSED_TO` to role ARNs;
    `protected_arns` (the CI roles and the boundary) may not be changed at all."""
    if set(passed_roles) - set(PASSED_TO):
        raise ValueError(f"passed_roles: {sorted(passed_roles)}: allowed kinds: {list(PASSED_TO)}")
    regional = f"{partition}:%s:{region}:{account_id}"
    iam = f"arn:{partition}:iam::{account_id}"
    statements = [
        _allow("ReadStackSettings", READ_ACTIONS, ["*"]),
        _allow(
            "ChangeTheNetwork",
            [f"ec2:{action}" for action in _EC2_WRITES],
            [f"arn:{regional % 'ec2'}:*"],
        ),
        _allow(
            "ChangeTheCluster",
            [f"eks:{action}" for action in _EKS_WRITES],
            [
                f"arn:{regional % 'eks'}:{kind}/{cluster_name}{suffix}"
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
            [f"arn:{regional % 'autoscaling'}:autoScalingGroup:*:autoScalingGroupName/eks-*"],
            {"StringEquals": {"aws:ResourceTag/eks:cluster-name": cluster_name}},
        ),
        _allow(
            "ChangeTheEnvironmentKey",
            [f"kms:{action}" for action in _KMS_WRITES],
            [key_arn],
        ),
        _allow(
            "LetServicesUseTheKey",
            ["kms:CreateGrant"],
            [key_arn],
            {"Bool": {"kms:GrantIsForAWSResource": "true"}},
        ),
        _allow(
            "PointTheAlias",
            ["kms:CreateAlias", "kms:UpdateAlias", "kms:DeleteAlias"],
            [key_arn, f"arn:{regional % 'kms'}:{key_alias}"],
        ),
        _allow("ConfigureTheBuckets", [f"s3:{action}" for action in _S3_WRITES], bucket_arns),
        _allow(
            "ConfigureAndPushToTheRepositories",
            [f"ecr:{action}" for action in _ECR_WRITES],
            repository_arns,
        ),
        _allow(
            "ConfigureTheAlarmTopic",
            [f"sns:{action}" for action in _SNS_WRITES],
            [topic_arn, f"{topic_arn}:*"],
        ),
        _allow(
            "ChangeLogGroups",
            [f"logs:{action}" for action in _LOGS_WRITES],
            [f"arn:{regional % 'logs'}:log-group:*"],
        ),
        _allow(
            "ChangeAlarms",
            [
                "cloudwatch:PutMetricAlarm",
                "cloudwatch:DeleteAlarms",
                "cloudwatch:TagResource",
                "cloudwatch:UntagResource",
            ],
            [f"arn:{regional % 'cloudwatch'}:alarm:*"],
        ),
        _allow(
            "ChangeTheDashboard",
            ["cloudwatch:PutDashboard", "cloudwatch:DeleteDashboards"],
            [f"arn:{partition}:cloudwatch::{account_id}:dashboard/{dashboard}"],
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
            [budget_arn(partition=partition, account_id=account_id, budget=budget)],
        ),
        _allow(
            "ChangeTheModelPackageGroups",
            [f"sagemaker:{action}" for action in _REGISTRY_WRITES],
            model_package_group_arns,
        ),
        _allow(
            "CreateAndChangeOnlyBoundedRoles",
            [f"iam:{action}" for action in _BOUNDED_ROLE_WRITES],
            [f"{iam}:role/*"],
            {"StringEquals": {"iam:PermissionsBoundary": boundary_arn}},
        ),
        # These calls take no boundary condition; none of them grants a permission (UpdateRole
        # sets a description and a session length), and a role with policies cannot be deleted.
        _allow(
            "TagAndRemoveRoles",
            [
                "iam:TagRole",
                "iam:UntagRole",
                "iam:UpdateRole",
                "iam:UpdateRoleDescription",
                "iam:DeleteRole",
            ],
            [f"{iam}:role/*"],
        ),
        _allow(
            "CreateServiceLinkedRoles",
            ["iam:CreateServiceLinkedRole"],
            [f"{iam}:role/aws-service-role/*"],
            {"StringEquals": {"iam:AWSServiceName": list(SERVICE_LINKED_ROLES)}},
        ),
        _allow(
            "ChangeTheClustersIdentityProvider",
            [f"iam:{action}" for action in _OIDC_WRITES],
            [f"{iam}:oidc-provider/oidc.eks.{region}.*"],
        ),
    ]
    if endpoint_arns:
        statements += [
            _allow(
                "ChangeTheEndpoints",
                [f"sagemaker:{action}" for action in _ENDPOINT_WRITES],
                [
                    *endpoint_arns,
                    f"arn:{regional % 'sagemaker'}:endpoint-config/*",
                    f"arn:{regional % 'sagemaker'}:model/*",
                ],
            ),
            _allow(
                "ScaleTheEndpoints",
                [f"application-autoscaling:{action}" for action in _SCALING_WRITES],
                [f"arn:{regional % 'application-autoscaling'}:scalable-target/*"],
            ),
        ]
    if tracking_server_arn:
        statements.append(
            _allow(
                "ChangeTheTrackingServer",
                [f"sagemaker:{action}" for action in _TRACKING_WRITES],
                [tracking_server_arn],
            )
        )
    for kind, roles in sorted(passed_roles.items()):
        if roles:
            statements.append(
                _allow(
                    f"PassThe{''.join(w.title() for w in kind.split('-'))}Roles",
                    ["iam:PassRole"],
                    roles,
                    {"StringEquals": {"iam:PassedToService": list(PASSED_TO[kind])}},
                )
            )
    statements += [
        {
            "Sid": "NeverChangeTheCiRolesOrTheBoundary",
            "Effect": "Deny",
            "Action": list(_IAM_WRITES),
            "Resource": list(protected_arns),
        },
        {
            "Sid": "NeverLiftABoundary",
            "Effect": "Deny",
            "Action": ["iam:DeleteRolePermissionsBoundary"],
            "Resource": ["*"],
        },
    ]
    return _document(*statements)


def permissions_boundary() -> dict[str, Any]:
    """The most any role of the stack may do, whatever its own policies say.

    Every role the deploy role creates or changes must carry it, so a role it writes cannot
    reach past the stack's services: nothing in IAM beyond reading and service-linked roles (so
    no role it makes can make roles), nothing in STS, Organizations or the account."""
    return _document(
        _allow("TheStacksServices", [f"{service}:*" for service in BOUNDED_SERVICES], ["*"]),
        _allow(
            "ReadIamAndCreateServiceLinkedRoles",
            ["iam:CreateServiceLinkedRole", "iam:Get*", "iam:List*"],
            ["*"],
        ),
    )


def within_boundary(action: str) -> bool:
    """Whether the boundary lets `action` through (for checking the stack's own policies)."""
    service, _, verb = action.partition(":")
    if service in BOUNDED_SERVICES:
        return True
    return service == "iam" and (
        verb == "CreateServiceLinkedRole" or verb.startswith(("Get", "List"))
    )


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
    "DeleteRoute",
    "DeleteRouteTable",
    "DeleteSecurityGroup",
    "DeleteSubnet",
    "DeleteTags",
    "DeleteVpc",
    "DeleteVpcEndpoints",
    "DetachInternetGateway",
    "DisassociateAddress",
    "DisassociateRouteTable",
    "ModifyLaunchTemplate",
    "ModifySubnetAttribute",
    "ModifyVpcAttribute",
    "ModifyVpcEndpoint",
    "ReleaseAddress",
    "ReplaceRoute",
    "ReplaceRouteTableAssociation",
    "RevokeSecurityGroupEgress",
    "RevokeSecurityGroupIngress",
)
_EKS_WRITES = (
    "AssociateAccessPolicy",
    "AssociateEncryptionConfig",
    "CreateAccessEntry",
    "CreateAddon",
    "CreateCluster",
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
_ECR_WRITES = (
    "BatchCheckLayerAvailability",
    "BatchGetImage",
    "CompleteLayerUpload",
    "DeleteLifecyclePolicy",
    "GetDownloadUrlForLayer",
    "InitiateLayerUpload",
    "PutImage",
    "PutImageScanningConfiguration",
    "PutImageTagMutability",
    "PutLifecyclePolicy",
    "TagResource",
    "UntagResource",
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
    "CreateEndpointConfig",
    "CreateModel",
    "DeleteEndpoint",
    "DeleteEndpointConfig",
    "DeleteModel",
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
_BOUNDED_ROLE_WRITES = (
    "AttachRolePolicy",
    "CreateRole",
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
