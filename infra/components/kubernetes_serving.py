"""Serving on the cluster: the workloads' namespace and identities, and each pinned model's
Deployment, Service, autoscaler, disruption budget and network policy.

The objects come from the pure builders in `infra.manifests`; this component only fills in what
is known at deploy time (image digest, role ARNs) and declares them through the cluster's
provider.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
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
        namespace = self._declare(name, namespace_manifests.namespace())
        in_namespace = [namespace]
        self._declare(name, namespace_manifests.default_deny(), depends_on=in_namespace)
        accounts = [
            self._declare(
                name,
                namespace_manifests.service_account(account, ""),
                pulumi.Output.from_input(role_arn).apply(
                    partial(namespace_manifests.service_account, account)
                ),
                depends_on=in_namespace,
            )
            for account, role_arn in (
                (naming.SERVING_SERVICE_ACCOUNT, args.serving_role_arn),
                (naming.TRAINING_SERVICE_ACCOUNT, args.training_role_arn),
            )
        ]
        image = pulumi.Output.from_input(args.serving_image)
        for model, package in args.packages.items():
            rendered = serving_objects(_workload(args, model, package, ""))
            for index, placeholder in enumerate(rendered):
                self._declare(
                    name,
                    placeholder,
                    image.apply(partial(_serving_object, args, model, package, index)),
                    depends_on=[namespace, *accounts],
                )
        self.register_outputs({"objects": sorted(self.objects)})

    def _declare(
        self,
        name: str,
        shape: Manifest,
        manifest: pulumi.Output[Manifest] | None = None,
        depends_on: Sequence[pulumi.Resource] = (),
    ) -> pulumi.CustomResource:
        """One object. Its kind and name come from `shape`, a rendering with the deploy-time
        values left blank (the builders never derive either from them); its fields from
        `manifest`, the rendering with those values, or `shape` itself when it has none."""
        kind, object_name = shape["kind"], shape["metadata"]["name"]
        source = manifest if manifest is not None else pulumi.Output.from_input(shape)
        resource_class, fields = _RESOURCES[kind]
        resource = resource_class(
            f"{name}-{kind.lower()}-{object_name}",
            **{_ARGUMENTS[field]: source.apply(partial(_field, field)) for field in fields},
            opts=pulumi.ResourceOptions(
                parent=self, provider=self._provider, depends_on=list(depends_on)
            ),
        )
        self.objects[f"{kind}/{object_name}"] = resource
        return resource


def _field(name: str, manifest: Manifest) -> Any:
    return manifest.get(name)


def _serving_object(
    args: KubernetesServingArgs, model: str, package: ModelPackage, index: int, image: str
) -> Manifest:
    return serving_objects(_workload(args, model, package, image))[index]


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
