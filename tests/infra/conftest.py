"""Fixtures that run the whole Pulumi program offline, as the CLI would for a stack file."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infra.config.stack import load_config
from infra.config.stackfiles import load_stack_settings
from infra.offline.registry import offline_registry
from infra.offline.runner import ProgramRun, run_program
from infra.operations import cluster_access
from infra.project import naming
from infra.project.paths import known_stacks
from serving.cluster_api import ClusterApi
from tests import kubernetes_api
from tests.aws import keep_customer_metadata_on_update, use_emulator_credentials
from tests.infra.deployed import DeployedStack, deployed_dev
from tests.infra.operating import REGION, Registry, copy_project

STACKS = tuple(known_stacks())
CLUSTER_STACKS = tuple(
    stack for stack in STACKS if load_config(load_stack_settings(stack).values).cluster.enabled
)
"""The stacks that declare an EKS cluster (all but `local`, whose emulator cannot hold one)."""
SERVING_STACKS = tuple(
    stack
    for stack in STACKS
    if stack in CLUSTER_STACKS
    or load_config(load_stack_settings(stack).values).serving.target != "kubernetes"
)
"""The stacks where a pinned model is served somewhere (`local` serves nowhere: a pin there is
refused, as having no effect)."""
RunStack = Callable[..., ProgramRun]


@pytest.fixture(scope="session")
def stack_runs() -> dict[str, ProgramRun]:
    """One run of the program per stack file, shared by tests that only read it."""
    return {stack: run_program(stack) for stack in STACKS}


CERTIFICATE = "arn:aws:acm:eu-west-1:123456789012:certificate/12345678-1234-1234-1234-123456789012"
"""An ACM certificate in the stacks' region, for serving through an ingress."""


def run_served(stack: str, version: int = 1, **overrides: Any) -> ProgramRun:
    """The stack with the demo model pinned, its registry answered offline (placeholders)."""
    config = load_config(load_stack_settings(stack).values)
    values = {"mlstack:servingModelVersions": [f"demo={version}"]} | {
        f"mlstack:{key}": value for key, value in overrides.items()
    }
    with offline_registry(config.environment, {"demo": version}, config.region):
        return run_program(stack, overrides=values)


@pytest.fixture(scope="session")
def ingress_run() -> ProgramRun:
    """dev serving the demo model through an internal HTTPS load balancer."""
    return run_served("dev", servingIngressCertificateArn=CERTIFICATE)


@pytest.fixture(scope="session")
def served_runs() -> dict[str, ProgramRun]:
    """One run per stack serving a pinned model (`local` as it is: it serves nowhere)."""
    return {
        stack: run_served(stack) if stack in SERVING_STACKS else run_program(stack)
        for stack in STACKS
    }


@pytest.fixture
def run_stack() -> RunStack:
    """Run a stack with config overrides, as after `pulumi config set KEY VALUE`."""

    def run(stack: str, **overrides: Any) -> ProgramRun:
        return run_program(
            stack, overrides={f"mlstack:{key}": value for key, value in overrides.items()}
        )

    return run


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A checkout's Pulumi.yaml and stack files, for commands that edit them."""
    return copy_project(tmp_path / "project")


@pytest.fixture
def deployed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[DeployedStack]:
    """dev as `pulumi up` leaves it, in moto, with its outputs."""
    keep_customer_metadata_on_update(monkeypatch)
    use_emulator_credentials(monkeypatch, REGION)
    with deployed_dev(tmp_path) as stack:
        yield stack


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[Registry]:
    """The stacks' region's model registry, in moto."""
    keep_customer_metadata_on_update(monkeypatch)
    use_emulator_credentials(monkeypatch, REGION)
    with mock_aws():
        logs = boto3.client("logs", region_name=REGION)
        for environment in ("dev", "staging", "prod"):
            logs.create_log_group(logGroupName=naming.audit_log_group(environment))
        yield Registry(boto3.client("sagemaker", region_name=REGION), logs)


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> Iterator[kubernetes_api.ApiServer]:
    """An API server on 127.0.0.1, holding nothing yet, that the commands reach as they would
    the stack's cluster (`cluster_access.cluster_api`)."""
    with kubernetes_api.api_server({}) as server:
        monkeypatch.setattr(
            cluster_access,
            "cluster_api",
            lambda aws, name, namespace: ClusterApi(
                server.url, kubernetes_api.TOKEN, None, namespace
            ),
        )
        yield server
