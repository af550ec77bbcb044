"""Starting a model's training now, outside its schedule.

On the cluster: a Job from the model's training CronJob, as `kubectl create job
--from=cronjob/training-<model>` would, so the run has exactly the scheduled runs' image, data,
role and limits. On SageMaker: a training job running the same image through SageMaker's
training contract (data as the `train` channel, run settings as hyperparameters), with the
stack's SageMaker training role, for data that outgrows a pod; it registers the version itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from infra.config.stack import StackConfig
from infra.config.stackfiles import load_stack_settings
from infra.manifests.training import training_name
from infra.operations.aws_access import StackAws, stack_aws
from infra.operations.errors import RefusedError, UnreachableError
from infra.operations.promotion import check_model, stack_config
from infra.operations.sagemaker_jobs import (
    StackJobResources,
    image_revision,
    job_name,
    job_resources,
    job_tags,
    volume_encryption,
)
from infra.project import naming
from serving.cluster_api import ClusterApi, ClusterApiError
from serving.retrain import start_training

ClusterConnector = Callable[[StackAws, str, str], ClusterApi]

DEFAULT_INSTANCE_TYPE = "ml.m5.xlarge"
DEFAULT_VOLUME_GB = 50
TRAIN_CHANNEL = "train"
"""The channel the training image reads its data file and dataset.yaml from (training.cli)."""


def manual_job_name(model: str, when: datetime) -> str:
    return f"{training_name(model)}-manual-{when:%Y%m%d%H%M%S}"


def train_on_kubernetes(
    root: Path,
    stack: str,
    model: str,
    *,
    connect_cluster: ClusterConnector,
    operator: str,
    reason: str,
    now: datetime,
) -> str:
    """The name of the Job started from `model`'s training CronJob in `stack`."""
    config = stack_config(root, stack)
    check_model(config, model)
    if not (config.cluster.enabled and config.training.schedule):
        raise RefusedError(
            f"{stack} has no training CronJob to start a run from: it takes the cluster "
            "(mlstack:cluster) and a schedule (mlstack:trainingSchedule)"
        )
    api = connect_cluster(
        stack_aws(load_stack_settings(stack, root)),
        naming.cluster_name(config.environment),
        naming.WORKLOAD_NAMESPACE,
    )
    try:
        name, _ = start_training(
            api,
            naming.WORKLOAD_NAMESPACE,
            training_name(model),
            manual_job_name(model, now),
            f"started by {operator} with mlstack train: {reason}",
        )
    except ClusterApiError as error:
        raise UnreachableError(str(error)) from error
    return name


@dataclass(frozen=True, kw_only=True)
class SageMakerTraining:
    """What one SageMaker training run is asked for, besides the stack's own resources."""

    instance_type: str = DEFAULT_INSTANCE_TYPE
    volume_gb: int = DEFAULT_VOLUME_GB
    hyperparameters: Mapping[str, str] = field(default_factory=dict)
    """Settings as `mlstack-train` takes them (algorithm, seed, ...), already checked."""


def training_job_request(
    *,
    name: str,
    model: str,
    config: StackConfig,
    resources: StackJobResources,
    revision: str,
    run: SageMakerTraining,
    tags: list[dict[str, str]],
) -> dict[str, Any]:
    """CreateTrainingJob's parameters: the training image reads the model's data prefix as its
    channel and gets what the CronJob passes as flags (group, models URI, serving image, name)
    as hyperparameters; the model tarball SageMaker uploads and the volume use the stack key."""
    hyperparameters = {
        **run.hyperparameters,
        "model_package_group": naming.model_package_group(model, config.environment),
        "models_uri": naming.models_uri(resources.models_bucket),
        "serving_image": resources.serving_image,
        "model_name": model,
    }
    if config.training.auto_approve:
        hyperparameters["auto_approve"] = "true"
    environment = {
        "MLSTACK_IMAGE_DIGEST": resources.training_image,
        "MLSTACK_ENVIRONMENT": config.environment,
    }
    if revision:
        environment["MLSTACK_GIT_COMMIT"] = revision
    if resources.tracking_uri:
        # Recorded on the stack's tracking server, as the cluster's runs are.
        environment["MLFLOW_TRACKING_URI"] = resources.tracking_uri
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {
            "TrainingImage": resources.training_image,
            "TrainingInputMode": "File",
        },
        "RoleArn": resources.training_role_arn,
        "HyperParameters": hyperparameters,
        "InputDataConfig": [
            {
                "ChannelName": TRAIN_CHANNEL,
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": naming.training_data_uri(resources.data_bucket, model),
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
                "InputMode": "File",
            }
        ],
        "OutputDataConfig": {
            "S3OutputPath": f"s3://{resources.models_bucket}/sagemaker-training/{model}/",
            "KmsKeyId": resources.kms_key_arn,
        },
        "ResourceConfig": {
            "InstanceType": run.instance_type,
            "InstanceCount": 1,
            "VolumeSizeInGB": run.volume_gb,
            **volume_encryption(run.instance_type, resources.kms_key_arn),
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": config.training.max_runtime_minutes * 60},
        "Environment": environment,
        "Tags": tags,
    }


def train_on_sagemaker(
    root: Path,
    stack: str,
    model: str,
    *,
    read_outputs: Callable[[], Mapping[str, Any]],
    operator: str,
    reason: str,
    now: datetime,
    run: SageMakerTraining,
) -> str:
    """The name of the SageMaker training job started for `model` in `stack`."""
    from botocore.exceptions import BotoCoreError, ClientError

    config = stack_config(root, stack)
    check_model(config, model)
    resources = job_resources(config, read_outputs, purpose="a SageMaker training job")
    aws = stack_aws(load_stack_settings(stack, root))
    name = job_name(model, config.environment, "train", now)
    request = training_job_request(
        name=name,
        model=model,
        config=config,
        resources=resources,
        revision=image_revision(aws.client("ecr"), resources.training_image),
        run=run,
        tags=job_tags(
            model=model,
            environment=config.environment,
            operator=operator,
            reason=f"started with mlstack train: {reason}",
        ),
    )
    try:
        aws.client("sagemaker").create_training_job(**request)
    except (BotoCoreError, ClientError) as error:
        raise UnreachableError(f"SageMaker refused training job {name}: {error}") from error
    return name
