"""Registering model versions in a SageMaker model package group, through boto3 only."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from serving.registry import (
    METRIC_PREFIX,
    ModelPackage,
    RegistryError,
    describe_model_package,
    sagemaker_client,
)

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient

__all__ = ["ModelRegistry", "RegisteredVersion", "RegistryError"]

CONTENT_TYPES = ["application/json", "text/csv"]
# SageMaker's limits on customer metadata values.
MAX_METADATA_VALUE = 256
APPROVAL_STATUSES = ("Approved", "PendingManualApproval", "Rejected")


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
            ModelApprovalStatus="Approved",
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
