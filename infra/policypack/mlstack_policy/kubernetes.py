"""Kubernetes workload rules: the pod hardening, health and sizing every workload keeps, images
pinned by digest, and the guards a replicated Deployment needs."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from mlstack_policy.rules import MLSTACK, ResourceLike, StackIndex, known, resource_rule, stack_rule

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
CRON_JOB = "kubernetes:batch/v1:CronJob"
DAEMON_SET = "kubernetes:apps/v1:DaemonSet"
AUTOSCALER = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
BUDGET = "kubernetes:policy/v1:PodDisruptionBudget"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
ADDON = "aws:eks/addon:Addon"

Pod = Mapping[str, Any]


def pod_template(workload: ResourceLike) -> Pod:
    """The pod template of a Deployment, DaemonSet or CronJob."""
    spec = known(workload.props.get("spec") or {}, f"the spec of {workload.name}") or {}
    if workload.resource_type == CRON_JOB:
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    pod: Pod = (spec.get("template") or {}).get("spec") or {}
    return pod


def _containers(pod: Pod) -> list[Mapping[str, Any]]:
    return [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]


def _security(pod: Pod, container: Mapping[str, Any]) -> Mapping[str, Any]:
    """A container's effective security settings: its own over the pod's."""
    return {**(pod.get("securityContext") or {}), **(container.get("securityContext") or {})}


def _unprivileged_problem(pod: Pod) -> str | None:
    """What even a node agent keeps: no privilege, no escalation, no capabilities, a seccomp
    profile and a read-only root filesystem."""
    for container in _containers(pod):
        security, name = _security(pod, container), container.get("name")
        if security.get("privileged") is True:
            return f"container {name} is privileged"
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


def _restricted_problem(pod: Pod) -> str | None:
    """The restricted Pod Security Standard (non-root on top of the above), no host paths."""
    for container in _containers(pod):
        if _security(pod, container).get("runAsNonRoot") is not True:
            return f"container {container.get('name')} may run as root (runAsNonRoot is not true)"
    for volume in pod.get("volumes") or []:
        if "hostPath" in volume:
            return f"volume {volume.get('name')} mounts a path of the node"
    return _unprivileged_problem(pod)


def _sizing_problem(pod: Pod) -> str | None:
    for container in pod.get("containers") or []:
        resources = container.get("resources") or {}
        for kind in ("requests", "limits"):
            missing = {"cpu", "memory"} - set(resources.get(kind) or {})
            if missing:
                name = container.get("name")
                return f"container {name} has no {kind} for {', '.join(sorted(missing))}"
    return None


def _probing_problem(pod: Pod) -> str | None:
    for container in pod.get("containers") or []:
        for probe in ("readinessProbe", "livenessProbe"):
            if not container.get(probe):
                return f"container {container.get('name')} has no {probe}"
    return None


def _digest_problem(workload: ResourceLike, pod: Pod) -> str | None:
    for container in _containers(pod):
        image = known(container.get("image"), f"the image of {workload.name}")
        if "@sha256:" not in str(image):
            return f"container {container.get('name')} runs {image}, a tag that can move"
    return None


@resource_rule(
    "MLSTACK.K8S.1", "Pods meet the restricted Pod Security Standard", DEPLOYMENT, MLSTACK
)
def restricted_pods(workload: ResourceLike) -> str | None:
    return _restricted_problem(pod_template(workload))


@resource_rule("MLSTACK.K8S.2", "Containers have probes, requests and limits", DEPLOYMENT, MLSTACK)
def probed_and_sized(workload: ResourceLike) -> str | None:
    pod = pod_template(workload)
    return _probing_problem(pod) or _sizing_problem(pod)


@resource_rule("MLSTACK.K8S.3", "Container images are pinned by digest", DEPLOYMENT, MLSTACK)
def images_by_digest(workload: ResourceLike) -> str | None:
    return _digest_problem(workload, pod_template(workload))


@resource_rule(
    "MLSTACK.K8S.5",
    "Scheduled jobs run restricted pods, sized, from images pinned by digest",
    CRON_JOB,
    MLSTACK,
)
def hardened_jobs(job: ResourceLike) -> str | None:
    # Probes do not apply: a Job's pod is not a server and is never behind a Service.
    pod = pod_template(job)
    return _restricted_problem(pod) or _sizing_problem(pod) or _digest_problem(job, pod)


@resource_rule(
    "MLSTACK.K8S.6",
    "Node agents (DaemonSets) run unprivileged, sized, from images pinned by digest",
    DAEMON_SET,
    MLSTACK,
)
def unprivileged_node_agents(agent: ResourceLike) -> str | None:
    # A node agent may run as root and mount a node path (the device plugin's socket
    # directory); it may not be privileged, escalate or keep capabilities.
    pod = pod_template(agent)
    return _unprivileged_problem(pod) or _sizing_problem(pod) or _digest_problem(agent, pod)


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


@resource_rule(
    "MLSTACK.K8S.7",
    "The VPC CNI enforces NetworkPolicy objects (enableNetworkPolicy)",
    ADDON,
    MLSTACK,
)
def network_policies_enforced(addon: ResourceLike) -> str | None:
    if addon.props.get("addonName") != "vpc-cni":
        return None
    raw = known(addon.props.get("configurationValues"), "the VPC CNI's configuration") or "{}"
    if str(json.loads(str(raw)).get("enableNetworkPolicy")).lower() != "true":
        return "the VPC CNI does not enforce NetworkPolicy objects (enableNetworkPolicy is off)"
    return None
