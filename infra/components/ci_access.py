"""The roles GitHub Actions assumes for this environment, through the account's GitHub OIDC
provider: one that previews, one that deploys.

Declared in two parts because what they need comes at two times. `CiRoles` comes first: the
provider, the permissions boundary every role of the stack then carries, and the two roles with
their trust (and the preview role's read-only policy, which names nothing the stack creates).
`CiDeployAccess` comes last: the deploy role's policy names the stack's own resources by ARN
(buckets, repositories, the roles it may pass), and both roles get their access to the cluster.
The policy documents are built in `infra.documents.ci`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from infra import naming
from infra.adoption import kept_resource
from infra.components.cluster import CLUSTER_ADMIN_POLICY, eks_access_policy_arn
from infra.documents.ci import (
    DEPLOY_SESSION_SECONDS,
    GITHUB_AUDIENCE,
    GITHUB_OIDC_URL,
    PASSED_TO,
    deploy_policy,
    deploy_subject,
    github_trust_policy,
    permissions_boundary,
    preview_policy,
    preview_subjects,
)

CLUSTER_VIEW_POLICY = "cluster-access-policy/AmazonEKSViewPolicy"
PREVIEW_SESSION_SECONDS = 3600

# How IAM (and the AWS provider after it) says the account has no such provider. Any other
# failure of the lookup stops the program rather than planning a provider that may exist.
_ABSENT = re.compile(r"NoSuchEntity|not found|couldn't find|no matching", re.IGNORECASE)


@dataclass(frozen=True, kw_only=True)
class CiRolesArgs:
    """Which repository's workflows may assume the roles, for which environment."""

    environment: str
    repository: str
    """`owner/name` on GitHub, spelt as GitHub spells it (the token's subject is compared
    exactly)."""

    def __post_init__(self) -> None:
        owner, _, name = self.repository.partition("/")
        if not owner or not name or "/" in name or any(c in self.repository for c in "*?:"):
            raise ValueError(f"repository = {self.repository!r}: allowed: <owner>/<name>")


class CiRoles(pulumi.ComponentResource):
    """The account's GitHub OIDC provider (created, or adopted when the account has one), the
    stack's role permissions boundary, and the preview and deploy roles."""

    provider: aws.iam.OpenIdConnectProvider
    boundary: aws.iam.Policy
    preview_role: aws.iam.Role
    """Assumed by pull requests and the default branch; reads only."""
    deploy_role: aws.iam.Role
    """Assumed only by jobs in the GitHub environment named after the stack."""
    boundary_arn: pulumi.Output[str]
    """Every role the stack declares carries it; the deploy role may only write such roles."""
    account_id: pulumi.Output[str]

    def __init__(
        self, name: str, args: CiRolesArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlstack:ci:CiRoles", name, None, opts)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        self._partition = aws.get_partition_output(opts=invoke).partition
        self.account_id = aws.get_caller_identity_output(opts=invoke).account_id
        self.provider = self._github_provider(name)
        self.boundary = aws.iam.Policy(
            f"{name}-boundary",
            name=naming.role_boundary_name(args.environment),
            description=f"mlstack {args.environment}: the most any role of the stack may do",
            policy=json.dumps(permissions_boundary(), sort_keys=True),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.boundary_arn = self.boundary.arn
        self.preview_role = self._role(
            f"{name}-preview",
            naming.ci_role_name(args.environment, "preview"),
            preview_subjects(args.repository),
            PREVIEW_SESSION_SECONDS,
        )
        aws.iam.RolePolicy(
            f"{name}-preview",
            role=self.preview_role.id,
            policy=pulumi.Output.all(self._partition, self.account_id).apply(
                lambda values: json.dumps(
                    preview_policy(
                        partition=values[0],
                        account_id=values[1],
                        budget=naming.monitoring_name(args.environment),
                    ),
                    sort_keys=True,
                )
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.deploy_role = self._role(
            f"{name}-deploy",
            naming.ci_role_name(args.environment, "deploy"),
            [deploy_subject(args.repository, args.environment)],
            DEPLOY_SESSION_SECONDS,
        )
        self.register_outputs(
            {
                "previewRoleArn": self.preview_role.arn,
                "deployRoleArn": self.deploy_role.arn,
                "boundaryArn": self.boundary_arn,
            }
        )

    def _github_provider(self, name: str) -> aws.iam.OpenIdConnectProvider:
        """GitHub's identity provider: IAM allows one per URL in an account, and every stack
        (and anything else in the account that trusts GitHub) shares it. It is looked up,
        created when absent and adopted when present, with its audiences and thumbprints as
        they are (the roles' trust pins the audience; AWS verifies GitHub's certificate by its
        own trusted CAs); destroying the stack keeps it."""
        try:
            found = aws.iam.get_open_id_connect_provider(
                url=GITHUB_OIDC_URL, opts=pulumi.InvokeOptions(parent=self)
            )
            existing: str | None = found.arn
        except Exception as error:
            if not _ABSENT.search(str(error)):
                raise
            existing = None
        return aws.iam.OpenIdConnectProvider(
            f"{name}-github",
            url=GITHUB_OIDC_URL,
            client_id_lists=[GITHUB_AUDIENCE],
            opts=kept_resource(
                self,
                existing,
                ignore_changes=("clientIdLists", "thumbprintLists", "tags", "tagsAll"),
            ),
        )

    def _role(
        self, name: str, role_name: str, subjects: Sequence[str], session_seconds: int
    ) -> aws.iam.Role:
        return aws.iam.Role(
            name,
            name=role_name,
            description=f"GitHub Actions: {', '.join(subjects)}",
            assume_role_policy=self.provider.arn.apply(
                lambda arn: json.dumps(
                    github_trust_policy(provider_arn=arn, subjects=subjects), sort_keys=True
                )
            ),
            max_session_duration=session_seconds,
            opts=pulumi.ResourceOptions(parent=self),
        )


@dataclass(frozen=True, kw_only=True)
class CiDeployAccessArgs:
    """The stack's resources the deploy role changes, and the cluster both roles reach."""

    roles: CiRoles
    environment: str
    key_arn: pulumi.Input[str]
    bucket_arns: Sequence[pulumi.Input[str]]
    repository_arns: Sequence[pulumi.Input[str]]
    topic_arn: pulumi.Input[str]
    models: Sequence[str]
    """The models whose package groups the stack declares."""
    endpoint_models: Sequence[str] = ()
    """The models served by a SageMaker endpoint of this stack."""
    tracking_server: bool = False
    """Whether the stack declares its MLflow tracking server (`mlflowServerSize`)."""
    passed_roles: Mapping[str, Sequence[pulumi.Input[str]]] = field(default_factory=dict)
    """Role ARNs by kind (`infra.documents.ci.PASSED_TO`): the only roles the deploy role
    hands to a service, and only to that kind's service."""
    cluster: aws.eks.Cluster | None = None
    """With a cluster: the preview role may view it, the deploy role administers it."""

    def __post_init__(self) -> None:
        unknown = sorted(set(self.passed_roles) - set(PASSED_TO))
        if unknown:
            raise ValueError(f"passed_roles: {unknown}: allowed: {sorted(PASSED_TO)}")


class CiDeployAccess(pulumi.ComponentResource):
    """The deploy role's permissions, and both CI roles' cluster access entries."""

    def __init__(
        self, name: str, args: CiDeployAccessArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlstack:ci:CiDeployAccess", name, None, opts)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        self._partition = aws.get_partition_output(opts=invoke).partition
        self._policy(name, args, aws.get_region_output(opts=invoke).region)
        if args.cluster is not None:
            for role, policy in (
                (args.roles.preview_role, CLUSTER_VIEW_POLICY),
                (args.roles.deploy_role, CLUSTER_ADMIN_POLICY),
            ):
                self._cluster_access(name, args.cluster, role, policy)
        self.register_outputs({})

    def _policy(self, name: str, args: CiDeployAccessArgs, region: pulumi.Output[str]) -> None:
        kinds = sorted(args.passed_roles)
        passed = [pulumi.Output.all(*args.passed_roles[kind]) for kind in kinds]
        roles = args.roles
        document = pulumi.Output.all(
            self._partition,
            region,
            roles.account_id,
            args.key_arn,
            pulumi.Output.all(*args.bucket_arns),
            pulumi.Output.all(*args.repository_arns),
            args.topic_arn,
            pulumi.Output.all(*passed),
            pulumi.Output.all(roles.boundary_arn, roles.preview_role.arn, roles.deploy_role.arn),
        ).apply(
            lambda v: deploy_policy(
                partition=v[0],
                region=v[1],
                account_id=v[2],
                cluster_name=naming.cluster_name(args.environment),
                budget=naming.monitoring_name(args.environment),
                dashboard=naming.monitoring_name(args.environment),
                key_arn=v[3],
                key_alias=naming.kms_alias(args.environment),
                bucket_arns=v[4],
                repository_arns=v[5],
                topic_arn=v[6],
                model_package_group_arns=[
                    naming.model_package_group_arn(
                        partition=v[0],
                        region=v[1],
                        account_id=v[2],
                        group=naming.model_package_group(model, args.environment),
                    )
                    for model in args.models
                ],
                endpoint_arns=[
                    f"arn:{v[0]}:sagemaker:{v[1]}:{v[2]}:endpoint/"
                    + naming.endpoint_name(model, args.environment)
                    for model in args.endpoint_models
                ],
                passed_roles=dict(zip(kinds, v[7], strict=True)),
                boundary_arn=v[8][0],
                protected_arns=list(v[8]),
                tracking_server_arn=f"arn:{v[0]}:sagemaker:{v[1]}:{v[2]}:mlflow-tracking-server/"
                + naming.mlflow_tracking_server_name(args.environment)
                if args.tracking_server
                else None,
            )
        )
        aws.iam.RolePolicy(
            f"{name}-deploy",
            role=roles.deploy_role.id,
            policy=document.apply(lambda d: json.dumps(d, sort_keys=True)),
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _cluster_access(
        self, name: str, cluster: aws.eks.Cluster, role: aws.iam.Role, policy: str
    ) -> None:
        """An access entry for `role` with one EKS access policy over the whole cluster: view
        for the preview role (a preview of Kubernetes objects then falls back from server-side
        dry runs, which need write access, to client-side diffs), admin for the deploy role
        (it applies the workloads, and the cluster's creator may be someone else)."""
        kind = "view" if policy == CLUSTER_VIEW_POLICY else "admin"
        name = f"{name}-{kind}"
        entry = aws.eks.AccessEntry(
            name,
            cluster_name=cluster.name,
            principal_arn=role.arn,
            type="STANDARD",
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.eks.AccessPolicyAssociation(
            name,
            cluster_name=cluster.name,
            principal_arn=role.arn,
            policy_arn=self._partition.apply(lambda p: eks_access_policy_arn(p, policy)),
            access_scope={"type": "cluster"},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[entry]),
        )
