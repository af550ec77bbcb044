"""What the tests of `promote`, `rollback` and `verify` share: a copy of the project's stack files
to edit, and a registry in moto holding versions as training registers them."""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.operations.audit import AuditLog, AuditRecord
from infra.project.paths import PROJECT_FILE, PROJECT_ROOT, known_stacks
from mlstack_common.registry import ModelRegistry

REGION = "eu-west-1"
"""The region of dev, staging and prod."""
SERVING_DIGEST = "sha256:" + "5" * 64
TRAINING_DIGEST = "sha256:" + "7" * 64


SCRATCH_STACK_PREFIX = "scratch-"
"""Stack files a test writes beside the real ones for a moment (`mlstack plan` reads only the
project root): a copy of the checkout, made meanwhile by a test in another worker, leaves them
out."""


def copy_project(destination: Path) -> Path:
    """Pulumi.yaml and every stack file, as a checkout holds them."""
    destination.mkdir(parents=True, exist_ok=True)
    shutil.copy(PROJECT_FILE, destination)
    for stack in known_stacks():
        if not stack.startswith(SCRATCH_STACK_PREFIX):
            shutil.copy(PROJECT_ROOT / f"Pulumi.{stack}.yaml", destination)
    return destination


@dataclass(frozen=True)
class Registry:
    """Model package groups in moto, versions registered the way training registers them."""

    client: Any
    logs: Any = None
    """CloudWatch Logs, where each environment's audit log is."""

    def audit(self, environment: str) -> list[AuditRecord]:
        """The environment's audit log, oldest first."""
        return AuditLog(self.logs, environment).read()

    def register(self, group: str, sha: str, status: str = "Approved") -> int:
        with contextlib.suppress(self.client.exceptions.ClientError):  # the group is there
            self.client.create_model_package_group(ModelPackageGroupName=group)
        prefix = f"s3://models-{group}/models/{group}/{sha[:12]}"
        return (
            ModelRegistry(group, self.client)
            .register(
                serving_image=f"123456789012.dkr.ecr.{REGION}.amazonaws.com/serving@{SERVING_DIGEST}",
                model_data_url=f"{prefix}/model.tar.gz",
                evaluation_url=f"{prefix}/runs/1/evaluation.json",
                approval_status=status,
                description="test",
                metrics={"roc_auc": 0.97},
                lineage={"model_sha256": sha},
                commit="abc",
            )
            .version
        )

    def status(self, group: str, version: int) -> tuple[str, str]:
        """A version's status and approval description."""
        arn = next(
            summary["ModelPackageArn"]
            for summary in self.client.list_model_packages(ModelPackageGroupName=group)[
                "ModelPackageSummaryList"
            ]
            if summary["ModelPackageVersion"] == version
        )
        described = self.client.describe_model_package(ModelPackageName=arn)
        return described["ModelApprovalStatus"], described.get("ApprovalDescription", "")
