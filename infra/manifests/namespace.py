"""The workloads' namespace, their service accounts, and the namespace's default-deny policy."""

from __future__ import annotations

from typing import Any

from infra.manifests.hardening import PART_OF
from infra.project import naming

IRSA_ANNOTATION = "eks.amazonaws.com/role-arn"


READINESS_GATE_LABEL = "elbv2.k8s.aws/pod-readiness-gate-inject"


def namespace(*, load_balancer_readiness: bool = False) -> dict[str, Any]:
    """Pods that break the restricted Pod Security Standard are refused at admission.

    With `load_balancer_readiness`, the load balancer controller gives each pod a readiness gate
    that opens once the load balancer sees the pod healthy, so a rolling update never takes the
    last healthy target out of a load balancer."""
    standard = {
        f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "audit", "warn")
    }
    if load_balancer_readiness:
        standard[READINESS_GATE_LABEL] = "enabled"
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": naming.WORKLOAD_NAMESPACE,
            "labels": {**standard, "app.kubernetes.io/part-of": PART_OF},
        },
    }


def service_account(name: str, role_arn: str) -> dict[str, Any]:
    """A workload's identity: IRSA gives its pods the role, and no Kubernetes API token is
    mounted (the workloads never call the API server)."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {
            "name": name,
            "namespace": naming.WORKLOAD_NAMESPACE,
            "labels": {"app.kubernetes.io/part-of": PART_OF},
            "annotations": {IRSA_ANNOTATION: role_arn},
        },
        "automountServiceAccountToken": False,
    }


def default_deny() -> dict[str, Any]:
    """Nothing reaches a pod of the namespace unless a policy of its own admits it."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": "default-deny-ingress",
            "namespace": naming.WORKLOAD_NAMESPACE,
            "labels": {"app.kubernetes.io/part-of": PART_OF},
        },
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
    }
