"""SageMaker endpoint and alarm rules (no AWS control covers them; ids start with MLSTACK)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from mlstack_policy.eks import CLUSTER
from mlstack_policy.kubernetes import CRON_JOB, pod_template
from mlstack_policy.rules import MLSTACK, ResourceLike, StackIndex, known, resource_rule, stack_rule

ENDPOINT_CONFIGURATION = "aws:sagemaker/endpointConfiguration:EndpointConfiguration"
ENDPOINT = "aws:sagemaker/endpoint:Endpoint"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
SERVICE = "kubernetes:core/v1:Service"
ENDPOINT_NAMESPACES = ("AWS/SageMaker", "/aws/sagemaker/Endpoints")
CONTAINER_INSIGHTS = "ContainerInsights"
DRIFT_NAMESPACE = "mlstack/Drift"
_QUERIED_ENDPOINT = re.compile(r"EndpointName\s*=\s*'([^']+)'")


@resource_rule(
    "MLSTACK.SM.1",
    "Endpoint storage and captured traffic are encrypted with a KMS key",
    ENDPOINT_CONFIGURATION,
    MLSTACK,
)
def encrypted_endpoint(configuration: ResourceLike) -> str | None:
    if not configuration.props.get("kmsKeyArn"):
        return "its instances' storage is not encrypted with a KMS key (kmsKeyArn)"
    capture: Mapping[str, Any] = configuration.props.get("dataCaptureConfig") or {}
    if capture.get("enableCapture") and not capture.get("kmsKeyId"):
        return "captured requests and responses are not encrypted with a KMS key"
    return None


@resource_rule(
    "MLSTACK.SM.2",
    "Endpoints that shift traffic roll back on alarms",
    ENDPOINT,
    MLSTACK,
)
def rolls_back(endpoint: ResourceLike) -> str | None:
    deployment: Mapping[str, Any] = endpoint.props.get("deploymentConfig") or {}
    if not deployment.get("blueGreenUpdatePolicy"):
        return None
    alarms = (deployment.get("autoRollbackConfiguration") or {}).get("alarms") or []
    if not alarms:
        return "shifts traffic to new versions without alarms to roll back on"
    return None


def _variants(stack: StackIndex) -> set[tuple[str, str]]:
    """(endpoint name, variant name) of every declared endpoint."""
    configurations = {str(c.props.get("name")): c for c in stack.of_type(ENDPOINT_CONFIGURATION)}
    found = set()
    for endpoint in stack.of_type(ENDPOINT):
        name = known(endpoint.props.get("name"), f"the name of {endpoint.name}")
        config_name = known(
            endpoint.props.get("endpointConfigName"), f"the configuration of {endpoint.name}"
        )
        configuration = configurations.get(str(config_name))
        for variant in (
            configuration.props.get("productionVariants") if configuration else []
        ) or []:
            found.add((str(name), str(variant.get("variantName"))))
    return found


def _drift_publishers(stack: StackIndex) -> set[str]:
    """The endpoint names declared drift jobs publish figures for (their `--endpoint`)."""
    names = set()
    for job in stack.of_type(CRON_JOB):
        for container in pod_template(job).get("containers") or []:
            words = [*(container.get("command") or []), *(container.get("args") or [])]
            if "serving.drift" in words and "--endpoint" in words[:-1]:
                names.add(str(words[words.index("--endpoint") + 1]))
    return names


def _services(stack: StackIndex) -> set[tuple[str, str]]:
    """(namespace, name) of every Service the stack declares."""
    return {
        (str(metadata.get("namespace") or "default"), str(metadata.get("name")))
        for metadata in (service.props.get("metadata") or {} for service in stack.of_type(SERVICE))
    }


def _clusters(stack: StackIndex) -> set[str]:
    """The names of the clusters the stack declares. A workloads stack declares none: its
    objects go to the platform stack's cluster, whose name its objects do not say."""
    return {
        str(known(c.props.get("name"), f"the name of {c.name}")) for c in stack.of_type(CLUSTER)
    }


def _queried_problem(alarm: ResourceLike, stack: StackIndex) -> str | None:
    for query in alarm.props.get("metricQueries") or []:
        expression = str(query.get("expression") or "")
        match = _QUERIED_ENDPOINT.search(expression)
        if match is None:
            continue
        name = match.group(1)
        if DRIFT_NAMESPACE in expression:
            if name not in _drift_publishers(stack):
                return f"queries drift of {name}, for which no declared drift job publishes"
        elif name not in {endpoint for endpoint, _ in _variants(stack)}:
            return f"queries endpoint {name}, which the stack does not declare"
    return None


def _container_insights_problem(dimensions: Mapping[str, Any], stack: StackIndex) -> str | None:
    watched = tuple(dimensions.get(key) for key in ("ClusterName", "Namespace", "Service"))
    if None in watched:
        return (
            "watches a Container Insights metric without ClusterName, Namespace and Service "
            "dimensions: it sums over whatever else runs there"
        )
    clusters = _clusters(stack)
    if (watched[1], watched[2]) not in _services(stack) or (
        clusters and watched[0] not in clusters
    ):
        return (
            f"watches Service {watched[1]}/{watched[2]} on {watched[0]}, "
            "which the stack does not declare"
        )
    return None


@stack_rule(
    "MLSTACK.CW.1",
    "Alarms watch a series something the stack declares publishes",
    ALARM,
    MLSTACK,
)
def alarm_watches_something(alarm: ResourceLike, stack: StackIndex) -> str | None:
    if alarm.props.get("metricQueries"):
        return _queried_problem(alarm, stack)
    dimensions: Mapping[str, Any] = alarm.props.get("dimensions") or {}
    if alarm.props.get("namespace") == CONTAINER_INSIGHTS:
        return _container_insights_problem(dimensions, stack)
    if alarm.props.get("namespace") not in ENDPOINT_NAMESPACES:
        return None
    watched = (dimensions.get("EndpointName"), dimensions.get("VariantName"))
    if None in watched:
        return (
            "watches an endpoint metric without EndpointName and VariantName dimensions: "
            "no such series is published, so it never fires"
        )
    if watched not in _variants(stack):
        return (
            f"watches endpoint {watched[0]} variant {watched[1]}, which the stack does not declare"
        )
    return None
