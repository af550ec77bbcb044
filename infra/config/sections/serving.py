"""The keys of what is served, where, and at what size."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from infra.config.reader import Reader
from infra.config.sections.registry import check_model_name

ServingTarget = Literal["kubernetes", "sagemaker", "both"]
SERVING_TARGETS: tuple[ServingTarget, ...] = ("kubernetes", "sagemaker", "both")

TRAFFIC_SHIFTS = ("canary", "linear", "all-at-once")
"""How a SageMaker endpoint moves traffic to a new fleet: a canary share first, equal linear
steps, or everything at once; each step waits while the rollback alarms watch."""

MAX_SHIFT_PERCENT = 50
MIN_LINEAR_STEP_PERCENT = 10
"""SageMaker takes a canary of at most 50 % of the new fleet and linear steps of 10-50 %
(TrafficRoutingConfig's CanarySize and LinearStepSize, SageMaker API reference)."""

TERMINATION_WAIT_SECONDS = 300
"""How long the old fleet stays after the last step, so a late alarm can still roll back to it
(the endpoint's `termination_wait_in_seconds`)."""

ENDPOINT_WAITER_MINUTES = 60
"""How long the AWS provider waits for an endpoint to be InService again after UpdateEndpoint,
fixed in its code (hashicorp/terraform-provider-aws, internal/service/sagemaker/endpoint.go,
`waitEndpointInService`: `timeout = 60 * time.Minute`; no custom timeout reaches it). A shift
that outlasts it fails `pulumi up` while SageMaker carries on."""

PROVISIONING_MINUTES = 15
"""What the new fleet takes before its first step, and the margin the shift keeps under the
provider's wait: every instance of it launched at once, the image pulled and the model
downloaded, then up to 4 minutes for the container to answer /ping before SageMaker gives up
(docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-inference-code.html). Typical fleets
are ready in well under that."""


@dataclass(frozen=True, kw_only=True)
class TrafficShift:
    """How a new version takes an endpoint's traffic, in SageMaker's own steps."""

    kind: str
    fleet: int
    """Instances in the new fleet: endpointMaxInstances, which a new endpoint configuration
    starts at so that a deploy keeps what autoscaling may have added."""
    step_instances: int
    """Instances the first step turns on: the canary, each linear step, or the whole fleet."""
    steps: int
    wait_minutes: int
    """Each step's baking period, in which the rollback alarms watch."""

    @property
    def minutes(self) -> int:
        """From UpdateEndpoint to the old fleet's end: provisioning, a baking period after
        every step (the last one too: SageMaker's "final baking period", after which the
        termination wait starts: docs.aws.amazon.com/sagemaker/latest/dg/
        deployment-guardrails-blue-green-canary.html), then the termination wait."""
        return (
            PROVISIONING_MINUTES + self.steps * self.wait_minutes + TERMINATION_WAIT_SECONDS // 60
        )


def step_instances(percent: int, fleet: int) -> int:
    """The instances a step of `percent` % of `fleet` turns on.

    AWS does not document how CAPACITY_PERCENT becomes a count of instances. Its worked example
    turns on 1 instance for 33 % of 3 (aws/amazon-sagemaker-examples, the deployment guardrails
    linear traffic shifting notebook: `33% * 3 = 1 instance`), which rounding down would make 0,
    and a step of no instance shifts nothing; so the share is rounded up."""
    return max(1, -(-percent * fleet // 100))


def traffic_shift(kind: str, *, percent: int, wait_minutes: int, fleet: int) -> TrafficShift:
    """The steps of a canary (the canary, then the rest), a linear shift (steps of `percent` %
    of the fleet, the last one what remains: 34 % of 2 instances is 2 steps of 1) or an
    all-at-once shift (1 step)."""
    if kind == "all-at-once":
        first, steps = fleet, 1
    else:
        first = step_instances(percent, fleet)
        steps = (1 if first >= fleet else 2) if kind == "canary" else -(-fleet // first)
    return TrafficShift(
        kind=kind, fleet=fleet, step_instances=first, steps=steps, wait_minutes=wait_minutes
    )


_SAGEMAKER_INSTANCE = re.compile(r"^ml\.[a-z][a-z0-9-]*\.(?:medium|large|\d*xlarge)$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_CERTIFICATE_ARN = re.compile(
    r"^arn:aws(-[a-z]+)*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$"
)


@dataclass(frozen=True, kw_only=True)
class ServingConfig:
    """Which model version is served, where, and at what size."""

    target: ServingTarget
    model_versions: Mapping[str, int]
    """The pinned model package version of each model that is served, by model name."""
    min_replicas: int
    max_replicas: int
    cpu_millicores: int
    memory_mib: int
    client_namespaces: tuple[str, ...]
    """Namespaces whose pods may call the models on the cluster."""
    ingress_certificate_arn: str
    """An ACM certificate: when set, each model is served over HTTPS through its own ALB."""
    ingress_internet_facing: bool
    """The ALBs' scheme: internal (reachable from the VPC and what is peered with it) unless on."""
    ingress_trust_store_arn: str
    """An ELB trust store the listeners verify client certificates against; empty: none."""
    ingress_rate_limit: int
    """Requests per client address per 5 minutes a WAF rule lets through; 0: no web ACL."""
    instance_type: str
    data_capture_percent: int
    endpoint_min_instances: int
    endpoint_max_instances: int
    endpoint_invocations_per_instance: int
    """The autoscaling target: invocations per instance per minute."""
    endpoint_traffic_shifting: str
    endpoint_shift_percent: int
    """The canary's share, or each linear step's."""
    endpoint_shift_wait_minutes: int

    @property
    def traffic_shift(self) -> TrafficShift:
        """How a new version takes the endpoints' traffic, step by step."""
        return traffic_shift(
            self.endpoint_traffic_shifting,
            percent=self.endpoint_shift_percent,
            wait_minutes=self.endpoint_shift_wait_minutes,
            fleet=self.endpoint_max_instances,
        )


def check_sagemaker_instance(value: str) -> str | None:
    if _SAGEMAKER_INSTANCE.match(value):
        return None
    return "a SageMaker instance type such as ml.m6i.large (ml.<family>.<size>)"


def check_certificate_arn(value: str) -> str | None:
    if not value or _CERTIFICATE_ARN.match(value):
        return None
    return (
        "an ACM certificate ARN, arn:aws:acm:<region>:<account>:certificate/<uuid>, "
        "or empty for no ingress"
    )


_TRUST_STORE_ARN = re.compile(
    r"^arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:\d{12}:truststore/[A-Za-z0-9-]+/[0-9a-f]+$"
)
MIN_RATE_LIMIT = 10
MAX_RATE_LIMIT = 2_000_000_000
"""AWS WAF's bounds for a rate-based rule's limit (requests per evaluation window)."""


def check_trust_store_arn(value: str) -> str | None:
    if not value or _TRUST_STORE_ARN.match(value):
        return None
    return (
        "an ELB trust store ARN, arn:aws:elasticloadbalancing:<region>:<account>:"
        "truststore/<name>/<id>, or empty for no client certificates"
    )


def check_namespace_name(value: str) -> str | None:
    if _DNS_LABEL.match(value):
        return None
    return "a Kubernetes namespace name: lowercase letters, digits and '-', at most 63"


def check_pin(value: str) -> str | None:
    """`<model>=<version>`: a model name and a registered version number."""
    model, equals, version = value.partition("=")
    if equals and check_model_name(model) is None and version.isdigit() and int(version) >= 1:
        return None
    return "<model>=<version>, a model of mlstack:models and a version from 1, such as demo=3"


def _pins(entries: tuple[str, ...]) -> dict[str, int]:
    valid = (entry.partition("=") for entry in entries if check_pin(entry) is None)
    return {model: int(version) for model, _, version in valid}


def read_serving(read: Reader) -> ServingConfig:
    return ServingConfig(
        target=read.choice("servingTarget", SERVING_TARGETS),
        model_versions=_pins(read.strings("servingModelVersions", check_pin)),
        min_replicas=read.integer("servingMinReplicas", 1, 100),
        max_replicas=read.integer("servingMaxReplicas", 1, 100),
        cpu_millicores=read.integer("servingCpuMillicores", 100, 16_000),
        memory_mib=read.integer("servingMemoryMib", 128, 65_536),
        client_namespaces=read.strings("servingClientNamespaces", check_namespace_name),
        ingress_certificate_arn=read.string("servingIngressCertificateArn", check_certificate_arn),
        ingress_internet_facing=read.boolean("servingIngressInternetFacing"),
        ingress_trust_store_arn=read.string("servingIngressTrustStoreArn", check_trust_store_arn),
        ingress_rate_limit=read.integer("servingIngressRateLimit", 0, MAX_RATE_LIMIT),
        instance_type=read.string("servingInstanceType", check_sagemaker_instance),
        data_capture_percent=read.integer("dataCapturePercent", 0, 100),
        endpoint_min_instances=read.integer("endpointMinInstances", 1, 100),
        endpoint_max_instances=read.integer("endpointMaxInstances", 1, 100),
        endpoint_invocations_per_instance=read.integer(
            "endpointInvocationsPerInstance", 1, 1_000_000
        ),
        endpoint_traffic_shifting=read.choice("endpointTrafficShifting", TRAFFIC_SHIFTS),
        endpoint_shift_percent=read.integer("endpointShiftPercent", 1, MAX_SHIFT_PERCENT),
        endpoint_shift_wait_minutes=read.integer("endpointShiftWaitMinutes", 1, 60),
    )
