"""One model's serving workload on Kubernetes: Deployment, Service, HorizontalPodAutoscaler,
PodDisruptionBudget, NetworkPolicy and, when the stack has one, its Ingress.

The pinned model version is in the pod template (environment, label, annotations), so pinning
another version changes only the template and the Deployment rolls its pods; the selector,
Service, autoscaler and policies stay as they are.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from infra.manifests import hardening, load_balancer_controller
from infra.project import naming
from serving.settings import ServingSettings

COMPONENT = "serving"
PORT = ServingSettings.port
PORT_NAME = "http"
PRE_STOP_SECONDS = 5
"""Time for the endpoints controller and kube-proxy to stop sending traffic before SIGTERM."""
TERMINATION_MARGIN_SECONDS = 5
WORK_VOLUME_LIMIT = "4Gi"
"""The model download and unpacked model live there (the root filesystem is read-only)."""
TARGET_CPU_PERCENT = 70
MODEL_VERSION_LABEL = "mlstack.dev/model-version"
MODEL_PACKAGE_ANNOTATION = "mlstack.dev/model-package"
MODEL_SHA256_ANNOTATION = "mlstack.dev/model-sha256"


HTTPS_PORT = 443
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
"""TLS 1.3 and 1.2 only, with forward-secret ciphers."""


@dataclass(frozen=True, kw_only=True)
class ServingIngress:
    """HTTPS from outside the cluster, through an Application Load Balancer per model."""

    certificate_arn: str
    internet_facing: bool
    vpc_cidr: str
    """The load balancer reaches pods directly (target type `ip`) from addresses in the VPC."""
    trust_store_arn: str = ""
    """An ELB trust store: the listener then verifies client certificates against it (mutual
    TLS) and completes no handshake without one. Empty: TLS without client certificates."""
    web_acl_arn: str = ""
    """A regional WAFv2 web ACL the load balancer is associated with; empty: none."""


def serving_name(model: str) -> str:
    """The name of a model's Deployment, Service and the rest: what its alarm watches."""
    return f"serving-{model}"


@dataclass(frozen=True, kw_only=True)
class ServingCapture:
    """The server captures a sample of requests and responses (see serving/capture.py)."""

    uri: str
    """`s3://<capture bucket>/<prefix>`."""
    percent: int
    endpoint: str
    """The name the records are filed under."""


@dataclass(frozen=True, kw_only=True)
class ServingWorkload:
    """What one model's serving needs: the pinned version, the image, the size."""

    model: str
    version: int
    package_arn: str
    model_data_url: str
    model_sha256: str
    image: str
    """By digest: `<repository>@sha256:<digest>`."""
    region: str
    min_replicas: int
    max_replicas: int
    cpu_millicores: int
    memory_mib: int
    client_namespaces: tuple[str, ...]
    """Namespaces whose pods may call the model; nobody else can reach it."""
    ingress: ServingIngress | None = None
    capture: ServingCapture | None = None

    @property
    def name(self) -> str:
        return serving_name(self.model)

    @property
    def workers(self) -> int:
        """One server process per core the pod is given."""
        return max(1, math.floor(self.cpu_millicores / 1000))


def _metadata(workload: ServingWorkload, **extra: Any) -> dict[str, Any]:
    return hardening.metadata(workload.name, COMPONENT, workload.model, **extra)


def _selector(workload: ServingWorkload) -> dict[str, str]:
    return hardening.selector(COMPONENT, workload.model)


def _probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": PORT_NAME},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def _container(workload: ServingWorkload) -> dict[str, Any]:
    environment = {
        "MLSTACK_MODEL_URI": workload.model_data_url,
        "MLSTACK_MODEL_VERSION": str(workload.version),
        "MLSTACK_PORT": str(PORT),
        "MLSTACK_WORKERS": str(workload.workers),
        "MLSTACK_GRACE_SECONDS": str(int(ServingSettings.grace_seconds)),
        "AWS_REGION": workload.region,
        "AWS_DEFAULT_REGION": workload.region,
    }
    if workload.capture is not None:
        environment |= {
            "MLSTACK_CAPTURE_URI": workload.capture.uri,
            "MLSTACK_CAPTURE_PERCENT": str(workload.capture.percent),
            "MLSTACK_CAPTURE_ENDPOINT": workload.capture.endpoint,
        }
    return {
        "name": COMPONENT,
        "image": workload.image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": PORT_NAME, "containerPort": PORT, "protocol": "TCP"}],
        "env": [{"name": key, "value": value} for key, value in environment.items()],
        "resources": hardening.resources(workload.cpu_millicores, workload.memory_mib),
        "securityContext": hardening.container_security_context(),
        # Downloading and checking the model may take a while; then /ping answers at once.
        "startupProbe": _probe("/ping", 2, 60),
        "readinessProbe": _probe("/readyz", 5, 2),
        "livenessProbe": _probe("/healthz", 10, 3),
        "lifecycle": {"preStop": {"sleep": {"seconds": PRE_STOP_SECONDS}}},
        # The image's MLSTACK_WORK_DIR is under /tmp, the only path the server writes.
        "volumeMounts": [{"name": "work", "mountPath": "/tmp"}],  # noqa: S108 (an emptyDir)
    }


def deployment(workload: ServingWorkload) -> dict[str, Any]:
    """No `replicas`: the autoscaler owns the count (between the configured bounds); a value
    here would be reset on every `pulumi up`, undoing its scaling."""
    version = str(workload.version)
    template_labels = {
        **hardening.labels(COMPONENT, workload.model),
        MODEL_VERSION_LABEL: version,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(workload),
        "spec": {
            "selector": {"matchLabels": _selector(workload)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "revisionHistoryLimit": 5,
            "template": {
                "metadata": {
                    "labels": template_labels,
                    "annotations": {
                        MODEL_PACKAGE_ANNOTATION: workload.package_arn,
                        MODEL_SHA256_ANNOTATION: workload.model_sha256,
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(PORT),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": {
                    "serviceAccountName": naming.SERVING_SERVICE_ACCOUNT,
                    "automountServiceAccountToken": False,
                    "securityContext": hardening.pod_security_context(),
                    "terminationGracePeriodSeconds": int(ServingSettings.grace_seconds)
                    + PRE_STOP_SECONDS
                    + TERMINATION_MARGIN_SECONDS,
                    "topologySpreadConstraints": [
                        {
                            "maxSkew": 1,
                            "topologyKey": key,
                            "whenUnsatisfiable": "ScheduleAnyway",
                            "labelSelector": {"matchLabels": _selector(workload)},
                        }
                        for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
                    ],
                    "containers": [_container(workload)],
                    "volumes": [{"name": "work", "emptyDir": {"sizeLimit": WORK_VOLUME_LIMIT}}],
                },
            },
        },
    }


def service(workload: ServingWorkload) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(workload),
        "spec": {
            "type": "ClusterIP",
            "selector": _selector(workload),
            "ports": [
                {"name": PORT_NAME, "port": PORT, "targetPort": PORT_NAME, "protocol": "TCP"}
            ],
        },
    }


def autoscaler(workload: ServingWorkload) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(workload),
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": workload.name,
            },
            "minReplicas": workload.min_replicas,
            "maxReplicas": workload.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": TARGET_CPU_PERCENT},
                    },
                }
            ],
        },
    }


def disruption_budget(workload: ServingWorkload) -> dict[str, Any] | None:
    """All but one of the minimum may be evicted at once; none with a single replica, where a
    budget of one available pod would block every node drain."""
    if workload.min_replicas < 2:
        return None
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(workload),
        "spec": {
            "minAvailable": workload.min_replicas - 1,
            "selector": {"matchLabels": _selector(workload)},
        },
    }


def ingress(workload: ServingWorkload, settings: ServingIngress) -> dict[str, Any]:
    """An ALB of its own answering HTTPS only, forwarding to the pods' IPs (no node hop), health
    checked on `/ping`, which turns 503 while a pod drains; invalid header fields dropped."""
    alb = "alb.ingress.kubernetes.io"
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": _metadata(
            workload,
            annotations={
                f"{alb}/scheme": "internet-facing" if settings.internet_facing else "internal",
                f"{alb}/target-type": "ip",
                f"{alb}/listen-ports": json.dumps([{"HTTPS": HTTPS_PORT}]),
                f"{alb}/certificate-arn": settings.certificate_arn,
                f"{alb}/ssl-policy": TLS_POLICY,
                f"{alb}/backend-protocol": "HTTP",
                f"{alb}/healthcheck-path": "/ping",
                f"{alb}/load-balancer-attributes": (
                    "routing.http.drop_invalid_header_fields.enabled=true"
                ),
                # Always stated: once set, the controller turns it off only when told "off"
                # (its annotations guide at v2.17.1, mutual-authentication).
                f"{alb}/mutual-authentication": json.dumps(
                    [
                        {
                            "port": HTTPS_PORT,
                            "mode": "verify",
                            "trustStore": settings.trust_store_arn,
                        }
                        if settings.trust_store_arn
                        else {"port": HTTPS_PORT, "mode": "off"}
                    ]
                ),
                **({f"{alb}/wafv2-acl-arn": settings.web_acl_arn} if settings.web_acl_arn else {}),
            },
        ),
        "spec": {
            "ingressClassName": load_balancer_controller.INGRESS_CLASS,
            "rules": [
                {
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {
                                    "service": {"name": workload.name, "port": {"name": PORT_NAME}}
                                },
                            }
                        ]
                    }
                }
            ],
        },
    }


def network_policy(workload: ServingWorkload) -> dict[str, Any]:
    """Port 8080 from the client namespaces only, and from the VPC's addresses when an ALB
    forwards to the pods; out: DNS, and HTTPS (S3, STS)."""
    dns = [{"protocol": protocol, "port": 53} for protocol in ("UDP", "TCP")]
    sources: list[dict[str, Any]] = [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}}
        for namespace in workload.client_namespaces
    ]
    if workload.ingress is not None:
        sources.append({"ipBlock": {"cidr": workload.ingress.vpc_cidr}})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(workload),
        "spec": {
            "podSelector": {"matchLabels": _selector(workload)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": sources, "ports": [{"protocol": "TCP", "port": PORT}]}]
            if sources
            else [],
            "egress": [{"ports": dns}, {"ports": [{"protocol": "TCP", "port": 443}]}],
        },
    }


def serving_objects(workload: ServingWorkload) -> list[dict[str, Any]]:
    """Everything one model's serving declares, in the order it is applied."""
    budget = disruption_budget(workload)
    return [
        deployment(workload),
        service(workload),
        autoscaler(workload),
        *([budget] if budget else []),
        network_policy(workload),
        *([ingress(workload, workload.ingress)] if workload.ingress else []),
    ]
