"""Fixtures shared by the runtime packages' tests: AWS under moto, demo data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from serving import storage
from tests.aws import (
    GROUP,
    MODELS_BUCKET,
    REGION,
    Aws,
    Emulator,
    running_emulator,
    use_emulator_credentials,
)
from training.demo import write_demo_dataset


def _keep_customer_metadata_on_update(monkeypatch: pytest.MonkeyPatch) -> None:
    """Extends moto: AWS's UpdateModelPackage adds to or updates the customer metadata and keeps
    the rest; moto 5.2 replaces it with whatever the call passes (None when approving), which
    would erase a version's lineage. This restores AWS's behaviour for our tests."""
    from moto.sagemaker.models import SageMakerModelBackend

    original = SageMakerModelBackend.update_model_package

    def update(self: Any, model_package_arn: str, *args: Any, **kwargs: Any) -> str:
        name = self.model_package_name_mapping.get(model_package_arn, model_package_arn)
        existing = dict(
            getattr(self.model_packages.get(name), "customer_metadata_properties", None) or {}
        )
        given = kwargs.get("customer_metadata_properties")
        kwargs["customer_metadata_properties"] = {**existing, **(given or {})}
        return original(self, model_package_arn, *args, **kwargs)

    monkeypatch.setattr(SageMakerModelBackend, "update_model_package", update)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    _keep_customer_metadata_on_update(monkeypatch)
    use_emulator_credentials(monkeypatch)
    storage.s3_client.cache_clear()
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=MODELS_BUCKET)
        sagemaker = boto3.client("sagemaker", region_name=REGION)
        sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
        yield Aws(s3, sagemaker, f"s3://{MODELS_BUCKET}/models", GROUP)
    storage.s3_client.cache_clear()


@pytest.fixture(scope="session")
def demo_dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The demo CSV and its spec, written once per session."""
    return write_demo_dataset(tmp_path_factory.mktemp("demo"))


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """A moto_server on 127.0.0.1: what a separate process reaches through AWS_ENDPOINT_URL."""
    with running_emulator() as running:
        yield running
