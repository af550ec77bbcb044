"""The EKS cluster: private control plane, managed node groups, pinned add-ons and IRSA."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components.workload_role import WorkloadRole, WorkloadRoleArgs
from infra.config.eks_versions import ADDON_VERSIONS, UPGRADE_POLICIES
from infra.config.sections.cluster import NodeGroupConfig
from infra.documents.iam import service_trust_policy
from infra.documents.kubeconfig import eks_kubeconfig

CONTROL_PLANE_LOGS = ("api", "audit", "authenticator", "controllerManager", "scheduler")
CLUSTER_ADMIN_POLICY = "cluster-access-policy/AmazonEKSClusterAdminPolicy"
# Add-ons that nodes need to become Ready come first; the rest need nodes to schedule on.
ADDONS_BEFORE_NODES = ("vpc-cni", "kube-proxy", "eks-pod-identity-agent")
ADDON_SERVICE_ACCOUNTS = {
    "vpc-cni": ("kube-system", "aws-node", "AmazonEKS_CNI_Policy"),
    "aws-ebs-csi-driver": (
        "kube-system",
        "ebs-csi-controller-sa",
        "service-role/AmazonEBSCSIDriverPolicy",
    ),
    "amazon-cloudwatch-observability": (
        "amazon-cloudwatch",
        "cloudwatch-agent",
        "CloudWatchAgentServerPolicy",
    ),
}
ADDON_CONFIGURATION = {
    # Without it the VPC CNI ignores NetworkPolicy objects: the workloads' default deny and
    # per-model allow lists would be declared and never enforced.
    "vpc-cni": {"enableNetworkPolicy": "true"},
    # Container Insights' metrics (the serving replica alarms watch them), not its log
    # shipping: the servers log a line per request, which would cost more in CloudWatch Logs
    # than the cluster does. Logs stay on the nodes for `kubectl logs`.
    "amazon-cloudwatch-observability": {"containerLogs": {"enabled": False}},
}
NODE_POLICIES = ("AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryPullOnly")
CONTAINER_INSIGHTS_ADDON = "amazon-cloudwatch-observability"


def container_insights_log_group(cluster_name: str) -> str:
    """Where Container Insights' performance events go: a name the CloudWatch agent fixes."""
    return f"/aws/containerinsights/{cluster_name}/performance"


def managed_policy_arn(partition: str, policy: str) -> str:
    """An AWS-managed IAM policy's ARN in `partition` (aws, aws-cn, aws-us-gov, ...)."""
    return f"arn:{partition}:iam::aws:policy/{policy}"


def eks_access_policy_arn(partition: str, policy: str) -> str:
    """An EKS access policy's ARN in `partition`."""
    return f"arn:{partition}:eks::aws:{policy}"


HTTPS = 443

# Pods on the node network path are two hops from the instance metadata service; a hop limit of
# one keeps them from reading node credentials, while host-network agents still reach it.
IMDS_HOP_LIMIT = 1


@dataclass(frozen=True, kw_only=True)
class ClusterArgs:
    """Settings of the cluster and its node groups."""

    cluster_name: str
    """A contract: kubeconfigs, `aws eks` commands and the log group name use it."""
    kubernetes_version: str
    upgrade_policy: str
    """STANDARD (EKS upgrades the cluster when standard support ends) or EXTENDED (billed)."""
    vpc_id: pulumi.Input[str]
    subnet_ids: Sequence[pulumi.Input[str]]
    """Private subnets for the control plane's interfaces and the nodes."""
    subnet_zones: pulumi.Input[list[str]]
    """The zone of each subnet, in the same order."""
    public_access: bool
    public_access_cidrs: Sequence[str]
    creator_is_admin: bool
    """Give the principal that creates the cluster an admin access entry (AWS's default)."""
    admin_arns: Sequence[str]
    kms_key_arn: pulumi.Input[str]
    log_retention_days: int
    node_groups: Sequence[NodeGroupConfig]
    deletion_protection: bool
    permissions_boundary: pulumi.Input[str] | None = None
    """The stack's role permissions boundary, which every role it declares then carries (set
    when CI roles exist: the deploy role may only write roles that carry it)."""

    def __post_init__(self) -> None:
        if self.kubernetes_version not in ADDON_VERSIONS:
            raise ValueError(
                f"kubernetes_version = {self.kubernetes_version!r}: allowed: "
                + ", ".join(ADDON_VERSIONS)
            )
        if self.upgrade_policy not in UPGRADE_POLICIES:
            raise ValueError(
                f"upgrade_policy = {self.upgrade_policy!r}: allowed: {', '.join(UPGRADE_POLICIES)}"
            )
        if self.public_access and not self.public_access_cidrs:
            raise ValueError("public_access without public_access_cidrs: allowed: a CIDR list")
        names = [group.name for group in self.node_groups]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"node_groups = {names}: allowed: at least one, names unique")


class Cluster(pulumi.ComponentResource):
    """An EKS cluster whose every setting is a visible, testable resource input."""

    cluster: aws.eks.Cluster
    oidc_provider: aws.iam.OpenIdConnectProvider
    control_plane_role: aws.iam.Role
    """The role EKS runs the control plane with (a deployer passes it to EKS)."""
    node_role: aws.iam.Role
    """The role of every managed node group's instances."""
    addon_roles: dict[str, WorkloadRole]
    """The IRSA roles of the add-ons that call AWS, by add-on (a deployer passes them to EKS)."""
    oidc_issuer: pulumi.Output[str]
    node_groups: dict[str, aws.eks.NodeGroup]
    kubeconfig: pulumi.Output[str]
    """Secret: JSON kubeconfig that authenticates through `aws eks get-token`."""
    security_group_id: pulumi.Output[str]
    """The security group EKS gives the control plane's interfaces (and managed nodes): what
    may reach the private API endpoint is what it admits."""
    client_security_group: aws.ec2.SecurityGroup
    """What reaches the private API from inside the VPC: the CI runner's jobs, and an
    operator's CloudShell VPC environment. HTTPS out only; the cluster admits it on 443."""

    def __init__(
        self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlstack:cluster:Cluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        region = aws.get_region_output(opts=invoke).region
        self._partition = aws.get_partition_output(opts=invoke).partition

        role = aws.iam.Role(
            f"{name}-control-plane",
            assume_role_policy=json.dumps(service_trust_policy("eks.amazonaws.com")),
            permissions_boundary=args.permissions_boundary,
            opts=child,
        )
        self.control_plane_role = role
        role_policy = aws.iam.RolePolicyAttachment(
            f"{name}-control-plane",
            role=role.name,
            policy_arn=self._managed("AmazonEKSClusterPolicy"),
            opts=child,
        )
        # EKS writes control-plane logs here; created first so retention and encryption apply.
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-control-plane-logs",
            name=f"/aws/eks/{args.cluster_name}/cluster",
            retention_in_days=args.log_retention_days,
            kms_key_id=args.kms_key_arn,
            opts=child,
        )
        vpc_config: aws.eks.ClusterVpcConfigArgsDict = {
            "subnet_ids": list(args.subnet_ids),
            "endpoint_private_access": True,
            "endpoint_public_access": args.public_access,
        }
        if args.public_access:
            vpc_config["public_access_cidrs"] = list(args.public_access_cidrs)
        self.cluster = aws.eks.Cluster(
            f"{name}-eks",
            name=args.cluster_name,
            version=args.kubernetes_version,
            upgrade_policy={"support_type": args.upgrade_policy},
            role_arn=role.arn,
            vpc_config=vpc_config,
            enabled_cluster_log_types=list(CONTROL_PLANE_LOGS),
            encryption_config={
                "provider": {"key_arn": args.kms_key_arn},
                "resources": ["secrets"],
            },
            access_config={
                "authentication_mode": "API",
                "bootstrap_cluster_creator_admin_permissions": args.creator_is_admin,
            },
            # Add-ons are managed below, pinned, instead of the unmanaged defaults.
            bootstrap_self_managed_addons=False,
            deletion_protection=args.deletion_protection,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[role_policy, log_group],
                protect=args.deletion_protection,
            ),
        )
        self.oidc_issuer = self.cluster.identities.apply(_oidc_issuer)
        self.oidc_provider = aws.iam.OpenIdConnectProvider(
            f"{name}-oidc",
            url=self.oidc_issuer,
            client_id_lists=["sts.amazonaws.com"],
            opts=child,
        )

        for index, principal in enumerate(args.admin_arns):
            entry = aws.eks.AccessEntry(
                f"{name}-admin-{index}",
                cluster_name=self.cluster.name,
                principal_arn=principal,
                type="STANDARD",
                opts=child,
            )
            aws.eks.AccessPolicyAssociation(
                f"{name}-admin-{index}",
                cluster_name=self.cluster.name,
                principal_arn=principal,
                policy_arn=self._partition.apply(
                    lambda partition: eks_access_policy_arn(partition, CLUSTER_ADMIN_POLICY)
                ),
                access_scope={"type": "cluster"},
                opts=pulumi.ResourceOptions(parent=self, depends_on=[entry]),
            )

        self.addon_roles = addon_roles = {
            addon: WorkloadRole(
                f"{name}-{addon}",
                WorkloadRoleArgs(
                    namespace=namespace,
                    service_account=service_account,
                    oidc_provider_arn=self.oidc_provider.arn,
                    oidc_issuer=self.oidc_issuer,
                    managed_policy_arns=(self._managed(policy),),
                    permissions_boundary=args.permissions_boundary,
                ),
                child,
            )
            for addon, (namespace, service_account, policy) in ADDON_SERVICE_ACCOUNTS.items()
        }
        pins = ADDON_VERSIONS[args.kubernetes_version]

        def addon(addon_name: str, depends_on: Sequence[pulumi.Resource]) -> aws.eks.Addon:
            role_for = addon_roles.get(addon_name)
            return aws.eks.Addon(
                f"{name}-{addon_name}",
                cluster_name=self.cluster.name,
                addon_name=addon_name,
                addon_version=pins[addon_name],
                service_account_role_arn=role_for.arn if role_for else None,
                configuration_values=(
                    json.dumps(ADDON_CONFIGURATION[addon_name], sort_keys=True)
                    if addon_name in ADDON_CONFIGURATION
                    else None
                ),
                resolve_conflicts_on_create="OVERWRITE",
                resolve_conflicts_on_update="OVERWRITE",
                opts=pulumi.ResourceOptions(parent=self, depends_on=list(depends_on)),
            )

        before_nodes = [addon(a, []) for a in ADDONS_BEFORE_NODES]
        node_role = self.node_role = self._node_role(name, args.permissions_boundary)
        self.node_groups = {
            group.name: self._node_group(name, group, args, node_role, before_nodes)
            for group in args.node_groups
        }
        # The CloudWatch agent writes Container Insights' metrics as embedded-metric logs to
        # this group and creates it if missing, with no retention, no key and none of the
        # stack's tags; declared first, it has the stack's (MLSTACK.LOGS.1).
        self.container_insights_logs = aws.cloudwatch.LogGroup(
            f"{name}-container-insights-logs",
            name=container_insights_log_group(args.cluster_name),
            retention_in_days=args.log_retention_days,
            kms_key_id=args.kms_key_arn,
            opts=child,
        )
        for addon_name in pins:
            if addon_name not in ADDONS_BEFORE_NODES:
                first: list[pulumi.Resource] = list(self.node_groups.values())
                if addon_name == CONTAINER_INSIGHTS_ADDON:
                    first.append(self.container_insights_logs)
                addon(addon_name, first)

        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(
                self.cluster.name,
                self.cluster.endpoint,
                self.cluster.certificate_authority.data,
                region,
            ).apply(
                lambda values: json.dumps(
                    eks_kubeconfig(
                        cluster_name=values[0],
                        endpoint=values[1],
                        certificate_authority=values[2],
                        region=values[3],
                    ),
                    sort_keys=True,
                )
            )
        )
        self.security_group_id = self.cluster.vpc_config.cluster_security_group_id
        self.client_security_group = self._clients(name, args)
        self.register_outputs(
            {
                "name": self.cluster.name,
                "endpoint": self.cluster.endpoint,
                "oidcProviderArn": self.oidc_provider.arn,
                "kubeconfig": self.kubeconfig,
            }
        )

    def _clients(self, name: str, args: ClusterArgs) -> aws.ec2.SecurityGroup:
        """Out on 443 only (the API, GitHub, Pulumi Cloud, AWS's APIs, package indexes; DNS goes
        to the VPC's resolver, which security groups do not filter), nothing in."""
        child = pulumi.ResourceOptions(parent=self)
        group = aws.ec2.SecurityGroup(
            f"{name}-clients",
            vpc_id=args.vpc_id,
            description=f"Clients of {args.cluster_name}'s private API: HTTPS out only",
            opts=child,
        )
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-clients-https-out",
            security_group_id=group.id,
            ip_protocol="tcp",
            from_port=HTTPS,
            to_port=HTTPS,
            cidr_ipv4="0.0.0.0/0",
            description="the cluster's API, GitHub, Pulumi Cloud, AWS's APIs, package indexes",
            opts=child,
        )
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-api-from-clients",
            security_group_id=self.security_group_id,
            referenced_security_group_id=group.id,
            ip_protocol="tcp",
            from_port=HTTPS,
            to_port=HTTPS,
            description="the cluster's clients inside the VPC reach its API",
            opts=child,
        )
        return group

    def _managed(self, policy: str) -> pulumi.Output[str]:
        return self._partition.apply(lambda partition: managed_policy_arn(partition, policy))

    def _node_role(self, name: str, boundary: pulumi.Input[str] | None) -> aws.iam.Role:
        role = aws.iam.Role(
            f"{name}-nodes",
            assume_role_policy=json.dumps(service_trust_policy("ec2.amazonaws.com")),
            permissions_boundary=boundary,
            opts=pulumi.ResourceOptions(parent=self),
        )
        # The CNI's permissions live on its own IRSA role, not on every node.
        for policy in NODE_POLICIES:
            aws.iam.RolePolicyAttachment(
                f"{name}-nodes-{policy}",
                role=role.name,
                policy_arn=self._managed(policy),
                opts=pulumi.ResourceOptions(parent=self),
            )
        return role

    def _node_group(
        self,
        name: str,
        group: NodeGroupConfig,
        args: ClusterArgs,
        node_role: aws.iam.Role,
        depends_on: Sequence[pulumi.Resource],
    ) -> aws.eks.NodeGroup:
        child = pulumi.ResourceOptions(parent=self)
        template = aws.ec2.LaunchTemplate(
            f"{name}-{group.name}",
            description=f"{group.name} nodes: IMDSv2 only, encrypted root volume",
            metadata_options={
                "http_endpoint": "enabled",
                "http_tokens": "required",
                "http_put_response_hop_limit": IMDS_HOP_LIMIT,
                "instance_metadata_tags": "disabled",
            },
            block_device_mappings=[
                {
                    "device_name": "/dev/xvda",
                    "ebs": {
                        "volume_size": group.disk_size_gib,
                        "volume_type": "gp3",
                        "encrypted": "true",
                        "kms_key_id": args.kms_key_arn,
                        "delete_on_termination": "true",
                    },
                }
            ],
            update_default_version=True,
            opts=child,
        )
        subnets = (
            self._subnets_offering(name, group.instance_types[0], args)
            if group.gpu
            else args.subnet_ids
        )
        node_group = aws.eks.NodeGroup(
            f"{name}-{group.name}",
            cluster_name=self.cluster.name,
            node_role_arn=node_role.arn,
            subnet_ids=subnets,
            instance_types=list(group.instance_types),
            capacity_type=group.capacity_type,
            ami_type="AL2023_x86_64_NVIDIA" if group.gpu else "AL2023_x86_64_STANDARD",
            scaling_config={
                "min_size": group.min_size,
                "desired_size": group.desired_size,
                "max_size": group.max_size,
            },
            labels=dict(group.labels),
            taints=[
                {"key": taint.key, "value": taint.value, "effect": taint.effect}
                for taint in group.taints
            ],
            launch_template={
                "id": template.id,
                "version": template.latest_version.apply(str),
            },
            update_config={"max_unavailable_percentage": 33},
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=list(depends_on),
                # The cluster autoscaler owns the desired size once the group exists.
                ignore_changes=["scalingConfig.desiredSize"],
            ),
        )
        self._node_template_tags(name, group, node_group)
        return node_group

    def _node_template_tags(
        self, name: str, group: NodeGroupConfig, node_group: aws.eks.NodeGroup
    ) -> None:
        """Tell the cluster autoscaler a group's labels and taints before it has a node.

        From zero nodes the autoscaler knows a group only from its Auto Scaling group; EKS's
        DescribeNodegroup answer is used once, before the group's first node ever, so the GPU
        group that scales back to zero would otherwise never be chosen for a GPU pod again.
        """
        asg_name = node_group.resources.apply(
            lambda resources: resources[0].autoscaling_groups[0].name  # type: ignore[index]
        )
        template = "k8s.io/cluster-autoscaler/node-template"
        tags = {f"{template}/label/{key}": value for key, value in group.labels}
        tags.update(
            {
                f"{template}/taint/{taint.key}": f"{taint.value}:{taint.kubernetes_effect}"
                for taint in group.taints
            }
        )
        for key, value in sorted(tags.items()):
            aws.autoscaling.Tag(
                f"{name}-{group.name}-{key.removeprefix(template + '/')}",
                autoscaling_group_name=asg_name,
                tag={"key": key, "value": value, "propagate_at_launch": False},
                opts=pulumi.ResourceOptions(parent=self),
            )

    def _subnets_offering(
        self, name: str, instance_type: str, args: ClusterArgs
    ) -> pulumi.Output[list[str]]:
        """The subnets whose zone offers `instance_type`: GPU types are not in every zone."""
        offerings = aws.ec2.get_instance_type_offerings_output(
            filters=[{"name": "instance-type", "values": [instance_type]}],
            location_type="availability-zone",
            opts=pulumi.InvokeOutputOptions(parent=self),
        )

        def pick(values: list[object]) -> list[str]:
            zones, offered, *ids = values
            chosen = [
                str(subnet)
                for subnet, zone in zip(ids, zones, strict=True)  # type: ignore[call-overload]
                if zone in offered  # type: ignore[operator]
            ]
            if not chosen:
                raise ValueError(
                    f"mlstack:gpuInstanceType = {instance_type!r}: allowed: a type offered in "
                    f"one of the stack's zones ({', '.join(zones)})"  # type: ignore[arg-type]
                )
            return chosen

        return pulumi.Output.all(args.subnet_zones, offerings.locations, *args.subnet_ids).apply(
            pick
        )


def _oidc_issuer(identities: Sequence[aws.eks.outputs.ClusterIdentity]) -> str:
    for identity in identities:
        for oidc in identity.oidcs or []:
            if oidc.issuer:
                return oidc.issuer
    raise ValueError("the EKS cluster reported no OIDC issuer; IRSA roles cannot be trusted")
