"""The Kubernetes versions mlstack supports and the EKS add-on versions pinned to each.

Pinning makes `pulumi preview` show an add-on upgrade as a reviewed change instead of drift.
When adding a version, take each add-on's default from
`aws eks describe-addon-versions --kubernetes-version X.Y --addon-name NAME`.
"""

from __future__ import annotations

from types import MappingProxyType

ADDONS = ("vpc-cni", "coredns", "kube-proxy", "eks-pod-identity-agent", "aws-ebs-csi-driver")

ADDON_VERSIONS = MappingProxyType(
    {
        "1.32": {
            "vpc-cni": "v1.20.4-eksbuild.1",
            "coredns": "v1.11.4-eksbuild.24",
            "kube-proxy": "v1.32.6-eksbuild.13",
            "eks-pod-identity-agent": "v1.3.9-eksbuild.3",
            "aws-ebs-csi-driver": "v1.51.1-eksbuild.1",
        },
        "1.33": {
            "vpc-cni": "v1.20.4-eksbuild.1",
            "coredns": "v1.12.4-eksbuild.1",
            "kube-proxy": "v1.33.3-eksbuild.11",
            "eks-pod-identity-agent": "v1.3.9-eksbuild.3",
            "aws-ebs-csi-driver": "v1.51.1-eksbuild.1",
        },
        "1.34": {
            "vpc-cni": "v1.20.4-eksbuild.1",
            "coredns": "v1.12.4-eksbuild.1",
            "kube-proxy": "v1.34.0-eksbuild.5",
            "eks-pod-identity-agent": "v1.3.9-eksbuild.3",
            "aws-ebs-csi-driver": "v1.51.1-eksbuild.1",
        },
    }
)

SUPPORTED_KUBERNETES_VERSIONS: tuple[str, ...] = tuple(sorted(ADDON_VERSIONS))
