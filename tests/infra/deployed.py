"""A stack as `pulumi up` leaves it, in moto, for the commands that start jobs with its
resources: its buckets, key, images (tagged as the stack tags its builds) and model package
group, the outputs naming them, and every request the commands send to SageMaker."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws

from infra.project import outputs
from mlstack_common import storage
from tests.infra.operating import REGION
from training.demo import write_demo_dataset

COMMIT = "0123456789abcdef0123456789abcdef01234567"
DATA, MODELS = "mlstack-dev-data-1a2b", "mlstack-dev-models-3c4d"
TRAINING_ROLE = "arn:aws:iam::123456789012:role/sagemaker-jobs-training-5e6f"
SCORING_ROLE = "arn:aws:iam::123456789012:role/sagemaker-jobs-scoring-7a8b"
GROUP = "demo-dev"


@dataclass(frozen=True)
class DeployedStack:
    outputs: dict[str, Any]
    sent: dict[str, dict[str, Any]]
    """The parameters of the last call of each SageMaker operation, as sent."""
    sagemaker: Any
    s3: Any


def push_image(ecr: Any, repository: str, tag: str) -> str:
    """An image in the registry, tagged as the stack tags its builds; its reference by digest."""
    url = ecr.create_repository(repositoryName=repository)["repository"]["repositoryUri"]
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"digest": f"sha256:{tag[:8] * 8}"},
            "layers": [],
        }
    )
    ecr.put_image(repositoryName=repository, imageManifest=manifest, imageTag=tag)
    [image] = ecr.describe_images(repositoryName=repository)["imageDetails"]
    return f"{url}@{image['imageDigest']}"


@contextmanager
def deployed_dev(scratch: Path) -> Iterator[DeployedStack]:
    """dev's resources in moto (inside the caller's credentials for it), the demo dataset as the
    demo model's training data."""
    storage.s3_client.cache_clear()
    with mock_aws():
        s3: Any = boto3.client("s3", region_name=REGION)
        for bucket in (DATA, MODELS):
            s3.create_bucket(
                Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION}
            )
        data, spec = write_demo_dataset(scratch / "data")
        s3.upload_file(str(data), DATA, f"demo/{data.name}")
        s3.upload_file(str(spec), DATA, "demo/dataset.yaml")
        sagemaker = boto3.client("sagemaker", region_name=REGION)
        sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
        ecr = boto3.client("ecr", region_name=REGION)
        training = push_image(ecr, "images-training-c76d", COMMIT)
        serving = push_image(ecr, "images-serving-9f01", COMMIT)
        key = boto3.client("kms", region_name=REGION).create_key()["KeyMetadata"]["Arn"]
        sent: dict[str, dict[str, Any]] = {}

        def record(params: dict[str, Any], model: Any, **_: Any) -> None:
            sent[model.name] = json.loads(json.dumps(params, default=str))

        boto3.setup_default_session()
        assert boto3.DEFAULT_SESSION is not None
        boto3.DEFAULT_SESSION.events.register("provide-client-params.sagemaker.*", record)
        try:
            yield DeployedStack(
                outputs={
                    outputs.DATA_BUCKET: DATA,
                    outputs.MODELS_BUCKET: MODELS,
                    outputs.KMS_KEY_ARN: key,
                    outputs.TRAINING_IMAGE: training,
                    outputs.SERVING_IMAGE: serving,
                    outputs.TRAINING_REPOSITORY_URL: training.split("@")[0],
                    outputs.SERVING_REPOSITORY_URL: serving.split("@")[0],
                    outputs.SAGEMAKER_TRAINING_ROLE_ARN: TRAINING_ROLE,
                    outputs.SAGEMAKER_SCORING_ROLE_ARN: SCORING_ROLE,
                },
                sent=sent,
                sagemaker=sagemaker,
                s3=s3,
            )
        finally:
            boto3.DEFAULT_SESSION = None
            storage.s3_client.cache_clear()
