"""A model package group's versions and their approval, as `promote` and `rollback` change them.

Reading one version's details is `serving.registry`'s job; this module lists a group and
records decisions (approval, and who rolled a version back and why) on the versions themselves,
so the registry carries the history along with the stack files."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from infra.operations.errors import UnreachableError

APPROVED = "Approved"
REJECTED = "Rejected"


@dataclass(frozen=True)
class VersionSummary:
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
        raise UnreachableError(f"model package group {group!r} cannot be read: {error}") from error
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
        raise UnreachableError(f"model package {version.arn} cannot be updated: {error}") from error


def approval_description(client: Any, arn: str) -> str:
    try:
        return str(
            client.describe_model_package(ModelPackageName=arn).get("ApprovalDescription") or ""
        )
    except Exception as error:
        raise UnreachableError(f"model package {arn} cannot be read: {error}") from error
