"""The pod and container settings every workload of the stack runs with: the restricted Pod
Security Standard, plus a read-only root filesystem. Written once, used by every workload."""

from __future__ import annotations

from typing import Any

from infra.project import naming

RUN_AS = 10001
"""The images' user (see the Dockerfiles)."""

PART_OF = "mlstack"


def labels(component: str, instance: str) -> dict[str, str]:
    """The recommended `app.kubernetes.io/*` labels; the selector uses name and instance."""
    return {
        "app.kubernetes.io/name": f"mlstack-{component}",
        "app.kubernetes.io/instance": instance,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": "pulumi",
    }


def selector(component: str, instance: str) -> dict[str, str]:
    """Labels that never change for a workload: a Deployment's selector is immutable."""
    return {
        "app.kubernetes.io/name": f"mlstack-{component}",
        "app.kubernetes.io/instance": instance,
    }


def metadata(name: str, component: str, instance: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": naming.WORKLOAD_NAMESPACE,
        "labels": labels(component, instance),
        **extra,
    }


def pod_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "fsGroup": RUN_AS,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def resources(cpu_millicores: int, memory_mib: int) -> dict[str, Any]:
    """Requests equal to limits (Guaranteed QoS): a model server's latency should not depend on
    what its neighbours do, and its worker count is sized from the CPU it is given."""
    amounts = {"cpu": f"{cpu_millicores}m", "memory": f"{memory_mib}Mi"}
    return {"requests": dict(amounts), "limits": dict(amounts)}


def checkov_skips(reasons: dict[str, str]) -> dict[str, str]:
    """Annotations that skip checkov checks on one object, each with its reason, so a reviewer
    reads why in the object itself (`checkov.io/skipN: CHECK=reason`)."""
    return {
        f"checkov.io/skip{index}": f"{check}={reason}"
        for index, (check, reason) in enumerate(sorted(reasons.items()), start=1)
    }


FINISHED_JOB_TTL_SECONDS = 7 * 24 * 3600
"""How long a finished Job (and its pods, with their logs) stays to be inspected."""


def _api_token_skips(api_token_for: str) -> dict[str, str]:
    return {"CKV_K8S_38": api_token_for} if api_token_for else {}


def _job_spec(
    *,
    component: str,
    instance: str,
    service_account: str,
    container: dict[str, Any],
    job: dict[str, Any],
    volumes: list[dict[str, Any]] | None,
    api_token_for: str,
    pod_annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """What every Job of the stack runs, scheduled or not: `job`'s own limits, a week's TTL
    once finished, and a pod hardened like every workload, never restarted in place (a
    `podFailurePolicy` needs `Never`), without an API token unless `api_token_for` says what
    it calls the API server for."""
    pod: dict[str, Any] = {
        "serviceAccountName": service_account,
        "automountServiceAccountToken": bool(api_token_for),
        "restartPolicy": "Never",
        "securityContext": pod_security_context(),
        "containers": [container],
    }
    if volumes:
        pod["volumes"] = volumes
    template_metadata: dict[str, Any] = {"labels": labels(component, instance)}
    if pod_annotations:
        template_metadata["annotations"] = pod_annotations
    return {
        **job,
        "ttlSecondsAfterFinished": FINISHED_JOB_TTL_SECONDS,
        "template": {"metadata": template_metadata, "spec": pod},
    }


def batch_job(
    *,
    name: str,
    component: str,
    instance: str,
    service_account: str,
    container: dict[str, Any],
    job: dict[str, Any],
    volumes: list[dict[str, Any]] | None = None,
    api_token_for: str = "",
    annotations: dict[str, str] | None = None,
    extra_labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A Job of the stack started once, not on a schedule (batch scoring): the same pod and
    limits as a CronJob's runs (`cron_job`). `annotations` and `extra_labels` go on the Job
    and on its pods, so what a pod is doing shows on the pod too."""
    object_metadata = metadata(name, component, instance)
    object_metadata["labels"] |= extra_labels or {}
    spec = _job_spec(
        component=component,
        instance=instance,
        service_account=service_account,
        container=container,
        job=job,
        volumes=volumes,
        api_token_for=api_token_for,
        pod_annotations=annotations,
    )
    spec["template"]["metadata"]["labels"] = dict(object_metadata["labels"])
    every_annotation = {**(annotations or {}), **checkov_skips(_api_token_skips(api_token_for))}
    if every_annotation:
        object_metadata["annotations"] = every_annotation
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": object_metadata, "spec": spec}


def cron_job(
    *,
    name: str,
    component: str,
    instance: str,
    schedule: str,
    service_account: str,
    container: dict[str, Any],
    job: dict[str, Any],
    volumes: list[dict[str, Any]] | None = None,
    api_token_for: str = "",
) -> dict[str, Any]:
    """A scheduled job of the stack: UTC schedule, never two runs at once, a missed run given
    an hour to start, three finished jobs of each outcome kept a week; each run's pod and
    limits as `job` makes them. `job` holds the Job's own limits (retries, deadline, failure
    policy)."""
    skips = _api_token_skips(api_token_for)
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": metadata(name, component, instance)
        | ({"annotations": checkov_skips(skips)} if skips else {}),
        "spec": {
            "schedule": schedule,
            "timeZone": "Etc/UTC",
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 3600,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "spec": _job_spec(
                    component=component,
                    instance=instance,
                    service_account=service_account,
                    container=container,
                    job=job,
                    volumes=volumes,
                    api_token_for=api_token_for,
                )
            },
        },
    }
