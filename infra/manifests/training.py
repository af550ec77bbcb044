"""One model's scheduled training on Kubernetes: a CronJob running the training image.

Each run reads the model's data prefix in the data bucket (one data file and its
`dataset.yaml`), publishes artifacts under the models bucket and registers the version into the
environment's model package group; the quality gate decides its approval status.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from infra.manifests import hardening
from infra.project import naming
from mlstack_common.exits import NOT_RETRIED

COMPONENT = "training"
CPU_MILLICORES = 2000
MEMORY_MIB = 4096
"""A training pod's size: the demo-scale tables fit; larger ones belong on SageMaker training."""
RETRIES = 2
REFUSED_EXIT_CODES = [int(status) for status in NOT_RETRIED]
"""The training CLI's "input refused", "bad arguments or settings" and "quality gate refused"
(`mlstack_common.exits`): retrying cannot change them."""


def training_name(model: str) -> str:
    """A model's training CronJob: scheduled runs, and those drift starts from it."""
    return f"training-{model}"


@dataclass(frozen=True, kw_only=True)
class TrainingSchedule:
    model: str
    schedule: str
    """Five-field cron, UTC."""
    image: str
    """The training image by digest."""
    serving_image: str
    """The serving image by digest, which each registered version names."""
    source_revision: str
    """The commit the training image was built from, recorded as each version's lineage."""
    data_uri: str
    """`s3://<data bucket>/<model>/`: one data file and its dataset.yaml."""
    models_uri: str
    group: str
    region: str
    max_runtime_minutes: int
    auto_approve: bool
    environment: str = ""
    """Recorded as a tag of each MLflow run."""
    tracking_uri: str = ""
    """MLFLOW_TRACKING_URI: the environment's MLflow tracking server's ARN; empty: no tracking."""

    @property
    def name(self) -> str:
        return training_name(self.model)


def _arguments(schedule: TrainingSchedule) -> list[str]:
    arguments = [
        "--data", schedule.data_uri,
        "--output-dir", "/tmp/run",  # noqa: S108 (an emptyDir)
        "--models-uri", schedule.models_uri,
        "--model-package-group", schedule.group,
        "--serving-image", schedule.serving_image,
        "--model-name", schedule.model,
    ]  # fmt: skip
    return [*arguments, "--auto-approve"] if schedule.auto_approve else arguments


def cron_job(schedule: TrainingSchedule) -> dict[str, Any]:
    environment = {
        "MLSTACK_GIT_COMMIT": schedule.source_revision,
        # The whole reference: the repository and the digest.
        "MLSTACK_IMAGE_DIGEST": schedule.image,
        "AWS_REGION": schedule.region,
        "AWS_DEFAULT_REGION": schedule.region,
    }
    if schedule.environment:
        environment["MLSTACK_ENVIRONMENT"] = schedule.environment
    if schedule.tracking_uri:
        environment["MLFLOW_TRACKING_URI"] = schedule.tracking_uri
    container = {
        "name": COMPONENT,
        "image": schedule.image,
        "imagePullPolicy": "IfNotPresent",
        "args": _arguments(schedule),
        "env": [{"name": key, "value": value} for key, value in environment.items()],
        "resources": hardening.resources(CPU_MILLICORES, MEMORY_MIB),
        "securityContext": hardening.container_security_context(),
        "volumeMounts": [{"name": "work", "mountPath": "/tmp"}],  # noqa: S108 (an emptyDir)
    }
    return hardening.cron_job(
        name=schedule.name,
        component=COMPONENT,
        instance=schedule.model,
        schedule=schedule.schedule,
        service_account=naming.TRAINING_SERVICE_ACCOUNT,
        container=container,
        job={
            "backoffLimit": RETRIES,
            "activeDeadlineSeconds": schedule.max_runtime_minutes * 60,
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailJob",
                        "onExitCodes": {
                            "containerName": COMPONENT,
                            "operator": "In",
                            "values": REFUSED_EXIT_CODES,
                        },
                    }
                ]
            },
        },
        volumes=[{"name": "work", "emptyDir": {"sizeLimit": "8Gi"}}],
    )
