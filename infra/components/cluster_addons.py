"""What the cluster runs for the workloads besides the EKS add-ons: the node autoscaler, the
NVIDIA device plugin on the GPU group's nodes, and, when models are served through an ingress,
the AWS Load Balancer Controller. Their IRSA roles are the platform layer's
(`infra.components.cluster_addon_roles`); these are the objects, applied through the cluster's
API."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from infra.components.kubernetes_objects import declare
from infra.config.eks_versions import CLUSTER_AUTOSCALER_IMAGES, NVIDIA_DEVICE_PLUGIN_IMAGE
from infra.config.sections.cluster import NodeGroupConfig
from infra.manifests import gpu_device_plugin, load_balancer_controller, node_autoscaler

_AUTOSCALER_ROLE = "<cluster autoscaler role ARN>"


@dataclass(frozen=True, kw_only=True)
class LoadBalancerController:
    vpc_id: pulumi.Input[str]
    role_arn: pulumi.Input[str]
    wafv2: bool = False
    """Whether it associates load balancers with the stack's WAFv2 web ACL (its role then may)."""


@dataclass(frozen=True, kw_only=True)
class ClusterAddonsArgs:
    provider: k8s.Provider
    cluster_name: str
    kubernetes_version: str
    region: str
    autoscaler_role_arn: pulumi.Input[str]
    gpu_group: NodeGroupConfig | None
    """The GPU node group, when the stack has one: the device plugin runs on its nodes."""
    load_balancer: LoadBalancerController | None = None
    """Where the load balancer controller makes load balancers, as whom; None: no controller."""

    def __post_init__(self) -> None:
        if self.kubernetes_version not in CLUSTER_AUTOSCALER_IMAGES:
            raise ValueError(
                f"kubernetes_version = {self.kubernetes_version!r}: allowed: "
                + ", ".join(CLUSTER_AUTOSCALER_IMAGES)
            )


class ClusterAddons(pulumi.ComponentResource):
    """`objects`: every declared Kubernetes object, by `<kind>/<name>`."""

    objects: dict[str, pulumi.CustomResource]
    load_balancer_controller: k8s.helm.v3.Release | None

    def __init__(
        self, name: str, args: ClusterAddonsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlstack:kubernetes:ClusterAddons", name, None, opts)
        slots = {_AUTOSCALER_ROLE: args.autoscaler_role_arn}
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
            self._load_balancer_controller(name, args, args.load_balancer)
            if args.load_balancer is not None
            else None
        )
        self.register_outputs({"objects": sorted(self.objects)})

    def _load_balancer_controller(
        self, name: str, args: ClusterAddonsArgs, controller: LoadBalancerController
    ) -> k8s.helm.v3.Release:
        values = pulumi.Output.all(controller.vpc_id, controller.role_arn).apply(
            lambda ids: load_balancer_controller.chart_values(
                cluster_name=args.cluster_name,
                region=args.region,
                vpc_id=ids[0],
                role_arn=ids[1],
                wafv2=controller.wafv2,
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
