"""AWS as the runtime packages' tests see it: moto clients and the names a stack would create."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
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


@dataclass
class EndpointUpdates:
    """What `support_endpoint_updates` adds to moto, and what it was asked."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    """Each UpdateEndpoint call's parameters, as sent."""
    in_progress: dict[str, str] = field(default_factory=dict)
    """Endpoint -> the configuration an update (made to look in progress) moves to."""
    roll_back: set[str] = field(default_factory=set)
    """Endpoints whose next update SageMaker's alarms roll back: it ends InService on the
    configuration it started from, as a guardrail rollback does."""

    def start_update(self, backend: Any, endpoint: str, config: str) -> None:
        """The endpoint in the middle of a blue/green update to `config`: DescribeEndpoint says
        Updating and names it in PendingDeploymentSummary; the old configuration serves."""
        backend.endpoints[endpoint].endpoint_status = "Updating"
        self.in_progress[endpoint] = config


def support_endpoint_updates(monkeypatch: pytest.MonkeyPatch) -> EndpointUpdates:
    """Extends moto 5, which lacks UpdateEndpoint, with SageMaker's documented behaviour
    (API reference, UpdateEndpoint and DescribeEndpoint): the endpoint must be InService
    ("Cannot update in-progress endpoint" otherwise), the configuration must exist, the
    variants' instance counts are kept with RetainAllVariantProperties and reset to the new
    configuration's initial counts without it; an update in progress shows as Updating with a
    PendingDeploymentSummary."""
    from moto.sagemaker.exceptions import ValidationError
    from moto.sagemaker.models import SageMakerModelBackend
    from moto.sagemaker.responses import SageMakerResponse

    state = EndpointUpdates()

    def update_endpoint(self: Any) -> Any:
        from moto.core.responses import ActionResult

        params = {
            key: self._get_param(key)
            for key in (
                "EndpointName",
                "EndpointConfigName",
                "RetainAllVariantProperties",
                "DeploymentConfig",
            )
        }
        state.requests.append(params)
        backend = self.sagemaker_backend
        name, config_name = params["EndpointName"], params["EndpointConfigName"]
        endpoint = backend.endpoints.get(name)
        if endpoint is None:
            raise ValidationError(message=f"Could not find endpoint '{name}'.")
        if endpoint.endpoint_status != "InService":
            raise ValidationError(message=f"Cannot update in-progress endpoint '{endpoint.arn}'.")
        config = backend.endpoint_configs.get(config_name)
        if config is None:
            raise ValidationError(message=f"Could not find endpoint configuration '{config_name}'.")
        if name in state.roll_back:
            state.roll_back.discard(name)
        else:
            endpoint.endpoint_config_name = config_name
            if not params["RetainAllVariantProperties"]:
                endpoint.production_variants = endpoint._process_production_variants(
                    config.production_variants
                )
        return ActionResult({"EndpointArn": endpoint.arn})

    original = SageMakerModelBackend.describe_endpoint

    def describe_endpoint(self: Any, endpoint_name: str) -> dict[str, Any]:
        described = dict(original(self, endpoint_name))
        pending = state.in_progress.get(endpoint_name)
        if pending and self.endpoints[endpoint_name].endpoint_status == "Updating":
            described["PendingDeploymentSummary"] = {
                "EndpointConfigName": pending,
                "StartTime": described.get("LastModifiedTime"),
            }
        return described

    monkeypatch.setattr(SageMakerResponse, "update_endpoint", update_endpoint, raising=False)
    monkeypatch.setattr(SageMakerModelBackend, "describe_endpoint", describe_endpoint)
    return state
