"""The model versions a stack serves: its pins (`mlstack:servingModelVersions`), resolved through
the registry at deploy time to the model data, sha256 and metrics that the workloads get.

A plain function over a boto3 SageMaker client, so the same code runs against AWS, an emulator
and moto. A pin the registry cannot satisfy stops the program before anything is declared, with
the group and the version named: serving a version nobody approved is never a silent fallback.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import pulumi

from infra.project import naming
from mlstack_common.registry import APPROVED, ModelPackage, RegistryError, find_version

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient

PINS_KEY = "mlstack:servingModelVersions"
SERVABLE_STATUS = APPROVED


class PinnedVersionError(pulumi.RunError):
    """A pinned version does not exist, cannot be read, or is not Approved (a RunError: the
    CLI shows the message alone, without a traceback)."""


def resolve_pinned_versions(
    client: SageMakerClient, environment: str, pins: Mapping[str, int]
) -> dict[str, ModelPackage]:
    """Each pinned model's registered version, by model name, in the pins' order."""
    resolved: dict[str, ModelPackage] = {}
    for model, version in pins.items():
        group = naming.model_package_group(model, environment)
        try:
            package = find_version(client, group, version)
        except RegistryError as error:
            raise PinnedVersionError(f"{PINS_KEY}: {model}={version}: {error}") from error
        if package.approval_status != SERVABLE_STATUS:
            raise PinnedVersionError(
                f"{PINS_KEY}: {model}={version}: version {version} of model package group "
                f"{group!r} is {package.approval_status or 'without a status'}; allowed: an "
                f"{SERVABLE_STATUS} version (approve it in the registry, or pin another)"
            )
        resolved[model] = package
    return resolved


def registry_client(region: str) -> SageMakerClient:
    """The registry of the stack's region (empty: boto3's own default), with the credentials the
    deployment runs with."""
    import boto3

    return boto3.client("sagemaker", region_name=region or None)
