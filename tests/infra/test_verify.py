"""`mlstack verify` and the cluster: what the stack declares against what runs. The registry and
CloudWatch are moto; the cluster is an API-server stand-in answering with the Deployment the
stack renders, as the API server returns it (with the fields the server adds), or a closed or
silent port on 127.0.0.1 for a cluster out of reach. SageMaker endpoints are in
tests/infra/test_verify_endpoint.py and, end to end, in tests/e2e/test_operations.py."""

from __future__ import annotations

import base64
import copy
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import boto3
import pytest

from infra.cli.main import main
from infra.config.stack import load_config
from infra.config.stackfiles import load_stack_settings
from infra.documents.monitoring import serving_replicas_alarm
from infra.manifests.serving import ServingWorkload, deployment
from infra.operations import stack_verification
from infra.operations.aws_access import StackAws
from infra.operations.cluster_access import eks_token
from infra.operations.live_state import EndpointConfiguration, LiveEndpoint
from infra.operations.stack_verification import verify_stack
from infra.operations.verification import Expected, Report, endpoint_checks
from mlstack_common.exits import ExitStatus
from mlstack_common.registry import find_version
from serving.cluster_api import ClusterApi, ClusterApiError
from serving.ports import free_port
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


def verify_dev(project: Path, url: str, token: str = TOKEN) -> Report:
    connected: list[str] = []

    def connect(aws: StackAws, name: str, namespace: str) -> ClusterApi:
        connected.append(name)
        return ClusterApi(url, token, None, namespace)

    report = verify_stack(project, "dev", connect_cluster=connect, read_outputs=dict)
    assert connected == ["mlstack-dev"]
    return report


@contextmanager
def silent_server() -> Iterator[tuple[str, list[socket.socket]]]:
    """A server on 127.0.0.1 that takes connections and never answers: a hung API. Yields its
    URL and the connections it took."""
    listener = socket.create_server(("127.0.0.1", 0))
    taken: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                taken.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", taken
    finally:
        listener.close()
        for connection in taken:
            connection.close()


def test_a_rolled_out_deployment_of_the_pinned_version_matches(
    project: Path, registry: Registry, cluster: ApiServer
) -> None:
    serve_dev(project, registry)
    cluster.objects[PATH] = live_deployment(project, registry)
    report = verify_dev(project, cluster.url)
    assert report.ok, report.render()
    assert report.exit_status == ExitStatus.OK
    assert [(c.target, c.item) for c in report.checks] == [
        ("registry demo-dev", "version 1 status"),
        ("deployment mlstack/serving-demo", "model version"),
        ("deployment mlstack/serving-demo", "model package"),
        ("deployment mlstack/serving-demo", "image digest"),
        ("deployment mlstack/serving-demo", "rollout"),
        ("deployment mlstack/serving-demo", "ready replicas"),
    ]
    assert [path for _, path, _ in cluster.requests] == [PATH]
    assert report.render().splitlines()[0] == (f"dev: AWS account 123456789012, region {REGION}")


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
        report = verify_dev(project, cluster.url)
        assert [c.item for c in report.mismatches] == [item], item
        assert text in report.render()
        assert report.exit_status == ExitStatus.REFUSED

    del cluster.objects[PATH]
    [missing] = verify_dev(project, cluster.url).mismatches
    assert (missing.item, missing.live, missing.hint) == ("exists", "no", "run `pulumi up`")


def test_a_cluster_that_refuses_the_token_is_reported_with_what_was_read(
    project: Path, registry: Registry, cluster: ApiServer
) -> None:
    serve_dev(project, registry)
    cluster.objects[PATH] = live_deployment(project, registry)
    report = verify_dev(project, cluster.url, token="expired")
    assert [(c.target, c.outcome) for c in report.checks] == [
        ("registry demo-dev", "ok"),
        ("deployment mlstack/serving-demo", "not read"),
    ]
    assert "cannot be read: 401 Unauthorized" in report.unread[0].live
    assert report.exit_status == ExitStatus.UNREACHABLE


def test_a_pinned_version_rejected_after_deploying_is_a_mismatch(
    project: Path, registry: Registry, cluster: ApiServer
) -> None:
    serve_dev(project, registry)
    cluster.objects[PATH] = live_deployment(project, registry)
    arn = find_version(registry.client, "demo-dev", 1).arn
    registry.client.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Rejected")
    [mismatch] = verify_dev(project, cluster.url).mismatches
    assert (mismatch.target, mismatch.declared, mismatch.live) == (
        "registry demo-dev",
        "Approved",
        "Rejected",
    )


def use_cluster_at(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """The command's cluster connector reaches `url` (EKS would give the API server's address)."""
    from infra.operations import cluster_access

    monkeypatch.setattr(
        cluster_access,
        "cluster_api",
        lambda aws, name, namespace: ClusterApi(url, TOKEN, None, namespace),
    )


def test_an_unreachable_cluster_keeps_what_was_read_and_prints_it(
    project: Path,
    registry: Registry,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    serve_dev(project, registry)
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens: connection refused
    use_cluster_at(monkeypatch, closed)

    assert main(["verify", "dev", "--project-dir", str(project)]) == ExitStatus.UNREACHABLE
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"dev: AWS account 123456789012, region {REGION}"
    assert out[1] == "ok       registry demo-dev: version 1 status: Approved"
    assert out[2].startswith(f"NOT READ deployment mlstack/serving-demo: state: GET {closed}")
    assert "Connection refused" in out[2]
    assert "clusterPublicAccessCidrs" in out[3]
    assert out[-1] == "dev: 1 of 2 could not be read"

    assert main(["verify", "dev", "--json", "--project-dir", str(project)]) == 4
    report = json.loads(capsys.readouterr().out)
    assert (report["account"], report["region"], report["ok"]) == ("123456789012", REGION, False)
    assert report["exit_status"] == 4
    assert [(c["target"], c["outcome"]) for c in report["checks"]] == [
        ("registry demo-dev", "ok"),
        ("deployment mlstack/serving-demo", "not read"),
    ]

    # A mismatch among what could be read outweighs what could not.
    arn = find_version(registry.client, "demo-dev", 1).arn
    registry.client.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Rejected")
    assert main(["verify", "dev", "--json", "--project-dir", str(project)]) == 1
    assert json.loads(capsys.readouterr().out)["exit_status"] == 1


def test_a_hung_cluster_costs_the_timeout_and_is_reported(
    project: Path, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_dev(project, registry)
    monkeypatch.setattr(stack_verification, "CLUSTER_TIMEOUT_SECONDS", 0.5)
    with silent_server() as (url, _):
        started = time.monotonic()
        report = verify_dev(project, url)
        elapsed = time.monotonic() - started
    assert elapsed < 5, elapsed
    [unread] = report.unread
    assert "timed out" in unread.live
    assert [c.outcome for c in report.checks] == ["ok", "not read"]


def test_the_cluster_client_gives_up_after_its_timeout() -> None:
    with silent_server() as (url, taken):
        api = ClusterApi(url, TOKEN, None, timeout=0.3)
        started = time.monotonic()
        with pytest.raises(ClusterApiError, match="timed out"):
            api.call("GET", PATH)
        assert time.monotonic() - started < 3
        assert len(taken) == 1
    assert ClusterApi(url, TOKEN, None).timeout == 30


def test_a_firing_replicas_alarm_fails_the_check_with_its_reason(
    project: Path, registry: Registry, cluster: ApiServer
) -> None:
    serve_dev(project, registry)
    cluster.objects[PATH] = live_deployment(project, registry)
    alarm = serving_replicas_alarm(
        cluster="mlstack-dev", namespace="mlstack", service="serving-demo", min_replicas=1
    )
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    cloudwatch.put_metric_alarm(
        AlarmName=alarm.name,
        AlarmDescription=alarm.description,
        Namespace=alarm.namespace,
        MetricName=alarm.metric,
        Dimensions=[{"Name": k, "Value": str(v)} for k, v in alarm.dimensions.items()],
        Statistic="Minimum",
        Period=60,
        EvaluationPeriods=5,
        Threshold=1,
        ComparisonOperator="LessThanThreshold",
    )
    report = verify_dev(project, cluster.url)
    assert report.checks[-1].item == "state"
    assert report.checks[-1].live == f"none in ALARM ({alarm.name} OK)"
    assert report.ok

    reason = "Threshold Crossed: 5 datapoints [0.0 (06/12/26 09:04:00)] were less than 1.0"
    cloudwatch.set_alarm_state(AlarmName=alarm.name, StateValue="ALARM", StateReason=reason)
    report = verify_dev(project, cluster.url)
    [firing] = report.mismatches
    assert (firing.target, firing.item) == ("alarms demo", alarm.name)
    assert firing.live.startswith("ALARM since ")
    assert firing.live.endswith(reason)
    assert alarm.description in firing.hint
    assert report.exit_status == ExitStatus.REFUSED


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
        min_instances=2,
    )
    live = LiveEndpoint(
        name="demo-prod",
        status="Failed",
        failure_reason="The primary container did not pass the ping health check.",
        configuration=EndpointConfiguration(
            name="endpoint-demo-config-1",
            model_name="endpoint-demo-model-1",
            image=IMAGE,
            model_data_url="s3://m/model.tar.gz",
            model_version="2",
            package_arn="",
        ),
        instances=1,
    )
    [status, version, instances] = endpoint_checks(expected, live)
    assert not status.ok
    assert status.live == "Failed (The primary container did not pass the ping health check.)"
    assert version.ok
    assert (instances.ok, instances.declared, instances.live) == (False, "at least 2", "1")
    assert [c.item for c in endpoint_checks(expected, None)] == ["exists"]


def test_a_stack_that_pins_nothing_is_not_verified_and_says_what_to_pin(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No AWS is asked (no credentials here): there is nothing to compare."""
    assert main(["verify", "staging", "--project-dir", str(project)]) == ExitStatus.REFUSED
    out = capsys.readouterr().out
    assert "Pulumi.staging.yaml pins no model version (mlstack:servingModelVersions)" in out
    assert "`mlstack promote staging --model demo --version N`" in out
    assert out.rstrip().endswith("staging: nothing was checked, so nothing is verified")

    assert main(["verify", "staging", "--json", "--project-dir", str(project)]) == 1
    report = json.loads(capsys.readouterr().out)
    assert (report["ok"], report["checks"], report["exit_status"]) == (False, [], 1)


def test_a_stack_file_that_stops_verify_still_gives_json(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = project / "Pulumi.staging.yaml"
    path.write_text(path.read_text() + "  mlstack:endpointMinInstances: lots\n")
    assert main(["verify", "staging", "--json", "--project-dir", str(project)]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert "mlstack:endpointMinInstances" in report["error"]


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
