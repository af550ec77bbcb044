"""The IRSA roles of what the cluster runs for the workloads besides the EKS add-ons: the node
autoscaler's, and the AWS Load Balancer Controller's when models are served through an ingress.

Roles are made through AWS's API, so they are the platform layer's; the workloads layer applies
the objects that use them (`infra.components.cluster_addons`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.components.workload_role import WorkloadRole, WorkloadRoleArgs
from infra.documents.iam import cluster_autoscaler_policy, load_balancer_controller_policy
from infra.manifests import load_balancer_controller, node_autoscaler


@dataclass(frozen=True, kw_only=True)
class ClusterAddonRolesArgs:
    cluster_name: str
    region: str
    oidc_provider_arn: pulumi.Input[str]
    oidc_issuer: pulumi.Input[str]
    load_balancer_vpc_id: pulumi.Input[str] | None
    """The VPC the load balancer controller creates load balancers in; None: no controller."""
    load_balancer_wafv2: bool = False
    """Whether the controller associates its load balancers with the stack's WAFv2 web ACL."""
    permissions_boundary: pulumi.Input[str] | None = None
    """The stack's role permissions boundary, which every role it declares then carries (set
    when CI roles exist: the deploy roles may only write roles that carry it)."""


class ClusterAddonRoles(pulumi.ComponentResource):
    autoscaler: WorkloadRole
    load_balancer_controller: WorkloadRole | None

    def __init__(
        self, name: str, args: ClusterAddonRolesArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlstack:iam:ClusterAddonRoles", name, None, opts)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        partition = aws.get_partition_output(opts=invoke).partition
        account_id = aws.get_caller_identity_output(opts=invoke).account_id
        self.autoscaler = self._irsa_role(
            f"{name}-node-autoscaler",
            args,
            node_autoscaler.NAMESPACE,
            node_autoscaler.SERVICE_ACCOUNT,
            pulumi.Output.all(partition, account_id).apply(
                lambda values: cluster_autoscaler_policy(
                    partition=values[0],
                    region=args.region,
                    account_id=values[1],
                    cluster_name=args.cluster_name,
                )
            ),
        )
        vpc_id = args.load_balancer_vpc_id
        self.load_balancer_controller = (
            self._irsa_role(
                f"{name}-load-balancer-controller",
                args,
                load_balancer_controller.NAMESPACE,
                load_balancer_controller.SERVICE_ACCOUNT,
                pulumi.Output.all(partition, account_id, vpc_id).apply(
                    lambda values: load_balancer_controller_policy(
                        partition=values[0],
                        region=args.region,
                        account_id=values[1],
                        vpc_id=values[2],
                        wafv2=args.load_balancer_wafv2,
                    )
                ),
            )
            if vpc_id is not None
            else None
        )
        self.register_outputs({"autoscaler": self.autoscaler.arn})

    def _irsa_role(
        self,
        name: str,
        args: ClusterAddonRolesArgs,
        namespace: str,
        service_account: str,
        policy: pulumi.Output[dict[str, Any]],
    ) -> WorkloadRole:
        return WorkloadRole(
            name,
            WorkloadRoleArgs(
                namespace=namespace,
                service_account=service_account,
                oidc_provider_arn=args.oidc_provider_arn,
                oidc_issuer=args.oidc_issuer,
                policy=policy,
                permissions_boundary=args.permissions_boundary,
            ),
            pulumi.ResourceOptions(parent=self),
        )
