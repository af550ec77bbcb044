"""AWS as the runtime packages' tests see it: moto clients and the names a stack would create."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from serving.ports import free_port

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


def keep_customer_metadata_on_update(monkeypatch: pytest.MonkeyPatch) -> None:
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


@dataclass
class Emulator:
    """A moto_server on 127.0.0.1: what a server process reaches through AWS_ENDPOINT_URL."""

    endpoint: str

    @property
    def env(self) -> dict[str, str]:
        """What a server process needs to talk to it (and nothing that reaches AWS)."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def client(self, service: str, region: str = "us-east-1") -> Any:
        return boto3.client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.endpoint,
            region_name=region,
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )


@contextmanager
def running_emulator() -> Iterator[Emulator]:
    """moto_server in its own process on a free loopback port, for the block's duration."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    emulator = Emulator(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{emulator.endpoint}/moto-api/", timeout=1).close()  # noqa: S310
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.1)
        yield emulator
    finally:
        process.terminate()
        process.wait()
