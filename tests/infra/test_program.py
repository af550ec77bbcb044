"""The whole program under the mock runtime, for every stack file."""

from __future__ import annotations

import pytest

from infra import outputs
from infra.config import load_config
from infra.offline.runner import ProgramRun, run_program
from infra.stackfiles import StackSettings, load_stack_settings

from .conftest import CLUSTER_STACKS, STACKS

CLUSTER_OUTPUTS = {
    outputs.VPC_ID,
    outputs.PUBLIC_SUBNET_IDS,
    outputs.PRIVATE_SUBNET_IDS,
    outputs.CLUSTER_NAME,
    outputs.CLUSTER_ENDPOINT,
    outputs.KUBECONFIG,
    outputs.OIDC_PROVIDER_ARN,
    outputs.TRAINING_ROLE_ARN,
    outputs.SERVING_ROLE_ARN,
}
BUILD_OUTPUTS = {
    outputs.TRAINING_IMAGE,
    outputs.SERVING_IMAGE,
    outputs.SAGEMAKER_TRAINING_ROLE_ARN,
    outputs.SAGEMAKER_SCORING_ROLE_ARN,
}
"""What a stack that runs anything (the cluster, or a SageMaker endpoint) builds and declares."""
CI_OUTPUTS = {outputs.CI_PREVIEW_ROLE_ARN, outputs.CI_DEPLOY_ROLE_ARN}
"""Exported only by a stack with `ciGithubRepository`, which no stack file sets (test_ci_roles
runs the program with it)."""
TRACKING_OUTPUTS = {outputs.MLFLOW_TRACKING_SERVER_ARN, outputs.MLFLOW_TRACKING_SERVER_URL}
"""Exported by a stack with an MLflow tracking server (`mlflowServerSize`) only."""


def shape(run: ProgramRun) -> list[tuple[str, str, object]]:
    """What a stack declares, without the stack name that every URN carries."""
    return sorted(
        (r.resource_type, r.name, sorted(r.inputs.items(), key=lambda item: item[0]).__repr__())
        for r in run.resources
    )


def test_there_is_a_stack_file_per_environment() -> None:
    assert set(STACKS) >= {"dev", "staging", "prod", "local"}


@pytest.mark.parametrize("stack", STACKS)
def test_the_program_completes_and_exports_every_output(
    stack_runs: dict[str, ProgramRun], stack: str
) -> None:
    run = stack_runs[stack]
    assert run.outputs[outputs.ENVIRONMENT] == stack
    exported = {v for k, v in vars(outputs).items() if k.isupper()} - CI_OUTPUTS
    if stack not in CLUSTER_STACKS:
        exported -= CLUSTER_OUTPUTS | BUILD_OUTPUTS
    if not load_config(run.settings.values).training.mlflow_server_size:
        exported -= TRACKING_OUTPUTS
    assert set(run.outputs) == exported
    # Every output has a value; a map may be empty (no model pinned yet serves nothing).
    assert all(value not in (None, "", []) for value in run.outputs.values())
    assert run.outputs[outputs.SERVED_MODEL_VERSIONS] == {}


@pytest.mark.parametrize("stack", STACKS)
def test_an_unchanged_stack_declares_exactly_the_same_resources_twice(
    stack_runs: dict[str, ProgramRun], stack: str
) -> None:
    # No timestamps or random values in names or inputs: `pulumi preview` shows no change.
    again = run_program(stack)
    assert shape(again) == shape(stack_runs[stack])
    assert again.outputs == stack_runs[stack].outputs


def test_environments_differ_only_by_their_stack_files(stack_runs: dict[str, ProgramRun]) -> None:
    # prod's values under another stack name give prod's resources: the program has no
    # `if stack == "prod"`; everything comes from Pulumi.prod.yaml.
    prod = load_stack_settings("prod")
    renamed = run_program(StackSettings("canary", prod.values, prod.secret_keys))
    assert shape(renamed) == shape(stack_runs["prod"])
    assert shape(stack_runs["dev"]) != shape(stack_runs["prod"])


def test_the_local_stack_points_the_aws_provider_at_the_emulator() -> None:
    values = load_stack_settings("local").values
    endpoints = values["aws:endpoints"][0]
    assert {"s3", "kms", "sts", "sagemaker", "eks", "ecr"} <= set(endpoints)
    assert all(url.startswith("http://127.0.0.1:") for url in endpoints.values())
    assert values["aws:skipCredentialsValidation"] is True
    assert values["aws:s3UsePathStyle"] is True
