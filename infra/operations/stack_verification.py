"""`verify` for one stack: what its files declare (the pins resolved through its registry, the
image digests it pins or its outputs name) against what its endpoints and cluster run."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from infra.config.serving_targets import serving_targets
from infra.config.stack import load_config
from infra.config.stackfiles import load_stack_settings
from infra.manifests.serving import serving_name
from infra.operations.aws_access import StackAws, stack_aws
from infra.operations.errors import PulumiCliMissingError
from infra.operations.live_state import digest_of, read_deployment, read_endpoint
from infra.operations.verification import (
    Expected,
    Report,
    deployment_checks,
    endpoint_checks,
    registry_checks,
)
from infra.project import naming
from infra.project.outputs import SERVING_IMAGE
from mlstack_common.registry import RegistryError, find_version
from serving.cluster_api import ClusterApi

ClusterConnector = Callable[[StackAws, str, str], ClusterApi]
"""(the stack's AWS, cluster name, namespace) -> a client for its API server."""


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
    aws = stack_aws(settings)
    pins = config.serving.model_versions
    report = Report(stack)
    if not pins:
        report.notes.append(
            "the stack pins no model version: nothing is served, nothing to compare"
        )
        return report
    targets = serving_targets(config, pins)
    image_digest = _declared_image(config.registry.image_digests, read_outputs, report.notes)
    sagemaker = aws.client("sagemaker")
    cluster: ClusterApi | None = None
    for model, version in pins.items():
        group = naming.model_package_group(model, config.environment)
        on_step(f"reading version {version} of {group} from the registry")
        try:
            package = find_version(sagemaker, group, version)
        except RegistryError as error:
            if "has no version" not in str(error):
                raise
            package = None
        expected = Expected(
            model=model,
            version=version,
            package=package,
            group=group,
            image_digest=image_digest,
            endpoint=targets.endpoints.get(model),
            deployment=(naming.WORKLOAD_NAMESPACE, serving_name(model))
            if targets.on_cluster
            else None,
            min_replicas=config.serving.min_replicas,
        )
        report.checks.extend(registry_checks(expected))
        if expected.endpoint is not None:
            on_step(f"reading endpoint {expected.endpoint}")
            report.checks.extend(
                endpoint_checks(expected, read_endpoint(sagemaker, expected.endpoint))
            )
        if expected.deployment is not None:
            namespace, name = expected.deployment
            if cluster is None:
                on_step(f"connecting to cluster {naming.cluster_name(config.environment)}")
                cluster = connect_cluster(aws, naming.cluster_name(config.environment), namespace)
            on_step(f"reading deployment {namespace}/{name}")
            report.checks.extend(
                deployment_checks(expected, read_deployment(cluster, namespace, name))
            )
    return report
