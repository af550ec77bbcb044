"""`mlstack verify`: what the stack declares against what runs. The registry is moto; the
cluster is an API-server stand-in answering with the Deployment the stack renders, as the API
server returns it (with the fields the server adds); SageMaker, end to end, is in
tests/e2e/test_operations.py."""

from __future__ import annotations

import base64
import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import boto3
import pytest

from infra.cli.main import main
from infra.config.stack import load_config
from infra.config.stackfiles import load_stack_settings
from infra.manifests.serving import ServingWorkload, deployment
from infra.operations.aws_access import StackAws
from infra.operations.cluster_access import eks_token
from infra.operations.errors import UnreachableError
from infra.operations.live_state import LiveEndpoint
from infra.operations.stack_verification import verify_stack
from infra.operations.verification import Expected, Report, endpoint_checks
from mlstack_common.registry import find_version
from serving.cluster_api import ClusterApi
from tests import kubernetes_api
from tests.infra.operating import REGION, SERVING_DIGEST, Registry
from tests.kubernetes_api import TOKEN, ApiServer

PATH = "/apis/apps/v1/namespaces/mlstack/deployments/serving-demo"
IMAGE = f"123456789012.dkr.ecr.{REGION}.amazonaws.com/images-serving@{SERVING_DIGEST}"


def serve_dev(project: Path, registry: Registry) -> None:
    """dev pins demo version 1 and deploys a prebuilt serving image."""
    registry.register("demo-dev", "a" * 64)
    path = project / "Pulumi.dev.yaml"
    path.write_text(
        path.read_text()
        + "  mlstack:servingModelVersions:\n    - demo=1\n"
        + f"  mlstack:imageDigests:\n    - serving={SERVING_DIGEST}\n"
    )


def live_deployment(project: Path, registry: Registry, **status: int) -> dict[str, Any]:
    """dev's Deployment as the API server returns it once rolled out: the rendered object, with
    the fields the server fills in."""
    config = load_config(load_stack_settings("dev", project).values)
    package = find_version(registry.client, "demo-dev", 1)
    rendered = deployment(
        ServingWorkload(
            model="demo",
            version=1,
            package_arn=package.arn,
            model_data_url=package.model_data_url,
            model_sha256=package.model_sha256,
            image=IMAGE,
            region=REGION,
            min_replicas=config.serving.min_replicas,
            max_replicas=config.serving.max_replicas,
            cpu_millicores=config.serving.cpu_millicores,
            memory_mib=config.serving.memory_mib,
            client_namespaces=config.serving.client_namespaces,
        )
    )
    rendered["metadata"] |= {
        "namespace": "mlstack",
        "uid": "5f1e-deployment-uid",
        "resourceVersion": "48151",
        "generation": 3,
        "creationTimestamp": "2026-12-01T09:00:00Z",
    }
    rendered["spec"]["replicas"] = 2
    rendered["status"] = {
        "observedGeneration": 3,
        "replicas": 2,
        "updatedReplicas": 2,
        "readyReplicas": 2,
        "availableReplicas": 2,
        "conditions": [{"type": "Available", "status": "True"}],
    } | status
    return rendered


@pytest.fixture
def cluster() -> Iterator[ApiServer]:
    with kubernetes_api.api_server({}) as server:
        yield server


def verify_dev(project: Path, cluster: ApiServer, token: str = TOKEN) -> Report:
    connected: list[str] = []

    def connect(aws: StackAws, name: str, namespace: str) -> ClusterApi:
        connected.append(name)
        return ClusterApi(cluster.url, token, None, namespace)

    report = verify_stack(project, "dev", connect_cluster=connect, read_outputs=dict)
    assert connected == ["mlstack-dev"]
    return report


def test_a_rolled_out_deployment_of_the_pinned_version_matches(
    project: Path, registry: Registry, cluster: ApiServer
) -> None:
    serve_dev(project, registry)
    cluster.objects[PATH] = live_deployment(project, registry)
    report = verify_dev(project, cluster)
    assert report.ok, report.render()
    assert [(c.target, c.item) for c in report.checks] == [
        ("registry demo-dev", "version 1 status"),
        ("deployment mlstack/serving-demo", "model version"),
        ("deployment mlstack/serving-demo", "model package"),
        ("deployment mlstack/serving-demo", "image digest"),
        ("deployment mlstack/serving-demo", "rollout"),
        ("deployment mlstack/serving-demo", "ready replicas"),
    ]
    assert [path for _, path, _ in cluster.requests] == [PATH]


def test_each_way_a_deployment_can_differ_is_named(
    project: Path, registry: Registry, cluster: ApiServer
) -> None:
    serve_dev(project, registry)
    rolled_out = live_deployment(project, registry)

    other_image = copy.deepcopy(rolled_out)
    other_image["spec"]["template"]["spec"]["containers"][0]["image"] = IMAGE.replace(
        SERVING_DIGEST, "sha256:" + "6" * 64
    )
    other_version = copy.deepcopy(rolled_out)
    other_version["spec"]["template"]["metadata"]["labels"]["mlstack.dev/model-version"] = "7"
    cases = {
        "image digest": (other_image, f"declared {SERVING_DIGEST}, live sha256:{'6' * 64}"),
        "model version": (other_version, "declared 1, live 7"),
        "rollout": (
            live_deployment(project, registry, updatedReplicas=1),
            "live in progress (1 of 2 pods updated, generation 3 of 3 observed)",
        ),
        "ready replicas": (
            live_deployment(project, registry, readyReplicas=0),
            "declared at least 1, live 0",
        ),
    }
    for item, (live, text) in cases.items():
        cluster.objects[PATH] = live
        report = verify_dev(project, cluster)
        assert [c.item for c in report.mismatches] == [item], item
        assert text in report.render()

    del cluster.objects[PATH]
    [missing] = verify_dev(project, cluster).mismatches
    assert (missing.item, missing.live, missing.hint) == ("exists", "no", "run `pulumi up`")

    with pytest.raises(UnreachableError, match="cannot be read: 401 Unauthorized"):
        verify_dev(project, cluster, token="expired")


def test_a_pinned_version_rejected_after_deploying_is_a_mismatch(
    project: Path, registry: Registry, cluster: ApiServer
) -> None:
    serve_dev(project, registry)
    cluster.objects[PATH] = live_deployment(project, registry)
    arn = find_version(registry.client, "demo-dev", 1).arn
    registry.client.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Rejected")
    [mismatch] = verify_dev(project, cluster).mismatches
    assert (mismatch.target, mismatch.declared, mismatch.live) == (
        "registry demo-dev",
        "Approved",
        "Rejected",
    )


def test_an_endpoint_that_failed_names_why() -> None:
    expected = Expected(
        model="demo",
        version=2,
        package=None,
        group="demo-prod",
        image_digest="",
        endpoint="demo-prod",
        deployment=None,
        min_replicas=2,
    )
    live = LiveEndpoint(
        name="demo-prod",
        status="Failed",
        failure_reason="The primary container did not pass the ping health check.",
        config_name="endpoint-demo-config-1",
        model_name="endpoint-demo-model-1",
        image=IMAGE,
        model_data_url="s3://m/model.tar.gz",
        model_version="2",
        package_arn="",
    )
    [status, version] = endpoint_checks(expected, live)
    assert not status.ok
    assert status.live == "Failed (The primary container did not pass the ping health check.)"
    assert version.ok
    assert [c.item for c in endpoint_checks(expected, None)] == ["exists"]


def test_a_stack_that_serves_nothing_verifies_without_asking_anyone(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["verify", "staging", "--project-dir", str(project)]) == 0
    out = capsys.readouterr().out
    assert "note: the stack pins no model version: nothing is served, nothing to compare" in out
    assert out.rstrip().endswith("staging: live matches the stack (0 checks)")


def test_without_digests_in_the_stack_file_or_the_cli_the_image_is_not_compared(
    project: Path, registry: Registry, cluster: ApiServer
) -> None:
    from infra.operations.errors import PulumiCliMissingError

    serve_dev(project, registry)
    path = project / "Pulumi.dev.yaml"
    path.write_text(
        path.read_text().replace(f"  mlstack:imageDigests:\n    - serving={SERVING_DIGEST}\n", "")
    )
    cluster.objects[PATH] = live_deployment(project, registry)

    def no_cli() -> dict[str, Any]:
        raise PulumiCliMissingError("needs the Pulumi CLI")

    report = verify_stack(
        project,
        "dev",
        connect_cluster=lambda aws, name, ns: ClusterApi(cluster.url, TOKEN, None, ns),
        read_outputs=no_cli,
    )
    assert report.ok
    assert "image digest" not in [c.item for c in report.checks]
    assert report.notes[0].startswith("image digests not compared: the stack builds its serving")


def test_the_cluster_token_is_a_presigned_caller_identity_request_bound_to_the_cluster(
    registry: Registry,
) -> None:
    token = eks_token(boto3.client("sts", region_name=REGION), "mlstack-prod")
    assert token.startswith("k8s-aws-v1.")
    encoded = token.removeprefix("k8s-aws-v1.")
    url = urlparse(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode())
    query = parse_qs(url.query)
    assert url.netloc == f"sts.{REGION}.amazonaws.com"
    assert query["Action"] == ["GetCallerIdentity"]
    assert query["X-Amz-SignedHeaders"] == ["host;x-k8s-aws-id"]
    assert query["X-Amz-Expires"] == ["60"]
