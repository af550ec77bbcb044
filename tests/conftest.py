"""Fixtures shared by the runtime packages' tests: AWS under moto, demo data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from mlstack_common import storage
from tests.aws import (
    GROUP,
    MODELS_BUCKET,
    REGION,
    Aws,
    Emulator,
    keep_customer_metadata_on_update,
    running_emulator,
    use_emulator_credentials,
)
from training.demo import write_demo_dataset


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The image tests first: on a machine whose engine has not built the current images they
    take longest (fetching the engine, making the base, two builds), so started first they run
    beside every other file rather than after them."""
    items.sort(key=lambda item: "images" not in item.path.parent.parts)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    keep_customer_metadata_on_update(monkeypatch)
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


@pytest.fixture(autouse=True)
def no_tracking_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's own `MLFLOW_TRACKING_URI` would make every training test record runs in
    their server (or fail when it is down); the tests that track set their own."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
