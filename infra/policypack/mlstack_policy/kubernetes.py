"""Kubernetes workload rules: the pod hardening, health and sizing every workload keeps, images
pinned by digest, and the guards a replicated Deployment needs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlstack_policy.rules import MLSTACK, ResourceLike, StackIndex, known, resource_rule, stack_rule

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
AUTOSCALER = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
BUDGET = "kubernetes:policy/v1:PodDisruptionBudget"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"


def _pod(workload: ResourceLike) -> Mapping[str, Any]:
    spec = known(workload.props.get("spec"), f"the spec of {workload.name}") or {}
    pod: Mapping[str, Any] = (spec.get("template") or {}).get("spec") or {}
    return pod


def _containers(workload: ResourceLike) -> list[Mapping[str, Any]]:
    pod = _pod(workload)
    return [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]


@resource_rule(
    "MLSTACK.K8S.1", "Pods meet the restricted Pod Security Standard", DEPLOYMENT, MLSTACK
)
def restricted_pods(workload: ResourceLike) -> str | None:
    pod = _pod(workload)
    pod_security = pod.get("securityContext") or {}
    for container in _containers(workload):
        security = {**pod_security, **(container.get("securityContext") or {})}
        name = container.get("name")
        if security.get("runAsNonRoot") is not True:
            return f"container {name} may run as root (runAsNonRoot is not true)"
        if security.get("allowPrivilegeEscalation") is not False:
            return f"container {name} allows privilege escalation"
        if "ALL" not in ((security.get("capabilities") or {}).get("drop") or []):
            return f"container {name} keeps Linux capabilities (drop ALL)"
        if (security.get("seccompProfile") or {}).get("type") not in (
            "RuntimeDefault",
            "Localhost",
        ):
            return f"container {name} runs without a seccomp profile"
        if security.get("readOnlyRootFilesystem") is not True:
            return f"container {name} can write its root filesystem"
    return None


@resource_rule("MLSTACK.K8S.2", "Containers have probes, requests and limits", DEPLOYMENT, MLSTACK)
def probed_and_sized(workload: ResourceLike) -> str | None:
    for container in _pod(workload).get("containers") or []:
        name = container.get("name")
        for probe in ("readinessProbe", "livenessProbe"):
            if not container.get(probe):
                return f"container {name} has no {probe}"
        resources = container.get("resources") or {}
        for kind in ("requests", "limits"):
            missing = {"cpu", "memory"} - set(resources.get(kind) or {})
            if missing:
                return f"container {name} has no {kind} for {', '.join(sorted(missing))}"
    return None


@resource_rule("MLSTACK.K8S.3", "Container images are pinned by digest", DEPLOYMENT, MLSTACK)
def images_by_digest(workload: ResourceLike) -> str | None:
    for container in _containers(workload):
        image = known(container.get("image"), f"the image of {workload.name}")
        if "@sha256:" not in str(image):
            return f"container {container.get('name')} runs {image}, a tag that can move"
    return None


def _minimum_replicas(workload: ResourceLike, stack: StackIndex) -> int:
    name = (workload.props.get("metadata") or {}).get("name")
    scaled = [
        (autoscaler.props.get("spec") or {}).get("minReplicas", 1)
        for autoscaler in stack.of_type(AUTOSCALER)
        if ((autoscaler.props.get("spec") or {}).get("scaleTargetRef") or {}).get("name") == name
    ]
    return int(scaled[0]) if scaled else int((workload.props.get("spec") or {}).get("replicas", 1))


def _selects(guard: ResourceLike, key: str, labels: Mapping[str, str]) -> bool:
    selector = ((guard.props.get("spec") or {}).get(key) or {}).get("matchLabels") or {}
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


@stack_rule(
    "MLSTACK.K8S.4",
    "Replicated Deployments have a disruption budget and a network policy",
    DEPLOYMENT,
    MLSTACK,
)
def guarded_when_replicated(workload: ResourceLike, stack: StackIndex) -> str | None:
    if _minimum_replicas(workload, stack) < 2:
        return None
    spec = workload.props.get("spec") or {}
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    if not any(_selects(budget, "selector", labels) for budget in stack.of_type(BUDGET)):
        return "runs several replicas but no PodDisruptionBudget selects its pods"
    if not any(_selects(p, "podSelector", labels) for p in stack.of_type(NETWORK_POLICY)):
        return "runs several replicas but no NetworkPolicy of its own selects its pods"
    return None
