"""Reading registered model versions from a SageMaker model package group, through boto3 only.

The serving package is the lowest layer that needs it (a server may be told which registered
version to serve), so the reader lives here; training writes versions with the same property
names, and the stack resolves its pinned versions with the same function.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient

# Metrics are stored as customer metadata properties named `metric.<name>`.
METRIC_PREFIX = "metric."
MODEL_SHA256_PROPERTY = "model_sha256"
_ARN = re.compile(r"^arn:[a-z-]+:sagemaker:[a-z0-9-]+:\d{12}:model-package/(?P<group>[^/]+)/\d+$")
_GROUP_VERSION = re.compile(r"^(?P<group>[A-Za-z0-9](?:-*[A-Za-z0-9]){0,62})/(?P<version>\d+)$")
REFERENCE_FORMS = "a model package ARN, or <group>/<version> such as churn-dev/3"


class RegistryError(RuntimeError):
    """The registry refused, could not be reached, or has no such version; the message says
    which group or version and why."""


@dataclass(frozen=True)
class ModelPackage:
    """One registered version, as the registry describes it."""

    arn: str
    group: str
    version: int
    approval_status: str
    model_data_url: str
    image: str
    metrics: dict[str, float] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)
    """Customer metadata: lineage (data and model sha256, commit, report) and metrics."""

    @property
    def model_sha256(self) -> str:
        return self.properties.get(MODEL_SHA256_PROPERTY, "")


def sagemaker_client() -> SageMakerClient:
    import boto3

    return boto3.client("sagemaker")


def describe_model_package(client: SageMakerClient, arn: str) -> ModelPackage:
    """The version behind an ARN, with its model data, image, status and metrics."""
    try:
        described: Any = client.describe_model_package(ModelPackageName=arn)
    except Exception as error:  # boto3's errors: one readable message
        raise RegistryError(f"model package {arn} cannot be read: {error}") from error
    container = described["InferenceSpecification"]["Containers"][0]
    properties = dict(described.get("CustomerMetadataProperties") or {})
    return ModelPackage(
        arn=described["ModelPackageArn"],
        group=described.get("ModelPackageGroupName") or arn.rsplit("/", 2)[-2],
        version=int(described.get("ModelPackageVersion") or arn.rsplit("/", 1)[-1]),
        approval_status=described.get("ModelApprovalStatus", ""),
        model_data_url=container.get("ModelDataUrl", ""),
        image=container.get("Image", ""),
        metrics={
            key.removeprefix(METRIC_PREFIX): float(value)
            for key, value in properties.items()
            if key.startswith(METRIC_PREFIX)
        },
        properties=properties,
    )


def find_version(client: SageMakerClient, group: str, version: int) -> ModelPackage:
    """Version `version` of `group`; a clear error naming the versions there are if absent."""
    numbers: list[int] = []
    try:
        pages = client.get_paginator("list_model_packages").paginate(
            ModelPackageGroupName=group, SortBy="CreationTime", SortOrder="Ascending"
        )
        for page in pages:
            for summary in page["ModelPackageSummaryList"]:
                number = int(summary.get("ModelPackageVersion") or 0)
                if number == version:
                    return describe_model_package(client, summary["ModelPackageArn"])
                numbers.append(number)
    except RegistryError:
        raise
    except Exception as error:
        raise RegistryError(f"model package group {group!r} cannot be read: {error}") from error
    there = ", ".join(map(str, numbers)) if numbers else "none"
    raise RegistryError(
        f"model package group {group!r} has no version {version}; versions there: {there}"
    )


def resolve_reference(client: SageMakerClient, reference: str) -> ModelPackage:
    """A version named by its ARN or as `<group>/<version>`."""
    if _ARN.match(reference):
        return describe_model_package(client, reference)
    matched = _GROUP_VERSION.match(reference)
    if matched is None:
        raise RegistryError(f"model package {reference!r}: allowed: {REFERENCE_FORMS}")
    return find_version(client, matched["group"], int(matched["version"]))
