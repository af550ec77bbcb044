"""AWS as the runtime packages' tests see it: moto clients and the names a stack would create."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

REGION = "us-east-1"
MODELS_BUCKET = "mlstack-models-test"
GROUP = "demo-test"
SERVING_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/serving@sha256:" + "0" * 64


@dataclass(frozen=True)
class Aws:
    """moto's S3 and SageMaker with the buckets and model package group a stack would create."""

    s3: Any
    sagemaker: Any
    models_uri: str
    group: str

    def model_objects(self) -> list[str]:
        listed = self.s3.list_objects_v2(Bucket=MODELS_BUCKET)
        return sorted(item["Key"] for item in listed.get("Contents", []))

    def versions(self) -> list[dict[str, Any]]:
        summaries = self.sagemaker.list_model_packages(
            ModelPackageGroupName=self.group, SortBy="CreationTime", SortOrder="Ascending"
        )["ModelPackageSummaryList"]
        return [
            self.sagemaker.describe_model_package(ModelPackageName=s["ModelPackageArn"])
            for s in summaries
        ]


def use_emulator_credentials(env: pytest.MonkeyPatch, region: str = REGION) -> None:
    """Dummy credentials for moto, and nothing that could send a call elsewhere."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": region,
    }.items():
        env.setenv(name, value)
    env.delenv("AWS_ENDPOINT_URL", raising=False)
    env.delenv("AWS_PROFILE", raising=False)
