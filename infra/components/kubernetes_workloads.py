"""The workloads on the cluster: their namespace and identities, each pinned model's serving
(Deployment, Service, autoscaler, disruption budget, network policy) and each model's scheduled
training (CronJob).

The objects come from the pure builders in `infra.manifests`; this component only fills in what
is known at deploy time (image digests, role ARNs, bucket names) and declares them through the
cluster's provider.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import pulumi
import pulumi_kubernetes as k8s

from infra.components.kubernetes_objects import Manifest, declare
from infra.manifests import namespace as namespace_manifests
from infra.manifests.drift import DriftSchedule, retrain_access
from infra.manifests.drift import cron_job as drift_cron_job
from infra.manifests.serving import (
    ServingCapture,
    ServingIngress,
    ServingWorkload,
    serving_objects,
)
from infra.manifests.training import TrainingSchedule, cron_job, training_name
from infra.project import naming
from mlstack_common.registry import ModelPackage


@dataclass(frozen=True, kw_only=True)
class ServingArgs:
    packages: Mapping[str, ModelPackage]
    """The pinned version of each model to serve, resolved through the registry."""
    min_replicas: int
    max_replicas: int
    cpu_millicores: int
    memory_mib: int
    client_namespaces: Sequence[str]
    ingress: ServingIngress | None
    """HTTPS through a load balancer per model; None keeps the models inside the cluster."""
    environment: str
    capture_percent: int
    """The share of requests each server captures; 0: none."""
    capture_bucket: pulumi.Input[str]
    web_acl_arn: pulumi.Input[str] | None = None
    """The WAFv2 web ACL the models' load balancers are associated with; None: none."""


@dataclass(frozen=True, kw_only=True)
class TrainingArgs:
    models: Sequence[str]
    schedule: str
    """Five-field cron (UTC); one CronJob per model."""
    environment: str
    source_revision: str
    data_bucket: pulumi.Input[str]
    models_bucket: pulumi.Input[str]
    max_runtime_minutes: int
    auto_approve: bool
    mlflow_tracking_server_arn: pulumi.Input[str] | None = None
    """The tracking URI each run records itself at; None: runs are not tracked."""


@dataclass(frozen=True, kw_only=True)
class DriftArgs:
    packages: Mapping[str, ModelPackage]
    """The version each endpoint serves, by model."""
    endpoints: Mapping[str, str]
    """The endpoint name each model's capture is filed under (`naming.endpoint_name`)."""
    capture_prefixes: Sequence[str]
    """Where in the capture bucket the targets serving the models write."""
    capture_bucket: pulumi.Input[str]
    role_arn: pulumi.Input[str]
    schedule: str
    window_hours: int
    psi_threshold: float
    out_of_range_percent: int
    retrain: bool = False
    """On drift, start a run of the model's training CronJob."""


@dataclass(frozen=True, kw_only=True)
class KubernetesWorkloadsArgs:
    provider: k8s.Provider
    region: str
    serving_image: pulumi.Input[str]
    training_image: pulumi.Input[str]
    serving_role_arn: pulumi.Input[str]
    training_role_arn: pulumi.Input[str]
    scoring_role_arn: pulumi.Input[str]
    """The role of `mlstack score --on kubernetes` Jobs' service account."""
    serving: ServingArgs | None
    """None when models are not served on the cluster (`servingTarget: sagemaker`)."""
    training: TrainingArgs | None
    """None when training runs on demand only (no `trainingSchedule`)."""
    drift: DriftArgs | None = None
    """None without endpoints to check or without `driftSchedule`."""


_SERVING_IMAGE = "<serving image digest, known once built>"
_TRAINING_IMAGE = "<training image digest, known once built>"
_SERVING_ROLE = "<serving role ARN>"
_TRAINING_ROLE = "<training role ARN>"
_SCORING_ROLE = "<scoring role ARN>"
_DATA_BUCKET = "<data bucket>"
_MODELS_BUCKET = "<models bucket>"
_CAPTURE_BUCKET = "<capture bucket>"
_WEB_ACL = "<serving web ACL ARN>"
_DRIFT_ROLE = "<drift role ARN>"
_TRACKING_SERVER = "<MLflow tracking server ARN>"


class KubernetesWorkloads(pulumi.ComponentResource):
    """`objects`: every declared Kubernetes object, by `<kind>/<name>`."""

    objects: dict[str, pulumi.CustomResource]

    def __init__(
        self, name: str, args: KubernetesWorkloadsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlstack:kubernetes:Workloads", name, None, opts)
        self._cluster_provider = args.provider
        self.objects = {}
        # Values known only at deploy time go into the objects through these placeholders, so
        # everything else stays known in a preview (and a reviewer sees it).
        slots: dict[str, pulumi.Input[str]] = {
            _SERVING_IMAGE: args.serving_image,
            _TRAINING_IMAGE: args.training_image,
            _SERVING_ROLE: args.serving_role_arn,
            _TRAINING_ROLE: args.training_role_arn,
            _SCORING_ROLE: args.scoring_role_arn,
        }
        if args.training is not None:
            slots[_DATA_BUCKET] = args.training.data_bucket
            slots[_MODELS_BUCKET] = args.training.models_bucket
            if args.training.mlflow_tracking_server_arn is not None:
                slots[_TRACKING_SERVER] = args.training.mlflow_tracking_server_arn
        if args.serving is not None:
            slots[_CAPTURE_BUCKET] = args.serving.capture_bucket
            if args.serving.web_acl_arn is not None:
                slots[_WEB_ACL] = args.serving.web_acl_arn
        if args.drift is not None:
            slots[_CAPTURE_BUCKET] = args.drift.capture_bucket
            slots[_DRIFT_ROLE] = args.drift.role_arn
        ingress = args.serving.ingress if args.serving is not None else None
        namespace = self._declare(
            name,
            namespace_manifests.namespace(load_balancer_readiness=ingress is not None),
            slots,
        )
        in_namespace = [namespace]
        self._declare(name, namespace_manifests.default_deny(), slots, in_namespace)
        accounts = [
            self._declare(
                name, namespace_manifests.service_account(account, role), slots, in_namespace
            )
            for account, role in (
                (naming.SERVING_SERVICE_ACCOUNT, _SERVING_ROLE),
                (naming.TRAINING_SERVICE_ACCOUNT, _TRAINING_ROLE),
                (naming.SCORING_SERVICE_ACCOUNT, _SCORING_ROLE),
                *([(naming.DRIFT_SERVICE_ACCOUNT, _DRIFT_ROLE)] if args.drift else []),
            )
        ]
        workloads = [namespace, *accounts]
        if args.serving is not None:
            for model, package in args.serving.packages.items():
                for manifest in serving_objects(_workload(args, args.serving, model, package)):
                    self._declare(name, manifest, slots, workloads)
        if args.training is not None:
            for model in args.training.models:
                self._declare(
                    name, cron_job(_schedule(args, args.training, model)), slots, workloads
                )
        if args.drift is not None:
            for model, endpoint in args.drift.endpoints.items():
                drift = _drift(args, args.drift, model, endpoint)
                for manifest in [drift_cron_job(drift), *retrain_access(drift)]:
                    self._declare(name, manifest, slots, workloads)
        self.register_outputs({"objects": sorted(self.objects)})

    def _declare(
        self,
        name: str,
        manifest: Manifest,
        slots: Mapping[str, pulumi.Input[str]],
        depends_on: Sequence[pulumi.Resource] = (),
    ) -> pulumi.CustomResource:
        resource = declare(
            name,
            manifest,
            parent=self,
            provider=self._cluster_provider,
            slots=slots,
            depends_on=depends_on,
        )
        self.objects[f"{manifest['kind']}/{manifest['metadata']['name']}"] = resource
        return resource


def _workload(
    args: KubernetesWorkloadsArgs, serving: ServingArgs, model: str, package: ModelPackage
) -> ServingWorkload:
    return ServingWorkload(
        model=model,
        version=package.version,
        package_arn=package.arn,
        model_data_url=package.model_data_url,
        model_sha256=package.model_sha256,
        image=_SERVING_IMAGE,
        region=args.region,
        min_replicas=serving.min_replicas,
        max_replicas=serving.max_replicas,
        cpu_millicores=serving.cpu_millicores,
        memory_mib=serving.memory_mib,
        client_namespaces=tuple(serving.client_namespaces),
        ingress=replace(serving.ingress, web_acl_arn=_WEB_ACL)
        if serving.ingress is not None and serving.web_acl_arn is not None
        else serving.ingress,
        capture=ServingCapture(
            uri=f"s3://{_CAPTURE_BUCKET}/{naming.KUBERNETES_CAPTURE_PREFIX}",
            percent=serving.capture_percent,
            endpoint=naming.endpoint_name(model, serving.environment),
        )
        if serving.capture_percent
        else None,
    )


def _schedule(
    args: KubernetesWorkloadsArgs, training: TrainingArgs, model: str
) -> TrainingSchedule:
    return TrainingSchedule(
        model=model,
        schedule=training.schedule,
        image=_TRAINING_IMAGE,
        serving_image=_SERVING_IMAGE,
        source_revision=training.source_revision,
        data_uri=naming.training_data_uri(_DATA_BUCKET, model),
        models_uri=naming.models_uri(_MODELS_BUCKET),
        group=naming.model_package_group(model, training.environment),
        region=args.region,
        max_runtime_minutes=training.max_runtime_minutes,
        auto_approve=training.auto_approve,
        environment=training.environment,
        tracking_uri=_TRACKING_SERVER if training.mlflow_tracking_server_arn is not None else "",
    )


def _drift(
    args: KubernetesWorkloadsArgs, drift: DriftArgs, model: str, endpoint: str
) -> DriftSchedule:
    package = drift.packages[model]
    return DriftSchedule(
        model=model,
        schedule=drift.schedule,
        image=_SERVING_IMAGE,
        model_package=f"{package.group}/{package.version}",
        capture_uris=tuple(f"s3://{_CAPTURE_BUCKET}/{prefix}" for prefix in drift.capture_prefixes),
        endpoint=endpoint,
        variant=naming.ENDPOINT_VARIANT,
        region=args.region,
        window_hours=drift.window_hours,
        psi_threshold=drift.psi_threshold,
        out_of_range_percent=drift.out_of_range_percent,
        retrain_cron_job=training_name(model) if drift.retrain else "",
    )
