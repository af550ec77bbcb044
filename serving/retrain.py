"""Starting a model's training now, from inside the cluster, as
`kubectl create job --from=cronjob/training-<model>` does: a Job made from the training
CronJob's own job template, owned by the CronJob (so its history limits and TTL clean it up).

The drift job calls it when drift passes its thresholds. The Job's name carries the hour, so a
second drift run within the hour finds the Job there and starts nothing more. Plain HTTPS to
the API server with the pod's service account token: the server's image carries no Kubernetes
client for two requests.
"""

from __future__ import annotations

import json
import os
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
STARTED_BY = "mlstack.dev/started-by"


class RetrainError(RuntimeError):
    """The API server refused or could not be reached; the message says which and why."""


@dataclass(frozen=True)
class ClusterApi:
    """Where the API server is and the credentials to call it."""

    base_url: str
    token: str
    context: ssl.SSLContext | None
    namespace: str = "default"
    """The pod's own namespace."""

    @classmethod
    def in_cluster(
        cls, env: Mapping[str, str] | None = None, directory: Path = SERVICE_ACCOUNT
    ) -> ClusterApi:
        env = os.environ if env is None else env
        host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
        token = directory / "token"
        if not host or not port or not token.exists():
            raise RetrainError(
                "not in a Kubernetes pod with a service account token (KUBERNETES_SERVICE_HOST "
                f"and {token}); retraining starts from inside the cluster"
            )
        return cls(
            base_url=f"https://{host}:{port}",
            token=token.read_text().strip(),
            context=ssl.create_default_context(cafile=str(directory / "ca.crt")),
            namespace=(directory / "namespace").read_text().strip(),
        )

    def call(
        self, method: str, path: str, body: Mapping[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(  # noqa: S310 (the API server's own https URL)
            self.base_url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={
                "Authorization": f"Bearer {self.token}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=30, context=self.context) as response:  # noqa: S310
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")
        except OSError as error:
            raise RetrainError(f"{method} {self.base_url}{path}: {error}") from error


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
    api: ClusterApi, namespace: str, cron_job: str, when: datetime, reason: str
) -> tuple[str, bool]:
    """Start a Job from `cron_job`; returns its name and whether this call started it (False:
    one was already started this hour)."""
    found_status, found = api.call(
        "GET", f"/apis/batch/v1/namespaces/{namespace}/cronjobs/{cron_job}"
    )
    if found_status != 200:
        raise RetrainError(
            f"cannot read CronJob {namespace}/{cron_job}: {found_status} "
            f"{found.get('message', '')}".rstrip()
        )
    name = f"{cron_job}-drift-{when:%Y%m%d%H}"
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
