"""`mlstack verify` and SageMaker: a stack serving on an endpoint, read from moto's SageMaker,
CloudWatch and STS, and AWS clients bounded so that an unreachable or hung API costs seconds.

moto serves every endpoint InService at once and has no UpdateEndpoint. The traffic shift test
extends moto: it sets the endpoint's status and its `PendingDeploymentSummary` on moto's own
endpoint object, which moto then returns from DescribeEndpoint like any other field. The pure
checks are also run on a DescribeEndpoint response written field for field from the API
reference's response syntax."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.sagemaker.models import sagemaker_backends

from infra.cli.main import main
from infra.operations.aws_access import (
    OPERATION_LIMITS,
    READ_LIMITS,
    ClientLimits,
    StackAws,
    connection_failed,
)
from infra.operations.live_state import (
    PACKAGE_TAG,
    EndpointConfiguration,
    endpoint_state,
    live_endpoint,
)
from infra.operations.stack_verification import verify_stack
from infra.operations.verification import ROLLED_BACK, Expected, Report, endpoint_checks
from mlstack_common.exits import ExitStatus
from mlstack_common.registry import find_version
from serving.cluster_api import ClusterApi
from serving.ports import free_port
from tests.infra.operating import REGION, SERVING_DIGEST, Registry
from tests.infra.test_verify import silent_server

ENDPOINT = "demo-staging"
GROUP = "demo-staging"
IMAGE = f"123456789012.dkr.ecr.{REGION}.amazonaws.com/images-serving@{SERVING_DIGEST}"
ACCOUNT = "123456789012"


def serve_staging(project: Path, registry: Registry, version: int, extra: str = "") -> None:
    """staging serves demo on its SageMaker endpoint only (no cluster to reach), pinned to
    `version` of two registered versions, from a prebuilt serving image."""
    registry.register(GROUP, "a" * 64)
    registry.register(GROUP, "b" * 64)
    path = project / "Pulumi.staging.yaml"
    path.write_text(
        path.read_text().replace("mlstack:servingTarget: both", "mlstack:servingTarget: sagemaker")
        + f"  mlstack:servingModelVersions:\n    - demo={version}\n"
        + f"  mlstack:imageDigests:\n    - serving={SERVING_DIGEST}\n"
        + extra
    )


def configuration(registry: Registry, version: int) -> str:
    """The Model and EndpointConfiguration the stack declares for `version`, as `pulumi up`
    creates them (auto-named); returns the configuration's name."""
    package = find_version(registry.client, GROUP, version)
    model, config = f"demo-model-{version}-4f2a", f"demo-config-{version}-4f2a"
    registry.client.create_model(
        ModelName=model,
        ExecutionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/endpoint",
        PrimaryContainer={
            "Image": IMAGE,
            "ModelDataUrl": package.model_data_url,
            "Environment": {"MLSTACK_MODEL_VERSION": str(version)},
        },
        Tags=[{"Key": PACKAGE_TAG, "Value": package.arn}],
    )
    registry.client.create_endpoint_config(
        EndpointConfigName=config,
        ProductionVariants=[
            {
                "VariantName": "primary",
                "ModelName": model,
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 2,
            }
        ],
        Tags=[{"Key": PACKAGE_TAG, "Value": package.arn}],
    )
    return config


def serve_config(registry: Registry, config: str) -> None:
    """The endpoint on `config`, in service (what SageMaker leaves after an update, or after
    rolling one back)."""
    client = registry.client
    if client.list_endpoints(NameContains=ENDPOINT)["Endpoints"]:
        client.delete_endpoint(EndpointName=ENDPOINT)
    client.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=config)


def moto_endpoint() -> Any:
    """moto's own record of the endpoint, to give it what moto cannot produce itself."""
    return sagemaker_backends[ACCOUNT][REGION].endpoints[ENDPOINT]


def declare_alarms() -> Any:
    """The endpoint's alarms, as the stack names them (moto starts them OK)."""
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    for suffix in ("5xx", "latency-p99"):
        cloudwatch.put_metric_alarm(
            AlarmName=f"{ENDPOINT}-{suffix}",
            AlarmDescription=f"{ENDPOINT}: {suffix} of the fleet of its current configuration",
            Namespace="AWS/SageMaker",
            MetricName="Invocation5XXErrors",
            Dimensions=[
                {"Name": "EndpointName", "Value": ENDPOINT},
                {"Name": "VariantName", "Value": "primary"},
            ],
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=3,
            Threshold=1,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
        )
    return cloudwatch


def verify_staging(project: Path) -> Report:
    def no_cluster(aws: StackAws, name: str, namespace: str) -> ClusterApi:
        raise AssertionError("staging serves on SageMaker only here")

    return verify_stack(project, "staging", connect_cluster=no_cluster, read_outputs=dict)


def test_an_endpoint_serving_the_pin_matches_and_the_report_names_account_and_region(
    project: Path, registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    serve_staging(project, registry, 2)
    serve_config(registry, configuration(registry, 2))
    declare_alarms()
    report = verify_staging(project)
    assert report.ok, report.render()
    assert [(c.target, c.item, c.live) for c in report.checks[1:3]] == [
        (f"endpoint {ENDPOINT}", "status", "InService"),
        (f"endpoint {ENDPOINT}", "model version", "2"),
    ]
    assert [c.item for c in report.checks[3:]] == [
        "model data",
        "model package",
        "image digest",
        "instances",
        "state",
    ]
    assert report.checks[-1].live == (
        f"none in ALARM ({ENDPOINT}-5xx OK, {ENDPOINT}-latency-p99 OK)"
    )

    assert main(["verify", "staging", "--project-dir", str(project)]) == ExitStatus.OK
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"staging: AWS account {ACCOUNT}, region {REGION}"
    assert out[-1] == "staging: live matches the stack (8 checks)"


def shifting_to(config: str, stage: str = "Baking") -> dict[str, Any]:
    """A PendingDeploymentSummary as DescribeEndpoint returns one mid-update: the configuration
    being deployed and the stages its variant went through."""
    return {
        "EndpointConfigName": config,
        "StartTime": datetime(2026, 12, 6, 9, 0, tzinfo=UTC),
        "ProductionVariants": [
            {
                "VariantName": "primary",
                "CurrentInstanceCount": 1,
                "DesiredInstanceCount": 2,
                "VariantStatus": [
                    {"Status": "Creating", "StartTime": datetime(2026, 12, 6, 9, 0, tzinfo=UTC)},
                    {
                        "Status": stage,
                        "StatusMessage": "canary: 1 of 2 instances take traffic",
                        "StartTime": datetime(2026, 12, 6, 9, 6, tzinfo=UTC),
                    },
                ],
            }
        ],
    }


def test_a_traffic_shift_in_progress_is_told_apart_from_a_rollback(
    project: Path, registry: Registry
) -> None:
    serve_staging(project, registry, 2)
    v1, v2 = configuration(registry, 1), configuration(registry, 2)
    declare_alarms()
    serve_config(registry, v1)
    moto_endpoint().endpoint_status = "Updating"
    moto_endpoint().pending_deployment_summary = shifting_to(v2)

    report = verify_staging(project)
    checks = {c.item: c for c in report.checks if c.target == f"endpoint {ENDPOINT}"}
    assert checks["status"].live == (
        f"Updating, deploying configuration {v2} (version 2), stage Baking since "
        "2026-12-06T09:06:00Z"
    )
    assert "baking: the rollback alarms watch the new fleet" in checks["status"].hint
    assert "canary: 1 of 2 instances take traffic" in checks["status"].hint
    version = checks["model version"]
    assert version.live == "1 (traffic shift to 2 in progress, Baking)"
    assert f"shifting traffic from {v1} to {v2}" in version.hint
    assert "not a rollback" in version.hint
    assert "rolled an update back" not in report.render()
    # What the new fleet runs is what the stack declares.
    assert all(
        checks[f"{item} (being deployed)"].ok
        for item in ("model data", "model package", "image digest")
    )
    assert [c.item for c in report.mismatches] == ["status", "model version"]
    assert report.exit_status == ExitStatus.REFUSED

    # The alarms fired during the shift: SageMaker went back to v1 and finished the update.
    serve_config(registry, v1)
    report = verify_staging(project)
    version = next(c for c in report.mismatches if c.item == "model version")
    assert (version.declared, version.live) == ("2", "1")
    assert version.hint == f"{ROLLED_BACK}; it runs endpoint configuration {v1}"
    assert [c.item for c in report.mismatches] == ["model version", "model data", "model package"]


DESCRIBED = {
    # DescribeEndpoint's response syntax, field for field
    # (docs.aws.amazon.com/sagemaker/latest/APIReference/API_DescribeEndpoint.html), as boto3
    # parses it: an endpoint on its old configuration while an update deploys the new one.
    "EndpointName": "demo-prod",
    "EndpointArn": "arn:aws:sagemaker:eu-west-1:123456789012:endpoint/demo-prod",
    "EndpointConfigName": "demo-config-7c1d0e2",
    "ProductionVariants": [
        {
            "VariantName": "primary",
            "DeployedImages": [
                {
                    "SpecifiedImage": IMAGE,
                    "ResolvedImage": IMAGE,
                    "ResolutionTime": datetime(2026, 12, 1, 9, 0, tzinfo=UTC),
                }
            ],
            "CurrentWeight": 1.0,
            "DesiredWeight": 1.0,
            "CurrentInstanceCount": 2,
            "DesiredInstanceCount": 2,
        }
    ],
    "EndpointStatus": "Updating",
    "CreationTime": datetime(2026, 12, 1, 9, 0, tzinfo=UTC),
    "LastModifiedTime": datetime(2026, 12, 6, 9, 0, tzinfo=UTC),
    "LastDeploymentConfig": {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "LINEAR",
                "WaitIntervalInSeconds": 600,
                "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 34},
            },
            "TerminationWaitInSeconds": 300,
        },
        "AutoRollbackConfiguration": {
            "Alarms": [{"AlarmName": "demo-prod-5xx"}, {"AlarmName": "demo-prod-latency-p99"}]
        },
    },
    "PendingDeploymentSummary": {
        "EndpointConfigName": "demo-config-9a8b7c6",
        "ProductionVariants": [
            {
                "VariantName": "primary",
                "CurrentInstanceCount": 2,
                "DesiredInstanceCount": 2,
                "InstanceType": "ml.m6i.xlarge",
                # Listed out of order: the current stage is the one that started last.
                "VariantStatus": [
                    {
                        "Status": "ActivatingTraffic",
                        "StartTime": datetime(2026, 12, 6, 9, 20, tzinfo=UTC),
                    },
                    {"Status": "Creating", "StartTime": datetime(2026, 12, 6, 9, 0, tzinfo=UTC)},
                    {"Status": "Baking", "StartTime": datetime(2026, 12, 6, 9, 10, tzinfo=UTC)},
                ],
            }
        ],
        "StartTime": datetime(2026, 12, 6, 9, 0, tzinfo=UTC),
    },
}


def served(name: str, version: int) -> EndpointConfiguration:
    return EndpointConfiguration(
        name=name,
        model_name=f"demo-model-{version}",
        image=IMAGE,
        model_data_url=f"s3://models/demo/{version}/model.tar.gz",
        model_version=str(version),
        package_arn=f"arn:aws:sagemaker:eu-west-1:123456789012:model-package/demo-prod/{version}",
    )


def test_a_describe_endpoint_response_mid_update_reads_as_a_shift() -> None:
    state = endpoint_state(DESCRIBED)
    assert (state.status, state.config_name, state.instances) == (
        "Updating",
        "demo-config-7c1d0e2",
        2,
    )
    assert (state.pending_config, state.stage, state.stage_since) == (
        "demo-config-9a8b7c6",
        "ActivatingTraffic",
        "2026-12-06T09:20:00Z",
    )
    live = live_endpoint(
        "demo-prod",
        state,
        {
            "demo-config-7c1d0e2": served("demo-config-7c1d0e2", 4),
            "demo-config-9a8b7c6": served("demo-config-9a8b7c6", 5),
        },
    )
    expected = Expected(
        model="demo",
        version=5,
        package=None,
        group="demo-prod",
        image_digest=SERVING_DIGEST,
        endpoint="demo-prod",
        deployment=None,
        min_replicas=3,
        min_instances=2,
    )
    checks = {c.item: c for c in endpoint_checks(expected, live)}
    assert checks["model version"].live == "4 (traffic shift to 5 in progress, ActivatingTraffic)"
    assert "turning traffic on for the new fleet" in checks["status"].hint
    assert checks["image digest (being deployed)"].ok
    assert (checks["instances"].ok, checks["instances"].live) == (True, "2")

    # The same update, deploying another version than the stack pins: not the pin's shift.
    other = endpoint_checks(dataclasses.replace(expected, version=6), live)
    version = next(c for c in other if c.item == "model version")
    assert version.live == "4"
    assert "an update to demo-config-9a8b7c6 (version 5) is in progress" in version.hint

    # Finished: InService on the old configuration, no update pending.
    rolled_back = {k: v for k, v in DESCRIBED.items() if k != "PendingDeploymentSummary"} | {
        "EndpointStatus": "InService"
    }
    live = live_endpoint(
        "demo-prod",
        endpoint_state(rolled_back),
        {"demo-config-7c1d0e2": served("demo-config-7c1d0e2", 4)},
    )
    version = next(c for c in endpoint_checks(expected, live) if c.item == "model version")
    assert version.hint.startswith(ROLLED_BACK)


def test_an_alarm_in_alarm_fails_naming_the_alarm_and_its_reason(
    project: Path, registry: Registry
) -> None:
    serve_staging(project, registry, 2)
    serve_config(registry, configuration(registry, 2))
    cloudwatch = declare_alarms()
    reason = (
        "Threshold Crossed: 2 out of the last 3 datapoints [4.0 (06/12/26 09:05:00), 3.0 "
        "(06/12/26 09:04:00)] were greater than or equal to the threshold (1.0)"
    )
    cloudwatch.set_alarm_state(AlarmName=f"{ENDPOINT}-5xx", StateValue="ALARM", StateReason=reason)
    report = verify_staging(project)
    [firing] = report.mismatches
    assert (firing.target, firing.item, firing.declared) == (
        "alarms demo",
        f"{ENDPOINT}-5xx",
        "not in ALARM",
    )
    assert firing.live.startswith("ALARM since ")
    assert firing.live.endswith(reason)
    assert "docs/runbooks/endpoint-alarm.md" in firing.hint
    assert report.exit_status == ExitStatus.REFUSED


def test_an_endpoint_without_its_alarms_is_a_mismatch(project: Path, registry: Registry) -> None:
    serve_staging(project, registry, 2)
    serve_config(registry, configuration(registry, 2))
    [missing] = verify_staging(project).mismatches
    assert (missing.target, missing.item, missing.live) == ("alarms demo", "exist", "none")
    assert missing.declared == f"{ENDPOINT}-* (the endpoint's alarms)"
    assert "traffic shifts cannot roll back" in missing.hint


def test_fewer_instances_than_the_floor_is_a_mismatch(project: Path, registry: Registry) -> None:
    serve_staging(project, registry, 2, extra="  mlstack:endpointMinInstances: 2\n")
    serve_config(registry, configuration(registry, 2))
    declare_alarms()
    assert verify_staging(project).ok
    moto_endpoint().production_variants[0]["CurrentInstanceCount"] = 1  # one being replaced
    [instances] = verify_staging(project).mismatches
    assert (instances.item, instances.declared, instances.live) == (
        "instances",
        "at least 2",
        "1",
    )
    assert "/aws/sagemaker/Endpoints/demo-staging" in instances.hint


def test_an_unreachable_sagemaker_costs_one_timeout_and_the_rest_is_still_read(
    project: Path, registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    serve_staging(project, registry, 2, extra=f"  aws:endpoints:\n    - sagemaker: {closed}\n")
    declare_alarms()
    started = time.monotonic()
    report = verify_staging(project)
    assert time.monotonic() - started < 10
    assert [(c.target, c.outcome) for c in report.checks] == [
        ("registry demo-staging", "not read"),
        (f"endpoint {ENDPOINT}", "not read"),
        ("alarms demo", "ok"),
    ]
    assert "Could not connect to the endpoint URL" in report.checks[0].live
    assert report.checks[1].live.startswith("not tried: SageMaker could not be reached (")
    assert report.exit_status == ExitStatus.UNREACHABLE

    assert main(["verify", "staging", "--project-dir", str(project)]) == 4
    assert capsys.readouterr().out.rstrip().endswith("staging: 2 of 3 could not be read")


def test_without_sts_the_account_is_unknown_and_said_why(project: Path, registry: Registry) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    serve_staging(project, registry, 2, extra=f"  aws:endpoints:\n    - sts: {closed}\n")
    serve_config(registry, configuration(registry, 2))
    declare_alarms()
    report = verify_staging(project)
    assert report.ok
    assert report.header() == f"staging: AWS account unknown, region {REGION}"
    assert report.notes[0].startswith("the AWS account is not known: STS GetCallerIdentity")
    assert report.to_json()["account"] is None


def test_aws_clients_are_bounded_whatever_the_environment_asks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "10")
    monkeypatch.setenv("AWS_RETRY_MODE", "legacy")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    for aws, limits in (
        (StackAws(REGION), OPERATION_LIMITS),
        (StackAws(REGION).with_limits(READ_LIMITS), READ_LIMITS),
    ):
        config = aws.client("sagemaker").meta.config
        assert (config.connect_timeout, config.read_timeout) == (
            limits.connect_seconds,
            limits.read_seconds,
        )
        assert config.retries == {"total_max_attempts": limits.attempts, "mode": "standard"}
    with pytest.raises(ValueError, match="allowed: timeouts above 0 seconds, at least 1"):
        ClientLimits(connect_seconds=1, read_seconds=0, attempts=1)


def test_a_hung_api_fails_after_its_read_timeout_and_attempts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    limits = ClientLimits(connect_seconds=1, read_seconds=0.3, attempts=2)
    with silent_server() as (url, taken):
        client = StackAws(REGION, {"sagemaker": url}, limits=limits).client("sagemaker")
        started = time.monotonic()
        with pytest.raises(Exception, match="Read timeout") as raised:
            client.describe_endpoint(EndpointName=ENDPOINT)
        assert time.monotonic() - started < 5
        assert len(taken) == limits.attempts
    assert connection_failed(raised.value)
