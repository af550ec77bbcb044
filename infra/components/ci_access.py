"""The roles GitHub Actions assumes for this environment, through the account's GitHub OIDC
provider: one that previews, one per layer that deploys; and their access to the cluster.

`CiRoles` comes after the stack's key, buckets, repositories and alarm topic (its documents name
them) and before every other role (those carry the boundary it declares). `CiClusterAccess`
comes after the cluster: the preview role may view it, the workloads deploy role administers it
(it applies the Kubernetes objects); the platform deploy role never touches its API. The policy
documents are built in `infra.documents.ci`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.components.adoption import kept_resource
from infra.components.cluster import CLUSTER_ADMIN_POLICY, eks_access_policy_arn
from infra.documents.ci import (
    DEPLOY_SESSION_SECONDS,
    GITHUB_AUDIENCE,
    GITHUB_OIDC_URL,
    StackResources,
    StackScope,
    deploy_subject,
    github_trust_policy,
    permissions_boundary,
    platform_deploy_policy,
    preview_policy,
    preview_subjects,
    workloads_deploy_policy,
)
from infra.project import naming

CLUSTER_VIEW_POLICY = "cluster-access-policy/AmazonEKSViewPolicy"
PREVIEW_SESSION_SECONDS = 3600

# How IAM (and the AWS provider after it) says the account has no such provider. Any other
# failure of the lookup stops the program rather than planning a provider that may exist.
_ABSENT = re.compile(r"NoSuchEntity|not found|couldn't find|no matching", re.IGNORECASE)


@dataclass(frozen=True, kw_only=True)
class CiRolesArgs:
    """Which repository's workflows may assume the roles, for which environment, and the
    stack's resources the roles name."""

    environment: str
    repository: str
    """`owner/name` on GitHub, spelt as GitHub spells it (the token's subject is compared
    exactly)."""
    key_arn: pulumi.Input[str]
    bucket_arns: Sequence[pulumi.Input[str]]
    repository_arns: Sequence[pulumi.Input[str]]
    topic_arn: pulumi.Input[str]
    connection_arn: str = ""
    """The CodeConnections connection of the environment's runner (with a cluster)."""

    def __post_init__(self) -> None:
        owner, _, name = self.repository.partition("/")
        if not owner or not name or "/" in name or any(c in self.repository for c in "*?:"):
            raise ValueError(f"repository = {self.repository!r}: allowed: <owner>/<name>")


class CiRoles(pulumi.ComponentResource):
    """The account's GitHub OIDC provider (created, or adopted when the account has one), the
    stack's role permissions boundary, and the preview, platform and workloads roles."""

    provider: aws.iam.OpenIdConnectProvider
    boundary: aws.iam.Policy
    preview_role: aws.iam.Role
    """Assumed by pull requests and the default branch; reads only."""
    platform_role: aws.iam.Role
    """Assumed only by jobs in the GitHub environment named after the stack; deploys the
    platform layer."""
    workloads_role: aws.iam.Role
    """Assumed only by jobs in that environment; deploys the workloads layer."""
    boundary_arn: pulumi.Output[str]
    """Every role the stack declares carries it; the deploy roles may only write such roles."""

    def __init__(
        self, name: str, args: CiRolesArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlstack:ci:CiRoles", name, None, opts)
        scope = stack_scope(self, args.environment)
        resources = pulumi.Output.all(
            key_arn=args.key_arn,
            bucket_arns=pulumi.Output.all(*args.bucket_arns),
            repository_arns=pulumi.Output.all(*args.repository_arns),
            topic_arn=args.topic_arn,
        ).apply(lambda v: StackResources(connection_arn=args.connection_arn, **v))
        self.provider = self._github_provider(name)
        self.boundary = aws.iam.Policy(
            f"{name}-boundary",
            name=naming.role_boundary_name(args.environment),
            description=f"mlstack {args.environment}: the most any role of the stack may do",
            policy=_document(permissions_boundary, scope, resources),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.boundary_arn = self.boundary.arn
        self.preview_role = self._role(
            name,
            args.environment,
            "preview",
            preview_subjects(args.repository),
            PREVIEW_SESSION_SECONDS,
            scope.apply(lambda _: json.dumps(preview_policy(), sort_keys=True)),
        )
        deploy = [deploy_subject(args.repository, args.environment)]
        self.platform_role = self._role(
            name,
            args.environment,
            "platform",
            deploy,
            DEPLOY_SESSION_SECONDS,
            _document(platform_deploy_policy, scope, resources),
        )
        self.workloads_role = self._role(
            name,
            args.environment,
            "workloads",
            deploy,
            DEPLOY_SESSION_SECONDS,
            _document(workloads_deploy_policy, scope, resources),
        )
        self.register_outputs(
            {
                "previewRoleArn": self.preview_role.arn,
                "platformRoleArn": self.platform_role.arn,
                "workloadsRoleArn": self.workloads_role.arn,
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
        self,
        name: str,
        environment: str,
        purpose: str,
        subjects: Sequence[str],
        session_seconds: int,
        policy: pulumi.Output[str],
    ) -> aws.iam.Role:
        role = aws.iam.Role(
            f"{name}-{purpose}",
            name=naming.ci_role_name(environment, purpose),
            description=f"GitHub Actions ({purpose}): {', '.join(subjects)}",
            assume_role_policy=self.provider.arn.apply(
                lambda arn: json.dumps(
                    github_trust_policy(provider_arn=arn, subjects=subjects), sort_keys=True
                )
            ),
            max_session_duration=session_seconds,
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.iam.RolePolicy(
            f"{name}-{purpose}",
            role=role.id,
            policy=policy,
            opts=pulumi.ResourceOptions(parent=self),
        )
        return role


def stack_scope(parent: pulumi.Resource, environment: str) -> pulumi.Output[StackScope]:
    """Where the stack's resources are (partition, region, account), as AWS reports them."""
    invoke = pulumi.InvokeOutputOptions(parent=parent)
    return pulumi.Output.all(
        partition=aws.get_partition_output(opts=invoke).partition,
        region=aws.get_region_output(opts=invoke).region,
        account_id=aws.get_caller_identity_output(opts=invoke).account_id,
    ).apply(lambda v: StackScope(environment=environment, **v))


def _document(
    build: Callable[[StackScope, StackResources], dict[str, Any]],
    scope: pulumi.Output[StackScope],
    resources: pulumi.Output[StackResources],
) -> pulumi.Output[str]:
    return pulumi.Output.all(scope, resources).apply(
        lambda v: json.dumps(build(v[0], v[1]), sort_keys=True)
    )


def _access_policy(policy: str) -> Callable[[str], str]:
    return lambda partition: eks_access_policy_arn(partition, policy)


@dataclass(frozen=True, kw_only=True)
class CiClusterAccessArgs:
    roles: CiRoles
    cluster: aws.eks.Cluster


class CiClusterAccess(pulumi.ComponentResource):
    """Access entries: the preview role views the cluster (a preview of Kubernetes objects then
    falls back from server-side dry runs, which need write access, to client-side diffs); the
    workloads deploy role administers it (it applies the workloads, and the cluster's creator
    may be someone else)."""

    def __init__(
        self, name: str, args: CiClusterAccessArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlstack:ci:CiClusterAccess", name, None, opts)
        partition = aws.get_partition_output(opts=pulumi.InvokeOutputOptions(parent=self)).partition
        for kind, role, policy in (
            ("view", args.roles.preview_role, CLUSTER_VIEW_POLICY),
            ("admin", args.roles.workloads_role, CLUSTER_ADMIN_POLICY),
        ):
            entry = aws.eks.AccessEntry(
                f"{name}-{kind}",
                cluster_name=args.cluster.name,
                principal_arn=role.arn,
                type="STANDARD",
                opts=pulumi.ResourceOptions(parent=self),
            )
            aws.eks.AccessPolicyAssociation(
                f"{name}-{kind}",
                cluster_name=args.cluster.name,
                principal_arn=role.arn,
                policy_arn=partition.apply(_access_policy(policy)),
                access_scope={"type": "cluster"},
                opts=pulumi.ResourceOptions(parent=self, depends_on=[entry]),
            )
        self.register_outputs({})
