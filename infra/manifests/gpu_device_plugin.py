"""The NVIDIA device plugin: on each GPU node, it offers the node's cards to the scheduler as
the `nvidia.com/gpu` resource. Without it a GPU node joins with no GPUs to give."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from infra.config.sections.cluster import Taint
from infra.manifests import hardening

NAMESPACE = "kube-system"
NAME = "nvidia-device-plugin"
RESOURCE = "nvidia.com/gpu"
_COMPONENT = "gpu-device-plugin"
_PLUGINS_DIR = "/var/lib/kubelet/device-plugins"


def toleration(taint: Taint) -> dict[str, str]:
    """Tolerate one node group taint."""
    return {
        "key": taint.key,
        "operator": "Equal",
        "value": taint.value,
        "effect": taint.kubernetes_effect,
    }


def daemon_set(
    *, image: str, node_labels: Mapping[str, str], node_taints: Sequence[Taint]
) -> dict[str, Any]:
    """One plugin pod on every node carrying `node_labels` (the GPU group's), tolerating that
    group's taints (the GPU taint keeps every other pod away).

    The plugin must create its socket in the kubelet's device-plugin directory, which root owns:
    it runs as root, without privilege, capabilities or escalation (MLSTACK.K8S.5)."""
    labels = hardening.labels(_COMPONENT, NAME)
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {
            "name": NAME,
            "namespace": NAMESPACE,
            "labels": labels,
            "annotations": hardening.checkov_skips(
                {
                    "CKV_K8S_8": "the plugin serves no health endpoint; the kubelet sees it stop",
                    "CKV_K8S_9": "the plugin serves no traffic: nothing to be ready for",
                    "CKV_K8S_23": "root owns the kubelet's device-plugin socket directory",
                    "CKV_K8S_40": "root owns the kubelet's device-plugin socket directory",
                }
            ),
        },
        "spec": {
            "selector": {"matchLabels": hardening.selector(_COMPONENT, NAME)},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "priorityClassName": "system-node-critical",
                    "nodeSelector": dict(node_labels),
                    "tolerations": [toleration(taint) for taint in node_taints],
                    "automountServiceAccountToken": False,
                    "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [
                        {
                            "name": NAME,
                            "image": image,
                            "env": [{"name": "FAIL_ON_INIT_ERROR", "value": "false"}],
                            "resources": {
                                "requests": {"cpu": "50m", "memory": "64Mi"},
                                "limits": {"cpu": "200m", "memory": "256Mi"},
                            },
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "privileged": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]},
                            },
                            "volumeMounts": [{"name": "device-plugins", "mountPath": _PLUGINS_DIR}],
                        }
                    ],
                    "volumes": [
                        {
                            "name": "device-plugins",
                            "hostPath": {"path": _PLUGINS_DIR, "type": "Directory"},
                        }
                    ],
                },
            },
        },
    }
