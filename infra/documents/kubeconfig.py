"""The kubeconfig for an EKS cluster."""

from __future__ import annotations

from typing import Any


def eks_kubeconfig(
    *, cluster_name: str, endpoint: str, certificate_authority: str, region: str
) -> dict[str, Any]:
    """A kubeconfig that authenticates with `aws eks get-token`, so no credential is stored in it.

    Whoever uses it needs the aws CLI and credentials for a principal with an access entry.
    """
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster_name,
                "cluster": {
                    "server": endpoint,
                    "certificate-authority-data": certificate_authority,
                },
            }
        ],
        "contexts": [
            {"name": cluster_name, "context": {"cluster": cluster_name, "user": cluster_name}}
        ],
        "current-context": cluster_name,
        "users": [
            {
                "name": cluster_name,
                "user": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1beta1",
                        "command": "aws",
                        "args": [
                            "eks",
                            "get-token",
                            "--cluster-name",
                            cluster_name,
                            "--region",
                            region,
                            "--output",
                            "json",
                        ],
                        "interactiveMode": "Never",
                    }
                },
            }
        ],
    }
