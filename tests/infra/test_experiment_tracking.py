"""`mlflowServerSize`: the SageMaker managed MLflow tracking server, its role, what training may
do on it and how training finds it, as the program declares them under the mock runtime."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.offline.runner import ProgramRun
from infra.project import outputs

SERVER = "aws:sagemaker/mlflowTrackingServer:MlflowTrackingServer"
PROD_SERVER = "arn:aws:sagemaker:eu-west-1:123456789012:mlflow-tracking-server/mlstack-prod"


def training_env(run: ProgramRun) -> dict[str, str]:
    [job] = [
        r
        for r in run.of_type("kubernetes:batch/v1:CronJob")
        if r.inputs["metadata"]["name"] == "training-demo"
    ]
    [container] = job.inputs["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    return {item["name"]: item["value"] for item in container["env"]}


def statements(run: ProgramRun, name: str) -> dict[str, Any]:
    document = json.loads(run.named(name).inputs["policy"])
    return {statement["Sid"]: statement for statement in document["Statement"]}


def test_a_sized_stack_declares_the_server_with_artifacts_in_the_models_bucket(
    stack_runs: dict[str, ProgramRun],
) -> None:
    run = stack_runs["prod"]
    [server] = run.of_type(SERVER)
    bucket = run.named("storage-models-bucket").physical_id
    assert server.inputs["trackingServerName"] == "mlstack-prod"
    assert server.inputs["trackingServerSize"] == "Small"
    assert server.inputs["artifactStoreUri"] == f"s3://{bucket}/mlflow/"
    assert server.inputs["automaticModelRegistration"] is False
    assert server.protect, "prod's deletion protection keeps the runs' records"
    component = next(r for r in run.resources if r.urn == server.parent_urn)
    assert component.resource_type == "mlstack:sagemaker:ExperimentTracking"
    assert server.inputs["roleArn"] == run.named("tracking-role").props["arn"]
    assert run.outputs[outputs.MLFLOW_TRACKING_SERVER_ARN] == PROD_SERVER
    assert run.outputs[outputs.MLFLOW_TRACKING_SERVER_URL].startswith("https://")


def test_the_server_has_its_own_role_assumed_by_sagemaker_of_the_account(
    stack_runs: dict[str, ProgramRun],
) -> None:
    run = stack_runs["prod"]
    trust = json.loads(run.named("tracking-role").inputs["assumeRolePolicy"])
    [statement] = trust["Statement"]
    assert statement["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}
    bucket = run.named("storage-models-bucket").props["arn"]
    granted = statements(run, "tracking-permissions")
    assert granted["ReadWriteRunArtifacts"]["Resource"] == [f"{bucket}/mlflow/*"]
    assert granted["UseEnvironmentKey"]["Resource"] == [run.named("key-key").props["arn"]]


def test_training_is_pointed_at_the_server_and_may_record_runs_there_only(
    stack_runs: dict[str, ProgramRun],
) -> None:
    run = stack_runs["prod"]
    environment = training_env(run)
    assert environment["MLFLOW_TRACKING_URI"] == PROD_SERVER
    assert environment["MLSTACK_ENVIRONMENT"] == "prod"
    granted = statements(run, "workloads-training-permissions")
    assert granted["RecordRuns"]["Resource"] == [PROD_SERVER]
    assert all(a.startswith("sagemaker-mlflow:") for a in granted["RecordRuns"]["Action"])


@pytest.mark.parametrize("stack", ["dev", "local"])
def test_without_a_size_there_is_no_server_and_training_is_not_tracked(
    stack: str, stack_runs: dict[str, ProgramRun]
) -> None:
    run = stack_runs[stack]
    assert run.of_type(SERVER) == []
    assert outputs.MLFLOW_TRACKING_SERVER_ARN not in run.outputs
    if stack == "dev":
        assert "MLFLOW_TRACKING_URI" not in training_env(run)
        assert "RecordRuns" not in statements(run, "workloads-training-permissions")
