"""Promote, verify and roll back, end to end, as an operator runs them: the `mlstack` executable
against an AWS emulator (moto_server) holding a registry and a SageMaker endpoint.

The emulator has no UpdateEndpoint, so "deploying" here creates what the stack's program declares
(its Model, EndpointConfiguration and Endpoint, read from an offline run of the program against
the emulator's registry) and swaps the endpoint's configuration by deleting and re-creating the
endpoint — the state SageMaker leaves, not the way it gets there."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from infra.config.stack import load_config
from infra.config.stackfiles import load_stack_settings
from infra.offline.registry import offline_registry
from infra.offline.runner import ProgramRun, run_program
from infra.project import naming
from infra.project.paths import PROJECT_ROOT
from mlstack_common.exits import ExitStatus
from mlstack_common.registry import ModelRegistry
from tests.aws import Emulator, running_emulator
from tests.infra.operating import SERVING_DIGEST, copy_project
from tests.logs import log_messages, log_records

MLSTACK = Path(sys.executable).parent / "mlstack"
GROUP = "demo-local"


def mlstack(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(MLSTACK), *args, "--project-dir", str(project)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(project)},
    )


@pytest.fixture(scope="module")
def emulator() -> Any:
    with running_emulator() as running:
        yield running


@pytest.fixture
def project(tmp_path: Path, emulator: Emulator) -> Path:
    """The `local` stack, its AWS provider on this emulator, serving on SageMaker from a
    prebuilt serving image (on an instance type moto's list of types knows)."""
    root = copy_project(tmp_path / "project")
    logs = emulator.client("logs")
    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_group(logGroupName=naming.audit_log_group("local"))
    path = root / "Pulumi.local.yaml"
    text = path.read_text().replace("http://127.0.0.1:5000", emulator.endpoint)
    path.write_text(
        text
        + "  mlstack:servingTarget: sagemaker\n"
        + "  mlstack:servingInstanceType: ml.m5.large\n"
        + f"  mlstack:imageDigests:\n    - serving={SERVING_DIGEST}\n"
    )
    return root


def register(emulator: Emulator, sha: str) -> int:
    client = emulator.client("sagemaker")
    if not client.list_model_package_groups(NameContains=GROUP)["ModelPackageGroupSummaryList"]:
        client.create_model_package_group(ModelPackageGroupName=GROUP)
    prefix = f"s3://models/{GROUP}/{sha[:12]}"
    return (
        ModelRegistry(GROUP, client)
        .register(
            serving_image=f"123456789012.dkr.ecr.us-east-1.amazonaws.com/serving@{SERVING_DIGEST}",
            model_data_url=f"{prefix}/model.tar.gz",
            evaluation_url=f"{prefix}/runs/1/evaluation.json",
            approval_status="Approved",
            description="e2e",
            metrics={"roc_auc": 0.97},
            lineage={"model_sha256": sha},
            commit="abc",
        )
        .version
    )


def declared(project: Path, emulator: Emulator) -> ProgramRun:
    """The program's run for the project's `local` stack, its pins resolved by the emulator."""
    settings = load_stack_settings("local", project)
    config = load_config(settings.values)
    with offline_registry(
        config.environment, config.serving.model_versions, config.region, endpoint=emulator.endpoint
    ):
        return run_program(settings)


def deploy(run: ProgramRun, emulator: Emulator, suffix: str) -> str:
    """Create the declared Model and EndpointConfiguration (named with `suffix`, as Pulumi's
    auto-naming would make them unique), point the endpoint at them and create its alarms;
    returns the configuration's name."""
    client = emulator.client("sagemaker")
    [model] = run.of_type("aws:sagemaker/model:Model")
    [config] = run.of_type("aws:sagemaker/endpointConfiguration:EndpointConfiguration")
    [endpoint] = run.of_type("aws:sagemaker/endpoint:Endpoint")
    container = model.inputs["primaryContainer"]
    model_name, config_name = f"demo-model-{suffix}", f"demo-config-{suffix}"
    client.create_model(
        ModelName=model_name,
        ExecutionRoleArn="arn:aws:iam::123456789012:role/endpoint",
        PrimaryContainer={
            "Image": container["image"],
            "ModelDataUrl": container["modelDataUrl"],
            "Environment": container["environment"],
        },
        Tags=[{"Key": k, "Value": v} for k, v in model.inputs["tags"].items()],
    )
    [variant] = config.inputs["productionVariants"]
    client.create_endpoint_config(
        EndpointConfigName=config_name,
        ProductionVariants=[
            {
                "VariantName": variant["variantName"],
                "ModelName": model_name,
                "InstanceType": variant["instanceType"],
                "InitialInstanceCount": variant["initialInstanceCount"],
            }
        ],
    )
    serve_config(emulator, endpoint.inputs["name"], config_name)
    cloudwatch = emulator.client("cloudwatch")
    for alarm in run.of_type("aws:cloudwatch/metricAlarm:MetricAlarm"):
        # By name only: verify reads the alarms' states, which the emulator starts at OK.
        cloudwatch.put_metric_alarm(
            AlarmName=alarm.inputs["name"],
            Namespace="AWS/SageMaker",
            MetricName="Invocation5XXErrors",
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=1,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
        )
    return config_name


def serve_config(emulator: Emulator, endpoint: str, config_name: str) -> None:
    client = emulator.client("sagemaker")
    if client.list_endpoints(NameContains=endpoint)["Endpoints"]:
        client.delete_endpoint(EndpointName=endpoint)
    client.create_endpoint(EndpointName=endpoint, EndpointConfigName=config_name)


def test_verify_catches_a_silent_rollback_and_rollback_makes_the_stack_true_again(
    project: Path, emulator: Emulator
) -> None:
    assert register(emulator, "a" * 64) == 1
    assert register(emulator, "b" * 64) == 2

    promoted = mlstack(
        project, "promote", "local", "--model", "demo", "--version", "1", "--reason", "CHG-1"
    )
    assert promoted.returncode == 0, promoted.stderr
    assert "next: commit Pulumi.local.yaml" in log_messages(promoted.stderr)
    verified = mlstack(project, "verify", "local")  # pinned, not deployed yet
    assert verified.returncode == ExitStatus.REFUSED
    log_records(verified.stderr, "mlstack verify")  # progress only, as JSON lines
    assert "MISMATCH endpoint demo-local: exists: declared yes, live no" in verified.stdout
    v1_config = deploy(declared(project, emulator), emulator, "v1")
    promoted = mlstack(
        project, "promote", "local", "--model", "demo", "--version", "2", "--reason", "CHG-2"
    )
    assert promoted.returncode == 0, promoted.stderr
    assert "+    - demo=2" in promoted.stdout
    deploy(declared(project, emulator), emulator, "v2")

    verified = mlstack(project, "verify", "local")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "ok       endpoint demo-local: model version: 2" in verified.stdout
    assert verified.stdout.rstrip().endswith("local: live matches the stack (8 checks)")

    # An alarm fired during the traffic shift: SageMaker put v1's configuration back, and the
    # deployment tool still recorded the update as a success.
    serve_config(emulator, "demo-local", v1_config)
    verified = mlstack(project, "verify", "local")
    assert verified.returncode == 1
    assert "MISMATCH endpoint demo-local: model version: declared 2, live 1" in verified.stdout
    assert f"it runs endpoint configuration {v1_config}" in verified.stdout
    assert "local: 3 of 8 checks do not match" in verified.stdout
    report = json.loads(mlstack(project, "verify", "local", "--json").stdout)
    assert report["ok"] is False
    assert {(c["target"], c["item"]) for c in report["checks"] if not c["ok"]} == {
        ("endpoint demo-local", "model version"),
        ("endpoint demo-local", "model data"),
        ("endpoint demo-local", "model package"),
    }

    rolled = mlstack(project, "rollback", "local", "--reason", "p99 alarm during the canary")
    assert rolled.returncode == 0, rolled.stderr
    assert "-    - demo=2\n+    - demo=1" in rolled.stdout
    assert "demo: local goes from version 2 back to 1" in log_messages(rolled.stderr)
    described = emulator.client("sagemaker").describe_model_package(
        ModelPackageName=f"arn:aws:sagemaker:us-east-1:123456789012:model-package/{GROUP}/2"
    )
    assert described["ModelApprovalStatus"] == "Approved"
    assert described["ApprovalDescription"].startswith("rolled back in local to version 1 by ")
    assert described["ApprovalDescription"].endswith(": p99 alarm during the canary")

    verified = mlstack(project, "verify", "local")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "ok       endpoint demo-local: model version: 1" in verified.stdout


def test_a_stack_that_cannot_serve_the_pin_is_left_unchanged(
    project: Path, emulator: Emulator
) -> None:
    """`local` as the project ships it serves nowhere (no cluster, no endpoint)."""
    register(emulator, "c" * 64)
    path = project / "Pulumi.local.yaml"
    shipped = (PROJECT_ROOT / "Pulumi.local.yaml").read_text()
    path.write_text(shipped.replace("http://127.0.0.1:5000", emulator.endpoint))
    before = path.read_text()
    promoted = mlstack(
        project, "promote", "local", "--model", "demo", "--version", "1", "--reason", "CHG-1"
    )
    assert promoted.returncode == ExitStatus.REFUSED
    [refusal] = [
        record
        for record in log_records(promoted.stderr, "mlstack promote")
        if record["level"] == "ERROR"
    ]
    assert "Pulumi.local.yaml would no longer be a valid stack:" in refusal["message"]
    assert "mlstack:servingModelVersions" in refusal["message"]
    assert path.read_text() == before
