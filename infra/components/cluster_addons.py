"""What the cluster runs for the workloads besides the EKS add-ons: the node autoscaler with its
own IRSA role, and the NVIDIA device plugin on the GPU group's nodes."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from infra.components.kubernetes_objects import declare
from infra.components.workload_role import WorkloadRole, WorkloadRoleArgs
from infra.config import NodeGroupConfig
from infra.documents.iam import cluster_autoscaler_policy
from infra.eks_versions import CLUSTER_AUTOSCALER_IMAGES, NVIDIA_DEVICE_PLUGIN_IMAGE
from infra.manifests import gpu_device_plugin, node_autoscaler

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

    def __init__(
        self, name: str, args: ClusterAddonsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlstack:kubernetes:ClusterAddons", name, None, opts)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        partition = aws.get_partition_output(opts=invoke).partition
        account_id = aws.get_caller_identity_output(opts=invoke).account_id
        policy = pulumi.Output.all(partition, account_id).apply(
            lambda values: cluster_autoscaler_policy(
                partition=values[0],
                region=args.region,
                account_id=values[1],
                cluster_name=args.cluster_name,
            )
        )
        self.autoscaler_role = WorkloadRole(
            f"{name}-node-autoscaler",
            WorkloadRoleArgs(
                namespace=node_autoscaler.NAMESPACE,
                service_account=node_autoscaler.SERVICE_ACCOUNT,
                oidc_provider_arn=args.oidc_provider_arn,
                oidc_issuer=args.oidc_issuer,
                policy=policy,
            ),
            pulumi.ResourceOptions(parent=self),
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
        self.register_outputs({"objects": sorted(self.objects)})
