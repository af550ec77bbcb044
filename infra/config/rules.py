"""Refusals that involve keys of more than one section, and the keys that can have no effect
in a stack (refused when set, rather than accepted and ignored)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING

from infra.config.reader import Reader, show
from infra.config.schema import NAMESPACE
from infra.config.sections.serving import (
    ENDPOINT_WAITER_MINUTES,
    MAX_RATE_LIMIT,
    MAX_SHIFT_PERCENT,
    MIN_LINEAR_STEP_PERCENT,
    MIN_RATE_LIMIT,
    PROVISIONING_MINUTES,
    TERMINATION_WAIT_SECONDS,
    step_instances,
)
from infra.project import naming

if TYPE_CHECKING:
    from infra.config.sections.cluster import ClusterConfig
    from infra.config.sections.network import NetworkConfig
    from infra.config.sections.serving import ServingConfig
    from infra.config.stack import StackConfig


SAGEMAKER_ONLY = (
    "servingInstanceType",
    "endpointMinInstances",
    "endpointMaxInstances",
    "endpointInvocationsPerInstance",
    "endpointTrafficShifting",
    "endpointShiftPercent",
    "endpointShiftWaitMinutes",
    "latencyP99AlarmMs",
)
"""Keys of the SageMaker endpoints: no effect unless `servingTarget` is sagemaker or both."""

SERVED_ANYWHERE = ("imageDigests", "servingModelVersions", "logRetentionDays", "dataCapturePercent")
"""Keys of the cluster's that a SageMaker endpoint reads too."""

CLUSTER_ONLY = (
    "vpcCidr",
    "availabilityZoneCount",
    "natGateways",
    "privateEndpoints",
    "flowLogRetentionDays",
    "kubernetesVersion",
    "clusterUpgradePolicy",
    "clusterPublicAccess",
    "clusterPublicAccessCidrs",
    "clusterCreatorAdmin",
    "clusterAdminArns",
    "nodeInstanceTypes",
    "nodeCapacityType",
    "nodeMinSize",
    "nodeDesiredSize",
    "nodeMaxSize",
    "nodeDiskSizeGib",
    "nodeLabels",
    "nodeTaints",
    "gpuNodeGroup",
    "gpuInstanceType",
    "gpuMaxSize",
    "logRetentionDays",
    "registryReaderArns",
    "imageDigests",
    "servingModelVersions",
    "servingMinReplicas",
    "servingMaxReplicas",
    "servingCpuMillicores",
    "servingMemoryMib",
    "servingClientNamespaces",
    "servingIngressCertificateArn",
    "servingIngressInternetFacing",
    "servingIngressTrustStoreArn",
    "servingIngressRateLimit",
    "trainingSchedule",
    "trainingMaxRuntimeMinutes",
    "autoApproveModels",
    "mlflowServerSize",
    "dataCapturePercent",
    "driftSchedule",
    "driftWindowHours",
    "driftPsiThreshold",
    "driftOutOfRangePercent",
    "driftRetrains",
)
"""Keys of the network, the cluster, the registry's resource policy, the images and the
workloads (serving, scheduled training, the drift job): no effect when the stack leaves the
cluster out (`mlstack:cluster` false), except those in SERVED_ANYWHERE while SageMaker
serves."""

# SageMaker model package group names: 63 characters at most, "<model>-<environment>".
MAX_GROUP_NAME = 63


def check_combinations(config: StackConfig, read: Reader) -> None:
    """Rules that involve more than one key, each reported against the key a user would change.

    A rule is skipped when one of its keys is already reported, so one mistake gives one message.
    """
    _check_node_sizes(config.cluster, read)
    _check_public_endpoint(config.cluster, read)
    _check_deletion_settings(config, read)
    _check_replicas(config.serving, read)
    _check_models(config, read)
    _check_pins(config, read)
    _check_egress(config.network, read)
    _check_runner(config, read)
    _check_default_tags(config, read)
    _check_ingress(config, read)
    _check_retraining(config, read)
    _check_effect(config, read)
    _check_endpoint_instances(config.serving, read)
    _check_traffic_shift(config.serving, read)


def _check_node_sizes(cluster: ClusterConfig, read: Reader) -> None:
    if not read.valid("nodeMinSize", "nodeDesiredSize", "nodeMaxSize"):
        return
    order = "nodeMinSize <= nodeDesiredSize <= nodeMaxSize"
    if cluster.node_min_size > cluster.node_desired_size:
        read.fail(
            "nodeMinSize",
            cluster.node_min_size,
            f"at most nodeDesiredSize ({cluster.node_desired_size}); {order}",
        )
    elif cluster.node_desired_size > cluster.node_max_size:
        read.fail(
            "nodeDesiredSize",
            cluster.node_desired_size,
            f"at most nodeMaxSize ({cluster.node_max_size}); {order}",
        )


def _check_public_endpoint(cluster: ClusterConfig, read: Reader) -> None:
    if not read.valid("clusterPublicAccess", "clusterPublicAccessCidrs"):
        return
    if cluster.public_access and not cluster.public_access_cidrs:
        read.fail(
            "clusterPublicAccessCidrs",
            [],
            "at least one CIDR when clusterPublicAccess is true (or turn clusterPublicAccess off)",
        )
    elif not cluster.public_access and cluster.public_access_cidrs:
        read.fail(
            "clusterPublicAccessCidrs",
            list(cluster.public_access_cidrs),
            "an empty list while clusterPublicAccess is false (the endpoint is private only)",
        )


def _check_deletion_settings(config: StackConfig, read: Reader) -> None:
    if not read.valid("forceDestroyBuckets", "deletionProtection"):
        return
    if config.storage.force_destroy_buckets and config.deletion_protection:
        read.fail(
            "forceDestroyBuckets",
            True,
            "false while deletionProtection is true; turn both the other way for a "
            "disposable environment",
        )


def _check_endpoint_instances(serving: ServingConfig, read: Reader) -> None:
    if not read.valid("endpointMinInstances", "endpointMaxInstances"):
        return
    if serving.endpoint_max_instances < serving.endpoint_min_instances:
        read.fail(
            "endpointMaxInstances",
            serving.endpoint_max_instances,
            f"at least endpointMinInstances ({serving.endpoint_min_instances})",
        )


SHIFT_KEYS = (
    "servingTarget",
    "endpointMinInstances",
    "endpointMaxInstances",
    "endpointTrafficShifting",
    "endpointShiftPercent",
    "endpointShiftWaitMinutes",
)


def _check_traffic_shift(serving: ServingConfig, read: Reader) -> None:
    """How a new version takes an endpoint's traffic, refused here when SageMaker would refuse
    it, when it would not be the guarded shift it claims, or when it would outlast the AWS
    provider's wait for the endpoint (`pulumi up` fails while SageMaker carries on)."""
    if serving.target == "kubernetes" or not read.valid(*SHIFT_KEYS):
        return
    kind, percent = serving.endpoint_traffic_shifting, serving.endpoint_shift_percent
    shift = serving.traffic_shift
    if kind == "linear" and percent < MIN_LINEAR_STEP_PERCENT:
        read.fail(
            "endpointShiftPercent",
            percent,
            f"from {MIN_LINEAR_STEP_PERCENT} to {MAX_SHIFT_PERCENT} while "
            "endpointTrafficShifting is linear: SageMaker refuses linear steps under "
            f"{MIN_LINEAR_STEP_PERCENT} % of the fleet (LinearStepSize)",
        )
    elif kind != "all-at-once" and shift.step_instances >= shift.fleet:
        enough = next(n for n in range(shift.fleet + 1, 101) if step_instances(percent, n) < n)
        first = "a canary" if kind == "canary" else "a first linear step"
        read.fail(
            "endpointTrafficShifting",
            kind,
            f"all-at-once while endpointMaxInstances is {shift.fleet}, or endpointMaxInstances "
            f"of {enough} or more: a new version starts on a fleet of endpointMaxInstances "
            f"instances, and {first} of {percent} % of it is {shift.step_instances} instance "
            "(a share is whole instances, at least one), the whole fleet: no part of the "
            "traffic would try the new version first",
        )
    elif shift.minutes > ENDPOINT_WAITER_MINUTES:
        fixed = PROVISIONING_MINUTES + TERMINATION_WAIT_SECONDS // 60
        most = (ENDPOINT_WAITER_MINUTES - fixed) // shift.steps
        read.fail(
            "endpointShiftWaitMinutes",
            shift.wait_minutes,
            f"at most {most} with {shift.steps} {kind} step{'s' if shift.steps > 1 else ''} "
            f"of {shift.step_instances} of {shift.fleet} instances: the shift would take "
            f"{shift.minutes} minutes "
            f"({PROVISIONING_MINUTES} to start the new fleet, {shift.steps} x "
            f"{shift.wait_minutes} watched, {TERMINATION_WAIT_SECONDS // 60} before the old "
            f"fleet goes), and the AWS provider waits {ENDPOINT_WAITER_MINUTES} minutes for an "
            "endpoint update; shorten the wait, or take fewer, larger steps",
        )


def _check_replicas(serving: ServingConfig, read: Reader) -> None:
    if not read.valid("servingMinReplicas", "servingMaxReplicas"):
        return
    if serving.min_replicas > serving.max_replicas:
        read.fail(
            "servingMaxReplicas",
            serving.max_replicas,
            f"at least servingMinReplicas ({serving.min_replicas})",
        )


def _check_egress(network: NetworkConfig, read: Reader) -> None:
    if not read.valid("natGateways", "privateEndpoints"):
        return
    if network.nat_gateways == "none" and not network.private_endpoints:
        read.fail(
            "privateEndpoints",
            False,
            "true while natGateways is none: without NAT, nodes reach ECR, STS, EC2 and "
            "CloudWatch Logs only through VPC interface endpoints",
        )


def _check_runner(config: StackConfig, read: Reader) -> None:
    """A stack with a cluster and CI roles deploys its workloads from a runner in its VPC: it
    needs the connection that brings it the jobs, the repository they come from, and NAT to
    reach GitHub (which no VPC endpoint offers)."""
    if not read.valid(
        "ciGithubRepository", "ciGithubConnectionArn", "cluster", "natGateways", "aws:region"
    ):
        return
    ci, cluster = config.ci, config.cluster.enabled
    if cluster and ci.github_repository and not ci.github_connection_arn:
        read.fail(
            "ciGithubConnectionArn",
            "",
            "the ARN of the account's CodeConnections connection to GitHub while "
            "ciGithubRepository is set: the workloads deploy from a runner in the VPC, which "
            "receives its jobs through it (docs/runbooks/new-environment.md says how to make it)",
        )
    elif ci.github_connection_arn and not ci.github_repository:
        read.fail(
            "ciGithubConnectionArn",
            ci.github_connection_arn,
            "empty while ciGithubRepository is empty (no repository sends the runner jobs)",
        )
    elif ci.github_connection_arn and not cluster:
        read.fail(
            "ciGithubConnectionArn",
            ci.github_connection_arn,
            "empty while mlstack:cluster is false (no VPC and no cluster API to run beside)",
        )
    elif ci.runner and config.region and ci.github_connection_arn.split(":")[3] != config.region:
        read.fail(
            "ciGithubConnectionArn",
            ci.github_connection_arn,
            f"a connection in the stack's region ({config.region}): CodeBuild uses connections "
            "of its own region",
        )
    elif ci.runner and cluster and config.network.nat_gateways == "none":
        read.fail(
            "natGateways",
            "none",
            "single or per-az while the stack has a CI runner: it reaches GitHub and Pulumi "
            "Cloud through NAT (no VPC endpoint offers them)",
        )


def _check_default_tags(config: StackConfig, read: Reader) -> None:
    """Every resource carries `environment: <env>` (the provider's default tags): the budget
    counts the environment's cost by it, and the CI roles know the stack's own roles, models and
    alarms by it."""
    if not read.valid("environment"):
        return
    tags = read.provider_values.get("aws:defaultTags")
    if isinstance(tags, str):
        with contextlib.suppress(ValueError):
            tags = json.loads(tags)
    found = (tags or {}).get("tags", {}).get("environment") if isinstance(tags, Mapping) else None
    if found != config.environment:
        read.failed.add("aws:defaultTags")
        read.problems.append(
            f"aws:defaultTags = {show(tags)}: allowed: a mapping whose tags include "
            f"environment: {config.environment} (the budget and the CI roles find the stack's "
            "resources by it)"
        )


def _check_ingress(config: StackConfig, read: Reader) -> None:
    keys = (
        "servingIngressCertificateArn",
        "servingIngressInternetFacing",
        "servingIngressTrustStoreArn",
        "servingIngressRateLimit",
        "aws:region",
    )
    if not read.valid(*keys):
        return
    serving = config.serving
    certificate = serving.ingress_certificate_arn
    if not certificate:
        for key, value in (
            ("servingIngressInternetFacing", serving.ingress_internet_facing),
            ("servingIngressTrustStoreArn", serving.ingress_trust_store_arn),
            ("servingIngressRateLimit", serving.ingress_rate_limit),
        ):
            if value:
                read.fail(
                    key,
                    value,
                    "unset while servingIngressCertificateArn is empty (there is no ingress)",
                )
        return
    if serving.ingress_internet_facing and not (
        serving.ingress_trust_store_arn and serving.ingress_rate_limit
    ):
        # Anyone on the internet could score the model, run up its cost and probe it.
        read.fail(
            "servingIngressInternetFacing",
            True,
            "true only with servingIngressTrustStoreArn (the load balancer then admits only "
            "clients with a certificate from that trust store) and servingIngressRateLimit (a "
            "WAF rule limiting each client address); else false",
        )
    if 0 < serving.ingress_rate_limit < MIN_RATE_LIMIT:
        read.fail(
            "servingIngressRateLimit",
            serving.ingress_rate_limit,
            f"0 (no limit) or {MIN_RATE_LIMIT} to {MAX_RATE_LIMIT:,} requests per client "
            "address per 5 minutes (AWS WAF's bounds)",
        )
    for key, arn, what in (
        ("servingIngressCertificateArn", certificate, "certificate"),
        ("servingIngressTrustStoreArn", serving.ingress_trust_store_arn, "trust store"),
    ):
        region = arn.split(":")[3] if arn else ""
        if arn and config.region and region != config.region:
            read.fail(
                key,
                arn,
                f"a {what} in the stack's region ({config.region}): "
                f"a load balancer only uses a {what} of its own region",
            )


def _check_models(config: StackConfig, read: Reader) -> None:
    if not read.valid("models", "environment"):
        return
    models = config.registry.models
    if not models:
        read.fail("models", [], "at least one model name")
    if len(set(models)) != len(models):
        read.fail("models", list(models), "each model name once")
    for model in models:
        if len(model) > naming.MAX_MODEL_NAME:
            what, limit, template, suffix = max(
                naming.NAME_LIMITS, key=lambda row: len(row[2]) + row[3] - row[1]
            )
            made = template.format(model="<model>") + ("-<7 random>" if suffix else "")
            read.fail(
                "models",
                model,
                f"a name of at most {naming.MAX_MODEL_NAME} characters: the stack names "
                f"{what} '{made}', {limit} characters at most",
            )
        elif len(naming.model_package_group(model, config.environment)) > MAX_GROUP_NAME:
            read.fail(
                "models",
                model,
                f"a name short enough that its model package group "
                f"'{naming.model_package_group(model, config.environment)}' fits in "
                f"{MAX_GROUP_NAME} characters",
            )


def _check_pins(config: StackConfig, read: Reader) -> None:
    if not read.valid("servingModelVersions", "models"):
        return
    entries = read.strings("servingModelVersions")
    models = [entry.partition("=")[0] for entry in entries]
    for model in sorted({m for m in models if models.count(m) > 1}):
        read.fail("servingModelVersions", model, "one version per model")
    for model in config.serving.model_versions:
        if model not in config.registry.models:
            read.fail(
                "servingModelVersions",
                f"{model}={config.serving.model_versions[model]}",
                f"a model listed in mlstack:models ({', '.join(config.registry.models)})",
            )


def idle_keys(config: StackConfig) -> dict[str, str]:
    """The keys that can have no effect in this stack, each with what leaves it idle and what
    would give it one."""
    idle = {}
    on_sagemaker = config.serving.target in ("sagemaker", "both")
    if not on_sagemaker:
        for key in SAGEMAKER_ONLY:
            idle[key] = (
                f"while {NAMESPACE}:servingTarget is {config.serving.target} (it takes effect "
                "with sagemaker or both)"
            )
    if not config.cluster.enabled:
        for key in CLUSTER_ONLY:
            if not (on_sagemaker and key in SERVED_ANYWHERE):
                idle[key] = f"while {NAMESPACE}:cluster is false (it takes effect with true)"
    return idle


def _check_retraining(config: StackConfig, read: Reader) -> None:
    """Retraining on drift starts from the training CronJob, which needs a schedule."""
    if not read.valid("driftRetrains", "trainingSchedule", "driftSchedule"):
        return
    if config.monitoring.drift_retrains and not config.training.schedule:
        read.fail(
            "driftRetrains",
            True,
            "false while mlstack:trainingSchedule is empty (a run is started from the training "
            "CronJob, which only a schedule declares)",
        )
    elif config.monitoring.drift_retrains and not config.monitoring.drift_schedule:
        read.fail(
            "driftRetrains", True, "false while mlstack:driftSchedule is empty (no drift job)"
        )


def _check_effect(config: StackConfig, read: Reader) -> None:
    """A key set to anything but its default where it can have no effect is refused, rather
    than accepted and ignored: nobody takes it for deployed."""
    if not read.valid("servingTarget", "cluster"):
        return
    for key, why in idle_keys(config).items():
        if key in read.values and read.valid(key) and not read.is_default(key):
            default = read.schema[key].default
            read.fail(key, read.values[key], f"its default ({show(default)}), {why}")
