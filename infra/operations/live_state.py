"""What is running, read back from SageMaker, CloudWatch and the cluster, in the terms the stack
declares: the model version, its model data and package, the image digest, whether a rollout or
a traffic shift finished, how many instances serve, and which alarms fire.

SageMaker and CloudWatch are read through boto3, the cluster through `serving.cluster_api` —
the same calls, against AWS, an emulator, or an API server. What could not be read raises
`UnreachableError` naming it; turning a response into what it means is pure, so each case has a
test with a response as the API reference shapes it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from infra.manifests.serving import MODEL_PACKAGE_ANNOTATION, MODEL_VERSION_LABEL
from infra.operations.errors import UnreachableError
from infra.project import naming
from serving.cluster_api import ClusterApi, ClusterApiError

PACKAGE_TAG = "mlstack:model-package"
"""The tag the stack puts on each endpoint's Model and EndpointConfiguration."""
ENDPOINT_TAG = "mlstack:endpoint"
"""The tag naming the endpoint an EndpointConfiguration was made for."""
ROLLED_BACK_TAG = "mlstack:rolled-back"
"""The tag on an EndpointConfiguration an endpoint was moved off by a rollback, with when."""
ALARM = "ALARM"
"""The state of a CloudWatch alarm that fires (the others: OK, INSUFFICIENT_DATA)."""


def digest_of(image: str) -> str:
    """`sha256:…` of an image reference by digest; empty for a reference by tag."""
    return image.rpartition("@")[2] if "@sha256:" in image else ""


def when(moment: Any) -> str:
    """A timestamp boto3 returns, in UTC to the second; empty when there is none."""
    if not isinstance(moment, datetime):
        return str(moment or "")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class EndpointConfiguration:
    """What one endpoint configuration runs on its primary variant."""

    name: str
    model_name: str
    image: str
    model_data_url: str
    model_version: str
    package_arn: str


@dataclass(frozen=True)
class PendingDeployment:
    """An update SageMaker is carrying out: DescribeEndpoint's `PendingDeploymentSummary`,
    returned only while the endpoint is creating or updating with a new endpoint configuration
    (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_DescribeEndpoint.html,
    https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_PendingDeploymentSummary.html).
    """

    configuration: EndpointConfiguration
    """The configuration being deployed."""
    started: str
    stage: str
    """The new fleet's current `VariantStatus`: Creating, Updating, Deleting,
    ActivatingTraffic or Baking (the wait while the rollback alarms watch); empty when not
    given (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ProductionVariantStatus.html)."""
    stage_since: str = ""
    stage_message: str = ""


@dataclass(frozen=True)
class LiveEndpoint:
    name: str
    status: str
    """DescribeEndpoint's `EndpointStatus`: InService, Creating, Updating, SystemUpdating,
    RollingBack, OutOfService, Deleting, Failed or UpdateRollbackFailed."""
    failure_reason: str
    configuration: EndpointConfiguration
    """The configuration the endpoint is on (`EndpointConfigName`): during an update, the one
    serving until the shift completes."""
    instances: int | None
    """`CurrentInstanceCount` of the primary variant; None when SageMaker reports none."""
    pending: PendingDeployment | None = None


@dataclass(frozen=True)
class EndpointState:
    """What DescribeEndpoint's response says, before its configurations are read."""

    status: str
    failure_reason: str
    config_name: str
    instances: int | None
    pending_config: str
    """The configuration of an update in progress; empty when there is none."""
    started: str
    stage: str
    stage_since: str
    stage_message: str


def _primary(variants: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    return next(
        (v for v in variants if v.get("VariantName") == naming.ENDPOINT_VARIANT),
        variants[0] if variants else {},
    )


def endpoint_state(described: Mapping[str, Any]) -> EndpointState:
    """The status, configuration, instance count and any update in progress of a
    DescribeEndpoint response."""
    count = _primary(described.get("ProductionVariants") or []).get("CurrentInstanceCount")
    pending = described.get("PendingDeploymentSummary") or {}
    statuses = list(_primary(pending.get("ProductionVariants") or []).get("VariantStatus") or [])
    # The list holds the stages a variant went through; the latest to start is the current one.
    stage: Mapping[str, Any] = max(
        enumerate(statuses), key=lambda e: (when(e[1].get("StartTime")), e[0]), default=(0, {})
    )[1]
    return EndpointState(
        status=str(described.get("EndpointStatus", "")),
        failure_reason=str(described.get("FailureReason", "")),
        config_name=str(described.get("EndpointConfigName", "")),
        instances=int(count) if count is not None else None,
        pending_config=str(pending.get("EndpointConfigName", "")),
        started=when(pending.get("StartTime")),
        stage=str(stage.get("Status", "")),
        stage_since=when(stage.get("StartTime")),
        stage_message=str(stage.get("StatusMessage", "")),
    )


def live_endpoint(
    name: str,
    state: EndpointState,
    configurations: Mapping[str, EndpointConfiguration],
) -> LiveEndpoint:
    """The endpoint as verify compares it, from its state and its configurations by name."""
    pending = None
    if state.pending_config:
        pending = PendingDeployment(
            configuration=configurations[state.pending_config],
            started=state.started,
            stage=state.stage,
            stage_since=state.stage_since,
            stage_message=state.stage_message,
        )
    return LiveEndpoint(
        name=name,
        status=state.status,
        failure_reason=state.failure_reason,
        configuration=configurations[state.config_name],
        instances=state.instances,
        pending=pending,
    )


def describe_endpoint(client: Any, name: str) -> Mapping[str, Any] | None:
    """DescribeEndpoint's answer; None when there is no such endpoint."""
    try:
        return dict(client.describe_endpoint(EndpointName=name))
    except client.exceptions.ClientError as error:
        if "Could not find endpoint" in str(error):
            return None
        raise UnreachableError(f"endpoint {name} cannot be read: {error}") from error
    except Exception as error:
        raise UnreachableError(f"endpoint {name} cannot be read: {error}") from error


def read_endpoint(client: Any, name: str) -> LiveEndpoint | None:
    """The endpoint, its configuration, and the one an update in progress deploys; None when
    there is no such endpoint."""
    described = describe_endpoint(client, name)
    if described is None:
        return None
    state = endpoint_state(described)
    names = {state.config_name, state.pending_config} - {""}
    try:
        configurations = {config: read_configuration(client, config) for config in names}
    except Exception as error:
        raise UnreachableError(
            f"endpoint {name}'s configuration cannot be read: {error}"
        ) from error
    return live_endpoint(name, state, configurations)


def read_configuration(client: Any, name: str) -> EndpointConfiguration:
    config = client.describe_endpoint_config(EndpointConfigName=name)
    variant = _primary(config["ProductionVariants"])
    model = client.describe_model(ModelName=variant["ModelName"])
    tags = client.list_tags(ResourceArn=model["ModelArn"]).get("Tags", [])
    container = model.get("PrimaryContainer") or (model.get("Containers") or [{}])[0]
    return EndpointConfiguration(
        name=name,
        model_name=variant["ModelName"],
        image=container.get("Image", ""),
        model_data_url=container.get("ModelDataUrl", ""),
        model_version=(container.get("Environment") or {}).get("MLSTACK_MODEL_VERSION", ""),
        package_arn=next((t["Value"] for t in tags if t["Key"] == PACKAGE_TAG), ""),
    )


@dataclass(frozen=True)
class LiveDeployment:
    name: str
    image: str
    model_version: str
    package_arn: str
    generation: int
    observed_generation: int
    replicas: int
    updated_replicas: int
    ready_replicas: int

    @property
    def rolled_out(self) -> bool:
        """The controller has seen the newest spec and every pod runs it."""
        return (
            self.observed_generation >= self.generation and self.updated_replicas == self.replicas
        )


def read_deployment(api: ClusterApi, namespace: str, name: str) -> LiveDeployment | None:
    """The Deployment's pod template and rollout status; None when there is no such Deployment."""
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}"
    try:
        status, found = api.call("GET", path)
    except ClusterApiError as error:
        raise UnreachableError(str(error)) from error
    if status == 404:
        return None
    if status != 200:
        raise UnreachableError(
            f"Deployment {namespace}/{name} cannot be read: {status} {found.get('message', '')}"
        )
    template = found["spec"]["template"]
    containers = template["spec"]["containers"]
    rollout = found.get("status") or {}
    return LiveDeployment(
        name=name,
        image=containers[0].get("image", "") if containers else "",
        model_version=(template["metadata"].get("labels") or {}).get(MODEL_VERSION_LABEL, ""),
        package_arn=(template["metadata"].get("annotations") or {}).get(
            MODEL_PACKAGE_ANNOTATION, ""
        ),
        generation=int(found["metadata"].get("generation", 0)),
        observed_generation=int(rollout.get("observedGeneration", 0)),
        replicas=int(rollout.get("replicas", 0)),
        updated_replicas=int(rollout.get("updatedReplicas", 0)),
        ready_replicas=int(rollout.get("readyReplicas", 0)),
    )


@dataclass(frozen=True)
class AlarmState:
    name: str
    state: str
    """OK, ALARM or INSUFFICIENT_DATA."""
    reason: str
    """CloudWatch's `StateReason`: what crossed the threshold, or why data is missing."""
    since: str
    description: str


def read_alarms(
    cloudwatch: Any, *, prefix: str | None = None, names: Sequence[str] = ()
) -> list[AlarmState]:
    """The metric alarms whose names start with `prefix`, or those named `names` (absent ones
    are left out). DescribeAlarms returns only metric alarms unless AlarmTypes asks for others,
    and takes AlarmNamePrefix or AlarmNames, not both
    (https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_DescribeAlarms.html);
    every alarm the stack declares is a metric alarm."""
    if (prefix is None) == (not names):
        raise ValueError("read_alarms: allowed: a prefix, or names, not both")
    query: dict[str, Any] = {"AlarmNamePrefix": prefix} if prefix else {"AlarmNames": list(names)}
    try:
        pages = cloudwatch.get_paginator("describe_alarms").paginate(**query)
        found = [alarm for page in pages for alarm in page.get("MetricAlarms", [])]
    except Exception as error:
        what = f"named {prefix}*" if prefix else "named " + ", ".join(names)
        raise UnreachableError(f"CloudWatch alarms {what} cannot be read: {error}") from error
    return [
        AlarmState(
            name=alarm["AlarmName"],
            state=alarm.get("StateValue", ""),
            reason=alarm.get("StateReason", ""),
            since=when(alarm.get("StateUpdatedTimestamp")),
            description=alarm.get("AlarmDescription", ""),
        )
        for alarm in found
    ]


def read_account(sts: Any) -> str:
    """The account the caller's credentials belong to (STS GetCallerIdentity, which needs no
    permission)."""
    try:
        return str(sts.get_caller_identity()["Account"])
    except Exception as error:
        raise UnreachableError(f"STS GetCallerIdentity failed: {error}") from error
