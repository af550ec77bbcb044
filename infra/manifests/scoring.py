"""One batch scoring run on Kubernetes: an Indexed Job whose pods each run
`python -m serving.batch` from the serving image over their share of the input files.

Kubernetes gives each pod of an Indexed Job its completion index (0 to `pods` - 1) in
`JOB_COMPLETION_INDEX`, which `serving.batch` reads as its shard index; the Job's arguments name
only the number of shards, so every pod runs the same template. Each pod lists the input prefix,
sorts it and scores every `pods`-th file from its index: the pods together score each file once,
without talking to each other, as long as they all list the same files (write the input before
starting the run). A pod run again skips the files whose predictions already exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from infra.manifests import hardening
from infra.manifests.serving import MODEL_VERSION_LABEL
from infra.project import naming
from mlstack_common.exits import ExitStatus

COMPONENT = "scoring"
CPU_MILLICORES = 1000
"""The scorer is one process on one thread (it pins BLAS to one): more cores would sit idle."""
MEMORY_MIB = 2048
"""Chunks of 100,000 rows, the model and pyarrow's buffers fit with room to spare."""
SCRATCH_SIZE = "16Gi"
"""A file being scored is downloaded here with its predictions: the largest input file must fit."""
RETRIES_PER_POD = 2
"""Retries of one pod (one shard); the others are not charged for its failures."""
MAX_RUNTIME_HOURS = 24
"""A run still going after a day is stuck or far under-sized: Kubernetes stops its pods, and the
same command run again (with more pods) scores only the files not yet done."""
REFUSED_EXIT_CODES = [int(ExitStatus.REFUSED), int(ExitStatus.USAGE)]
"""`serving.batch`'s "a file does not fit the model" (or the model cannot be used, or there is
nothing to score) and "bad arguments" (`mlstack_common.exits`): scoring again cannot succeed."""
STARTED_BY_ANNOTATION = "mlstack.dev/started-by"
REASON_ANNOTATION = "mlstack.dev/reason"
MODEL_DATA_ANNOTATION = "mlstack.dev/model-data"


@dataclass(frozen=True, kw_only=True)
class ScoringRun:
    """What one scoring run scores, with what, where to, and who asked for it."""

    name: str
    """The Job's name (the caller makes it unique, e.g. scoring-<model>-<timestamp>)."""
    model: str
    """The model's name (labels: component "scoring", instance = model)."""
    version: int
    """The model package version being scored (label and annotation)."""
    image: str
    """The serving image by digest."""
    model_uri: str
    """The version's model data, s3://.../model.tar.gz (serving.batch --model)."""
    input_uri: str
    """s3:// prefix of the input files."""
    output_uri: str
    """s3:// prefix for the predictions."""
    pods: int
    """completions == parallelism: the number of shards."""
    region: str
    started_by: str
    """Who, recorded as an annotation."""
    reason: str
    """Why, recorded as an annotation."""

    def __post_init__(self) -> None:
        if self.pods < 1:
            raise ValueError(f"pods = {self.pods}: allowed: 1 or more")
        if self.version < 1:
            raise ValueError(f"version = {self.version}: allowed: 1 or more")


def arguments(run: ScoringRun) -> list[str]:
    """`python -m serving.batch`'s arguments, the same in every pod: the shard index comes from
    the pod's completion index (`JOB_COMPLETION_INDEX`), not from here."""
    return [
        "--input", run.input_uri,
        "--output", run.output_uri,
        "--model", run.model_uri,
        "--shards", str(run.pods),
    ]  # fmt: skip


def scoring_job(run: ScoringRun) -> dict[str, Any]:
    """The run's batch/v1 Job, in the workloads' namespace.

    Indexed, `pods` completions all at once, each index retried on its own
    (`backoffLimitPerIndex`, GA since Kubernetes 1.33, the oldest version the stack supports),
    so one failing shard neither uses up the others' retries nor stops them. A refused input
    fails its index at once (`FailIndex`: the other shards still finish, and the Job ends
    Failed naming the index); a pod evicted by a node drain or a reclaimed spot node is
    replaced without counting as a failure.
    """
    container = {
        "name": COMPONENT,
        "image": run.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-m", "serving.batch"],
        "args": arguments(run),
        "env": [
            {"name": "AWS_REGION", "value": run.region},
            {"name": "AWS_DEFAULT_REGION", "value": run.region},
        ],
        "resources": hardening.resources(CPU_MILLICORES, MEMORY_MIB),
        "securityContext": hardening.container_security_context(),
        # The scorer's scratch directory (downloads, partial outputs) is under /tmp.
        "volumeMounts": [{"name": "scratch", "mountPath": "/tmp"}],  # noqa: S108 (an emptyDir)
    }
    return hardening.batch_job(
        name=run.name,
        component=COMPONENT,
        instance=run.model,
        service_account=naming.SCORING_SERVICE_ACCOUNT,
        container=container,
        job={
            "completionMode": "Indexed",
            "completions": run.pods,
            "parallelism": run.pods,
            "backoffLimitPerIndex": RETRIES_PER_POD,
            "activeDeadlineSeconds": MAX_RUNTIME_HOURS * 3600,
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailIndex",
                        "onExitCodes": {
                            "containerName": COMPONENT,
                            "operator": "In",
                            "values": REFUSED_EXIT_CODES,
                        },
                    },
                    {
                        "action": "Ignore",
                        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
                    },
                ]
            },
        },
        volumes=[{"name": "scratch", "emptyDir": {"sizeLimit": SCRATCH_SIZE}}],
        annotations={
            STARTED_BY_ANNOTATION: run.started_by,
            REASON_ANNOTATION: run.reason,
            MODEL_VERSION_LABEL: str(run.version),
            MODEL_DATA_ANNOTATION: run.model_uri,
        },
        extra_labels={MODEL_VERSION_LABEL: str(run.version)},
    )
