"""`mlstack train ENV --on sagemaker`: the CreateTrainingJob request, field by field as moto
holds it, and the training image run with exactly what that request gives a container."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest

from infra.cli.main import main
from infra.operations.errors import RefusedError
from infra.operations.training_runs import SageMakerTraining, train_on_sagemaker
from infra.project import naming, outputs
from tests.infra.deployed import (
    COMMIT,
    DATA,
    MODELS,
    TRAINING_ROLE,
    DeployedStack,
    push_image,
)
from tests.infra.operating import REGION
from tests.logs import log_messages

WHEN = datetime(2026, 12, 3, 10, 15, 42, tzinfo=UTC)


def start(project: Path, deployed: DeployedStack, run: SageMakerTraining | None = None) -> str:
    return train_on_sagemaker(
        project,
        "dev",
        "demo",
        read_outputs=lambda: deployed.outputs,
        operator="ops@example.com",
        reason="a year of data, too big for a pod!",
        now=WHEN,
        run=run or SageMakerTraining(),
    )


def test_the_training_job_runs_the_stacks_image_as_its_role_on_its_data(
    project: Path, deployed: DeployedStack
) -> None:
    name = start(project, deployed, SageMakerTraining(hyperparameters={"algorithm": "forest"}))
    assert name == "demo-dev-train-20261203101542"
    job = deployed.sagemaker.describe_training_job(TrainingJobName=name)
    stack = deployed.outputs
    assert deployed.sent["CreateTrainingJob"]["AlgorithmSpecification"] == {
        "TrainingImage": stack[outputs.TRAINING_IMAGE],
        "TrainingInputMode": "File",
    }
    assert job["AlgorithmSpecification"]["TrainingImage"] == stack[outputs.TRAINING_IMAGE]
    assert job["RoleArn"] == TRAINING_ROLE
    assert job["HyperParameters"] == {
        "algorithm": "forest",
        "model_package_group": "demo-dev",
        "models_uri": f"s3://{MODELS}/models",
        "serving_image": stack[outputs.SERVING_IMAGE],
        "model_name": "demo",
    }
    [channel] = job["InputDataConfig"]
    assert channel["ChannelName"] == "train"
    assert channel["DataSource"]["S3DataSource"] == {
        "S3DataType": "S3Prefix",
        "S3Uri": f"s3://{DATA}/demo/",
        "S3DataDistributionType": "FullyReplicated",
    }
    assert job["OutputDataConfig"] == {
        "S3OutputPath": f"s3://{MODELS}/sagemaker-training/demo/",
        "KmsKeyId": stack[outputs.KMS_KEY_ARN],
    }
    assert job["ResourceConfig"] == {
        "InstanceType": "ml.m5.xlarge",
        "InstanceCount": 1,
        "VolumeSizeInGB": 50,
        "VolumeKmsKeyId": stack[outputs.KMS_KEY_ARN],
    }
    assert job["StoppingCondition"] == {"MaxRuntimeInSeconds": 120 * 60}  # dev's default
    tags = {
        t["Key"]: t["Value"]
        for t in deployed.sagemaker.list_tags(ResourceArn=job["TrainingJobArn"])["Tags"]
    }
    assert tags == {
        "mlstack:environment": "dev",
        "mlstack:model": "demo",
        "mlstack:started-by": "ops@example.com",
        "mlstack:reason": "started with mlstack train: a year of data_ too big for a pod_",
    }
    # moto keeps no Environment: the request SageMaker received says what the container gets.
    assert deployed.sent["CreateTrainingJob"]["Environment"] == {
        "MLSTACK_IMAGE_DIGEST": stack[outputs.TRAINING_IMAGE],
        "MLSTACK_ENVIRONMENT": "dev",
        "MLSTACK_GIT_COMMIT": COMMIT,
    }


def test_a_stack_with_a_tracking_server_has_the_job_record_its_run_there(
    project: Path, deployed: DeployedStack
) -> None:
    server = f"arn:aws:sagemaker:{REGION}:123456789012:mlflow-tracking-server/mlstack-dev"
    deployed.outputs[outputs.MLFLOW_TRACKING_SERVER_ARN] = server
    start(project, deployed)
    assert deployed.sent["CreateTrainingJob"]["Environment"]["MLFLOW_TRACKING_URI"] == server


@pytest.mark.parametrize("tag", [naming.BUILD_CACHE_TAG, None])
def test_an_image_the_registry_names_no_commit_for_runs_without_one(
    project: Path, deployed: DeployedStack, tag: str | None
) -> None:
    """An image pushed by other means (only the build cache's tag, or not in the stack's
    registry at all): the job gets no commit, and the trainer records "unknown" as it does
    without git, rather than the command guessing one."""
    ecr = boto3.client("ecr", region_name=REGION)
    repository = "images-training-pinned"
    image = push_image(ecr, repository, tag) if tag else None
    if image is None:
        url = ecr.create_repository(repositoryName=repository)["repository"]["repositoryUri"]
        image = f"{url}@sha256:{'0' * 64}"
    deployed.outputs[outputs.TRAINING_IMAGE] = image
    start(project, deployed)
    environment = deployed.sent["CreateTrainingJob"]["Environment"]
    assert "MLSTACK_GIT_COMMIT" not in environment
    assert environment["MLSTACK_IMAGE_DIGEST"] == image


def test_instance_volume_and_the_stacks_auto_approval_reach_the_job(
    project: Path, deployed: DeployedStack
) -> None:
    path = project / "Pulumi.dev.yaml"
    path.write_text(path.read_text() + "  mlstack:autoApproveModels: true\n")
    run = SageMakerTraining(instance_type="ml.c5.4xlarge", volume_gb=500)
    job = deployed.sagemaker.describe_training_job(TrainingJobName=start(project, deployed, run))
    assert job["ResourceConfig"]["InstanceType"] == "ml.c5.4xlarge"
    assert job["ResourceConfig"]["VolumeSizeInGB"] == 500
    assert job["HyperParameters"]["auto_approve"] == "true"


def test_the_training_image_trains_and_registers_from_what_the_request_gives_it(
    project: Path, deployed: DeployedStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SageMaker's side, done by hand: the channel's objects under input/data/train, the
    hyperparameters as strings in hyperparameters.json, the Environment; then `train`."""
    import training.cli

    start(project, deployed, SageMakerTraining(hyperparameters={"algorithm": "linear"}))
    request = deployed.sent["CreateTrainingJob"]
    opt_ml = tmp_path / "opt_ml"
    [channel] = request["InputDataConfig"]
    bucket, _, prefix = channel["DataSource"]["S3DataSource"]["S3Uri"][5:].partition("/")
    for item in deployed.s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]:
        target = opt_ml / "input" / "data" / channel["ChannelName"] / item["Key"][len(prefix) :]
        target.parent.mkdir(parents=True, exist_ok=True)
        deployed.s3.download_file(bucket, item["Key"], str(target))
    (opt_ml / "input" / "config").mkdir(parents=True)
    (opt_ml / "input" / "config" / "hyperparameters.json").write_text(
        json.dumps(request["HyperParameters"])
    )
    for name, value in request["Environment"].items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(training.cli, "OPT_ML", opt_ml)

    assert training.cli.main(["train"]) == 0

    [summary] = deployed.sagemaker.list_model_packages(ModelPackageGroupName="demo-dev")[
        "ModelPackageSummaryList"
    ]
    version = deployed.sagemaker.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
    [container] = version["InferenceSpecification"]["Containers"]
    assert container["Image"] == deployed.outputs[outputs.SERVING_IMAGE]
    assert container["ModelDataUrl"].startswith(f"s3://{MODELS}/models/")
    assert version["MetadataProperties"]["CommitId"] == COMMIT
    assert version["ModelApprovalStatus"] == "PendingManualApproval"


def test_a_stack_deployed_without_the_job_roles_is_refused_naming_what_is_missing(
    project: Path, deployed: DeployedStack
) -> None:
    del deployed.outputs[outputs.SAGEMAKER_TRAINING_ROLE_ARN]
    with pytest.raises(RefusedError, match=r"lack what a SageMaker training job needs \("):
        start(project, deployed)
    assert "CreateTrainingJob" not in deployed.sent


def test_the_command_checks_its_flags_before_anything_starts(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["train", "dev", "--model", "demo", "--project-dir", str(project)]
    for flags, message in (
        (
            ["--on", "sagemaker", "--set", "algorithm=boosted", "--set", "depth=3"],
            "algorithm = 'boosted': allowed: one of linear, hgb, forest",
        ),
        (["--on", "sagemaker", "--set", "forest"], "--set forest: allowed: NAME=VALUE"),
        (["--on", "sagemaker", "--instance-type", "m5.large"], "allowed: a SageMaker instance"),
        (["--on", "sagemaker", "--volume-gb", "0"], "--volume-gb 0: allowed: 1 to 16384"),
        (
            ["--on", "kubernetes", "--set", "algorithm=forest"],
            "--set: only with --on sagemaker",
        ),
    ):
        with pytest.raises(SystemExit) as stopped:
            main([*base, *flags])
        assert stopped.value.code == 2
        assert message in capsys.readouterr().err


@pytest.mark.skipif(
    __import__("shutil").which("pulumi") is not None, reason="the Pulumi CLI is installed here"
)
def test_without_the_pulumi_cli_the_command_says_the_outputs_need_it(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(
        ["train", "dev", "--model", "demo", "--on", "sagemaker", "--project-dir", str(project)]
    )
    assert status == 5
    err = log_messages(capsys.readouterr().err)
    assert "a SageMaker training job runs with dev's buckets, images and roles" in err
    assert "needs the Pulumi CLI" in err


# Instance-store families as AWS lists them (EC2 "Instance store volumes"), and some without.
LOCAL_STORAGE = [
    "ml.m5d.large",
    "ml.c5d.2xlarge",
    "ml.r5d.xlarge",
    "ml.m6id.large",
    "ml.g4dn.xlarge",
    "ml.g5.2xlarge",
    "ml.g6e.xlarge",
    "ml.p3dn.24xlarge",
    "ml.p4d.24xlarge",
    "ml.p5.48xlarge",
    "ml.trn1.32xlarge",
]
EBS_ONLY = ["ml.m5.xlarge", "ml.c5.2xlarge", "ml.r5.large", "ml.p3.2xlarge", "ml.inf2.xlarge"]


@pytest.mark.parametrize("instance_type", LOCAL_STORAGE + EBS_ONLY)
def test_the_volume_key_is_asked_for_only_where_sagemaker_accepts_one(
    project: Path, deployed: DeployedStack, instance_type: str
) -> None:
    start(project, deployed, SageMakerTraining(instance_type=instance_type))
    resources = deployed.sent["CreateTrainingJob"]["ResourceConfig"]
    assert resources["InstanceType"] == instance_type
    if instance_type in LOCAL_STORAGE:
        # Refused there: its local volumes are encrypted by the instance's hardware.
        assert "VolumeKmsKeyId" not in resources
    else:
        assert resources["VolumeKmsKeyId"] == deployed.outputs[outputs.KMS_KEY_ARN]
