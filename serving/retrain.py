"""Starting a model's training now, from inside the cluster, as
`kubectl create job --from=cronjob/training-<model>` does: a Job made from the training
CronJob's own job template, owned by the CronJob (so its history limits and TTL clean it up).

The drift job calls it when drift passes its thresholds. The Job's name carries the hour, so a
second drift run within the hour finds the Job there and starts nothing more. Plain HTTPS to
the API server with the pod's service account token: the server's image carries no Kubernetes
client for two requests.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from serving.cluster_api import ClusterApi, ClusterApiError

STARTED_BY = "mlstack.dev/started-by"


class RetrainError(ClusterApiError):
    """The API server refused to start the training; the message says which object and why."""


def job_from_cron_job(cron_job: Mapping[str, Any], name: str, reason: str) -> dict[str, Any]:
    """The Job `kubectl create job --from=cronjob/<name>` makes, noting why it was started."""
    metadata = cron_job["metadata"]
    template = cron_job["spec"]["jobTemplate"]
    template_metadata = template.get("metadata") or {}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": metadata["namespace"],
            "labels": dict(template_metadata.get("labels") or metadata.get("labels") or {}),
            "annotations": {
                **(template_metadata.get("annotations") or {}),
                "cronjob.kubernetes.io/instantiate": "manual",
                STARTED_BY: reason,
            },
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "CronJob",
                    "name": metadata["name"],
                    "uid": metadata["uid"],
                    "controller": True,
                }
            ],
        },
        "spec": template["spec"],
    }


def start_training(
    api: ClusterApi, namespace: str, cron_job: str, name: str, reason: str
) -> tuple[str, bool]:
    """Start Job `name` from `cron_job`; returns its name and whether this call started it
    (False: a Job of that name was already there)."""
    found_status, found = api.call(
        "GET", f"/apis/batch/v1/namespaces/{namespace}/cronjobs/{cron_job}"
    )
    if found_status != 200:
        raise RetrainError(
            f"cannot read CronJob {namespace}/{cron_job}: {found_status} "
            f"{found.get('message', '')}".rstrip()
        )
    status, answer = api.call(
        "POST",
        f"/apis/batch/v1/namespaces/{namespace}/jobs",
        job_from_cron_job(found, name, reason),
    )
    if status == 409:
        return name, False
    if status not in (200, 201):
        raise RetrainError(
            f"cannot create Job {namespace}/{name}: {status} {answer.get('message', '')}".rstrip()
        )
    return name, True


def drift_job_name(cron_job: str, when: datetime) -> str:
    """One retraining an hour at most: the hour is in the name."""
    return f"{cron_job}-drift-{when:%Y%m%d%H}"
