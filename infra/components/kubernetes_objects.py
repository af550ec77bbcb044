"""Declaring a manifest from a pure builder as a Pulumi Kubernetes resource, with deploy-time
values (image digests, role ARNs, bucket names) filled into its placeholders.

Builders write a placeholder where a value is only known once something is deployed; the
resource receives the real value as an Output, so a preview shows every other field."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

Manifest = dict[str, Any]

# kind -> (resource class, the manifest's top-level fields it takes besides apiVersion/kind)
_RESOURCES: dict[str, tuple[Callable[..., pulumi.CustomResource], tuple[str, ...]]] = {
    "Namespace": (k8s.core.v1.Namespace, ("metadata",)),
    "ServiceAccount": (
        k8s.core.v1.ServiceAccount,
        ("metadata", "automountServiceAccountToken"),
    ),
    "NetworkPolicy": (k8s.networking.v1.NetworkPolicy, ("metadata", "spec")),
    "Ingress": (k8s.networking.v1.Ingress, ("metadata", "spec")),
    "Deployment": (k8s.apps.v1.Deployment, ("metadata", "spec")),
    "DaemonSet": (k8s.apps.v1.DaemonSet, ("metadata", "spec")),
    "Service": (k8s.core.v1.Service, ("metadata", "spec")),
    "HorizontalPodAutoscaler": (k8s.autoscaling.v2.HorizontalPodAutoscaler, ("metadata", "spec")),
    "PodDisruptionBudget": (k8s.policy.v1.PodDisruptionBudget, ("metadata", "spec")),
    "CronJob": (k8s.batch.v1.CronJob, ("metadata", "spec")),
    "ClusterRole": (k8s.rbac.v1.ClusterRole, ("metadata", "rules")),
    "Role": (k8s.rbac.v1.Role, ("metadata", "rules")),
    "ClusterRoleBinding": (k8s.rbac.v1.ClusterRoleBinding, ("metadata", "roleRef", "subjects")),
    "RoleBinding": (k8s.rbac.v1.RoleBinding, ("metadata", "roleRef", "subjects")),
}
_ARGUMENTS = {
    "metadata": "metadata",
    "spec": "spec",
    "rules": "rules",
    "roleRef": "role_ref",
    "subjects": "subjects",
    "automountServiceAccountToken": "automount_service_account_token",
}


def declare(
    name: str,
    manifest: Manifest,
    *,
    parent: pulumi.Resource,
    provider: k8s.Provider,
    slots: Mapping[str, pulumi.Input[str]],
    depends_on: Sequence[pulumi.Resource] = (),
) -> pulumi.CustomResource:
    """Declare `manifest` as `<name>-<kind>-<object name>` through `provider`."""
    kind, object_name = manifest["kind"], manifest["metadata"]["name"]
    resource_class, fields = _RESOURCES[kind]
    return resource_class(
        f"{name}-{kind.lower()}-{object_name}",
        **{_ARGUMENTS[field]: filled(manifest.get(field), slots) for field in fields},
        opts=pulumi.ResourceOptions(parent=parent, provider=provider, depends_on=list(depends_on)),
    )


def filled(value: Any, slots: Mapping[str, pulumi.Input[str]]) -> Any:
    """`value` with each placeholder replaced by its deploy-time value, inside strings too."""
    if isinstance(value, str):
        for token, replacement in slots.items():
            if token in value:
                before, _, after = value.partition(token)
                parts = [filled(before, slots), replacement, filled(after, slots)]
                return pulumi.Output.concat(*(part for part in parts if part != ""))
        return value
    if isinstance(value, dict):
        return {key: filled(item, slots) for key, item in value.items()}
    if isinstance(value, list):
        return [filled(item, slots) for item in value]
    return value
