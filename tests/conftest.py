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

LONGEST_FIRST = (
    "tests/images/",
    "tests/training/test_tracking.py",
    "tests/infra/test_every_key.py",
    "tests/serving/test_answer_matrix.py",
    "tests/training/test_contract.py",
)
"""The files that take longest (docs/testing.md has their figures), in the order the test
processes should start them. Each process takes whole files (`--dist loadfile`) and the next
one when it is free, so the longest started first run beside the rest instead of after them:
the image tests (on a machine whose engine has not built the current images they fetch the
engine, make the base and build both images), then the MLflow-tracked training matrix."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest files first, the others in their collection order."""
    root = Path(__file__).parent.parent

    def rank(item: pytest.Item) -> int:
        path = item.path.relative_to(root).as_posix()
        return next(
            (i for i, prefix in enumerate(LONGEST_FIRST) if path.startswith(prefix)),
            len(LONGEST_FIRST),
        )

    items.sort(key=rank)


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
