"""What the cluster runs for the workloads besides the EKS add-ons: the node autoscaler with its
own IRSA role, the NVIDIA device plugin on the GPU group's nodes, and, when models are served
through an ingress, the AWS Load Balancer Controller with its own IRSA role."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from infra.components.kubernetes_objects import declare
from infra.components.workload_role import WorkloadRole, WorkloadRoleArgs
from infra.config import NodeGroupConfig
from infra.documents.iam import cluster_autoscaler_policy, load_balancer_controller_policy
from infra.eks_versions import CLUSTER_AUTOSCALER_IMAGES, NVIDIA_DEVICE_PLUGIN_IMAGE
from infra.manifests import gpu_device_plugin, load_balancer_controller, node_autoscaler

_AUTOSCALER_ROLE = "<cluster autoscaler role ARN>"


@dataclass(frozen=True, kw_only=True)
class ClusterAddonsArgs:
    provider: k8s.Provider
    cluster_name: str
    kubernetes_version: str
    region: str
    oidc_provider_arn: pulumi.Input[str]
    oidc_issuer: pulumi.Input[str]
    gpu_group: NodeGroupConfig | None
    """The GPU node group, when the stack has one: the device plugin runs on its nodes."""
    load_balancer_vpc_id: pulumi.Input[str] | None
    """The VPC the load balancer controller creates load balancers in; None: no controller."""
    permissions_boundary: pulumi.Input[str] | None = None
    """The stack's role permissions boundary, which every role it declares then carries (set
    when CI roles exist: the deploy role may only write roles that carry it)."""

    def __post_init__(self) -> None:
        if self.kubernetes_version not in CLUSTER_AUTOSCALER_IMAGES:
            raise ValueError(
                f"kubernetes_version = {self.kubernetes_version!r}: allowed: "
                + ", ".join(CLUSTER_AUTOSCALER_IMAGES)
            )


class ClusterAddons(pulumi.ComponentResource):
    """`objects`: every declared Kubernetes object, by `<kind>/<name>`."""

    autoscaler_role: WorkloadRole
    objects: dict[str, pulumi.CustomResource]
    load_balancer_controller: k8s.helm.v3.Release | None

    def __init__(
        self, name: str, args: ClusterAddonsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlstack:kubernetes:ClusterAddons", name, None, opts)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        self._partition = aws.get_partition_output(opts=invoke).partition
        self._account_id = aws.get_caller_identity_output(opts=invoke).account_id
        self.autoscaler_role = self._irsa_role(
            f"{name}-node-autoscaler",
            args,
            node_autoscaler.NAMESPACE,
            node_autoscaler.SERVICE_ACCOUNT,
            pulumi.Output.all(self._partition, self._account_id).apply(
                lambda values: cluster_autoscaler_policy(
                    partition=values[0],
                    region=args.region,
                    account_id=values[1],
                    cluster_name=args.cluster_name,
                )
            ),
        )
        slots = {_AUTOSCALER_ROLE: self.autoscaler_role.arn}
        manifests = node_autoscaler.node_autoscaler_objects(
            node_autoscaler.NodeAutoscaler(
                cluster_name=args.cluster_name,
                image=CLUSTER_AUTOSCALER_IMAGES[args.kubernetes_version],
                region=args.region,
                role_arn=_AUTOSCALER_ROLE,
            )
        )
        if args.gpu_group is not None:
            manifests.append(
                gpu_device_plugin.daemon_set(
                    image=NVIDIA_DEVICE_PLUGIN_IMAGE,
                    node_labels=dict(args.gpu_group.labels),
                    node_taints=args.gpu_group.taints,
                )
            )
        self.objects = {}
        declared: list[pulumi.Resource] = []
        for manifest in manifests:
            # Identity and permissions first, so the controller never starts without them.
            resource = declare(
                name,
                manifest,
                parent=self,
                provider=args.provider,
                slots=slots,
                depends_on=declared if manifest["kind"] == "Deployment" else (),
            )
            declared.append(resource)
            self.objects[f"{manifest['kind']}/{manifest['metadata']['name']}"] = resource
        self.load_balancer_controller = (
            self._load_balancer_controller(name, args, args.load_balancer_vpc_id)
            if args.load_balancer_vpc_id is not None
            else None
        )
        self.register_outputs({"objects": sorted(self.objects)})

    def _irsa_role(
        self,
        name: str,
        args: ClusterAddonsArgs,
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

    def _load_balancer_controller(
        self, name: str, args: ClusterAddonsArgs, vpc_id: pulumi.Input[str]
    ) -> k8s.helm.v3.Release:
        role = self._irsa_role(
            f"{name}-load-balancer-controller",
            args,
            load_balancer_controller.NAMESPACE,
            load_balancer_controller.SERVICE_ACCOUNT,
            pulumi.Output.all(self._partition, self._account_id, vpc_id).apply(
                lambda values: load_balancer_controller_policy(
                    partition=values[0],
                    region=args.region,
                    account_id=values[1],
                    vpc_id=values[2],
                )
            ),
        )
        values = pulumi.Output.all(vpc_id, role.arn).apply(
            lambda ids: load_balancer_controller.chart_values(
                cluster_name=args.cluster_name, region=args.region, vpc_id=ids[0], role_arn=ids[1]
            )
        )
        return k8s.helm.v3.Release(
            f"{name}-load-balancer-controller",
            name=load_balancer_controller.NAME,
            chart=load_balancer_controller.CHART,
            version=load_balancer_controller.CHART_VERSION,
            repository_opts={"repo": load_balancer_controller.CHART_REPOSITORY},
            namespace=load_balancer_controller.NAMESPACE,
            values=values,
            opts=pulumi.ResourceOptions(parent=self, provider=args.provider),
        )
