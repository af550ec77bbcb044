"""The serving workload's Kubernetes objects, built by pure functions and checked without an
engine: against the Kubernetes OpenAPI schema of every supported version, and for what a
reviewer and the cluster's admission would look for."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import kubernetes_validate
import pytest

from infra.config.eks_versions import SUPPORTED_KUBERNETES_VERSIONS
from infra.manifests.namespace import default_deny, namespace, service_account
from infra.manifests.serving import (
    MODEL_VERSION_LABEL,
    ServingIngress,
    ServingWorkload,
    autoscaler,
    deployment,
    disruption_budget,
    network_policy,
    serving_objects,
)

IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mlstack-prod-serving@sha256:" + "1" * 64
WORKLOAD = ServingWorkload(
    model="churn",
    version=3,
    package_arn="arn:aws:sagemaker:eu-west-1:123456789012:model-package/churn-prod/3",
    model_data_url="s3://mlstack-prod-models/churn/abc-def/model.tar.gz",
    model_sha256="a" * 64,
    image=IMAGE,
    region="eu-west-1",
    min_replicas=3,
    max_replicas=6,
    cpu_millicores=2000,
    memory_mib=2048,
    client_namespaces=("apps", "monitoring"),
)
CERTIFICATE = "arn:aws:acm:eu-west-1:123456789012:certificate/12345678-1234-1234-1234-123456789012"
INGRESS = ServingIngress(
    certificate_arn=CERTIFICATE, internet_facing=False, vpc_cidr="10.42.0.0/16"
)


def every_object() -> list[dict[str, Any]]:
    return [
        namespace(),
        service_account("serving", "arn:aws:iam::123456789012:role/serving"),
        default_deny(),
        *serving_objects(WORKLOAD),
        *serving_objects(replace(WORKLOAD, min_replicas=1, client_namespaces=())),
        namespace(load_balancer_readiness=True),
        *serving_objects(replace(WORKLOAD, ingress=INGRESS)),
    ]


@pytest.mark.parametrize("version", SUPPORTED_KUBERNETES_VERSIONS)
def test_every_object_is_valid_for_every_supported_kubernetes_version(version: str) -> None:
    for manifest in every_object():
        kubernetes_validate.validate(manifest, version, strict=True)


def test_a_misspelt_field_is_caught_by_the_schema_check() -> None:
    broken = deployment(WORKLOAD)
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError) as caught:
        kubernetes_validate.validate(broken, SUPPORTED_KUBERNETES_VERSIONS[-1], strict=True)
    assert "'readinesProbe' was unexpected" in caught.value.message


def pod(manifest: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = manifest["spec"]["template"]["spec"]
    return spec


def test_the_pod_meets_the_restricted_standard_and_writes_only_its_volume() -> None:
    spec = pod(deployment(WORKLOAD))
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    [container] = spec["containers"]
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert container["image"].split("@")[1].startswith("sha256:")
    assert [mount["mountPath"] for mount in container["volumeMounts"]] == ["/tmp"]  # noqa: S108
    assert namespace()["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_the_pod_serves_the_pinned_version_sized_from_config() -> None:
    [container] = pod(deployment(WORKLOAD))["containers"]
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env["MLSTACK_MODEL_URI"] == WORKLOAD.model_data_url
    assert env["MLSTACK_MODEL_VERSION"] == "3"
    assert env["MLSTACK_WORKERS"] == "2"  # one per core of 2000m
    assert container["resources"]["requests"] == {"cpu": "2000m", "memory": "2048Mi"}
    assert container["resources"]["limits"] == container["resources"]["requests"]
    template = deployment(WORKLOAD)["spec"]["template"]["metadata"]
    assert template["labels"][MODEL_VERSION_LABEL] == "3"
    assert template["annotations"]["prometheus.io/scrape"] == "true"


def test_stopping_outlasts_the_drain_and_the_pre_stop_delay() -> None:
    spec = pod(deployment(WORKLOAD))
    [container] = spec["containers"]
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    grace = int(next(e["value"] for e in container["env"] if e["name"] == "MLSTACK_GRACE_SECONDS"))
    assert spec["terminationGracePeriodSeconds"] > grace + pre_stop


def changed_paths(before: Any, after: Any, path: str = "") -> list[str]:
    if isinstance(before, dict) and isinstance(after, dict):
        return [
            changed
            for key in sorted(set(before) | set(after))
            for changed in changed_paths(before.get(key), after.get(key), f"{path}.{key}")
        ]
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [
            changed
            for index, (a, b) in enumerate(zip(before, after, strict=True))
            for changed in changed_paths(a, b, f"{path}[{index}]")
        ]
    return [] if before == after else [path]


def test_a_new_pinned_version_changes_only_the_pod_template() -> None:
    newer = replace(
        WORKLOAD,
        version=4,
        package_arn=WORKLOAD.package_arn.replace("/3", "/4"),
        model_data_url="s3://mlstack-prod-models/churn/abc-fed/model.tar.gz",
        model_sha256="b" * 64,
    )
    for before, after in zip(serving_objects(WORKLOAD), serving_objects(newer), strict=True):
        changed = changed_paths(before, after)
        if before["kind"] == "Deployment":
            assert changed
            assert all(path.startswith(".spec.template.") for path in changed), changed
        else:
            assert changed == [], before["kind"]


def test_the_autoscaler_owns_the_replica_count_within_the_configured_bounds() -> None:
    assert "replicas" not in deployment(WORKLOAD)["spec"]
    spec = autoscaler(WORKLOAD)["spec"]
    assert (spec["minReplicas"], spec["maxReplicas"]) == (3, 6)
    assert spec["scaleTargetRef"]["name"] == deployment(WORKLOAD)["metadata"]["name"]


def test_a_budget_keeps_all_but_one_of_the_minimum_and_none_guards_a_single_replica() -> None:
    budget = disruption_budget(WORKLOAD)
    assert budget is not None
    assert budget["spec"]["minAvailable"] == 2
    assert disruption_budget(replace(WORKLOAD, min_replicas=1)) is None
    rolling = deployment(WORKLOAD)["spec"]["strategy"]["rollingUpdate"]
    assert rolling["maxUnavailable"] == 0


def test_only_the_client_namespaces_reach_the_model_port() -> None:
    [rule] = network_policy(WORKLOAD)["spec"]["ingress"]
    names = [
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for peer in rule["from"]
    ]
    assert names == ["apps", "monitoring"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8080}]
    closed = network_policy(replace(WORKLOAD, client_namespaces=()))["spec"]
    assert closed["ingress"] == []
    assert "Ingress" in closed["policyTypes"]
    assert default_deny()["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}


def kinds(objects: list[dict[str, Any]]) -> list[str]:
    return [obj["kind"] for obj in objects]


def test_an_ingress_gives_the_model_its_own_internal_https_load_balancer() -> None:
    assert "Ingress" not in kinds(serving_objects(WORKLOAD))
    [ingress] = [
        o for o in serving_objects(replace(WORKLOAD, ingress=INGRESS)) if o["kind"] == "Ingress"
    ]
    annotations = ingress["metadata"]["annotations"]
    alb = "alb.ingress.kubernetes.io"
    assert annotations[f"{alb}/scheme"] == "internal"
    assert annotations[f"{alb}/certificate-arn"] == CERTIFICATE
    assert annotations[f"{alb}/listen-ports"] == '[{"HTTPS": 443}]'
    assert annotations[f"{alb}/target-type"] == "ip"
    assert annotations[f"{alb}/ssl-policy"].startswith("ELBSecurityPolicy-TLS13")
    assert ingress["spec"]["ingressClassName"] == "alb"
    [path] = ingress["spec"]["rules"][0]["http"]["paths"]
    assert path["backend"]["service"] == {"name": "serving-churn", "port": {"name": "http"}}
    public = replace(WORKLOAD, ingress=replace(INGRESS, internet_facing=True))
    [exposed] = [o for o in serving_objects(public) if o["kind"] == "Ingress"]
    assert exposed["metadata"]["annotations"][f"{alb}/scheme"] == "internet-facing"


def test_the_load_balancer_reaches_the_pods_only_when_there_is_one() -> None:
    def sources(workload: ServingWorkload) -> list[dict[str, Any]]:
        return [s for rule in network_policy(workload)["spec"]["ingress"] for s in rule["from"]]

    assert {"ipBlock": {"cidr": "10.42.0.0/16"}} not in sources(WORKLOAD)
    assert {"ipBlock": {"cidr": "10.42.0.0/16"}} in sources(replace(WORKLOAD, ingress=INGRESS))
    alone = replace(WORKLOAD, client_namespaces=(), ingress=INGRESS)
    assert sources(alone) == [{"ipBlock": {"cidr": "10.42.0.0/16"}}]


def test_pods_behind_a_load_balancer_wait_for_it_before_counting_as_ready() -> None:
    label = "elbv2.k8s.aws/pod-readiness-gate-inject"
    assert label not in namespace()["metadata"]["labels"]
    assert namespace(load_balancer_readiness=True)["metadata"]["labels"][label] == "enabled"
