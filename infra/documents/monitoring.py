"""What watches an environment, as plain data: the alarms of a SageMaker endpoint, the alarm
topic's policy, and the environment's dashboard.

Every alarm names the dimensions of the resource it watches: an alarm on `AWS/SageMaker`
`ModelLatency` without `EndpointName` and `VariantName` watches a metric nobody publishes and
never fires, which is the most common mistake in public endpoint stacks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from infra.documents.kms import ALARM_PUBLISHERS

if TYPE_CHECKING:
    import pulumi

SAGEMAKER = "AWS/SageMaker"
ENDPOINT_INSTANCES = "/aws/sagemaker/Endpoints"
"""Instance metrics of endpoints (CPU, memory, disk), which SageMaker publishes with the
model's execution role (`infra.documents.iam.endpoint_execution_policy`)."""


@dataclass(frozen=True, kw_only=True)
class Alarm:
    """One CloudWatch metric alarm, in the AWS provider's terms."""

    name: str
    description: str
    namespace: str
    metric: str
    dimensions: Mapping[str, pulumi.Input[str]]
    """What it watches. A value may be an Output: the endpoint configuration a rollback alarm
    watches is named by SageMaker when it is created."""
    threshold: float
    comparison: str
    period_seconds: int
    evaluation_periods: int
    datapoints_to_alarm: int
    statistic: str | None = None
    extended_statistic: str | None = None
    treat_missing_data: str = "notBreaching"
    """No datapoint is no news for a rate (no traffic, no errors); for a count that must stay
    above a floor, a missing datapoint is the floor broken."""

    def __post_init__(self) -> None:
        if (self.statistic is None) == (self.extended_statistic is None):
            raise ValueError(f"alarm {self.name}: one of statistic or extended_statistic")
        if not self.dimensions:
            raise ValueError(f"alarm {self.name}: allowed: the dimensions of what it watches")


def endpoint_dimensions(endpoint: str, variant: str) -> dict[str, pulumi.Input[str]]:
    """Every fleet of the variant: the one serving, and during a deployment the new one too."""
    return {"EndpointName": endpoint, "VariantName": variant}


def fleet_dimensions(
    endpoint: str, variant: str, configuration: pulumi.Input[str]
) -> dict[str, pulumi.Input[str]]:
    """The fleet of one endpoint configuration only. SageMaker publishes the variant's
    invocation metrics with `EndpointConfigName` too once a new fleet takes traffic; AWS's
    new-fleet rollback alarm is shaped so, while one without it also watches the old fleet, whose
    errors stop the deployment (docs.aws.amazon.com/sagemaker/latest/dg/
    deployment-guardrails-configuration.html, "Monitor model latency on the new fleet" and the
    note under "Monitor invocation errors on both old and new fleets")."""
    return {**endpoint_dimensions(endpoint, variant), "EndpointConfigName": configuration}


def _errors(name: str, description: str, dimensions: Mapping[str, pulumi.Input[str]]) -> Alarm:
    return Alarm(
        name=name,
        description=description,
        namespace=SAGEMAKER,
        metric="Invocation5XXErrors",
        dimensions=dimensions,
        statistic="Sum",
        threshold=1,
        comparison="GreaterThanOrEqualToThreshold",
        period_seconds=60,
        evaluation_periods=3,
        datapoints_to_alarm=2,
    )


def _latency(
    name: str, description: str, dimensions: Mapping[str, pulumi.Input[str]], latency_p99_ms: int
) -> Alarm:
    return Alarm(
        name=name,
        description=description,
        namespace=SAGEMAKER,
        metric="ModelLatency",  # in microseconds
        dimensions=dimensions,
        extended_statistic="p99",
        threshold=latency_p99_ms * 1000,
        comparison="GreaterThanThreshold",
        period_seconds=60,
        evaluation_periods=3,
        datapoints_to_alarm=3,
    )


def endpoint_alarms(
    *,
    endpoint: str,
    variant: str,
    configuration: pulumi.Input[str],
    latency_p99_ms: int,
    min_instances: int,
    max_instances: int,
    invocations_per_instance: int,
) -> dict[str, Alarm]:
    """The alarms that roll a traffic shift back (`errors`, `latency`), the same signals on every
    fleet for the on-call (`errors-all-fleets`, `latency-all-fleets`), and, when the endpoint can
    scale at all, the one that says it has outgrown its autoscaling (`over-scaling-target`).

    The rollback alarms watch the fleet of `configuration`, the one the endpoint is set to: a
    deployment then answers for the new fleet only, and an emergency deployment away from a
    failing fleet starts with its alarms quiet. Their names are the endpoint's deployment
    configuration's, which a new name would replace (`auto_rollback_configuration` forces a new
    endpoint in the AWS provider: internal/service/sagemaker/endpoint.go)."""
    fleet = fleet_dimensions(endpoint, variant, configuration)
    every_fleet = endpoint_dimensions(endpoint, variant)
    errors, latency = rollback_alarm_names(endpoint)
    alarms = {
        "errors": _errors(
            errors,
            f"{endpoint}: the fleet of its current configuration answered with 5XX errors in 2 "
            "of 3 minutes; during a deployment SageMaker rolls back to the previous one",
            fleet,
        ),
        "latency": _latency(
            latency,
            f"{endpoint}: p99 model latency of the fleet of its current configuration above "
            f"{latency_p99_ms} ms for 3 minutes; during a deployment SageMaker rolls back",
            fleet,
            latency_p99_ms,
        ),
        "errors-all-fleets": _errors(
            f"{errors}-all-fleets",
            f"{endpoint}: the model answered with 5XX errors in 2 of 3 minutes, on whichever "
            "fleet serves (rolls nothing back)",
            every_fleet,
        ),
        "latency-all-fleets": _latency(
            f"{latency}-all-fleets",
            f"{endpoint}: p99 model latency above {latency_p99_ms} ms for 3 minutes, on "
            "whichever fleet serves (rolls nothing back)",
            every_fleet,
            latency_p99_ms,
        ),
    }
    if min_instances < max_instances:
        alarms["over-scaling-target"] = over_scaling_target_alarm(
            endpoint=endpoint,
            variant=variant,
            max_instances=max_instances,
            invocations_per_instance=invocations_per_instance,
        )
    return alarms


def over_scaling_target_alarm(
    *, endpoint: str, variant: str, max_instances: int, invocations_per_instance: int
) -> Alarm:
    """Each instance takes more than the autoscaling target for 15 minutes.

    Target tracking keeps `InvocationsPerInstance` at its target by adding instances (the
    `SageMakerVariantInvocationsPerInstance` predefined metric is that metric's per-minute sum:
    docs.aws.amazon.com/sagemaker/latest/dg/endpoint-auto-scaling-add-code-define.html), so a
    quarter of an hour above it means the endpoint could grow no further: it stands at its
    maximum, or SageMaker cannot get it instances. Counting instances instead (the samples of
    their CPU metric) counts both fleets during a deployment, and is always at the maximum when
    the minimum is the same."""
    return Alarm(
        name=f"{endpoint}-over-scaling-target",
        description=(
            f"{endpoint}: more than {invocations_per_instance} invocations per instance a minute "
            "(the autoscaling target) for 15 minutes: it cannot grow (at most "
            f"{max_instances} instances, or no capacity); raise endpointMaxInstances or the "
            "instance type"
        ),
        namespace=SAGEMAKER,
        metric="InvocationsPerInstance",
        dimensions=endpoint_dimensions(endpoint, variant),
        statistic="Sum",
        threshold=invocations_per_instance,
        comparison="GreaterThanThreshold",
        period_seconds=60,
        evaluation_periods=15,
        datapoints_to_alarm=15,
    )


CONTAINER_INSIGHTS = "ContainerInsights"
SERVING_PODS = "service_number_of_running_pods"
"""Container Insights' count of running pods behind a Service (dimensions ClusterName,
Namespace, Service), published by the CloudWatch agent the cluster's observability add-on runs."""


def serving_replicas_alarm(
    *, cluster: str, namespace: str, service: str, min_replicas: int
) -> Alarm:
    """Fewer pods running behind a model's Service than its autoscaler's floor, for 5 minutes:
    the Deployment cannot keep its minimum (pods crash, cannot be scheduled, or cannot pull)."""
    return Alarm(
        name=f"{cluster}-{service}-replicas",
        description=(
            f"{namespace}/{service} on {cluster}: fewer than {min_replicas} running pods for 5 "
            "minutes (no datapoint counts as none running)"
        ),
        namespace=CONTAINER_INSIGHTS,
        metric=SERVING_PODS,
        dimensions={"ClusterName": cluster, "Namespace": namespace, "Service": service},
        statistic="Minimum",
        threshold=min_replicas,
        comparison="LessThanThreshold",
        period_seconds=60,
        evaluation_periods=5,
        datapoints_to_alarm=5,
        treat_missing_data="breaching",
    )


DRIFT_NAMESPACE = "mlstack/Drift"
"""Where the drift job publishes (serving.drift.METRIC_NAMESPACE)."""


def drift_query(endpoint: str, metric: str = "PopulationStabilityIndex") -> str:
    """The largest figure over an endpoint's features: the stack does not know the features
    (the served version's baseline does), so the alarm asks Metrics Insights across them."""
    # Metrics Insights, not SQL; the endpoint name is the stack's own (naming.endpoint_name).
    return f"SELECT MAX({metric}) FROM \"{DRIFT_NAMESPACE}\" WHERE EndpointName = '{endpoint}'"  # noqa: S608


def alarm_topic_policy(*, topic_arn: str, account_id: str) -> dict[str, Any]:
    """CloudWatch alarms and AWS Budgets of this account may publish; nothing over plain HTTP."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AccountServicesPublish",
                "Effect": "Allow",
                "Principal": {"Service": list(ALARM_PUBLISHERS)},
                "Action": "sns:Publish",
                "Resource": topic_arn,
                "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
            },
            {
                "Sid": "TlsOnly",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "sns:Publish",
                "Resource": topic_arn,
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
        ],
    }


def dashboard_body(
    *,
    region: str,
    endpoints: Sequence[tuple[str, str]],
    services: Sequence[tuple[str, str, str]] = (),
    drift_endpoints: Sequence[str] = (),
) -> dict[str, Any]:
    """One row per SageMaker endpoint (invocations, errors, latency, and invocations per
    instance: what its autoscaling and its over-target alarm track; SageMaker publishes no
    instance count), the running pods of each model's Service on the cluster (cluster,
    namespace, service), and drift by feature for each endpoint name a drift job checks, as
    CloudWatch's dashboard JSON."""
    widgets: list[dict[str, Any]] = []

    def graph(title: str, metrics: list[list[Any]], stat: str) -> None:
        widgets.append(
            {
                "type": "metric",
                "width": 6,
                "height": 6,
                "properties": {
                    "title": title,
                    "region": region,
                    "stat": stat,
                    "period": 60,
                    "metrics": metrics,
                },
            }
        )

    for endpoint, variant in endpoints:
        dimensions = ["EndpointName", endpoint, "VariantName", variant]
        graph(f"{endpoint} invocations", [[SAGEMAKER, "Invocations", *dimensions]], "Sum")
        graph(
            f"{endpoint} errors",
            [
                [SAGEMAKER, "Invocation4XXErrors", *dimensions],
                [SAGEMAKER, "Invocation5XXErrors", *dimensions],
            ],
            "Sum",
        )
        graph(
            f"{endpoint} model latency p99 (µs)", [[SAGEMAKER, "ModelLatency", *dimensions]], "p99"
        )
        graph(
            f"{endpoint} invocations per instance",
            [[SAGEMAKER, "InvocationsPerInstance", *dimensions]],
            "Sum",
        )
    for cluster, namespace, service in services:
        graph(
            f"{service} running pods",
            [
                [
                    CONTAINER_INSIGHTS,
                    SERVING_PODS,
                    *("ClusterName", cluster, "Namespace", namespace, "Service", service),
                ]
            ],
            "Minimum",
        )
    for endpoint in drift_endpoints:
        by_feature = drift_query(endpoint) + " GROUP BY Feature"
        graph(
            f"{endpoint} drift by feature (PSI)",
            [[{"expression": by_feature, "id": "psi"}]],
            "Maximum",
        )
    return {"widgets": widgets}


def rollback_alarm_names(endpoint: str) -> tuple[str, str]:
    """The names of the endpoint's rollback alarms (errors, latency). Fixed for the endpoint's
    life: its deployment configuration lists them, and an emergency rollback trips them by
    name to make SageMaker roll an update in progress back."""
    return f"{endpoint}-5xx", f"{endpoint}-latency-p99"
