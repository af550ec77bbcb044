"""EKS rules, with the ids of the FSBP controls they mirror."""

from __future__ import annotations

import ipaddress
from datetime import UTC, date, datetime

from mlstack_policy.documents import as_list
from mlstack_policy.eks_support import support_problem
from mlstack_policy.rules import ResourceLike, known, resource_rule

CLUSTER = "aws:eks/cluster:Cluster"
REQUIRED_LOGS = ("api", "audit", "authenticator")


@resource_rule("EKS.1", "EKS API endpoint is private, or public only to an allow-list", CLUSTER)
def endpoint_not_open(cluster: ResourceLike) -> str | None:
    vpc = cluster.props.get("vpcConfig") or {}
    if known(vpc.get("endpointPublicAccess"), "endpointPublicAccess") is False:
        return None
    cidrs = as_list(known(vpc.get("publicAccessCidrs"), "publicAccessCidrs"))
    # AWS reads a public endpoint without an allow-list as open to 0.0.0.0/0.
    if not cidrs:
        return "public endpoint with no publicAccessCidrs, which means open to the internet"
    open_to_all = [c for c in cidrs if ipaddress.ip_network(str(c), strict=False).prefixlen == 0]
    return f"public endpoint open to {', '.join(open_to_all)}" if open_to_all else None


def today() -> date:
    """The date in UTC, the time zone in which EKS support periods end."""
    return datetime.now(UTC).date()


@resource_rule(
    "EKS.2",
    "EKS clusters run a Kubernetes version under standard support, or chose extended support",
    CLUSTER,
)
def supported_version(cluster: ResourceLike) -> str | None:
    version = known(cluster.props.get("version"), "the Kubernetes version")
    policy = known(cluster.props.get("upgradePolicy") or {}, "the upgrade policy")
    # EKS's own default, when no policy is given, is EXTENDED: billed, but supported.
    support_type = known(policy.get("supportType", "EXTENDED"), "the upgrade policy")
    return support_problem(str(version), str(support_type), today())


@resource_rule("EKS.3", "EKS clusters encrypt Kubernetes secrets with KMS", CLUSTER)
def encrypts_secrets(cluster: ResourceLike) -> str | None:
    for config in as_list(cluster.props.get("encryptionConfig")):
        if "secrets" in as_list(config.get("resources")) and (config.get("provider") or {}).get(
            "keyArn"
        ):
            return None
    return "Kubernetes secrets are not envelope-encrypted with a KMS key"


@resource_rule("EKS.8", "EKS clusters send audit logs to CloudWatch", CLUSTER)
def logs_control_plane(cluster: ResourceLike) -> str | None:
    enabled = set(as_list(cluster.props.get("enabledClusterLogTypes")))
    missing = [log for log in REQUIRED_LOGS if log not in enabled]
    return f"control-plane logs missing: {', '.join(missing)}" if missing else None
