"""EKS rules, with the ids of the FSBP controls they mirror."""

from __future__ import annotations

import ipaddress

from infra.eks_versions import SUPPORTED_KUBERNETES_VERSIONS
from infra.policy.documents import as_list
from infra.policy.rules import ResourceLike, StackIndex, rule

CLUSTER = "aws:eks/cluster:Cluster"
REQUIRED_LOGS = ("api", "audit", "authenticator")


@rule("EKS.1", "EKS API endpoint is private, or public only to an allow-list", CLUSTER)
def endpoint_not_open(cluster: ResourceLike, _stack: StackIndex) -> str | None:
    vpc = cluster.props.get("vpcConfig") or {}
    if vpc.get("endpointPublicAccess") is False:
        return None
    cidrs = as_list(vpc.get("publicAccessCidrs"))
    # AWS reads a public endpoint without an allow-list as open to 0.0.0.0/0.
    if not cidrs:
        return "public endpoint with no publicAccessCidrs, which means open to the internet"
    open_to_all = [c for c in cidrs if ipaddress.ip_network(str(c), strict=False).prefixlen == 0]
    return f"public endpoint open to {', '.join(open_to_all)}" if open_to_all else None


@rule("EKS.2", "EKS clusters run a supported Kubernetes version", CLUSTER)
def supported_version(cluster: ResourceLike, _stack: StackIndex) -> str | None:
    version = cluster.props.get("version")
    if version in SUPPORTED_KUBERNETES_VERSIONS:
        return None
    return f"version {version!r} is not one of {', '.join(SUPPORTED_KUBERNETES_VERSIONS)}"


@rule("EKS.3", "EKS clusters encrypt Kubernetes secrets with KMS", CLUSTER)
def encrypts_secrets(cluster: ResourceLike, _stack: StackIndex) -> str | None:
    for config in as_list(cluster.props.get("encryptionConfig")):
        if "secrets" in as_list(config.get("resources")) and (config.get("provider") or {}).get(
            "keyArn"
        ):
            return None
    return "Kubernetes secrets are not envelope-encrypted with a KMS key"


@rule("EKS.8", "EKS clusters send audit logs to CloudWatch", CLUSTER)
def logs_control_plane(cluster: ResourceLike, _stack: StackIndex) -> str | None:
    enabled = set(as_list(cluster.props.get("enabledClusterLogTypes")))
    missing = [log for log in REQUIRED_LOGS if log not in enabled]
    return f"control-plane logs missing: {', '.join(missing)}" if missing else None
