"""Scoring a prefix of files with one model version, on the engine that fits the work.

On SageMaker: a batch transform job of the stack's serving image (a model of the version, as the
stack's SageMaker scoring role), sending the input's CSV lines to `/invocations` in mini-batches
the server itself sizes through `/execution-parameters`. On the cluster: an Indexed Job of
`python -m serving.batch` pods, each scoring its share of the files.

Input and output are prefixes in the stack's data bucket, the one place both scoring roles may
read and write; the output may not overlap the input, or a rerun would score predictions.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from infra.config.stack import StackConfig
from infra.config.stackfiles import load_stack_settings
from infra.manifests.scoring import ScoringRun, scoring_job
from infra.operations.aws_access import StackAws, stack_aws
from infra.operations.errors import RefusedError, UnreachableError
from infra.operations.promotion import check_model, stack_config
from infra.operations.sagemaker_jobs import (
    StackJobResources,
    job_name,
    job_resources,
    job_tags,
    volume_encryption,
)
from infra.project import naming
from mlstack_common.registry import ModelPackage, RegistryError, find_version
from serving.cluster_api import ClusterApi, ClusterApiError

ClusterConnector = Callable[[StackAws, str, str], ClusterApi]

DEFAULT_INSTANCE_TYPE = "ml.m5.xlarge"
DEFAULT_INSTANCES = 1
DEFAULT_PODS = 4
TRANSFORM_SUFFIXES = (".csv",)
"""Batch transform sends an object's lines as CSV records; the serving image reads no other
format line by line. Parquet input is scored on the cluster."""
BATCH_SUFFIXES = (".csv", ".parquet", ".pq")
"""What `serving.batch` reads."""


@dataclass(frozen=True, kw_only=True)
class ScoringRequest:
    model: str
    input_uri: str
    output_uri: str
    version: int | None = None
    """None: the version the stack serves (its pin)."""


def _prefix(uri: str) -> str:
    return uri if uri.endswith("/") else uri + "/"


def check_locations(request: ScoringRequest, data_bucket: str) -> tuple[str, str]:
    """The input and output as `s3://<data bucket>/.../` prefixes, or a refusal saying why."""
    problems = []
    for flag, uri in (("--input", request.input_uri), ("--output", request.output_uri)):
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        if not uri.startswith("s3://") or bucket != data_bucket or not key.strip("/"):
            problems.append(
                f"{flag} {uri}: allowed: a prefix in the stack's data bucket, "
                f"s3://{data_bucket}/<prefix>/ (the scoring roles reach no other bucket)"
            )
    if problems:
        raise RefusedError("; ".join(problems))
    source, target = _prefix(request.input_uri), _prefix(request.output_uri)
    if source.startswith(target) or target.startswith(source):
        raise RefusedError(
            f"--output {request.output_uri} overlaps --input {request.input_uri}: allowed: "
            "separate prefixes, or a rerun would score the predictions"
        )
    return source, target


def input_files(s3: Any, uri: str, suffixes: tuple[str, ...], engine: str) -> list[str]:
    """The objects under the input prefix; refused when there are none, or some the engine
    cannot read (named, with where they can be scored)."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    keys: list[str] = []
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys += [item["Key"] for item in page.get("Contents", []) if item["Size"] > 0]
    except (BotoCoreError, ClientError) as error:
        raise UnreachableError(f"cannot list {uri}: {error}") from error
    if not keys:
        raise RefusedError(f"--input {uri}: no files there to score")
    unreadable = [key for key in keys if not key.lower().endswith(suffixes)]
    if unreadable:
        raise RefusedError(
            f"--input {uri}: {engine} scores {', '.join(suffixes)} files; it holds "
            + ", ".join(unreadable[:5])
            + (f" and {len(unreadable) - 5} more" if len(unreadable) > 5 else "")
            + (" (score Parquet --on kubernetes)" if engine == "batch transform" else "")
        )
    return [f"s3://{bucket}/{key}" for key in keys]


def scored_version(config: StackConfig, sagemaker: Any, request: ScoringRequest) -> ModelPackage:
    """The version asked for, else the one the stack pins; never a Rejected one."""
    check_model(config, request.model)
    version = request.version or config.serving.model_versions.get(request.model)
    if version is None:
        raise RefusedError(
            f"{config.environment} serves no version of {request.model} (mlstack:"
            "servingModelVersions) to score with: name one with --version"
        )
    group = naming.model_package_group(request.model, config.environment)
    try:
        package = find_version(sagemaker, group, version)
    except RegistryError as error:
        raise RefusedError(str(error)) from error
    if package.approval_status == "Rejected":
        raise RefusedError(f"{group} version {version} is Rejected: allowed: an unrejected one")
    return package


def transform_requests(
    *,
    name: str,
    package: ModelPackage,
    resources: StackJobResources,
    input_uri: str,
    output_uri: str,
    instance_type: str,
    instances: int,
    tags: list[dict[str, str]],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """CreateModel's and CreateTransformJob's parameters.

    The model is the version as the stack's endpoints serve it (the stack's serving image, the
    version's model data, no network). The job sends each file's lines as CSV records in
    mini-batches and writes one prediction line per input line to `<output>/<file>.out`. It
    names no MaxPayloadInMB, MaxConcurrentTransforms or BatchStrategy: SageMaker then asks the
    container (`/execution-parameters`), and the server answers from the limits it enforces,
    so the batches always fit what it accepts.
    """
    model = {
        "ModelName": name,
        "ExecutionRoleArn": resources.scoring_role_arn,
        "PrimaryContainer": {
            "Image": resources.serving_image,
            "ModelDataUrl": package.model_data_url,
            "Environment": {"MLSTACK_MODEL_VERSION": str(package.version)},
        },
        "EnableNetworkIsolation": True,
        "Tags": tags,
    }
    job = {
        "TransformJobName": name,
        "ModelName": name,
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": input_uri}},
            "ContentType": "text/csv",
            "SplitType": "Line",
            "CompressionType": "None",
        },
        "TransformOutput": {
            "S3OutputPath": output_uri,
            "Accept": "text/csv",
            "AssembleWith": "Line",
            "KmsKeyId": resources.kms_key_arn,
        },
        "TransformResources": {
            "InstanceType": instance_type,
            "InstanceCount": instances,
            **volume_encryption(instance_type, resources.kms_key_arn),
        },
        "Tags": tags,
    }
    return model, job


def _tags(
    config: StackConfig, model: str, package: ModelPackage, operator: str, reason: str
) -> list[dict[str, str]]:
    return job_tags(
        model=model,
        environment=config.environment,
        operator=operator,
        reason=f"started with mlstack score: {reason}",
        **{"mlstack:model-package": package.arn},
    )


FINISHED_TRANSFORMS = ("Completed", "Failed", "Stopped")
ORPHAN_AFTER = timedelta(hours=1)
"""A scoring Model with no job is another run's only between its CreateModel and its
CreateTransformJob; after this long it is one whose job was refused."""


def delete_finished_models(sagemaker: Any, environment: str, now: datetime) -> list[str]:
    """Delete the Models earlier batch transforms of `environment` ran with, once their job has
    ended or when it never started: SageMaker keeps a Model until it is deleted, so each run
    would leave one behind. Only this command's names are touched
    (`<model>-<environment>-score-<UTC time>`)."""
    from botocore.exceptions import ClientError

    ours = re.compile(rf"-{re.escape(environment)}-score-\d{{14}}$")
    deleted = []
    for page in sagemaker.get_paginator("list_models").paginate(
        NameContains=f"-{environment}-score-"
    ):
        for model in page["Models"]:
            name = model["ModelName"]
            if not ours.search(name):
                continue
            try:
                status = sagemaker.describe_transform_job(TransformJobName=name)[
                    "TransformJobStatus"
                ]
            except ClientError as error:
                if error.response["Error"]["Code"] != "ValidationException":
                    raise
                status = "" if now - model["CreationTime"] > ORPHAN_AFTER else "Starting"
            if status in (*FINISHED_TRANSFORMS, ""):
                sagemaker.delete_model(ModelName=name)
                deleted.append(name)
    return deleted


def score_on_sagemaker(
    root: Path,
    stack: str,
    request: ScoringRequest,
    *,
    read_outputs: Callable[[], Mapping[str, Any]],
    operator: str,
    reason: str,
    now: datetime,
    instance_type: str = DEFAULT_INSTANCE_TYPE,
    instances: int = DEFAULT_INSTANCES,
) -> str:
    """The name of the batch transform job (and of its model) started for `request`."""
    from botocore.exceptions import BotoCoreError, ClientError

    config = stack_config(root, stack)
    check_model(config, request.model)
    resources = job_resources(config, read_outputs, purpose="a batch transform job")
    source, target = check_locations(request, resources.data_bucket)
    aws = stack_aws(load_stack_settings(stack, root))
    input_files(aws.client("s3"), source, TRANSFORM_SUFFIXES, "batch transform")
    sagemaker = aws.client("sagemaker")
    package = scored_version(config, sagemaker, request)
    name = job_name(request.model, config.environment, "score", now)
    model, job = transform_requests(
        name=name,
        package=package,
        resources=resources,
        input_uri=source,
        output_uri=target,
        instance_type=instance_type,
        instances=instances,
        tags=_tags(config, request.model, package, operator, reason),
    )
    try:
        delete_finished_models(sagemaker, config.environment, now)
        sagemaker.create_model(**model)
    except (BotoCoreError, ClientError) as error:
        raise UnreachableError(f"SageMaker refused batch transform {name}: {error}") from error
    try:
        sagemaker.create_transform_job(**job)
    except (BotoCoreError, ClientError) as error:
        with contextlib.suppress(BotoCoreError, ClientError):  # else the next run deletes it
            sagemaker.delete_model(ModelName=name)  # it would serve no job
        raise UnreachableError(f"SageMaker refused batch transform {name}: {error}") from error
    return name


def score_on_kubernetes(
    root: Path,
    stack: str,
    request: ScoringRequest,
    *,
    read_outputs: Callable[[], Mapping[str, Any]],
    connect_cluster: ClusterConnector,
    operator: str,
    reason: str,
    now: datetime,
    pods: int = DEFAULT_PODS,
) -> tuple[str, int]:
    """The name of the scoring Job started for `request`, and its number of pods: `pods`, or
    fewer when there are fewer input files (a pod with no file would only start and stop)."""
    config = stack_config(root, stack)
    check_model(config, request.model)
    if not config.cluster.enabled:
        raise RefusedError(
            f"{stack} has no cluster to score on (mlstack:cluster): score --on sagemaker"
        )
    resources = job_resources(config, read_outputs, purpose="a scoring Job")
    source, target = check_locations(request, resources.data_bucket)
    aws = stack_aws(load_stack_settings(stack, root))
    files = input_files(aws.client("s3"), source, BATCH_SUFFIXES, "the cluster's scorer")
    package = scored_version(config, aws.client("sagemaker"), request)
    run = ScoringRun(
        name=f"scoring-{request.model}-{now:%Y%m%d%H%M%S}",
        model=request.model,
        version=package.version,
        image=resources.serving_image,
        model_uri=package.model_data_url,
        input_uri=source,
        output_uri=target,
        pods=min(pods, len(files)),
        region=aws.region,
        started_by=operator,
        reason=reason,
    )
    api = connect_cluster(aws, naming.cluster_name(config.environment), naming.WORKLOAD_NAMESPACE)
    try:
        status, answer = api.call(
            "POST", f"/apis/batch/v1/namespaces/{naming.WORKLOAD_NAMESPACE}/jobs", scoring_job(run)
        )
    except ClusterApiError as error:
        raise UnreachableError(str(error)) from error
    if status not in (200, 201):
        raise UnreachableError(
            f"cannot create Job {naming.WORKLOAD_NAMESPACE}/{run.name}: {status} "
            f"{answer.get('message', '')}".rstrip()
        )
    return run.name, run.pods
