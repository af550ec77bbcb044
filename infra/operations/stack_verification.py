"""`verify` for one stack: what its files declare (the pins resolved through its registry, the
image digests it pins or its outputs name) against what its endpoints and cluster run, and the
health of what serves each model (its alarms, instances and ready pods).

Built for an incident: every AWS call is bounded (`aws_access.READ_LIMITS`) and so is every
cluster call (`CLUSTER_TIMEOUT_SECONDS`); a part that cannot be reached becomes a check saying so
and the rest is still read; a service or cluster that could not be reached at all is not tried
again for the next model, so it costs its timeout once."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from infra.config.serving_targets import serving_targets
from infra.config.stack import StackConfig, load_config
from infra.config.stackfiles import load_stack_settings
from infra.documents.monitoring import serving_replicas_alarm
from infra.manifests.serving import serving_name
from infra.operations.aws_access import READ_LIMITS, StackAws, connection_failed, stack_aws
from infra.operations.errors import PulumiCliMissingError, UnreachableError
from infra.operations.live_state import (
    digest_of,
    read_account,
    read_alarms,
    read_deployment,
    read_endpoint,
)
from infra.operations.verification import (
    Check,
    Expected,
    Report,
    alarm_checks,
    deployment_checks,
    endpoint_checks,
    not_read,
    registry_checks,
)
from infra.project import naming
from infra.project.outputs import SERVING_IMAGE
from mlstack_common.registry import ModelPackage, RegistryError, find_version
from serving.cluster_api import ClusterApi

ClusterConnector = Callable[[StackAws, str, str], ClusterApi]
"""(the stack's AWS, cluster name, namespace) -> a client for its API server."""
CLUSTER_TIMEOUT_SECONDS = 10.0
"""For each call to the API server: a private endpoint out of reach (verify run from outside
the VPC) fails in seconds, and the report says so."""
T = TypeVar("T")


def _declared_image(
    digests: Mapping[str, str], read_outputs: Callable[[], Mapping[str, Any]], notes: list[str]
) -> str:
    if "serving" in digests:
        return digests["serving"]
    try:
        image = str(read_outputs().get(SERVING_IMAGE) or "")
    except PulumiCliMissingError as error:
        notes.append(
            "image digests not compared: the stack builds its serving image, and its digest is a "
            f"stack output ({SERVING_IMAGE}); {error}"
        )
        return ""
    if not digest_of(image):
        notes.append(f"image digests not compared: the stack's outputs name no {SERVING_IMAGE}")
    return digest_of(image)


class _Live:
    """The stack's AWS and cluster, each part read at most until it proves unreachable."""

    def __init__(self, aws: StackAws, connect_cluster: ClusterConnector) -> None:
        self.aws = aws
        self.sagemaker = aws.client("sagemaker")
        self.cloudwatch = aws.client("cloudwatch")
        self._connect_cluster = connect_cluster
        self._cluster: ClusterApi | None = None
        self.down: dict[str, str] = {}
        """Part -> why it could not be reached, for the parts not tried again."""

    def read(self, part: str, read: Callable[[], T], *, any_failure: bool = False) -> T:
        """`read()`, or UnreachableError without trying when `part` already proved
        unreachable. A failure to connect marks the part down (any failure, with
        `any_failure`: nothing more can be read from a cluster whose token or address fails)."""
        if part in self.down:
            raise UnreachableError(f"not tried: {part} could not be reached ({self.down[part]})")
        try:
            return read()
        except (UnreachableError, RegistryError) as error:
            if any_failure or connection_failed(error):
                self.down[part] = _first_line(str(error))
            raise

    def cluster(self, name: str, namespace: str) -> ClusterApi:
        if self._cluster is None:
            connected = self._connect_cluster(self.aws, name, namespace)
            self._cluster = dataclasses.replace(connected, timeout=CLUSTER_TIMEOUT_SECONDS)
        return self._cluster


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else text


def verify_stack(
    root: Path,
    stack: str,
    *,
    connect_cluster: ClusterConnector,
    read_outputs: Callable[[], Mapping[str, Any]],
    on_step: Callable[[str], None] = lambda _: None,
) -> Report:
    settings = load_stack_settings(stack, root)
    config = load_config(settings.values)
    pins = config.serving.model_versions
    if not pins:
        return Report(stack, region=config.region, notes=[_nothing_pinned(stack, config)])
    live = _Live(stack_aws(settings).with_limits(READ_LIMITS), connect_cluster)
    notes: list[str] = []
    on_step("asking STS which AWS account the credentials reach")
    try:
        account = read_account(live.aws.client("sts"))
    except UnreachableError as error:
        account = ""
        notes.append(f"the AWS account is not known: {error}")
    report = Report(stack, region=str(live.sagemaker.meta.region_name), account=account)
    report.notes.extend(notes)
    targets = serving_targets(config, pins)
    image_digest = _declared_image(config.registry.image_digests, read_outputs, report.notes)
    for model, version in pins.items():
        group = naming.model_package_group(model, config.environment)
        expected = Expected(
            model=model,
            version=version,
            package=None,
            group=group,
            image_digest=image_digest,
            endpoint=targets.endpoints.get(model),
            deployment=(naming.WORKLOAD_NAMESPACE, serving_name(model))
            if targets.on_cluster
            else None,
            min_replicas=config.serving.min_replicas,
            min_instances=config.serving.endpoint_min_instances,
        )
        on_step(f"reading version {version} of {group} from the registry")
        package, checks = _registry(live, expected)
        expected = dataclasses.replace(expected, package=package)
        report.checks.extend(checks)
        if expected.endpoint is not None:
            on_step(f"reading endpoint {expected.endpoint}")
            report.checks.extend(_endpoint(live, expected))
        if expected.deployment is not None:
            on_step(f"reading deployment {'/'.join(expected.deployment)}")
            report.checks.extend(_deployment(live, expected, config))
        on_step(f"reading the alarms of {model}")
        report.checks.extend(_alarms(live, expected, config))
    return report


def _nothing_pinned(stack: str, config: StackConfig) -> str:
    model = config.registry.models[0] if config.registry.models else "MODEL"
    return (
        f"Pulumi.{stack}.yaml pins no model version (mlstack:servingModelVersions), so nothing "
        f"is served and nothing can be verified; pin one: `mlstack promote {stack} --model "
        f"{model} --version N` (models: {', '.join(config.registry.models) or 'none'})"
    )


def _registry(live: _Live, expected: Expected) -> tuple[ModelPackage | None, list[Check]]:
    target = f"registry {expected.group}"
    try:
        package = live.read(
            "SageMaker", lambda: find_version(live.sagemaker, expected.group, expected.version)
        )
    except RegistryError as error:
        if "has no version" in str(error):
            return None, registry_checks(expected)
        return None, [
            not_read(target, f"version {expected.version}", "present, Approved", str(error))
        ]
    except UnreachableError as error:
        return None, [
            not_read(target, f"version {expected.version}", "present, Approved", str(error))
        ]
    return package, registry_checks(dataclasses.replace(expected, package=package))


def _endpoint(live: _Live, expected: Expected) -> list[Check]:
    assert expected.endpoint is not None  # noqa: S101 (called for endpoints only)
    endpoint = expected.endpoint
    try:
        found = live.read("SageMaker", lambda: read_endpoint(live.sagemaker, endpoint))
    except UnreachableError as error:
        return [not_read(f"endpoint {endpoint}", "state", "the pinned version", str(error))]
    return endpoint_checks(expected, found)


def _deployment(live: _Live, expected: Expected, config: StackConfig) -> list[Check]:
    assert expected.deployment is not None  # noqa: S101 (called for Deployments only)
    namespace, name = expected.deployment
    cluster = naming.cluster_name(config.environment)
    part = f"cluster {cluster}"
    try:
        found = live.read(
            part,
            lambda: read_deployment(live.cluster(cluster, namespace), namespace, name),
            any_failure=True,
        )
    except UnreachableError as error:
        return [
            not_read(
                f"deployment {namespace}/{name}",
                "state",
                "the pinned version",
                str(error),
                hint=_cluster_hint(cluster, config),
            )
        ]
    return deployment_checks(expected, found)


def _cluster_hint(cluster: str, config: StackConfig) -> str:
    """Where verify must run to reach the cluster's API server."""
    if not config.cluster.public_access:
        return (
            f"the API server of {cluster} is private: run verify inside the environment's VPC "
            "(its runner, or a CloudShell VPC environment: docs/runbooks/README.md)"
        )
    return (
        f"the API server of {cluster} answers only clusterPublicAccessCidrs from outside the "
        "VPC: run verify from one of them, or inside the VPC (docs/runbooks/README.md)"
    )


def _alarms(live: _Live, expected: Expected, config: StackConfig) -> list[Check]:
    """The alarms named after the model's endpoint (its endpoint's, and drift), and its
    Deployment's replicas alarm when that exists."""
    prefix = naming.endpoint_name(expected.model, config.environment) + "-"
    try:
        alarms = live.read("CloudWatch", lambda: read_alarms(live.cloudwatch, prefix=prefix))
        if expected.deployment is not None:
            replicas = serving_replicas_alarm(
                cluster=naming.cluster_name(config.environment),
                namespace=expected.deployment[0],
                service=expected.deployment[1],
                min_replicas=config.serving.min_replicas,
            ).name
            alarms += live.read(
                "CloudWatch", lambda: read_alarms(live.cloudwatch, names=[replicas])
            )
    except UnreachableError as error:
        return [not_read(f"alarms {expected.model}", "state", "none in ALARM", str(error))]
    return alarm_checks(
        expected.model,
        alarms,
        endpoint_prefix=prefix if expected.endpoint is not None else None,
    )
