"""SageMaker endpoint and alarm rules (no AWS control covers them; ids start with MLSTACK)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from mlstack_policy.rules import MLSTACK, ResourceLike, StackIndex, known, resource_rule, stack_rule

ENDPOINT_CONFIGURATION = "aws:sagemaker/endpointConfiguration:EndpointConfiguration"
ENDPOINT = "aws:sagemaker/endpoint:Endpoint"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
ENDPOINT_NAMESPACES = ("AWS/SageMaker", "/aws/sagemaker/Endpoints")
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


@stack_rule(
    "MLSTACK.CW.1",
    "Endpoint alarms name an endpoint and variant the stack declares",
    ALARM,
    MLSTACK,
)
def alarm_watches_something(alarm: ResourceLike, stack: StackIndex) -> str | None:
    queried = [
        match.group(1)
        for query in alarm.props.get("metricQueries") or []
        if (match := _QUERIED_ENDPOINT.search(str(query.get("expression") or "")))
    ]
    if queried:
        declared = {name for name, _ in _variants(stack)}
        unknown = [name for name in queried if name not in declared]
        return (
            f"queries endpoint {unknown[0]}, which the stack does not declare" if unknown else None
        )
    if alarm.props.get("namespace") not in ENDPOINT_NAMESPACES:
        return None
    dimensions: Mapping[str, Any] = alarm.props.get("dimensions") or {}
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
