"""The scheduled training CronJob, built by a pure function and checked without an engine."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import kubernetes_validate
import pytest

from infra.config.eks_versions import SUPPORTED_KUBERNETES_VERSIONS
from infra.manifests.training import TrainingSchedule, cron_job
from mlstack_common.exits import ExitStatus

SCHEDULE = TrainingSchedule(
    model="churn",
    schedule="0 3 * * 1",
    image="123456789012.dkr.ecr.eu-west-1.amazonaws.com/training@sha256:" + "1" * 64,
    serving_image="123456789012.dkr.ecr.eu-west-1.amazonaws.com/serving@sha256:" + "2" * 64,
    source_revision="0123abcd",
    data_uri="s3://mlstack-prod-data/churn/",
    models_uri="s3://mlstack-prod-models/models",
    group="churn-prod",
    region="eu-west-1",
    max_runtime_minutes=120,
    auto_approve=False,
)


def job(schedule: TrainingSchedule = SCHEDULE) -> dict[str, Any]:
    spec: dict[str, Any] = cron_job(schedule)["spec"]["jobTemplate"]["spec"]
    return spec


@pytest.mark.parametrize("version", SUPPORTED_KUBERNETES_VERSIONS)
def test_the_cron_job_is_valid_for_every_supported_kubernetes_version(version: str) -> None:
    kubernetes_validate.validate(cron_job(SCHEDULE), version, strict=True)


def test_runs_never_overlap_end_in_time_and_leave_a_bounded_history() -> None:
    spec = cron_job(SCHEDULE)["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["timeZone"] == "Etc/UTC"
    assert spec["successfulJobsHistoryLimit"] == spec["failedJobsHistoryLimit"] == 3
    assert job()["activeDeadlineSeconds"] == 7200
    assert job()["backoffLimit"] == 2


def test_refused_data_bad_settings_and_a_refusing_gate_are_not_retried() -> None:
    [rule] = job()["podFailurePolicy"]["rules"]
    assert rule["action"] == "FailJob"
    assert rule["onExitCodes"]["values"] == [
        ExitStatus.REFUSED,
        ExitStatus.USAGE,
        ExitStatus.GATE,
    ]
    assert job()["template"]["spec"]["restartPolicy"] == "Never"


def test_the_pod_is_hardened_like_serving_and_trains_the_models_data() -> None:
    pod = job()["template"]["spec"]
    [container] = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["resources"]["requests"] == container["resources"]["limits"]
    arguments = container["args"]
    assert arguments[arguments.index("--data") + 1] == "s3://mlstack-prod-data/churn/"
    assert "--auto-approve" not in arguments
    approving = job(replace(SCHEDULE, auto_approve=True))["template"]["spec"]["containers"][0]
    assert approving["args"][-1] == "--auto-approve"


def test_a_tracked_run_is_told_the_tracking_server_and_the_environment() -> None:
    def environment(schedule: TrainingSchedule) -> dict[str, str]:
        [container] = job(schedule)["template"]["spec"]["containers"]
        return {item["name"]: item["value"] for item in container["env"]}

    assert "MLFLOW_TRACKING_URI" not in environment(SCHEDULE)
    server = "arn:aws:sagemaker:eu-west-1:123456789012:mlflow-tracking-server/mlstack-prod"
    tracked = environment(replace(SCHEDULE, tracking_uri=server, environment="prod"))
    assert tracked["MLFLOW_TRACKING_URI"] == server
    assert tracked["MLSTACK_ENVIRONMENT"] == "prod"
