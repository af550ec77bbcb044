"""The Kubernetes versions mlstack supports and the EKS add-on versions pinned to each.

Pinning makes `pulumi preview` show an add-on upgrade as a reviewed change instead of drift.
When adding a version, add its dates to `mlstack_policy.eks_support` and take each add-on's
default from `aws eks describe-addon-versions --kubernetes-version X.Y --addon-name NAME`.

Where the pins come from (none could be checked against AWS from the machine that wrote them):
1.33 and 1.34 are the defaults `describe-addon-versions` reported when those versions were added;
1.35's are the defaults it reported on 2026-10-02 for vpc-cni, coredns, kube-proxy and the Pod
Identity agent, and the EBS CSI driver version public 1.35 clusters run. metrics-server (an
EKS community add-on) is v0.8.1-eksbuild.6, the 1.35 default a public deployment recorded from
`describe-addon-versions`; the same build is pinned for 1.33 and 1.34 on the assumption that the
community add-on's builds span those versions, which is unchecked: confirm it before deploying
either. amazon-cloudwatch-observability is v6.5.0-eksbuild.1 on every version, the build a
public deployment pins (its builds usually span every supported Kubernetes version; unchecked
here too).
"""

from __future__ import annotations

from types import MappingProxyType

from mlstack_policy.eks_support import EKS_RELEASE_CALENDAR, SupportWindow

ADDONS = (
    "vpc-cni",
    "coredns",
    "kube-proxy",
    "eks-pod-identity-agent",
    "aws-ebs-csi-driver",
    # Serves the resource metrics the serving HorizontalPodAutoscalers scale on.
    "metrics-server",
    # Container Insights: the CloudWatch agent publishes the pod counts the serving replica
    # alarms watch.
    "amazon-cloudwatch-observability",
)

ADDON_VERSIONS = MappingProxyType(
    {
        "1.33": {
            "vpc-cni": "v1.20.4-eksbuild.1",
            "coredns": "v1.12.4-eksbuild.1",
            "kube-proxy": "v1.33.3-eksbuild.11",
            "eks-pod-identity-agent": "v1.3.9-eksbuild.3",
            "aws-ebs-csi-driver": "v1.51.1-eksbuild.1",
            "metrics-server": "v0.8.1-eksbuild.6",
            "amazon-cloudwatch-observability": "v6.5.0-eksbuild.1",
        },
        "1.34": {
            "vpc-cni": "v1.20.4-eksbuild.1",
            "coredns": "v1.12.4-eksbuild.1",
            "kube-proxy": "v1.34.0-eksbuild.5",
            "eks-pod-identity-agent": "v1.3.9-eksbuild.3",
            "aws-ebs-csi-driver": "v1.51.1-eksbuild.1",
            "metrics-server": "v0.8.1-eksbuild.6",
            "amazon-cloudwatch-observability": "v6.5.0-eksbuild.1",
        },
        "1.35": {
            "vpc-cni": "v1.22.4-eksbuild.3",
            "coredns": "v1.13.2-eksbuild.31",
            "kube-proxy": "v1.35.3-eksbuild.29",
            "eks-pod-identity-agent": "v1.3.10-eksbuild.3",
            "aws-ebs-csi-driver": "v1.64.0-eksbuild.1",
            "metrics-server": "v0.8.1-eksbuild.6",
            "amazon-cloudwatch-observability": "v6.5.0-eksbuild.1",
        },
    }
)

SUPPORTED_KUBERNETES_VERSIONS: tuple[str, ...] = tuple(sorted(ADDON_VERSIONS))

CLUSTER_AUTOSCALER_IMAGES = MappingProxyType(
    {
        # The autoscaler is released per Kubernetes minor and tested only against its own.
        # 1.35's digest is the multi-architecture index digest two public deployments pin.
        # 1.33's and 1.34's digests could not be looked up from the machine that wrote this:
        # they stay tags, which MLSTACK.K8S.3 refuses, so a stack on those versions fails its
        # preview until `crane digest <image>` supplies them here.
        "1.33": "registry.k8s.io/autoscaling/cluster-autoscaler:v1.33.6",
        "1.34": "registry.k8s.io/autoscaling/cluster-autoscaler:v1.34.5",
        "1.35": "registry.k8s.io/autoscaling/cluster-autoscaler:v1.35.0"
        "@sha256:2fc9433dd3b47baef0e68d6b1110b770a3c93db10c7bead4c5bc6cb21c72b875",
    }
)
"""The Kubernetes cluster autoscaler image for each supported version."""

NVIDIA_DEVICE_PLUGIN_IMAGE = (
    "nvcr.io/nvidia/k8s-device-plugin:v0.17.0"
    "@sha256:7089559ce6153018806857f5049085bae15b3bf6f1c8bd19d8b12f707d087dea"
)
"""Offers each GPU node's cards to the scheduler as `nvidia.com/gpu` (the EKS NVIDIA AMI has the
driver and container toolkit, not the plugin). The digest is the one minikube's addon pins."""

UPGRADE_POLICIES = ("STANDARD", "EXTENDED")
"""EKS's `upgradePolicy.supportType`: STANDARD upgrades a cluster when standard support ends;
EXTENDED keeps its version and bills the extended-support rate."""


def support_window(version: str) -> SupportWindow:
    """The release and end-of-support dates of a supported version."""
    return EKS_RELEASE_CALENDAR[version]
