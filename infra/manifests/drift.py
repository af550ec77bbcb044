"""One endpoint's drift job on Kubernetes: a CronJob running `python -m serving.drift` from the
serving image, comparing the endpoint's captured traffic with the served version's training
baseline (see serving/drift.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from infra import naming
from infra.manifests import hardening

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
    capture_uri: str
    endpoint: str
    variant: str
    region: str
    window_hours: int
    psi_threshold: float
    out_of_range_percent: int

    @property
    def name(self) -> str:
        return f"drift-{self.model}"


def cron_job(drift: DriftSchedule) -> dict[str, Any]:
    arguments = [
        "--model-package", drift.model_package,
        "--capture", drift.capture_uri,
        "--endpoint", drift.endpoint,
        "--variant", drift.variant,
        "--hours", str(drift.window_hours),
        "--psi-threshold", str(drift.psi_threshold),
        "--out-of-range-threshold", str(drift.out_of_range_percent / 100),
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
    )
