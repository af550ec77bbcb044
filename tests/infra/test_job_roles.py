"""The roles SageMaker training and batch transform jobs run as, declared by every stack that
builds images, each reaching only that stack's buckets, key, groups and one image."""

from __future__ import annotations

import json
from typing import Any

from infra.offline.mocks import ACCOUNT_ID
from infra.offline.runner import ProgramRun
from infra.project import outputs

from .conftest import run_served

ROLE = "aws:iam/role:Role"


def policy(run: ProgramRun, name: str) -> dict[str, dict[str, Any]]:
    document = json.loads(run.named(name).inputs["policy"])
    return {statement["Sid"]: statement for statement in document["Statement"]}


def bucket_arn(run: ProgramRun, output: str) -> str:
    return f"arn:aws:s3:::{run.outputs[output]}"


def test_job_roles_trust_sagemaker_for_this_account_and_are_outputs(
    stack_runs: dict[str, ProgramRun],
) -> None:
    run = stack_runs["prod"]
    roles = {r.name: r for r in run.of_type(ROLE)}
    for name, output in (
        ("sagemaker-jobs-training", outputs.SAGEMAKER_TRAINING_ROLE_ARN),
        ("sagemaker-jobs-scoring", outputs.SAGEMAKER_SCORING_ROLE_ARN),
    ):
        [trust] = json.loads(roles[name].inputs["assumeRolePolicy"])["Statement"]
        assert trust["Principal"] == {"Service": "sagemaker.amazonaws.com"}
        assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT_ID}}
        assert run.outputs[output] == roles[name].props["arn"]


def test_the_training_job_role_reaches_the_stacks_data_models_groups_and_training_image(
    stack_runs: dict[str, ProgramRun],
) -> None:
    run = stack_runs["prod"]
    statements = policy(run, "sagemaker-jobs-training-permissions")
    assert statements["ReadTrainingData"]["Resource"] == [
        bucket_arn(run, outputs.DATA_BUCKET) + "/*"
    ]
    assert statements["ReadWriteModelArtifacts"]["Resource"] == [
        bucket_arn(run, outputs.MODELS_BUCKET) + "/*"
    ]
    assert statements["UseEnvironmentKey"]["Resource"] == [run.outputs[outputs.KMS_KEY_ARN]]
    assert statements["RegisterModelVersions"]["Resource"][0].endswith(
        ":model-package-group/demo-prod"
    )
    [repository] = statements["PullJobImage"]["Resource"]
    assert repository.split("/")[-1] == run.outputs[outputs.TRAINING_REPOSITORY_URL].split("/")[-1]
    # prod has a tracking server: a job records its run there, as the cluster's training does.
    assert statements["RecordRuns"]["Resource"] == [run.outputs[outputs.MLFLOW_TRACKING_SERVER_ARN]]
    dev = policy(stack_runs["dev"], "sagemaker-jobs-training-permissions")
    assert "RecordRuns" not in dev


def test_the_scoring_role_pulls_only_the_serving_image_and_registers_nothing(
    stack_runs: dict[str, ProgramRun],
) -> None:
    run = stack_runs["staging"]
    statements = policy(run, "sagemaker-jobs-scoring-permissions")
    assert statements["ReadInputWritePredictions"]["Resource"] == [
        bucket_arn(run, outputs.DATA_BUCKET) + "/*"
    ]
    [repository] = statements["PullJobImage"]["Resource"]
    assert repository.split("/")[-1] == run.outputs[outputs.SERVING_REPOSITORY_URL].split("/")[-1]
    assert not [a for s in statements.values() for a in s["Action"] if a.startswith("sagemaker:")]


def test_a_stack_that_runs_nothing_declares_no_job_roles(
    stack_runs: dict[str, ProgramRun],
) -> None:
    local = stack_runs["local"]
    assert not [r for r in local.of_type(ROLE) if r.name.startswith("sagemaker-jobs")]
    assert outputs.SAGEMAKER_TRAINING_ROLE_ARN not in local.outputs
    # Serving on SageMaker without a cluster: training jobs are how that stack trains.
    served = run_served("local", servingTarget="sagemaker")
    # In either order: the engine records resources as their registrations complete.
    assert sorted(r.name for r in served.of_type(ROLE) if r.name.startswith("sagemaker-jobs")) == [
        "sagemaker-jobs-scoring",
        "sagemaker-jobs-training",
    ]
