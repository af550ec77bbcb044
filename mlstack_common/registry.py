"""The model registry (a SageMaker model package group per model and environment), through boto3
only: the one client that training registers with, that a server, the drift job and the stack
resolve versions through, and that `promote` and `rollback` list and approve with.

One error type (`RegistryError`) for every refusal or failure to reach it, and one constant per
approval status, so "Approved" is spelled once.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient

APPROVED: Final = "Approved"
"""The only status a stack serves, and what `promote` sets."""
PENDING: Final = "PendingManualApproval"
REJECTED: Final = "Rejected"
APPROVAL_STATUSES = (APPROVED, PENDING, REJECTED)
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


@dataclass(frozen=True)
class VersionSummary:
    """One version as a listing shows it: enough to choose, not its model data."""

    version: int
    status: str
    arn: str


def list_versions(client: Any, group: str) -> list[VersionSummary]:
    """Every version of `group`, oldest first."""
    versions: list[VersionSummary] = []
    try:
        pages = client.get_paginator("list_model_packages").paginate(
            ModelPackageGroupName=group, SortBy="CreationTime", SortOrder="Ascending"
        )
        for page in pages:
            versions.extend(
                VersionSummary(
                    version=int(summary.get("ModelPackageVersion") or 0),
                    status=summary.get("ModelApprovalStatus", ""),
                    arn=summary["ModelPackageArn"],
                )
                for summary in page["ModelPackageSummaryList"]
            )
    except Exception as error:  # boto3's errors: one readable message
        raise RegistryError(f"model package group {group!r} cannot be read: {error}") from error
    return sorted(versions, key=lambda summary: summary.version)


def describe_versions(versions: list[VersionSummary]) -> str:
    """`1 (Approved), 2 (Rejected)` for messages."""
    return ", ".join(f"{v.version} ({v.status})" for v in versions) or "none"


def set_approval(client: Any, version: VersionSummary, status: str, description: str) -> None:
    """Set a version's status with the reason; the status is always sent with the description
    (the description is the status's own, and a description alone would leave the status to
    whatever the API does without one)."""
    try:
        client.update_model_package(
            ModelPackageArn=version.arn,
            ModelApprovalStatus=status,
            ApprovalDescription=description[:1024],
        )
    except Exception as error:
        raise RegistryError(f"model package {version.arn} cannot be updated: {error}") from error


def approval_description(client: Any, arn: str) -> str:
    try:
        return str(
            client.describe_model_package(ModelPackageName=arn).get("ApprovalDescription") or ""
        )
    except Exception as error:
        raise RegistryError(f"model package {arn} cannot be read: {error}") from error


CONTENT_TYPES = ["application/json", "text/csv"]
# SageMaker's limits on customer metadata values.
MAX_METADATA_VALUE = 256


@dataclass(frozen=True)
class RegisteredVersion:
    arn: str
    version: int
    approval_status: str


def _version_of(arn: str) -> int:
    return int(arn.rsplit("/", 1)[-1])


class ModelRegistry:
    """One model package group's versions."""

    def __init__(self, group: str, client: SageMakerClient | None = None) -> None:
        self.group = group
        self._client = client

    @cached_property
    def client(self) -> SageMakerClient:
        return self._client if self._client is not None else sagemaker_client()

    def check_group(self) -> None:
        """Fail before anything is published when the group does not exist or is unreadable."""
        try:
            self.client.describe_model_package_group(ModelPackageGroupName=self.group)
        except Exception as error:  # boto3's errors: one readable message
            raise RegistryError(
                f"model package group {self.group!r} cannot be used ({error}); allowed: a group "
                "the stack created (see the modelPackageGroups output)"
            ) from error

    def latest_approved(self) -> ModelPackage | None:
        """The version a stack may be serving: the newest Approved one."""
        summaries = self.client.list_model_packages(
            ModelPackageGroupName=self.group,
            ModelApprovalStatus=APPROVED,
            SortBy="CreationTime",
            SortOrder="Descending",
            MaxResults=1,
        )["ModelPackageSummaryList"]
        if not summaries:
            return None
        return describe_model_package(self.client, summaries[0]["ModelPackageArn"])

    def register(
        self,
        *,
        serving_image: str,
        model_data_url: str,
        evaluation_url: str,
        approval_status: str,
        description: str,
        metrics: Mapping[str, float],
        lineage: Mapping[str, str],
        commit: str,
    ) -> RegisteredVersion:
        """Create the next version; SageMaker numbers it."""
        if approval_status not in APPROVAL_STATUSES:
            raise ValueError(f"approval_status = {approval_status!r}: allowed: {APPROVAL_STATUSES}")
        properties = {key: value[:MAX_METADATA_VALUE] for key, value in lineage.items() if value}
        properties.update(
            {f"{METRIC_PREFIX}{k}": f"{v:.6g}" for k, v in metrics.items() if math.isfinite(v)}
        )
        response = self.client.create_model_package(
            ModelPackageGroupName=self.group,
            ModelPackageDescription=description[:1024],
            InferenceSpecification={
                "Containers": [{"Image": serving_image, "ModelDataUrl": model_data_url}],
                "SupportedContentTypes": CONTENT_TYPES,
                "SupportedResponseMIMETypes": CONTENT_TYPES,
            },
            ModelMetrics={
                "ModelQuality": {
                    "Statistics": {"ContentType": "application/json", "S3Uri": evaluation_url}
                }
            },
            ModelApprovalStatus=approval_status,  # type: ignore[arg-type]
            MetadataProperties={"CommitId": commit or "unknown", "GeneratedBy": "mlstack-train"},
            CustomerMetadataProperties=properties,
        )
        arn = response["ModelPackageArn"]
        return RegisteredVersion(arn=arn, version=_version_of(arn), approval_status=approval_status)
