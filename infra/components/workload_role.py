"""An IAM role for one Kubernetes service account (IRSA)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.documents.iam import service_account_trust_policy

_K8S_NAME_MAX = 63


@dataclass(frozen=True, kw_only=True)
class WorkloadRoleArgs:
    """Who may assume the role, and what it may do."""

    namespace: str
    service_account: str
    oidc_provider_arn: pulumi.Input[str]
    oidc_issuer: pulumi.Input[str]
    """The cluster's OIDC issuer URL (https://oidc.eks.<region>.amazonaws.com/id/<id>)."""
    policy: pulumi.Input[dict[str, Any]] | None = None
    """The permission document, scoped to concrete ARNs."""
    managed_policy_arns: Sequence[pulumi.Input[str]] = field(default_factory=tuple)
    """AWS-managed policies an AWS add-on documents as its requirement (CNI, EBS CSI)."""
    permissions_boundary: pulumi.Input[str] | None = None
    """The stack's role permissions boundary, which every role it declares then carries (set
    when CI roles exist: the deploy role may only write roles that carry it)."""

    def __post_init__(self) -> None:
        for label, value in (
            ("namespace", self.namespace),
            ("service_account", self.service_account),
        ):
            if not value or len(value) > _K8S_NAME_MAX or "*" in value:
                raise ValueError(
                    f"{label} = {value!r}: allowed: one Kubernetes name, no wildcards, "
                    f"at most {_K8S_NAME_MAX} characters"
                )
        if self.policy is None and not self.managed_policy_arns:
            raise ValueError("policy or managed_policy_arns: allowed: at least one")


class WorkloadRole(pulumi.ComponentResource):
    """A role that exactly one service account can assume, with permissions scoped to ARNs."""

    role: aws.iam.Role
    arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: WorkloadRoleArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlstack:iam:WorkloadRole", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        trust = pulumi.Output.all(args.oidc_provider_arn, args.oidc_issuer).apply(
            lambda values: json.dumps(
                service_account_trust_policy(
                    oidc_provider_arn=values[0],
                    issuer=values[1],
                    namespace=args.namespace,
                    service_account=args.service_account,
                ),
                sort_keys=True,
            )
        )
        self.role = aws.iam.Role(
            f"{name}-role",
            description=f"IRSA role of {args.namespace}/{args.service_account}",
            assume_role_policy=trust,
            tags={"mlstack:service-account": f"{args.namespace}/{args.service_account}"},
            permissions_boundary=args.permissions_boundary,
            opts=child,
        )
        if args.policy is not None:
            aws.iam.RolePolicy(
                f"{name}-permissions",
                role=self.role.id,
                policy=pulumi.Output.from_input(args.policy).apply(
                    lambda document: json.dumps(document, sort_keys=True)
                ),
                opts=child,
            )
        for index, policy_arn in enumerate(args.managed_policy_arns):
            aws.iam.RolePolicyAttachment(
                f"{name}-managed-{index}", role=self.role.name, policy_arn=policy_arn, opts=child
            )
        self.arn = self.role.arn
        self.register_outputs({"arn": self.arn})
