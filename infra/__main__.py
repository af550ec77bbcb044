"""The mlstack Pulumi program: read the stack's config, wire the components, export outputs."""

import pulumi

from infra import naming, outputs
from infra.components.ci_access import CiDeployAccess, CiDeployAccessArgs, CiRoles, CiRolesArgs
from infra.components.cluster import Cluster, ClusterArgs
from infra.components.cluster_addons import ClusterAddons, ClusterAddonsArgs
from infra.components.container_registry import ContainerRegistry, ContainerRegistryArgs
from infra.components.experiment_tracking import ExperimentTracking, ExperimentTrackingArgs
from infra.components.images import Images, ImagesArgs
from infra.components.keys import EnvironmentKey, EnvironmentKeyArgs
from infra.components.kubernetes_workloads import (
    DriftArgs,
    KubernetesWorkloads,
    KubernetesWorkloadsArgs,
    ServingArgs,
    TrainingArgs,
)
from infra.components.model_registry import ModelRegistry, ModelRegistryArgs
from infra.components.monitoring import Monitoring, MonitoringArgs, ServingService
from infra.components.network import Network, NetworkArgs
from infra.components.sagemaker_endpoint import SageMakerEndpoint, SageMakerEndpointArgs
from infra.components.sagemaker_jobs import SageMakerJobs, SageMakerJobsArgs
from infra.components.storage import Storage, StorageArgs
from infra.components.workload_identities import WorkloadIdentities, WorkloadIdentitiesArgs
from infra.config import from_pulumi
from infra.image_sources import source_tag
from infra.manifests.serving import ServingIngress, serving_name
from infra.pinned_versions import registry_client, resolve_pinned_versions
from infra.serving_targets import serving_targets

config = from_pulumi()
cluster_name = naming.cluster_name(config.environment)
# Before anything is declared: a pin the registry cannot serve stops the program here.
served = (
    resolve_pinned_versions(
        registry_client(config.region), config.environment, config.serving.model_versions
    )
    if serving_targets(config).serves and config.serving.model_versions
    else {}
)
targets = serving_targets(config, served)

key = EnvironmentKey(
    "key",
    EnvironmentKeyArgs(
        environment=config.environment,
        deletion_window_days=config.storage.kms_deletion_window_days,
        protect=config.deletion_protection,
        node_volumes=config.cluster.enabled,
    ),
)
storage = Storage(
    "storage",
    StorageArgs(
        kms_key_arn=key.arn,
        noncurrent_version_retention_days=config.storage.noncurrent_version_retention_days,
        incomplete_upload_abort_days=config.storage.incomplete_upload_abort_days,
        capture_retention_days=config.storage.capture_retention_days,
        force_destroy=config.storage.force_destroy_buckets,
        protect=config.deletion_protection,
    ),
)
# GitHub Actions' roles come before every other role: those carry the boundary they declare.
ci = (
    CiRoles(
        "ci", CiRolesArgs(environment=config.environment, repository=config.ci.github_repository)
    )
    if config.ci.github_repository
    else None
)
boundary = ci.boundary_arn if ci else None
tracking = (
    ExperimentTracking(
        "tracking",
        ExperimentTrackingArgs(
            environment=config.environment,
            size=config.training.mlflow_server_size,
            models_bucket=storage.models.name,
            models_bucket_arn=storage.models.arn,
            kms_key_arn=key.arn,
            protect=config.deletion_protection,
            permissions_boundary=boundary,
        ),
    )
    if config.training.mlflow_server_size
    else None
)
network: Network | None = None
cluster: Cluster | None = None
identities: WorkloadIdentities | None = None
if config.cluster.enabled:
    network = Network(
        "network",
        NetworkArgs(
            cidr=config.network.vpc_cidr,
            zone_count=config.network.availability_zone_count,
            nat_gateways=config.network.nat_gateways,
            private_endpoints=config.network.private_endpoints,
            flow_log_retention_days=config.network.flow_log_retention_days,
            kms_key_arn=key.arn,
            cluster_name=cluster_name,
            permissions_boundary=boundary,
        ),
    )
    cluster = Cluster(
        "cluster",
        ClusterArgs(
            cluster_name=cluster_name,
            kubernetes_version=config.cluster.kubernetes_version,
            upgrade_policy=config.cluster.upgrade_policy,
            subnet_ids=[subnet.id for subnet in network.private_subnets],
            subnet_zones=network.zones,
            public_access=config.cluster.public_access,
            public_access_cidrs=config.cluster.public_access_cidrs,
            creator_is_admin=config.cluster.creator_is_admin,
            admin_arns=config.cluster.admin_arns,
            kms_key_arn=key.arn,
            log_retention_days=config.monitoring.log_retention_days,
            node_groups=config.cluster.node_groups,
            deletion_protection=config.deletion_protection,
            permissions_boundary=boundary,
        ),
    )
    identities = WorkloadIdentities(
        "workloads",
        WorkloadIdentitiesArgs(
            environment=config.environment,
            models=config.registry.models,
            data_bucket_arn=storage.data.arn,
            models_bucket_arn=storage.models.arn,
            kms_key_arn=key.arn,
            oidc_provider_arn=cluster.oidc_provider.arn,
            oidc_issuer=cluster.oidc_issuer,
            capture_bucket_arn=storage.capture.arn,
            serving_captures=targets.capture_on_cluster,
            drift_capture_prefixes=targets.capture_prefixes if targets.drifted else (),
            permissions_boundary=boundary,
            mlflow_tracking_server_arn=tracking.arn if tracking else None,
        ),
    )
    ingress = (
        ServingIngress(
            certificate_arn=config.serving.ingress_certificate_arn,
            internet_facing=config.serving.ingress_internet_facing,
            vpc_cidr=config.network.vpc_cidr,
        )
        if targets.on_cluster and config.serving.ingress_certificate_arn
        else None
    )
    addons = ClusterAddons(
        "cluster-addons",
        ClusterAddonsArgs(
            provider=cluster.provider,
            cluster_name=cluster_name,
            kubernetes_version=config.cluster.kubernetes_version,
            region=config.region,
            oidc_provider_arn=cluster.oidc_provider.arn,
            oidc_issuer=cluster.oidc_issuer,
            gpu_group=next((group for group in config.cluster.node_groups if group.gpu), None),
            load_balancer_vpc_id=network.vpc.id if ingress else None,
            permissions_boundary=boundary,
        ),
    )
images = ContainerRegistry(
    "images",
    ContainerRegistryArgs(
        kms_key_arn=key.arn,
        keep_tagged_images=config.registry.image_retention_count,
        untagged_expiry_days=config.registry.untagged_image_expiry_days,
        force_delete=config.storage.force_destroy_buckets,
    ),
)
monitoring = Monitoring(
    "monitoring",
    MonitoringArgs(
        environment=config.environment,
        region=config.region,
        kms_key_arn=key.arn,
        alarm_email=config.monitoring.alarm_email,
        monthly_budget_usd=config.monitoring.monthly_budget_usd,
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
built: Images | None = None
jobs: SageMakerJobs | None = None
tags: dict[str, str] = {}
# A stack that runs anything builds both images: training runs on the cluster or as SageMaker
# training jobs (`mlstack train --on sagemaker`), and serving names the version's image.
if config.cluster.enabled or targets.on_sagemaker:
    tags = {
        image: source_tag(image)
        for image in naming.IMAGES
        if image not in config.registry.image_digests
    }
    built = Images(
        "build",
        ImagesArgs(
            images=naming.IMAGES,
            repository_urls=images.urls,
            registry_id=images.repositories["serving"].registry_id,
            tags=tags,
            prebuilt=config.registry.image_digests,
        ),
    )
    jobs = SageMakerJobs(
        "sagemaker-jobs",
        SageMakerJobsArgs(
            environment=config.environment,
            models=config.registry.models,
            data_bucket_arn=storage.data.arn,
            models_bucket_arn=storage.models.arn,
            kms_key_arn=key.arn,
            training_repository_arn=images.repositories["training"].arn,
            serving_repository_arn=images.repositories["serving"].arn,
            permissions_boundary=boundary,
            mlflow_tracking_server_arn=tracking.arn if tracking else None,
        ),
    )
model_registry = ModelRegistry(
    "models",
    ModelRegistryArgs(
        environment=config.environment,
        models=config.registry.models,
        writer_arns=[
            *([identities.training.arn] if identities else []),
            *([jobs.training_role.arn] if jobs else []),
        ],
        reader_arns=config.registry.reader_arns,
        access_policy=identities is not None,
    ),
)
if cluster is not None and identities is not None and built is not None:
    KubernetesWorkloads(
        "kubernetes",
        KubernetesWorkloadsArgs(
            provider=cluster.provider,
            region=config.region,
            serving_image=built.refs["serving"],
            training_image=built.refs["training"],
            serving_role_arn=identities.serving.arn,
            training_role_arn=identities.training.arn,
            scoring_role_arn=identities.scoring.arn,
            serving=ServingArgs(
                packages=served,
                min_replicas=config.serving.min_replicas,
                max_replicas=config.serving.max_replicas,
                cpu_millicores=config.serving.cpu_millicores,
                memory_mib=config.serving.memory_mib,
                client_namespaces=config.serving.client_namespaces,
                ingress=ingress,
                environment=config.environment,
                capture_percent=config.serving.data_capture_percent,
                capture_bucket=storage.capture.name,
            )
            if targets.on_cluster
            else None,
            training=TrainingArgs(
                models=config.registry.models,
                schedule=config.training.schedule,
                environment=config.environment,
                source_revision=tags.get("training", ""),
                data_bucket=storage.data.name,
                models_bucket=storage.models.name,
                max_runtime_minutes=config.training.max_runtime_minutes,
                auto_approve=config.training.auto_approve,
                mlflow_tracking_server_arn=tracking.arn if tracking else None,
            )
            if config.training.schedule
            else None,
            drift=DriftArgs(
                packages=served,
                endpoints=targets.drifted,
                capture_prefixes=targets.capture_prefixes,
                capture_bucket=storage.capture.name,
                role_arn=identities.drift.arn,
                schedule=config.monitoring.drift_schedule,
                window_hours=config.monitoring.drift_window_hours,
                psi_threshold=config.monitoring.drift_psi_threshold,
                out_of_range_percent=config.monitoring.drift_out_of_range_percent,
                retrain=config.monitoring.drift_retrains,
            )
            if identities.drift is not None
            else None,
        ),
        # An Ingress must reach the load balancer controller's webhook.
        pulumi.ResourceOptions(depends_on=[addons]),
    )

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
                repository_arn=images.repositories["serving"].arn,
                capture_bucket=storage.capture.name,
                capture_percent=config.serving.data_capture_percent,
                kms_key_arn=key.arn,
                instance_type=config.serving.instance_type,
                min_instances=config.serving.endpoint_min_instances,
                max_instances=config.serving.endpoint_max_instances,
                invocations_per_instance=config.serving.endpoint_invocations_per_instance,
                traffic_shifting=config.serving.endpoint_traffic_shifting,
                shift_percent=config.serving.endpoint_shift_percent,
                shift_wait_minutes=config.serving.endpoint_shift_wait_minutes,
                latency_p99_ms=config.monitoring.latency_p99_alarm_ms,
                log_retention_days=config.monitoring.log_retention_days,
                alarm_topic_arn=monitoring.topic.arn,
                permissions_boundary=boundary,
            ),
        )
if ci is not None:
    CiDeployAccess(
        "ci",
        CiDeployAccessArgs(
            roles=ci,
            environment=config.environment,
            key_arn=key.arn,
            bucket_arns=[storage.data.arn, storage.models.arn, storage.capture.arn],
            repository_arns=[repository.arn for repository in images.repositories.values()],
            topic_arn=monitoring.topic.arn,
            models=config.registry.models,
            endpoint_models=list(endpoints),
            tracking_server=tracking is not None,
            passed_roles={
                "cluster": [
                    cluster.control_plane_role.arn,
                    *(role.arn for role in cluster.addon_roles.values()),
                ]
                if cluster
                else [],
                "nodes": [cluster.node_role.arn] if cluster else [],
                "flow-logs": [network.flow_log_role.arn] if network else [],
                "endpoints": [endpoint.role.arn for endpoint in endpoints.values()],
                "tracking": [tracking.role.arn] if tracking else [],
            },
            cluster=cluster.cluster if cluster else None,
        ),
    )

pulumi.export(outputs.ENVIRONMENT, config.environment)
pulumi.export(outputs.KMS_KEY_ARN, key.arn)
pulumi.export(outputs.KMS_KEY_ALIAS, key.alias.name)
pulumi.export(outputs.DATA_BUCKET, storage.data.name)
pulumi.export(outputs.MODELS_BUCKET, storage.models.name)
pulumi.export(outputs.CAPTURE_BUCKET, storage.capture.name)
pulumi.export(outputs.TRAINING_REPOSITORY_URL, images.urls["training"])
pulumi.export(outputs.SERVING_REPOSITORY_URL, images.urls["serving"])
pulumi.export(outputs.MODEL_PACKAGE_GROUPS, model_registry.group_names)
if network is not None and cluster is not None and identities is not None:
    pulumi.export(outputs.VPC_ID, network.vpc.id)
    pulumi.export(outputs.PUBLIC_SUBNET_IDS, [subnet.id for subnet in network.public_subnets])
    pulumi.export(outputs.PRIVATE_SUBNET_IDS, [subnet.id for subnet in network.private_subnets])
    pulumi.export(outputs.CLUSTER_NAME, cluster.cluster.name)
    pulumi.export(outputs.CLUSTER_ENDPOINT, cluster.cluster.endpoint)
    pulumi.export(outputs.KUBECONFIG, cluster.kubeconfig)
    pulumi.export(outputs.OIDC_PROVIDER_ARN, cluster.oidc_provider.arn)
    pulumi.export(outputs.TRAINING_ROLE_ARN, identities.training.arn)
    pulumi.export(outputs.SERVING_ROLE_ARN, identities.serving.arn)
if built is not None and jobs is not None:
    pulumi.export(outputs.TRAINING_IMAGE, built.refs["training"])
    pulumi.export(outputs.SERVING_IMAGE, built.refs["serving"])
    pulumi.export(outputs.SAGEMAKER_TRAINING_ROLE_ARN, jobs.training_role.arn)
    pulumi.export(outputs.SAGEMAKER_SCORING_ROLE_ARN, jobs.scoring_role.arn)
if ci is not None:
    pulumi.export(outputs.CI_PREVIEW_ROLE_ARN, ci.preview_role.arn)
    pulumi.export(outputs.CI_DEPLOY_ROLE_ARN, ci.deploy_role.arn)
if tracking is not None:
    pulumi.export(outputs.MLFLOW_TRACKING_SERVER_ARN, tracking.arn)
    pulumi.export(outputs.MLFLOW_TRACKING_SERVER_URL, tracking.url)
pulumi.export(
    outputs.SERVED_MODEL_VERSIONS, {model: package.arn for model, package in served.items()}
)
