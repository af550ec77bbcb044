"""One endpoint's drift job on Kubernetes: a CronJob running `python -m serving.drift` from the
serving image, comparing the endpoint's captured traffic with the served version's training
baseline (see serving/drift.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from infra.manifests import hardening
from infra.project import naming

COMPONENT = "drift"
CPU_MILLICORES = 500
MEMORY_MIB = 1024
MAX_RUNTIME_SECONDS = 3600


@dataclass(frozen=True, kw_only=True)
class DriftSchedule:
    model: str
    schedule: str
    """Five-field cron, UTC."""
    image: str
    """The serving image by digest: the drift module ships with the server."""
    model_package: str
    """`<group>/<version>` of the served version."""
    capture_uris: tuple[str, ...]
    """Each target's capture prefix: the records of every target serving the model count."""
    endpoint: str
    variant: str
    region: str
    window_hours: int
    psi_threshold: float
    out_of_range_percent: int
    retrain_cron_job: str = ""
    """The model's training CronJob, to start a run from on drift; empty: never."""

    @property
    def name(self) -> str:
        return f"drift-{self.model}"


def cron_job(drift: DriftSchedule) -> dict[str, Any]:
    arguments = [
        "--model-package", drift.model_package,
        *(part for uri in drift.capture_uris for part in ("--capture", uri)),
        "--endpoint", drift.endpoint,
        "--variant", drift.variant,
        "--hours", str(drift.window_hours),
        "--psi-threshold", str(drift.psi_threshold),
        "--out-of-range-threshold", str(drift.out_of_range_percent / 100),
        *(("--retrain-cronjob", drift.retrain_cron_job) if drift.retrain_cron_job else ()),
    ]  # fmt: skip
    container = {
        "name": COMPONENT,
        "image": drift.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-m", "serving.drift"],
        "args": arguments,
        "env": [
            {"name": "AWS_REGION", "value": drift.region},
            {"name": "AWS_DEFAULT_REGION", "value": drift.region},
        ],
        "resources": hardening.resources(CPU_MILLICORES, MEMORY_MIB),
        "securityContext": hardening.container_security_context(),
    }
    return hardening.cron_job(
        name=drift.name,
        component=COMPONENT,
        instance=drift.model,
        schedule=drift.schedule,
        service_account=naming.DRIFT_SERVICE_ACCOUNT,
        container=container,
        job={"backoffLimit": 2, "activeDeadlineSeconds": MAX_RUNTIME_SECONDS},
        api_token_for="it starts the model's training Job on drift"
        if drift.retrain_cron_job
        else "",
    )


def retrain_access(drift: DriftSchedule) -> list[dict[str, Any]]:
    """What starting a training run takes, and no more: read that one CronJob, create Jobs in
    the namespace (RBAC cannot name an object not created yet)."""
    if not drift.retrain_cron_job:
        return []
    name = f"{drift.name}-retrain"
    rbac = "rbac.authorization.k8s.io"
    return [
        {
            "apiVersion": f"{rbac}/v1",
            "kind": "Role",
            "metadata": hardening.metadata(name, COMPONENT, drift.model),
            "rules": [
                {
                    "apiGroups": ["batch"],
                    "resources": ["cronjobs"],
                    "resourceNames": [drift.retrain_cron_job],
                    "verbs": ["get"],
                },
                {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create"]},
            ],
        },
        {
            "apiVersion": f"{rbac}/v1",
            "kind": "RoleBinding",
            "metadata": hardening.metadata(name, COMPONENT, drift.model),
            "roleRef": {"apiGroup": rbac, "kind": "Role", "name": name},
            "subjects": [
                {
                    "kind": "ServiceAccount",
                    "name": naming.DRIFT_SERVICE_ACCOUNT,
                    "namespace": naming.WORKLOAD_NAMESPACE,
                }
            ],
        },
    ]
