"""Serving on the cluster: the workloads' namespace and identities, and each pinned model's
Deployment, Service, autoscaler, disruption budget and network policy.

The objects come from the pure builders in `infra.manifests`; this component only fills in what
is known at deploy time (image digest, role ARNs) and declares them through the cluster's
provider.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from infra import naming
from infra.manifests import namespace as namespace_manifests
from infra.manifests.serving import ServingWorkload, serving_objects
from serving.registry import ModelPackage

Manifest = dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class KubernetesServingArgs:
    provider: k8s.Provider
    serving_image: pulumi.Input[str]
    serving_role_arn: pulumi.Input[str]
    training_role_arn: pulumi.Input[str]
    packages: Mapping[str, ModelPackage]
    """The pinned version of each model to serve, resolved through the registry."""
    region: str
    min_replicas: int
    max_replicas: int
    cpu_millicores: int
    memory_mib: int
    client_namespaces: Sequence[str]


# kind -> (resource class, the manifest's top-level fields it takes besides apiVersion/kind)
_RESOURCES: dict[str, tuple[Callable[..., pulumi.CustomResource], tuple[str, ...]]] = {
    "Namespace": (k8s.core.v1.Namespace, ("metadata",)),
    "ServiceAccount": (
        k8s.core.v1.ServiceAccount,
        ("metadata", "automountServiceAccountToken"),
    ),
    "NetworkPolicy": (k8s.networking.v1.NetworkPolicy, ("metadata", "spec")),
    "Deployment": (k8s.apps.v1.Deployment, ("metadata", "spec")),
    "Service": (k8s.core.v1.Service, ("metadata", "spec")),
    "HorizontalPodAutoscaler": (k8s.autoscaling.v2.HorizontalPodAutoscaler, ("metadata", "spec")),
    "PodDisruptionBudget": (k8s.policy.v1.PodDisruptionBudget, ("metadata", "spec")),
}
_SERVING_IMAGE = "<serving image digest, known once built>"
_SERVING_ROLE = "<serving role ARN>"
_TRAINING_ROLE = "<training role ARN>"
_ARGUMENTS = {
    "metadata": "metadata",
    "spec": "spec",
    "automountServiceAccountToken": "automount_service_account_token",
}


class KubernetesServing(pulumi.ComponentResource):
    """`objects`: every declared Kubernetes object, by `<kind>/<name>`."""

    objects: dict[str, pulumi.CustomResource]

    def __init__(
        self, name: str, args: KubernetesServingArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlstack:kubernetes:Serving", name, None, opts)
        self._provider = args.provider
        self.objects = {}
        # Values known only at deploy time go into the objects through these placeholders, so
        # everything else stays known in a preview (and a reviewer sees it).
        slots: dict[str, pulumi.Input[str]] = {
            _SERVING_IMAGE: args.serving_image,
            _SERVING_ROLE: args.serving_role_arn,
            _TRAINING_ROLE: args.training_role_arn,
        }
        namespace = self._declare(name, namespace_manifests.namespace(), slots)
        in_namespace = [namespace]
        self._declare(name, namespace_manifests.default_deny(), slots, in_namespace)
        accounts = [
            self._declare(
                name, namespace_manifests.service_account(account, role), slots, in_namespace
            )
            for account, role in (
                (naming.SERVING_SERVICE_ACCOUNT, _SERVING_ROLE),
                (naming.TRAINING_SERVICE_ACCOUNT, _TRAINING_ROLE),
            )
        ]
        for model, package in args.packages.items():
            for manifest in serving_objects(_workload(args, model, package, _SERVING_IMAGE)):
                self._declare(name, manifest, slots, [namespace, *accounts])
        self.register_outputs({"objects": sorted(self.objects)})

    def _declare(
        self,
        name: str,
        manifest: Manifest,
        slots: Mapping[str, pulumi.Input[str]],
        depends_on: Sequence[pulumi.Resource] = (),
    ) -> pulumi.CustomResource:
        kind, object_name = manifest["kind"], manifest["metadata"]["name"]
        resource_class, fields = _RESOURCES[kind]
        resource = resource_class(
            f"{name}-{kind.lower()}-{object_name}",
            **{_ARGUMENTS[field]: _filled(manifest.get(field), slots) for field in fields},
            opts=pulumi.ResourceOptions(
                parent=self, provider=self._provider, depends_on=list(depends_on)
            ),
        )
        self.objects[f"{kind}/{object_name}"] = resource
        return resource


def _filled(value: Any, slots: Mapping[str, pulumi.Input[str]]) -> Any:
    """`value` with each placeholder string replaced by its deploy-time value."""
    if isinstance(value, str):
        return slots.get(value, value)
    if isinstance(value, dict):
        return {key: _filled(item, slots) for key, item in value.items()}
    if isinstance(value, list):
        return [_filled(item, slots) for item in value]
    return value


def _workload(
    args: KubernetesServingArgs, model: str, package: ModelPackage, image: str
) -> ServingWorkload:
    return ServingWorkload(
        model=model,
        version=package.version,
        package_arn=package.arn,
        model_data_url=package.model_data_url,
        model_sha256=package.model_sha256,
        image=image,
        region=args.region,
        min_replicas=args.min_replicas,
        max_replicas=args.max_replicas,
        cpu_millicores=args.cpu_millicores,
        memory_mib=args.memory_mib,
        client_namespaces=tuple(args.client_namespaces),
    )
