"""The workloads layer of an environment: read the stack's config and the platform stack's
outputs, resolve the pinned model versions, wire the images, the Kubernetes objects and the
SageMaker endpoints, export what runs."""

import pulumi
import pulumi_kubernetes as k8s

from infra.components.cluster_addons import (
    ClusterAddons,
    ClusterAddonsArgs,
    LoadBalancerController,
)
from infra.components.image_sources import source_tag
from infra.components.images import Images, ImagesArgs
from infra.components.kubernetes_workloads import (
    DriftArgs,
    KubernetesWorkloads,
    KubernetesWorkloadsArgs,
    ServingArgs,
    TrainingArgs,
)
from infra.components.monitoring import Monitoring, MonitoringArgs, ServingService
from infra.components.sagemaker_endpoint import SageMakerEndpoint, SageMakerEndpointArgs
from infra.components.serving_firewall import ServingFirewall
from infra.config.pinned_versions import registry_client, resolve_pinned_versions
from infra.config.serving_targets import serving_targets
from infra.config.stack import from_pulumi
from infra.manifests.serving import ServingIngress, serving_name
from infra.project import naming, outputs
from infra.project.layers import platform_stack

config = from_pulumi()
cluster_name = naming.cluster_name(config.environment)
platform = pulumi.StackReference(
    "platform", platform_stack(pulumi.get_organization(), pulumi.get_stack())
)
# Before anything is declared: a pin the registry cannot serve stops the program here.
served = (
    resolve_pinned_versions(
        registry_client(config.region), config.environment, config.serving.model_versions
    )
    if serving_targets(config).serves and config.serving.model_versions
    else {}
)
targets = serving_targets(config, served)


def platform_output(name: str) -> pulumi.Output[str]:
    return platform.require_output(name).apply(str)


built: Images | None = None
tags: dict[str, str] = {}
# A stack that runs anything builds both images: training runs on the cluster or as SageMaker
# training jobs (`mlstack train --on sagemaker`), and serving names the version's image.
if targets.runs_images:
    tags = {
        image: source_tag(image)
        for image in naming.IMAGES
        if image not in config.registry.image_digests
    }
    built = Images(
        "build",
        ImagesArgs(
            images=naming.IMAGES,
            repository_urls={
                "training": platform_output(outputs.TRAINING_REPOSITORY_URL),
                "serving": platform_output(outputs.SERVING_REPOSITORY_URL),
            },
            registry_id=platform_output(outputs.REGISTRY_ID),
            tags=tags,
            prebuilt=config.registry.image_digests,
        ),
    )

if config.cluster.enabled and built is not None:
    provider = k8s.Provider(
        "cluster",
        kubeconfig=platform.require_output(outputs.KUBECONFIG),
        enable_server_side_apply=True,
    )
    firewall = (
        ServingFirewall(
            "serving-firewall",
            environment=config.environment,
            rate_limit=config.serving.ingress_rate_limit,
        )
        if targets.ingress and config.serving.ingress_rate_limit
        else None
    )
    addons = ClusterAddons(
        "cluster-addons",
        ClusterAddonsArgs(
            provider=provider,
            cluster_name=cluster_name,
            kubernetes_version=config.cluster.kubernetes_version,
            region=config.region,
            autoscaler_role_arn=platform_output(outputs.AUTOSCALER_ROLE_ARN),
            gpu_group=next((group for group in config.cluster.node_groups if group.gpu), None),
            load_balancer=LoadBalancerController(
                vpc_id=platform_output(outputs.VPC_ID),
                role_arn=platform_output(outputs.LOAD_BALANCER_CONTROLLER_ROLE_ARN),
                wafv2=firewall is not None,
            )
            if targets.ingress
            else None,
        ),
    )
    capture_bucket = platform_output(outputs.CAPTURE_BUCKET)
    KubernetesWorkloads(
        "kubernetes",
        KubernetesWorkloadsArgs(
            provider=provider,
            region=config.region,
            serving_image=built.refs["serving"],
            training_image=built.refs["training"],
            serving_role_arn=platform_output(outputs.SERVING_ROLE_ARN),
            training_role_arn=platform_output(outputs.TRAINING_ROLE_ARN),
            scoring_role_arn=platform_output(outputs.SCORING_ROLE_ARN),
            serving=ServingArgs(
                packages=served,
                min_replicas=config.serving.min_replicas,
                max_replicas=config.serving.max_replicas,
                cpu_millicores=config.serving.cpu_millicores,
                memory_mib=config.serving.memory_mib,
                client_namespaces=config.serving.client_namespaces,
                ingress=ServingIngress(
                    certificate_arn=config.serving.ingress_certificate_arn,
                    internet_facing=config.serving.ingress_internet_facing,
                    vpc_cidr=config.network.vpc_cidr,
                    trust_store_arn=config.serving.ingress_trust_store_arn,
                )
                if targets.ingress
                else None,
                web_acl_arn=firewall.web_acl.arn if firewall is not None else None,
                environment=config.environment,
                capture_percent=config.serving.data_capture_percent,
                capture_bucket=capture_bucket,
            )
            if targets.on_cluster
            else None,
            training=TrainingArgs(
                models=config.registry.models,
                schedule=config.training.schedule,
                environment=config.environment,
                source_revision=tags.get("training", ""),
                data_bucket=platform_output(outputs.DATA_BUCKET),
                models_bucket=platform_output(outputs.MODELS_BUCKET),
                max_runtime_minutes=config.training.max_runtime_minutes,
                auto_approve=config.training.auto_approve,
                mlflow_tracking_server_arn=platform_output(outputs.MLFLOW_TRACKING_SERVER_ARN)
                if config.training.mlflow_server_size
                else None,
            )
            if config.training.schedule
            else None,
            drift=DriftArgs(
                packages=served,
                endpoints=targets.drifted,
                capture_prefixes=targets.capture_prefixes,
                capture_bucket=capture_bucket,
                role_arn=platform_output(outputs.DRIFT_ROLE_ARN),
                schedule=config.monitoring.drift_schedule,
                window_hours=config.monitoring.drift_window_hours,
                psi_threshold=config.monitoring.drift_psi_threshold,
                out_of_range_percent=config.monitoring.drift_out_of_range_percent,
                retrain=config.monitoring.drift_retrains,
            )
            if targets.drift_checked and served
            else None,
        ),
        # An Ingress must reach the load balancer controller's webhook.
        pulumi.ResourceOptions(depends_on=[addons]),
    )

alarm_topic = platform_output(outputs.ALARM_TOPIC_ARN)
endpoints: dict[str, SageMakerEndpoint] = {}
if built is not None:
    for model in targets.endpoints:
        endpoints[model] = SageMakerEndpoint(
            f"endpoint-{model}",
            SageMakerEndpointArgs(
                environment=config.environment,
                model=model,
                package=served[model],
                image=built.refs["serving"],
                execution_role_arn=platform.require_output(outputs.ENDPOINT_ROLE_ARNS).apply(
                    lambda roles, model=model: str(roles[model])  # type: ignore[misc]
                ),
                capture_bucket=platform_output(outputs.CAPTURE_BUCKET),
                capture_percent=config.serving.data_capture_percent,
                kms_key_arn=platform_output(outputs.KMS_KEY_ARN),
                instance_type=config.serving.instance_type,
                min_instances=config.serving.endpoint_min_instances,
                max_instances=config.serving.endpoint_max_instances,
                invocations_per_instance=config.serving.endpoint_invocations_per_instance,
                traffic_shifting=config.serving.endpoint_traffic_shifting,
                shift_percent=config.serving.endpoint_shift_percent,
                shift_wait_minutes=config.serving.endpoint_shift_wait_minutes,
                latency_p99_ms=config.monitoring.latency_p99_alarm_ms,
                alarm_topic_arn=alarm_topic,
            ),
        )
Monitoring(
    "monitoring",
    MonitoringArgs(
        environment=config.environment,
        region=config.region,
        topic_arn=alarm_topic,
        endpoints=[(endpoint, naming.ENDPOINT_VARIANT) for endpoint in targets.endpoints.values()],
        services=[
            ServingService(
                cluster=cluster_name,
                namespace=naming.WORKLOAD_NAMESPACE,
                service=serving_name(model),
                min_replicas=config.serving.min_replicas,
            )
            for model in (served if targets.on_cluster else {})
        ],
        drift_endpoints=list(targets.drifted.values()),
        drift_psi_threshold=config.monitoring.drift_psi_threshold,
    ),
)

if built is not None:
    pulumi.export(outputs.TRAINING_IMAGE, built.refs["training"])
    pulumi.export(outputs.SERVING_IMAGE, built.refs["serving"])
pulumi.export(
    outputs.SERVED_MODEL_VERSIONS, {model: package.arn for model, package in served.items()}
)
