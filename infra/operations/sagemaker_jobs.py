"""What SageMaker jobs started for a stack need from it, and how they are named and tagged.

A training or batch transform job runs as the role the stack declares for it, with the stack's
images, buckets and key. Their names and ARNs are the stack's outputs (auto-named resources), so
starting a job reads them; the image digests come from `mlstack:imageDigests` when the stack pins
them, as everywhere else.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from infra.config.stack import StackConfig
from infra.operations.errors import PulumiCliMissingError, RefusedError
from infra.operations.live_state import digest_of
from infra.project import naming, outputs

JOB_NAME_LIMIT = 63
TAG_VALUE_LIMIT = 256
_TAG_VALUE_UNSAFE = re.compile(r"[^\w .:/=+\-@]", re.UNICODE)


_INSTANCE_FAMILY = re.compile(r"^ml\.(?P<series>[a-z]+)(?P<generation>\d+)(?P<options>[a-z-]*)\.")
LOCAL_STORAGE_WITHOUT_D = frozenset(
    {"g5", "g6", "g6e", "gr6", "p5", "p5e", "p5en", "trn1", "trn1n", "trn2"}
)
"""Accelerated families with NVMe instance-store volumes whose names carry no `d` option (every
family whose options include `d`, as c5d, m6id, g4dn or p4d, has them too)."""


def has_local_storage(instance_type: str) -> bool:
    """Whether `instance_type` (`ml.<family>.<size>`) comes with instance-store volumes."""
    match = _INSTANCE_FAMILY.match(instance_type)
    if match is None:
        return False
    family = match["series"] + match["generation"] + match["options"]
    return "d" in match["options"] or family in LOCAL_STORAGE_WITHOUT_D


def volume_encryption(instance_type: str, kms_key_arn: str) -> dict[str, str]:
    """The job's `VolumeKmsKeyId`, or nothing for an instance type with local storage: its
    volumes are encrypted by the instance's hardware, and SageMaker refuses the key there
    ("You can't request a VolumeKmsKeyId when using an instance type with local storage",
    ResourceConfig and TransformResources in the SageMaker API reference)."""
    return {} if has_local_storage(instance_type) else {"VolumeKmsKeyId": kms_key_arn}


@dataclass(frozen=True, kw_only=True)
class StackJobResources:
    data_bucket: str
    models_bucket: str
    kms_key_arn: str
    training_image: str
    serving_image: str
    """Both by digest: `<repository URL>@sha256:...`."""
    training_role_arn: str
    scoring_role_arn: str
    tracking_uri: str = ""
    """The stack's MLflow tracking server (its ARN, the URI the plugin takes), if it has one."""


def _image(
    config: StackConfig, found: Mapping[str, Any], image: str, built: str, repository: str
) -> str:
    pinned = config.registry.image_digests.get(image)
    if pinned and found.get(repository):
        return f"{found[repository]}@{pinned}"
    return str(found.get(built) or "")


def job_resources(
    config: StackConfig, read_outputs: Callable[[], Mapping[str, Any]], *, purpose: str
) -> StackJobResources:
    """The stack's side of a job, from its outputs; refused, naming what is missing, when the
    stack has not been deployed with the job roles (`pulumi up` of this version declares them)."""
    try:
        found = read_outputs()
    except PulumiCliMissingError as error:
        raise PulumiCliMissingError(
            f"{purpose} runs with {config.environment}'s buckets, images and roles, which are its "
            f"stack outputs; reading them: {error}"
        ) from error
    resources = {
        "data_bucket": str(found.get(outputs.DATA_BUCKET) or ""),
        "models_bucket": str(found.get(outputs.MODELS_BUCKET) or ""),
        "kms_key_arn": str(found.get(outputs.KMS_KEY_ARN) or ""),
        "training_image": _image(
            config, found, "training", outputs.TRAINING_IMAGE, outputs.TRAINING_REPOSITORY_URL
        ),
        "serving_image": _image(
            config, found, "serving", outputs.SERVING_IMAGE, outputs.SERVING_REPOSITORY_URL
        ),
        "training_role_arn": str(found.get(outputs.SAGEMAKER_TRAINING_ROLE_ARN) or ""),
        "scoring_role_arn": str(found.get(outputs.SAGEMAKER_SCORING_ROLE_ARN) or ""),
    }
    missing = [
        name
        for name, value in resources.items()
        if not value or (name.endswith("_image") and not digest_of(value))
    ]
    if missing:
        raise RefusedError(
            f"{config.environment}'s stack outputs lack what {purpose} needs ("
            + ", ".join(missing)
            + "): a stack that runs anything (the cluster, or a SageMaker endpoint) declares "
            "them; deploy it with this version of the program (pulumi up) and run this again"
        )
    return StackJobResources(
        **resources, tracking_uri=str(found.get(outputs.MLFLOW_TRACKING_SERVER_ARN) or "")
    )


def job_name(model: str, environment: str, kind: str, when: datetime) -> str:
    """`<model>-<environment>-<kind>-<UTC time>`: unique per second, sorted by time, within
    SageMaker's 63 characters (the model part is shortened when it must be)."""
    suffix = f"-{environment}-{kind}-{when:%Y%m%d%H%M%S}"
    return model[: JOB_NAME_LIMIT - len(suffix)].rstrip("-") + suffix


def tag_value(text: str) -> str:
    """`text` as a SageMaker tag value allows it: other characters become `_`, at most 256."""
    return _TAG_VALUE_UNSAFE.sub("_", text)[:TAG_VALUE_LIMIT]


def job_tags(
    *, model: str, environment: str, operator: str, reason: str, **extra: str
) -> list[dict[str, str]]:
    """Who started a job and why, on the job, as the cluster's Jobs carry it in annotations."""
    tags = {
        "mlstack:environment": environment,
        "mlstack:model": model,
        "mlstack:started-by": operator,
        "mlstack:reason": reason,
        **extra,
    }
    return [{"Key": key, "Value": tag_value(value)} for key, value in tags.items()]


def image_revision(ecr: Any, image: str) -> str:
    """The source revision `image` was built from: the stack tags each image with a hash of its
    build inputs (`infra.components.image_sources`). Empty when the registry cannot say
    (a pinned image pushed by other means); the run then records none, as the training image
    without git does."""
    from botocore.exceptions import BotoCoreError, ClientError

    location, _, digest = image.partition("@")
    repository = location.split("/", 1)[-1]
    try:
        described = ecr.describe_images(
            repositoryName=repository, imageIds=[{"imageDigest": digest}]
        )
    except (BotoCoreError, ClientError):
        return ""
    tags = sorted(
        tag
        for detail in described.get("imageDetails", [])
        for tag in detail.get("imageTags", [])
        if tag != naming.BUILD_CACHE_TAG
    )
    return tags[0] if tags else ""
