"""The keys of the EKS control plane and its node groups."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Literal

from infra.config.eks_versions import SUPPORTED_KUBERNETES_VERSIONS, UPGRADE_POLICIES
from infra.config.reader import Check, Reader, one_of
from infra.config.sections.formats import check_principal_arn

CapacityType = Literal["ON_DEMAND", "SPOT"]
CAPACITY_TYPES: tuple[CapacityType, ...] = ("ON_DEMAND", "SPOT")


# x86_64 families only: node groups use the AL2023 x86_64 AMIs the images are built for.
NODE_INSTANCE_FAMILIES: tuple[str, ...] = (
    "t3", "t3a", "m5", "m5a", "m6i", "m6a", "m7i", "m7a",
    "c5", "c6i", "c6a", "c7i", "c7a", "r5", "r6i", "r6a", "r7i", "r7a",
)  # fmt: skip
GPU_INSTANCE_FAMILIES: tuple[str, ...] = ("g4dn", "g5", "g6", "g6e", "p4d", "p5")

_K8S_VERSION = re.compile(r"^1\.\d{2}$")
_EC2_INSTANCE = re.compile(
    r"^(?P<family>[a-z][a-z0-9-]*)\.(?:nano|micro|small|medium|large|\d*xlarge|metal)$"
)
_LABEL = re.compile(
    r"^(?P<key>([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)=(?P<value>([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?)$"
)
TAINT_EFFECTS = {
    "NoSchedule": "NO_SCHEDULE",
    "PreferNoSchedule": "PREFER_NO_SCHEDULE",
    "NoExecute": "NO_EXECUTE",
}


@dataclass(frozen=True, kw_only=True)
class Taint:
    """A node taint; `effect` in the EKS API's spelling (NO_SCHEDULE, ...)."""

    key: str
    value: str
    effect: str

    @property
    def kubernetes_effect(self) -> str:
        """The effect as Kubernetes spells it (NoSchedule, ...), for tolerations."""
        return next(name for name, eks in TAINT_EFFECTS.items() if eks == self.effect)


@dataclass(frozen=True, kw_only=True)
class NodeGroupConfig:
    """One managed node group."""

    name: str
    instance_types: tuple[str, ...]
    capacity_type: CapacityType
    min_size: int
    desired_size: int
    max_size: int
    disk_size_gib: int
    labels: tuple[tuple[str, str], ...] = ()
    taints: tuple[Taint, ...] = ()
    gpu: bool = False


GPU_TAINT = Taint(key="nvidia.com/gpu", value="true", effect="NO_SCHEDULE")
GPU_MIN_DISK_GIB = 100  # CUDA images are large


@dataclass(frozen=True, kw_only=True)
class ClusterConfig:
    """The EKS control plane and its node groups."""

    enabled: bool
    """Declare the cluster, its node groups and the workloads' IRSA roles at all."""
    kubernetes_version: str
    upgrade_policy: str
    """EKS's support type: STANDARD (upgraded at the end of standard support) or EXTENDED."""
    public_access: bool
    public_access_cidrs: tuple[str, ...]
    creator_is_admin: bool
    admin_arns: tuple[str, ...]
    node_instance_types: tuple[str, ...]
    node_capacity_type: CapacityType
    node_min_size: int
    node_desired_size: int
    node_max_size: int
    node_disk_size_gib: int
    node_labels: tuple[tuple[str, str], ...]
    node_taints: tuple[Taint, ...]
    gpu_node_group: bool
    gpu_instance_type: str
    gpu_max_size: int

    @property
    def node_groups(self) -> tuple[NodeGroupConfig, ...]:
        """The general group, and the GPU group when it is on (scales from zero, tainted)."""
        general = NodeGroupConfig(
            name="general",
            instance_types=self.node_instance_types,
            capacity_type=self.node_capacity_type,
            min_size=self.node_min_size,
            desired_size=self.node_desired_size,
            max_size=self.node_max_size,
            disk_size_gib=self.node_disk_size_gib,
            labels=(("mlstack.io/node-group", "general"), *self.node_labels),
            taints=self.node_taints,
        )
        if not self.gpu_node_group:
            return (general,)
        gpu = NodeGroupConfig(
            name="gpu",
            instance_types=(self.gpu_instance_type,),
            capacity_type=self.node_capacity_type,
            min_size=0,
            desired_size=0,
            max_size=self.gpu_max_size,
            disk_size_gib=max(self.node_disk_size_gib, GPU_MIN_DISK_GIB),
            labels=(
                ("mlstack.io/node-group", "gpu"),
                ("mlstack.io/accelerator", "nvidia"),
                # The cluster autoscaler's GPU label on AWS: a node carrying it whose GPUs are
                # not yet allocatable (the device plugin is starting) is not scaled up again.
                ("k8s.amazonaws.com/accelerator", "nvidia"),
            ),
            taints=(GPU_TAINT,),
            gpu=True,
        )
        return (general, gpu)


def check_public_cidr(value: str) -> str | None:
    allowed = "an IPv4 network such as 203.0.113.0/24, narrower than 0.0.0.0/0"
    try:
        network = ipaddress.IPv4Network(value, strict=True)
    except ValueError:
        return allowed
    return None if network.prefixlen > 0 else allowed


def check_kubernetes_version(value: str) -> str | None:
    if _K8S_VERSION.match(value) and value in SUPPORTED_KUBERNETES_VERSIONS:
        return None
    allowed = "a version EKS supports, as MAJOR.MINOR: " + one_of(SUPPORTED_KUBERNETES_VERSIONS)
    if re.fullmatch(r"1\.\d", value):
        allowed += f" (if the stack file says {value}0 unquoted, YAML read it as {value}: quote it)"
    return allowed


def _instance_family(families: tuple[str, ...], kind: str) -> Check[str]:
    def check(value: str) -> str | None:
        match = _EC2_INSTANCE.match(value)
        if match and match["family"] in families:
            return None
        return f"an EC2 instance type (family.size) of a known {kind} family: " + ", ".join(
            families
        )

    return check


def parse_label(value: str) -> tuple[str, str] | None:
    match = _LABEL.match(value)
    return (match["key"], match["value"]) if match else None


def check_label(value: str) -> str | None:
    if parse_label(value) is not None:
        return None
    return "a Kubernetes label as key=value, e.g. team=ml or example.com/tier=batch"


def parse_taint(value: str) -> Taint | None:
    label, _, effect = value.rpartition(":")
    pair = parse_label(label)
    if pair is None or effect not in TAINT_EFFECTS:
        return None
    return Taint(key=pair[0], value=pair[1], effect=TAINT_EFFECTS[effect])


def check_taint(value: str) -> str | None:
    if parse_taint(value) is not None:
        return None
    return "a taint as key=value:Effect with Effect one of " + ", ".join(TAINT_EFFECTS)


def read_cluster(read: Reader) -> ClusterConfig:
    return ClusterConfig(
        enabled=read.boolean("cluster"),
        kubernetes_version=read.string("kubernetesVersion", check_kubernetes_version),
        upgrade_policy=read.choice("clusterUpgradePolicy", UPGRADE_POLICIES),
        public_access=read.boolean("clusterPublicAccess"),
        public_access_cidrs=read.strings("clusterPublicAccessCidrs", check_public_cidr),
        creator_is_admin=read.boolean("clusterCreatorAdmin"),
        admin_arns=read.strings("clusterAdminArns", check_principal_arn),
        node_instance_types=read.strings(
            "nodeInstanceTypes", _instance_family(NODE_INSTANCE_FAMILIES, "general-purpose")
        ),
        node_capacity_type=read.choice("nodeCapacityType", CAPACITY_TYPES),
        node_min_size=read.integer("nodeMinSize", 0, 100),
        node_desired_size=read.integer("nodeDesiredSize", 0, 100),
        node_max_size=read.integer("nodeMaxSize", 1, 100),
        node_disk_size_gib=read.integer("nodeDiskSizeGib", 20, 1000),
        node_labels=tuple(
            pair
            for pair in map(parse_label, read.strings("nodeLabels", check_label))
            if pair is not None
        ),
        node_taints=tuple(
            taint
            for taint in map(parse_taint, read.strings("nodeTaints", check_taint))
            if taint is not None
        ),
        gpu_node_group=read.boolean("gpuNodeGroup"),
        gpu_instance_type=read.string(
            "gpuInstanceType", _instance_family(GPU_INSTANCE_FAMILIES, "GPU")
        ),
        gpu_max_size=read.integer("gpuMaxSize", 1, 32),
    )
