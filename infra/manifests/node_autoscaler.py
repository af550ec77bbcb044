"""The Kubernetes cluster autoscaler: grows a managed node group when pods cannot be scheduled
and shrinks it when nodes stand idle, the GPU group from zero included.

Why the cluster autoscaler and not Karpenter is in docs/decisions.md. It finds the node groups
by the tags EKS puts on their Auto Scaling groups and keeps within each group's min and max,
which stay the stack file's `node*` and `gpu*` keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from infra.manifests import hardening
from infra.manifests.namespace import IRSA_ANNOTATION

NAMESPACE = "kube-system"
NAME = "cluster-autoscaler"
SERVICE_ACCOUNT = NAME
_PORT = 8085
_RUN_AS = 65534  # nobody: the image's user
_COMPONENT = "node-autoscaler"


@dataclass(frozen=True, kw_only=True)
class NodeAutoscaler:
    cluster_name: str
    image: str
    region: str
    role_arn: str
    """The IRSA role it resizes Auto Scaling groups with."""


def _metadata(name: str, *, namespaced: bool = True, **extra: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "labels": hardening.labels(_COMPONENT, NAME)}
    if namespaced:
        metadata["namespace"] = NAMESPACE
    return {**metadata, **extra}


def _rule(group: str, resources: list[str], verbs: list[str], **extra: Any) -> dict[str, Any]:
    return {"apiGroups": [group], "resources": resources, "verbs": verbs, **extra}


def cluster_role() -> dict[str, Any]:
    """What the autoscaler reads to simulate scheduling, and the few writes it makes: events,
    its status, evictions and node taints when it drains a node."""
    read = ["get", "list", "watch"]
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": _metadata(NAME, namespaced=False),
        "rules": [
            _rule("", ["events", "endpoints"], ["create", "patch"]),
            _rule("", ["pods/eviction"], ["create"]),
            _rule("", ["pods/status"], ["update"]),
            _rule("", ["endpoints"], ["get", "update"], resourceNames=[NAME]),
            _rule("", ["nodes"], [*read, "update"]),
            _rule(
                "",
                [
                    "namespaces",
                    "pods",
                    "services",
                    "replicationcontrollers",
                    "persistentvolumeclaims",
                    "persistentvolumes",
                ],
                read,
            ),
            _rule("apps", ["statefulsets", "replicasets", "daemonsets"], read),
            _rule("policy", ["poddisruptionbudgets"], ["list", "watch"]),
            _rule(
                "storage.k8s.io",
                [
                    "storageclasses",
                    "csinodes",
                    "csidrivers",
                    "csistoragecapacities",
                    "volumeattachments",
                ],
                read,
            ),
            _rule("batch", ["jobs", "cronjobs"], read),
            _rule("coordination.k8s.io", ["leases"], ["create"]),
            _rule("coordination.k8s.io", ["leases"], ["get", "update"], resourceNames=[NAME]),
        ],
    }


def status_role() -> dict[str, Any]:
    """Its status config map in kube-system, and no other."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _metadata(NAME),
        "rules": [
            _rule("", ["configmaps"], ["create", "list", "watch"]),
            _rule(
                "",
                ["configmaps"],
                ["delete", "get", "update", "watch"],
                resourceNames=["cluster-autoscaler-status"],
            ),
        ],
    }


def _binding(kind: str, role_kind: str) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": _metadata(NAME, namespaced=kind == "RoleBinding"),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": NAME},
        "subjects": [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": NAMESPACE}],
    }


def service_account(settings: NodeAutoscaler) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _metadata(SERVICE_ACCOUNT, annotations={IRSA_ANNOTATION: settings.role_arn}),
        # It watches the API server: unlike the model workloads, it needs its token.
        "automountServiceAccountToken": True,
    }


def arguments(cluster_name: str) -> list[str]:
    """Auto-discovery of the cluster's managed node groups by their EKS tags; `least-waste`
    picks the group that leaves the least idle CPU, so a CPU pod never lands on a GPU node;
    similar groups are balanced across zones."""
    return [
        "--cloud-provider=aws",
        f"--node-group-auto-discovery=asg:tag=k8s.io/cluster-autoscaler/enabled,"
        f"k8s.io/cluster-autoscaler/{cluster_name}",
        "--expander=least-waste",
        "--balance-similar-node-groups",
        # emptyDir work dirs (the serving and training pods) must not pin a node forever.
        "--skip-nodes-with-local-storage=false",
        "--skip-nodes-with-system-pods=false",
        "--stderrthreshold=info",
        "--v=2",
    ]


def deployment(settings: NodeAutoscaler) -> dict[str, Any]:
    labels = hardening.labels(_COMPONENT, NAME)
    probe = {"httpGet": {"path": "/health-check", "port": _PORT}, "periodSeconds": 10}
    pod_security = {
        **hardening.pod_security_context(),
        "runAsUser": _RUN_AS,
        "runAsGroup": _RUN_AS,
        "fsGroup": _RUN_AS,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(
            NAME,
            annotations=hardening.checkov_skips(
                {"CKV_K8S_38": "the autoscaler watches the API server with its token"}
            ),
        ),
        "spec": {
            # One active instance at a time: a second would only wait for the leader lease.
            "replicas": 1,
            "selector": {"matchLabels": hardening.selector(_COMPONENT, NAME)},
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {
                        # Evicting the autoscaler while it drains a node would stop the drain.
                        "cluster-autoscaler.kubernetes.io/safe-to-evict": "false",
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(_PORT),
                    },
                },
                "spec": {
                    "serviceAccountName": SERVICE_ACCOUNT,
                    "priorityClassName": "system-cluster-critical",
                    "securityContext": pod_security,
                    # Never on a GPU node: it would keep the GPU group from scaling to zero.
                    "nodeSelector": {"mlstack.io/node-group": "general"},
                    "containers": [
                        {
                            "name": NAME,
                            "image": settings.image,
                            "command": ["./cluster-autoscaler", *arguments(settings.cluster_name)],
                            "env": [{"name": "AWS_REGION", "value": settings.region}],
                            "ports": [{"name": "metrics", "containerPort": _PORT}],
                            "readinessProbe": probe,
                            "livenessProbe": {**probe, "initialDelaySeconds": 30},
                            "resources": hardening.resources(100, 600),
                            "securityContext": {
                                **hardening.container_security_context(),
                                "runAsUser": _RUN_AS,
                            },
                        }
                    ],
                },
            },
        },
    }


def node_autoscaler_objects(settings: NodeAutoscaler) -> list[dict[str, Any]]:
    """Every object the autoscaler needs, in the order they can be applied."""
    return [
        service_account(settings),
        cluster_role(),
        status_role(),
        _binding("ClusterRoleBinding", "ClusterRole"),
        _binding("RoleBinding", "Role"),
        deployment(settings),
    ]
