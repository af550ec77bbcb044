"""The pinned model served by a SageMaker endpoint, through the program as each stack file
declares it: guarded rollouts, alarms that watch this endpoint, capture, autoscaling, an
execution role that reads only the pinned model, and the environment's topic and budget."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest

from infra.documents.monitoring import endpoint_alarms
from infra.offline.mocks import RecordedResource
from infra.offline.runner import ProgramRun
from infra.project import outputs

from .conftest import run_served

ENDPOINT = "aws:sagemaker/endpoint:Endpoint"
CONFIGURATION = "aws:sagemaker/endpointConfiguration:EndpointConfiguration"
MODEL = "aws:sagemaker/model:Model"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"


def one(run: ProgramRun, resource_type: str) -> RecordedResource:
    [found] = run.of_type(resource_type)
    return found


def test_staging_serves_the_pin_on_an_endpoint_that_shifts_a_canary_and_rolls_back(
    served_runs: dict[str, ProgramRun],
) -> None:
    run = served_runs["staging"]
    endpoint = one(run, ENDPOINT).inputs
    assert endpoint["name"] == "demo-staging"
    assert endpoint["endpointConfigName"] == one(run, CONFIGURATION).props["name"]
    policy = endpoint["deploymentConfig"]["blueGreenUpdatePolicy"]
    assert policy["trafficRoutingConfiguration"] == {
        "type": "CANARY",
        "waitIntervalInSeconds": 300,
        "canarySize": {"type": "CAPACITY_PERCENT", "value": 10},
    }
    alarms = {a.inputs["name"]: a.inputs for a in run.of_type(ALARM)}
    rollback = [
        a["alarmName"] for a in endpoint["deploymentConfig"]["autoRollbackConfiguration"]["alarms"]
    ]
    assert rollback == ["demo-staging-5xx", "demo-staging-latency-p99"]
    for name in rollback:
        assert alarms[name]["dimensions"] == {
            "EndpointName": "demo-staging",
            "VariantName": "primary",
        }
    # Latency is published in microseconds.
    assert alarms["demo-staging-latency-p99"]["threshold"] == 250_000
    assert alarms["demo-staging-latency-p99"]["extendedStatistic"] == "p99"


def test_prod_shifts_in_linear_steps_on_at_least_two_instances(
    served_runs: dict[str, ProgramRun],
) -> None:
    run = served_runs["prod"]
    routing = one(run, ENDPOINT).inputs["deploymentConfig"]["blueGreenUpdatePolicy"][
        "trafficRoutingConfiguration"
    ]
    assert routing == {
        "type": "LINEAR",
        "waitIntervalInSeconds": 600,
        "linearStepSize": {"type": "CAPACITY_PERCENT", "value": 34},
    }
    [variant] = one(run, CONFIGURATION).inputs["productionVariants"]
    assert (variant["instanceType"], variant["initialInstanceCount"]) == ("ml.m6i.xlarge", 2)
    target = one(run, "aws:appautoscaling/target:Target").inputs
    assert (target["minCapacity"], target["maxCapacity"]) == (2, 6)
    assert target["resourceId"] == "endpoint/demo-prod/variant/primary"
    policy = one(run, "aws:appautoscaling/policy:Policy").inputs
    tracking = policy["targetTrackingScalingPolicyConfiguration"]
    assert tracking["predefinedMetricSpecification"] == {
        "predefinedMetricType": "SageMakerVariantInvocationsPerInstance"
    }
    assert tracking["targetValue"] == 1000


def test_the_endpoint_runs_the_pinned_version_from_the_built_image_encrypted_and_captured(
    served_runs: dict[str, ProgramRun],
) -> None:
    run = served_runs["staging"]
    model = one(run, MODEL).inputs
    container = model["primaryContainer"]
    assert container["image"] == run.outputs["servingImage"]
    assert "@sha256:" in container["image"]
    assert container["modelDataUrl"].endswith("model.tar.gz")
    assert container["environment"] == {"MLSTACK_MODEL_VERSION": "1"}
    assert model["enableNetworkIsolation"] is True
    configuration = one(run, CONFIGURATION).inputs
    [key] = run.of_type("aws:kms/key:Key")
    assert configuration["kmsKeyArn"] == key.props["arn"]
    capture = configuration["dataCaptureConfig"]
    assert capture["initialSamplingPercentage"] == 10
    assert capture["kmsKeyId"] == key.props["arn"]
    assert capture["destinationS3Uri"] == f"s3://{run.outputs['captureBucketName']}/sagemaker"
    assert [o["captureMode"] for o in capture["captureOptions"]] == ["Input", "Output"]


def test_the_execution_role_reads_the_models_versions_and_no_other_object(
    served_runs: dict[str, ProgramRun],
) -> None:
    run = served_runs["staging"]
    role = next(r for r in run.of_type("aws:iam/role:Role") if r.name == "endpoint-demo-execution")
    trust = json.loads(role.inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    policy = next(
        r
        for r in run.of_type("aws:iam/rolePolicy:RolePolicy")
        if r.name == "endpoint-demo-execution"
    )
    statements = {s["Sid"]: s for s in json.loads(policy.inputs["policy"])["Statement"]}
    # Every version of the model, not only the pinned one: a rollback runs an earlier version
    # on a fleet that still scales out and replaces instances.
    models = run.outputs["modelsBucketName"]
    assert statements["ReadTheModelsVersions"]["Resource"] == [
        f"arn:aws:s3:::{models}/models/demo/*"
    ]
    # It is the model's, declared by the platform; the workloads hand it to SageMaker.
    assert role.urn.split("::")[1] == "mlstack"
    assert one(run, MODEL).inputs["executionRoleArn"] == role.props["arn"]
    assert statements["WriteCapturedTraffic"]["Resource"] == [
        f"arn:aws:s3:::{run.outputs['captureBucketName']}/sagemaker/demo-staging/*"
    ]
    repository = next(
        r for r in run.of_type("aws:ecr/repository:Repository") if "serving" in r.name
    )
    assert statements["PullServingImage"]["Resource"] == [repository.props["arn"]]


def test_a_new_pin_replaces_the_model_and_keeps_the_endpoint() -> None:
    """SageMaker has no UpdateModel or UpdateEndpointConfig: a changed Model or
    EndpointConfiguration is a new one, under a new auto-generated name, and the Endpoint,
    whose name is fixed, takes the new configuration with UpdateEndpoint (blue/green)."""
    before, after = run_served("staging", 1), run_served("staging", 2)

    def inputs(run: ProgramRun) -> dict[str, Mapping[str, Any]]:
        return {r.urn: r.inputs for r in run.resources}

    was, now = inputs(before), inputs(after)
    changed = {r.resource_type for r in after.resources if was.get(r.urn) != r.inputs}
    assert {MODEL, CONFIGURATION} <= changed
    assert ENDPOINT not in changed
    assert one(after, ENDPOINT).inputs["name"] == one(before, ENDPOINT).inputs["name"]
    assert set(now) == set(was)  # no endpoint, alarm or scaling target added or removed


def test_capture_off_declares_no_capture() -> None:
    run = run_served("staging", dataCapturePercent=0)
    assert "dataCaptureConfig" not in one(run, CONFIGURATION).inputs


def test_dev_serves_on_the_cluster_only_and_still_has_its_topic_and_budget(
    served_runs: dict[str, ProgramRun],
) -> None:
    run = served_runs["dev"]
    assert run.of_type(ENDPOINT) == []
    # No endpoint alarms: only the cluster's serving and its drift are watched.
    assert sorted(a.inputs["name"] for a in run.of_type(ALARM)) == [
        "demo-dev-drift",
        "mlstack-dev-serving-demo-replicas",
    ]
    topic = one(run, "aws:sns/topic:Topic")
    [key] = run.of_type("aws:kms/key:Key")
    assert topic.inputs["kmsMasterKeyId"] == key.props["arn"]
    assert run.of_type("aws:sns/topicSubscription:TopicSubscription") == []
    budget = one(run, "aws:budgets/budget:Budget").inputs
    assert (budget["limitAmount"], budget["timeUnit"]) == ("300", "MONTHLY")
    assert budget["costFilters"] == [{"name": "TagKeyValue", "values": ["user:environment$dev"]}]
    notices = budget["notifications"]
    assert [(n["threshold"], n["notificationType"]) for n in notices] == [
        (80, "FORECASTED"),
        (100, "FORECASTED"),
    ]
    assert all(n["subscriberSnsTopicArns"] == [topic.props["arn"]] for n in notices)


def test_prod_alarms_reach_the_on_call_address_and_its_dashboard_shows_the_endpoint(
    served_runs: dict[str, ProgramRun],
) -> None:
    run = served_runs["prod"]
    subscription = one(run, "aws:sns/topicSubscription:TopicSubscription").inputs
    assert (subscription["protocol"], subscription["endpoint"]) == (
        "email",
        "ml-oncall@example.com",
    )
    topic = one(run, "aws:sns/topic:Topic").props["arn"]
    assert all(a.inputs["alarmActions"] == [topic] for a in run.of_type(ALARM))
    body = json.loads(one(run, "aws:cloudwatch/dashboard:Dashboard").inputs["dashboardBody"])
    titles = [w["properties"]["title"] for w in body["widgets"]]
    assert titles == [
        "demo-prod invocations",
        "demo-prod errors",
        "demo-prod model latency p99 (µs)",
        "demo-prod instances",
        "serving-demo running pods",
        "demo-prod drift by feature (PSI)",
    ]


def test_every_alarm_needs_the_dimensions_of_what_it_watches() -> None:
    alarms = endpoint_alarms(endpoint="e", variant="v", latency_p99_ms=100, max_instances=3)
    assert {a.name: a.dimensions for a in alarms.values()} == {
        "e-5xx": {"EndpointName": "e", "VariantName": "v"},
        "e-latency-p99": {"EndpointName": "e", "VariantName": "v"},
        "e-at-max-instances": {"EndpointName": "e", "VariantName": "v"},
    }
    with pytest.raises(ValueError, match="dimensions"):
        type(alarms["errors"])(**{**alarms["errors"].__dict__, "dimensions": {}})


def test_each_served_model_gets_a_drift_job_on_the_cluster_and_an_alarm_on_its_figures(
    served_runs: dict[str, ProgramRun],
) -> None:
    run = served_runs["staging"]
    [job] = [
        r
        for r in run.of_type("kubernetes:batch/v1:CronJob")
        if r.inputs["metadata"]["name"] == "drift-demo"
    ]
    spec = job.inputs["spec"]
    assert spec["schedule"] == "0 6 * * *"
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "drift"
    [container] = pod["containers"]
    assert container["image"] == run.outputs["servingImage"]
    assert container["command"] == ["python", "-m", "serving.drift"]
    bucket = run.outputs["captureBucketName"]
    # staging serves on both targets: the job reads what each captured.
    assert list(zip(container["args"][::2], container["args"][1::2], strict=True)) == [
        ("--model-package", "demo-staging/1"),
        ("--capture", f"s3://{bucket}/sagemaker"),
        ("--capture", f"s3://{bucket}/kubernetes"),
        ("--endpoint", "demo-staging"),
        ("--variant", "primary"),
        ("--hours", "24"),
        ("--psi-threshold", "0.2"),
        ("--out-of-range-threshold", "0.05"),
    ]
    [alarm] = [a.inputs for a in run.of_type(ALARM) if a.inputs["name"] == "demo-staging-drift"]
    [query] = alarm["metricQueries"]
    assert "FROM \"mlstack/Drift\" WHERE EndpointName = 'demo-staging'" in query["expression"]
    assert alarm["threshold"] == 0.2
    # Its role may publish figures to the drift namespace only.
    policy = next(
        r
        for r in run.of_type("aws:iam/rolePolicy:RolePolicy")
        if r.name == "workloads-drift-permissions"
    )
    statements = {s["Sid"]: s for s in json.loads(policy.inputs["policy"])["Statement"]}
    assert statements["PublishDriftFigures"]["Condition"] == {
        "StringEquals": {"cloudwatch:namespace": "mlstack/Drift"}
    }


def test_without_capture_or_a_schedule_there_is_no_drift_job() -> None:
    for overrides in ({"dataCapturePercent": 0}, {"driftSchedule": ""}):
        run = run_served("staging", **overrides)
        names = [r.inputs["metadata"]["name"] for r in run.of_type("kubernetes:batch/v1:CronJob")]
        assert "drift-demo" not in names, overrides
        assert "demo-staging-drift" not in [a.inputs["name"] for a in run.of_type(ALARM)]


def test_a_stack_without_the_cluster_can_still_serve_on_sagemaker() -> None:
    run = run_served("local", servingTarget="sagemaker")
    assert one(run, ENDPOINT).inputs["name"] == "demo-local"
    assert "@sha256:" in one(run, MODEL).inputs["primaryContainer"]["image"]
    assert not [r for r in run.resources if r.resource_type.startswith("kubernetes:")]
    # Training has no cluster to run on, so SageMaker training jobs are its engine.
    builds = [r.name for r in run.resources if r.resource_type.startswith("docker-build:")]
    assert sorted(builds) == ["build-serving", "build-training"]
    training = run.outputs[outputs.TRAINING_IMAGE].split("@")[0]
    assert training == run.outputs[outputs.TRAINING_REPOSITORY_URL]
    # The drift job runs on the cluster: without one, no job and no alarm on its figures.
    assert "demo-local-drift" not in [a.inputs["name"] for a in run.of_type(ALARM)]
