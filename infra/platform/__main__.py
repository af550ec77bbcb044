"""The platform layer of an environment: read the stack's config, wire the components made
through AWS's APIs, export what the workloads layer and the CLI read."""

import pulumi

from infra.components.ci_access import CiClusterAccess, CiClusterAccessArgs, CiRoles, CiRolesArgs
from infra.components.ci_runner import CiRunner, CiRunnerArgs
from infra.components.cluster import Cluster, ClusterArgs
from infra.components.cluster_addon_roles import ClusterAddonRoles, ClusterAddonRolesArgs
from infra.components.container_registry import ContainerRegistry, ContainerRegistryArgs
from infra.components.endpoint_identity import EndpointIdentity, EndpointIdentityArgs
from infra.components.experiment_tracking import ExperimentTracking, ExperimentTrackingArgs
from infra.components.keys import EnvironmentKey, EnvironmentKeyArgs
from infra.components.model_registry import ModelRegistry, ModelRegistryArgs
from infra.components.network import Network, NetworkArgs
from infra.components.notifications import Notifications, NotificationsArgs
from infra.components.sagemaker_jobs import SageMakerJobs, SageMakerJobsArgs
from infra.components.storage import Storage, StorageArgs
from infra.components.workload_identities import WorkloadIdentities, WorkloadIdentitiesArgs
from infra.config.serving_targets import serving_targets
from infra.config.stack import from_pulumi
from infra.project import naming, outputs

config = from_pulumi()
cluster_name = naming.cluster_name(config.environment)
targets = serving_targets(config)

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
images = ContainerRegistry(
    "images",
    ContainerRegistryArgs(
        kms_key_arn=key.arn,
        keep_tagged_images=config.registry.image_retention_count,
        untagged_expiry_days=config.registry.untagged_image_expiry_days,
        force_delete=config.storage.force_destroy_buckets,
    ),
)
notifications = Notifications(
    "notifications",
    NotificationsArgs(
        environment=config.environment,
        kms_key_arn=key.arn,
        alarm_email=config.monitoring.alarm_email,
        monthly_budget_usd=config.monitoring.monthly_budget_usd,
    ),
)
# GitHub Actions' roles come before every other role: those carry the boundary they declare.
ci = (
    CiRoles(
        "ci",
        CiRolesArgs(
            environment=config.environment,
            repository=config.ci.github_repository,
            key_arn=key.arn,
            bucket_arns=[storage.data.arn, storage.models.arn, storage.capture.arn],
            repository_arns=[repository.arn for repository in images.repositories.values()],
            topic_arn=notifications.topic.arn,
            connection_arn=config.ci.github_connection_arn,
        ),
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
addon_roles: ClusterAddonRoles | None = None
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
            vpc_id=network.vpc.id,
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
            drift_capture_prefixes=targets.capture_prefixes if targets.drift_checked else (),
            permissions_boundary=boundary,
            mlflow_tracking_server_arn=tracking.arn if tracking else None,
        ),
    )
    addon_roles = ClusterAddonRoles(
        "cluster-addons",
        ClusterAddonRolesArgs(
            cluster_name=cluster_name,
            region=config.region,
            oidc_provider_arn=cluster.oidc_provider.arn,
            oidc_issuer=cluster.oidc_issuer,
            load_balancer_vpc_id=network.vpc.id if targets.ingress else None,
            load_balancer_wafv2=targets.ingress and config.serving.ingress_rate_limit > 0,
            permissions_boundary=boundary,
        ),
    )
    if ci is not None:
        CiClusterAccess("ci-cluster", CiClusterAccessArgs(roles=ci, cluster=cluster.cluster))
    if ci is not None and config.ci.runner:
        CiRunner(
            "runner",
            CiRunnerArgs(
                environment=config.environment,
                repository=config.ci.github_repository,
                connection_arn=config.ci.github_connection_arn,
                vpc_id=network.vpc.id,
                subnet_ids=[subnet.id for subnet in network.private_subnets],
                security_group_id=cluster.client_security_group.id,
                kms_key_arn=key.arn,
                log_retention_days=config.monitoring.log_retention_days,
                permissions_boundary=boundary,
            ),
        )
jobs: SageMakerJobs | None = None
if targets.runs_images:
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
endpoint_roles = {
    model: EndpointIdentity(
        f"endpoint-{model}",
        EndpointIdentityArgs(
            environment=config.environment,
            model=model,
            models_bucket=storage.models.name,
            capture_bucket=storage.capture.name,
            repository_arn=images.repositories["serving"].arn,
            kms_key_arn=key.arn,
            log_retention_days=config.monitoring.log_retention_days,
            permissions_boundary=boundary,
        ),
    ).role
    for model in (config.registry.models if targets.on_sagemaker else ())
}
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
        kms_key_arn=key.arn,
        access_policy=identities is not None,
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
pulumi.export(outputs.REGISTRY_ID, images.repositories["serving"].registry_id)
pulumi.export(outputs.MODEL_PACKAGE_GROUPS, model_registry.group_names)
pulumi.export(outputs.ALARM_TOPIC_ARN, notifications.topic.arn)
if network is not None and cluster is not None and identities is not None:
    pulumi.export(outputs.VPC_ID, network.vpc.id)
    pulumi.export(outputs.PUBLIC_SUBNET_IDS, [subnet.id for subnet in network.public_subnets])
    pulumi.export(outputs.PRIVATE_SUBNET_IDS, [subnet.id for subnet in network.private_subnets])
    pulumi.export(outputs.CLUSTER_NAME, cluster.cluster.name)
    pulumi.export(outputs.CLUSTER_ENDPOINT, cluster.cluster.endpoint)
    pulumi.export(outputs.CLUSTER_CLIENT_SECURITY_GROUP_ID, cluster.client_security_group.id)
    pulumi.export(outputs.KUBECONFIG, cluster.kubeconfig)
    pulumi.export(outputs.OIDC_PROVIDER_ARN, cluster.oidc_provider.arn)
    pulumi.export(outputs.TRAINING_ROLE_ARN, identities.training.arn)
    pulumi.export(outputs.SERVING_ROLE_ARN, identities.serving.arn)
    pulumi.export(outputs.SCORING_ROLE_ARN, identities.scoring.arn)
    if identities.drift is not None:
        pulumi.export(outputs.DRIFT_ROLE_ARN, identities.drift.arn)
if addon_roles is not None:
    pulumi.export(outputs.AUTOSCALER_ROLE_ARN, addon_roles.autoscaler.arn)
    if addon_roles.load_balancer_controller is not None:
        pulumi.export(
            outputs.LOAD_BALANCER_CONTROLLER_ROLE_ARN, addon_roles.load_balancer_controller.arn
        )
if jobs is not None:
    pulumi.export(outputs.SAGEMAKER_TRAINING_ROLE_ARN, jobs.training_role.arn)
    pulumi.export(outputs.SAGEMAKER_SCORING_ROLE_ARN, jobs.scoring_role.arn)
if endpoint_roles:
    pulumi.export(
        outputs.ENDPOINT_ROLE_ARNS, {model: role.arn for model, role in endpoint_roles.items()}
    )
if ci is not None:
    pulumi.export(outputs.CI_PREVIEW_ROLE_ARN, ci.preview_role.arn)
    pulumi.export(outputs.CI_PLATFORM_ROLE_ARN, ci.platform_role.arn)
    pulumi.export(outputs.CI_WORKLOADS_ROLE_ARN, ci.workloads_role.arn)
if ci is not None and config.ci.runner and cluster is not None:
    pulumi.export(outputs.CI_RUNNER_PROJECT, naming.runner_project_name(config.environment))
if tracking is not None:
    pulumi.export(outputs.MLFLOW_TRACKING_SERVER_ARN, tracking.arn)
    pulumi.export(outputs.MLFLOW_TRACKING_SERVER_URL, tracking.url)
