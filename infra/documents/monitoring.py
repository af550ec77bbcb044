"""What watches an environment, as plain data: the alarms of a SageMaker endpoint, the alarm
topic's policy, and the environment's dashboard.

Every alarm names the dimensions of the resource it watches: an alarm on `AWS/SageMaker`
`ModelLatency` without `EndpointName` and `VariantName` watches a metric nobody publishes and
never fires, which is the most common mistake in public endpoint stacks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from infra.documents.kms import ALARM_PUBLISHERS

SAGEMAKER = "AWS/SageMaker"
ENDPOINT_INSTANCES = "/aws/sagemaker/Endpoints"
"""Instance metrics of endpoints (CPU, memory, disk), one datapoint per instance a minute."""


@dataclass(frozen=True, kw_only=True)
class Alarm:
    """One CloudWatch metric alarm, in the AWS provider's terms."""

    name: str
    description: str
    namespace: str
    metric: str
    dimensions: Mapping[str, str]
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


def endpoint_dimensions(endpoint: str, variant: str) -> dict[str, str]:
    return {"EndpointName": endpoint, "VariantName": variant}


def endpoint_alarms(
    *, endpoint: str, variant: str, latency_p99_ms: int, max_instances: int
) -> dict[str, Alarm]:
    """The alarms that roll a traffic shift back (`errors`, `latency`), and the one that says
    the endpoint can grow no further (`at-max-instances`)."""
    dimensions = endpoint_dimensions(endpoint, variant)
    return {
        "errors": Alarm(
            name=f"{endpoint}-5xx",
            description=f"{endpoint}: the model answered with 5XX errors in 2 of 3 minutes",
            namespace=SAGEMAKER,
            metric="Invocation5XXErrors",
            dimensions=dimensions,
            statistic="Sum",
            threshold=1,
            comparison="GreaterThanOrEqualToThreshold",
            period_seconds=60,
            evaluation_periods=3,
            datapoints_to_alarm=2,
        ),
        "latency": Alarm(
            name=f"{endpoint}-latency-p99",
            description=f"{endpoint}: p99 model latency above {latency_p99_ms} ms for 3 minutes",
            namespace=SAGEMAKER,
            metric="ModelLatency",  # in microseconds
            dimensions=dimensions,
            extended_statistic="p99",
            threshold=latency_p99_ms * 1000,
            comparison="GreaterThanThreshold",
            period_seconds=60,
            evaluation_periods=3,
            datapoints_to_alarm=3,
        ),
        "at-max-instances": Alarm(
            name=f"{endpoint}-at-max-instances",
            description=(
                f"{endpoint}: running at its maximum of {max_instances} instances for 15 "
                "minutes; raise endpointMaxInstances or the instance type"
            ),
            namespace=ENDPOINT_INSTANCES,
            # SageMaker publishes no instance count; each instance reports its CPU once a
            # minute, so the count of CPU datapoints in a minute is the count of instances.
            metric="CPUUtilization",
            dimensions=dimensions,
            statistic="SampleCount",
            threshold=max_instances,
            comparison="GreaterThanOrEqualToThreshold",
            period_seconds=60,
            evaluation_periods=15,
            datapoints_to_alarm=15,
        ),
    }


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
    """One row per SageMaker endpoint (invocations, errors, latency, instances), the running
    pods of each model's Service on the cluster (cluster, namespace, service), and drift by
    feature for each endpoint name a drift job checks, as CloudWatch's dashboard JSON."""
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
            f"{endpoint} instances",
            [[ENDPOINT_INSTANCES, "CPUUtilization", *dimensions]],
            "SampleCount",
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
