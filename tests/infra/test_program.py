"""The whole program under the mock runtime, for every stack file."""

from __future__ import annotations

import pytest

from infra.config.serving_targets import serving_targets
from infra.config.stack import load_config
from infra.config.stackfiles import StackSettings, load_stack_settings
from infra.offline.runner import ProgramRun, run_program
from infra.project import outputs

from .conftest import STACKS

CLUSTER_OUTPUTS = {
    outputs.VPC_ID,
    outputs.PUBLIC_SUBNET_IDS,
    outputs.PRIVATE_SUBNET_IDS,
    outputs.CLUSTER_NAME,
    outputs.CLUSTER_ENDPOINT,
    outputs.CLUSTER_CLIENT_SECURITY_GROUP_ID,
    outputs.KUBECONFIG,
    outputs.OIDC_PROVIDER_ARN,
    outputs.TRAINING_ROLE_ARN,
    outputs.SERVING_ROLE_ARN,
    outputs.SCORING_ROLE_ARN,
    outputs.AUTOSCALER_ROLE_ARN,
}
BUILD_OUTPUTS = {
    outputs.TRAINING_IMAGE,
    outputs.SERVING_IMAGE,
    outputs.SAGEMAKER_TRAINING_ROLE_ARN,
    outputs.SAGEMAKER_SCORING_ROLE_ARN,
}
"""What a stack that runs anything (the cluster, or a SageMaker endpoint) builds and declares."""
CI_OUTPUTS = {
    outputs.CI_PREVIEW_ROLE_ARN,
    outputs.CI_PLATFORM_ROLE_ARN,
    outputs.CI_WORKLOADS_ROLE_ARN,
}
"""Exported by a stack with `ciGithubRepository`."""
TRACKING_OUTPUTS = {outputs.MLFLOW_TRACKING_SERVER_ARN, outputs.MLFLOW_TRACKING_SERVER_URL}
"""Exported by a stack with an MLflow tracking server (`mlflowServerSize`) only."""
WORKLOADS_OUTPUTS = {outputs.TRAINING_IMAGE, outputs.SERVING_IMAGE, outputs.SERVED_MODEL_VERSIONS}
"""The workloads stack's; every other output is the platform stack's."""


def expected_outputs(settings: StackSettings) -> set[str]:
    """Every output name, less those of parts the stack leaves out."""
    config = load_config(settings.values)
    targets = serving_targets(config)
    left_out = {
        *(() if config.ci.github_repository else CI_OUTPUTS),
        *(() if config.cluster.enabled else CLUSTER_OUTPUTS),
        *(() if targets.drift_checked else {outputs.DRIFT_ROLE_ARN}),
        *(() if targets.ingress else {outputs.LOAD_BALANCER_CONTROLLER_ROLE_ARN}),
        *(() if targets.runs_images else BUILD_OUTPUTS),
        *(() if targets.on_sagemaker else {outputs.ENDPOINT_ROLE_ARNS}),
        *(() if config.ci.runner and config.cluster.enabled else {outputs.CI_RUNNER_PROJECT}),
        *(() if config.training.mlflow_server_size else TRACKING_OUTPUTS),
    }
    return {v for k, v in vars(outputs).items() if k.isupper()} - left_out


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
    assert set(run.outputs) == expected_outputs(run.settings)
    # Each output is one layer's: the workloads read the platform's through the reference.
    assert set(run.of_layer("workloads").outputs) == WORKLOADS_OUTPUTS & set(run.outputs)
    assert not set(run.of_layer("platform").outputs) & WORKLOADS_OUTPUTS
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
